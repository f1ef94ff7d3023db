"""Plugin discovery.

A plugin is a module with a ``register()`` function that adds DataModules (and may add basenets and
decoders, :func:`openfields.decoder.factory.register_decoder`)
through :func:`openfields.datasets.register_datamodule` and
:func:`openfields.network.basenets.register_basenet`. Three sources are loaded, in this order:

1. the in-repo plugins in the ``plugins/`` folder (importable as ``openfields.plugins.<name>``);
2. any importable top-level module whose name starts with ``openfields_``;
3. any entry point in the group ``openfields.plugins`` (a module, or its register function
   ``"pkg.mod:register"``).

A plugin that fails to import or to register is reported by name (a warning, :func:`failures` and
``python -m openfields.plugins``) and left out: whatever it registered before failing is removed again,
and the other plugins load as usual. ``register_all()`` is idempotent; the CLIs call it before building
their parsers.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import pkgutil
import types
from collections.abc import Callable

LOG = logging.getLogger(__name__)

ENTRY_POINT_GROUP = 'openfields.plugins'
MODULE_PREFIX = 'openfields_'


@dataclasses.dataclass(frozen=True)
class Plugin:
    """A loaded plugin: where it came from and what its ``register()`` added."""

    name: str  # module name
    version: str
    source: str  # 'in-repo', 'module' or 'entry point'
    datasets: tuple[str, ...] = ()
    basenets: tuple[str, ...] = ()
    decoders: tuple[str, ...] = ()


_loaded: dict[str, str] = {}  # plugin name -> version, filled once by register_all()
_plugins: dict[str, Plugin] = {}
_failures: dict[str, str] = {}  # plugin name -> why it is not loaded


def _in_repo_modules() -> list[str]:
    import openfields.plugins
    return sorted(f'openfields.plugins.{info.name}'
                  for info in pkgutil.iter_modules(openfields.plugins.__path__) if info.ispkg)


def _prefixed_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules() if info.name.startswith(MODULE_PREFIX))


def _registries() -> list[dict]:
    """The registries a plugin may add to (restored when it fails half-way)."""
    from .datasets import DATAMODULES
    from .decoder.factory import DECODERS
    from .network import basenets
    return [DATAMODULES, basenets.BASENETS, basenets.CONFIG_FROM_ARGS, DECODERS]


def _module_version(module: types.ModuleType, source: str) -> str:
    """``__version__``; else the version of the installed distribution providing the module; in-repo
    plugins have openfields' version."""
    if source == 'in-repo':
        from .version import version
        return version()
    if getattr(module, '__version__', None):
        return str(module.__version__)
    top_level = module.__name__.split('.')[0]
    for distribution in importlib.metadata.packages_distributions().get(top_level, []):
        return importlib.metadata.version(distribution)
    return ''


def _load(name: str, source: str, load: Callable[[], tuple[Callable[[], None], str]]) -> None:
    """``load() -> (register function, version)``; run it, record the plugin or its failure."""
    registries = _registries()
    before = [dict(registry) for registry in registries]
    try:
        register, version = load()
        register()
    except Exception as error:  # a plugin must not break openfields or the other plugins
        for registry, saved in zip(registries, before):
            registry.clear()
            registry.update(saved)
        _failures[name] = f'{type(error).__name__}: {error}'
        level = logging.ERROR if source == 'in-repo' else logging.WARNING
        LOG.log(level, 'plugin %s failed to load: %s', name, error, exc_info=LOG.isEnabledFor(logging.DEBUG))
        return
    added = [sorted(set(registry) - set(saved)) for registry, saved in zip(registries, before)]
    _plugins[name] = Plugin(name=name, version=version, source=source, datasets=tuple(added[0]),
                            basenets=tuple(added[1]), decoders=tuple(added[3]))
    _loaded[name] = version


def _module_loader(name: str, source: str, module: types.ModuleType | None = None):
    def load():
        loaded = module if module is not None else importlib.import_module(name)
        register = getattr(loaded, 'register', None)
        if register is None:
            raise AttributeError(f'module {name} has no register() function')
        return register, _module_version(loaded, source)
    return load


def _entry_point_loader(entry_point: importlib.metadata.EntryPoint):
    def load():
        target = entry_point.load()  # a module, or its register function ("pkg.mod:register")
        if isinstance(target, types.ModuleType):
            register, version = _module_loader(entry_point.module, 'entry point', target)()
        else:
            register, version = target, ''
        dist = getattr(entry_point, 'dist', None)
        return register, version or (dist.version if dist is not None else '')
    return load


def register_all() -> dict[str, str]:
    """Load every plugin once; returns {plugin name: version} of those that loaded."""
    if _loaded:
        return dict(_loaded)
    _plugins.clear()
    _failures.clear()
    for name in _in_repo_modules():
        _load(name, 'in-repo', _module_loader(name, 'in-repo'))
    for name in _prefixed_modules():
        _load(name, 'module', _module_loader(name, 'module'))
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.module in _loaded or entry_point.module in _failures:
            continue
        _load(entry_point.module, 'entry point', _entry_point_loader(entry_point))
    return dict(_loaded)


def versions() -> dict[str, str]:
    """Versions of the loaded plugins (recorded in logs and checkpoints)."""
    return dict(_loaded)


def plugins() -> list[Plugin]:
    """The loaded plugins, in loading order."""
    return list(_plugins.values())


def failures() -> dict[str, str]:
    """``{plugin name: reason}`` of the plugins that failed to import or register."""
    return dict(_failures)


def listing() -> str:
    """Human-readable table of the loaded plugins (and the failed ones) for ``python -m openfields.plugins``."""
    rows = [('plugin', 'version', 'source', 'adds')]
    for p in plugins():
        adds = ([f'dataset {d}' for d in p.datasets] + [f'basenet {b}' for b in p.basenets]
                + [f'decoder {k}' for k in p.decoders])
        rows.append((p.name, p.version or '-', p.source, ', '.join(adds) or '-'))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ['  '.join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + '  ' + row[3] for row in rows]
    if _failures:
        lines += ['', f'failed to load ({len(_failures)}):']
        lines += [f'{name}: {reason}' for name, reason in _failures.items()]
    return '\n'.join(lines)
