"""OpenPifPaf checkpoint files rebuilt from the layouts recorded with OpenPifPaf 0.13.11
(tests/data/openpifpaf_layouts.json, written by tools/openpifpaf_layout_reference.py), without OpenPifPaf.

:func:`write` pickles, with ``torch.save`` as OpenPifPaf's trainer does, a tree of stand-in objects: the torch and
torchvision modules are their real classes; OpenPifPaf's modules (``Shell``, ``ShuffleNetV2K``, ``Resnet``,
``CompositeField4``, ...) are ``torch.nn.Module`` subclasses and its head metas plain classes, created with
OpenPifPaf's module and qualified names and entered in ``sys.modules`` (as fake ``openpifpaf...`` modules) only while
the file is pickled. Every module gets the recorded attributes and children; parameters and buffers the recorded
shapes, filled by the reference tool's :func:`fill`. The file names the globals a real OpenPifPaf checkpoint names
(:func:`pickled_globals`; numpy arrays are named as numpy 1, which OpenPifPaf 0.13 runs with, names them).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import json
import pathlib
import pickle
import sys
import types

import numpy as np
import torch

from tools.openpifpaf_layout_reference import JSON_PATH, NPZ_PATH, fill, input_image, pickled_globals

__all__ = ['layouts', 'fields', 'decode', 'build', 'checkpoint', 'write', 'fill', 'input_image', 'pickled_globals']

FAKE_ROOT = 'openpifpaf'


@functools.lru_cache(maxsize=None)
def layouts() -> dict:
    return json.loads(JSON_PATH.read_text())


def fields() -> dict[str, np.ndarray]:
    with np.load(NPZ_PATH) as data:
        return {key: data[key] for key in data.files}


class _Classes:
    """The classes a layout names: real ones for torch and torchvision, stand-ins for OpenPifPaf's."""

    def __init__(self):
        self.stand_ins: dict[str, type] = {}

    def get(self, full_name: str, module_base: bool) -> type:
        module_name, _, qualname = full_name.rpartition('.')
        if module_name == FAKE_ROOT or module_name.startswith(FAKE_ROOT + '.'):
            if full_name not in self.stand_ins:
                base = torch.nn.Module if module_base else object
                self.stand_ins[full_name] = type(qualname, (base,), {'__module__': module_name,
                                                                     '__qualname__': qualname})
            return self.stand_ins[full_name]
        if not module_name.startswith(('torch.', 'torchvision.')):
            raise ValueError(f'{full_name}: not a class of torch, torchvision or OpenPifPaf')
        return getattr(importlib.import_module(module_name), qualname)

    @contextlib.contextmanager
    def registered(self):
        """The stand-ins findable by the pickler as ``openpifpaf.<module>.<name>``, in fake modules entered in
        ``sys.modules`` only for the duration."""
        if any(name == FAKE_ROOT or name.startswith(FAKE_ROOT + '.') for name in sys.modules):
            raise RuntimeError('openpifpaf is imported in this process: the stand-ins would replace it')
        added = []
        try:
            for full_name, cls in self.stand_ins.items():
                parts = full_name.split('.')[:-1]
                for depth in range(1, len(parts) + 1):
                    name = '.'.join(parts[:depth])
                    if name not in sys.modules:
                        sys.modules[name] = types.ModuleType(name, 'stand-in for pickling (tests)')
                        added.append(name)
                setattr(sys.modules['.'.join(parts)], cls.__qualname__, cls)
            yield
        finally:
            for name in reversed(added):
                del sys.modules[name]


def decode(value, classes: _Classes):
    """The value :func:`tools.openpifpaf_layout_reference.encode` recorded, with its types."""
    if isinstance(value, list):
        return [decode(v, classes) for v in value]
    if not isinstance(value, dict):
        return value
    if 'object' in value:
        cls = classes.get(value['object'], module_base=False)
        instance = cls.__new__(cls)
        instance.__dict__.update(decode(value['state'], classes))
        return instance
    (tag, content), = ((k, v) for k, v in value.items() if k != 'ordered')
    if tag == 'tuple':
        return tuple(decode(v, classes) for v in content)
    if tag == 'set':
        return {decode(v, classes) for v in content}
    if tag == 'dict':
        items = [(decode(k, classes), decode(v, classes)) for k, v in content]
        return collections.OrderedDict(items) if value.get('ordered') else dict(items)
    if tag == 'ndarray':
        return np.array(content['data'], dtype=np.dtype(content['dtype'])).reshape(content['shape'])
    if tag == 'numpy_scalar':
        return np.dtype(content['dtype']).type(content['value'])
    if tag == 'device':
        return torch.device(content)
    raise ValueError(f'unknown tag {tag}')


def build(description: dict, classes: _Classes, prefix: str = '') -> torch.nn.Module:
    """The module tree of ``description`` (recorded by ``describe``), parameters and buffers filled."""
    cls = classes.get(description['class'], module_base=True)
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    for key, value in description['attributes'].items():
        object.__setattr__(module, key, decode(value, classes))
    dtypes = {'float32': torch.float32, 'float64': torch.float64, 'int64': torch.int64}
    for name, spec in description.get('parameters', {}).items():
        module._parameters[name] = None if spec is None else torch.nn.Parameter(  # pylint: disable=protected-access
            fill(prefix + name, spec['shape'], dtypes[spec['dtype']]), requires_grad=spec.get('requires_grad', True))
    for name, spec in description.get('buffers', {}).items():
        module._buffers[name] = None if spec is None else fill(  # pylint: disable=protected-access
            prefix + name, spec['shape'], dtypes[spec['dtype']])
    module._non_persistent_buffers_set = set(  # pylint: disable=protected-access
        description.get('non_persistent_buffers', []))
    for name, child in description.get('children', {}).items():
        module._modules[name] = None if child is None else build(  # pylint: disable=protected-access
            child, classes, f'{prefix}{name}.')
    return module


class _Pickler(pickle._Pickler):  # pylint: disable=protected-access  # the Python pickler: save_global is a method
    """numpy >= 2 names its array rebuild function ``numpy._core.multiarray._reconstruct``; numpy 1, which
    OpenPifPaf 0.13 runs with, ``numpy.core.multiarray._reconstruct``: written as numpy 1 writes it."""

    def save_global(self, obj, name=None):
        if getattr(obj, '__module__', None) == 'numpy._core.multiarray' and obj.__name__ == '_reconstruct':
            self.write(pickle.GLOBAL + b'numpy.core.multiarray\n_reconstruct\n')
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _PickleModule:
    """What ``torch.save(pickle_module=...)`` uses of a pickle module."""

    __name__ = 'tests.network.openpifpaf_layouts'
    Pickler = _Pickler


def checkpoint(case: str) -> tuple[dict, _Classes]:
    """``{'model': Shell, 'epoch', 'meta'}`` of ``case`` as OpenPifPaf's trainer saves it (stand-in classes)."""
    recorded = layouts()['cases'][case]
    classes = _Classes()
    saved = {'model': build(recorded['tree'], classes), 'epoch': recorded['epoch'],
             'meta': decode(recorded['meta'], classes)}
    return saved, classes


def write(case: str, path) -> pathlib.Path:
    """The checkpoint file of ``case`` at ``path`` (``torch.save``, protocol 2, the stand-ins registered only while
    pickling)."""
    saved, classes = checkpoint(case)
    with classes.registered():
        torch.save(saved, path, pickle_module=_PickleModule)
    return pathlib.Path(path)
