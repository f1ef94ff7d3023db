"""Plugin discovery.

A plugin is a module with a ``register()`` function that adds DataModules (and
may add basenets or decoders) through the ``register_*`` functions of
:mod:`openfields.datasets` and :mod:`openfields.network.basenets`. Three
sources are loaded, in this order:

1. the in-repo plugins in the ``plugins/`` folder (importable as ``openfields.plugins.<name>``);
2. any importable top-level module whose name starts with ``openfields_``;
3. any entry point in the group ``openfields.plugins``.

``register_all()`` is idempotent; the CLIs call it before building their parsers.
"""

import importlib
import importlib.metadata
import logging
import pkgutil
import types

LOG = logging.getLogger(__name__)

ENTRY_POINT_GROUP = 'openfields.plugins'
MODULE_PREFIX = 'openfields_'

_loaded: dict[str, str] = {}  # plugin name -> version, filled once by register_all()


def _in_repo_modules() -> list[str]:
    import openfields.plugins
    return sorted(f'openfields.plugins.{info.name}'
                  for info in pkgutil.iter_modules(openfields.plugins.__path__) if info.ispkg)


def _prefixed_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules() if info.name.startswith(MODULE_PREFIX))


def _register(name: str, module: types.ModuleType):
    register = getattr(module, 'register', None)
    if register is None:
        LOG.warning('plugin %s has no register() function; skipped', name)
        return
    register()
    _loaded[name] = str(getattr(module, '__version__', ''))


def register_all() -> dict[str, str]:
    """Load every plugin once; returns {plugin name: version}."""
    if _loaded:
        return dict(_loaded)
    for name in _in_repo_modules():
        # in-repo plugins are part of openfields: a failure is a bug, let it raise
        _register(name, importlib.import_module(name))
    for name in _prefixed_modules():
        try:
            _register(name, importlib.import_module(name))
        except Exception as error:  # an external plugin must not break openfields
            LOG.warning('plugin %s failed to load: %s', name, error)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.module in _loaded:
            continue
        try:
            target = entry_point.load()  # a module, or its register function ("pkg.mod:register")
            if isinstance(target, types.ModuleType):
                _register(entry_point.module, target)
            else:
                target()
                _loaded[entry_point.module] = ''
        except Exception as error:
            LOG.warning('plugin entry point %s failed to load: %s', entry_point.name, error)
    return dict(_loaded)


def versions() -> dict[str, str]:
    """Versions of the loaded plugins (recorded in logs and checkpoints)."""
    return dict(_loaded)
