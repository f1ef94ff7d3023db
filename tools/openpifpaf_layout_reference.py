"""Reference layouts and fields of OpenPifPaf 0.13 checkpoints openfields reads, recorded from OpenPifPaf itself.

Run ONLY in a throwaway venv holding OpenPifPaf 0.13.11 (shared/reference/peer-openpifpaf.md), from the repository
root::

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 /tmp/oppvenv/bin/python -m tools.openpifpaf_layout_reference \\
        [--keep-checkpoints DIR]

For each case of :data:`CASES` it builds the network with OpenPifPaf's own factory
(``openpifpaf.network.Factory(base_name=...).factory(head_metas=...)``, head metas of its COCO data modules), fills
every parameter and buffer with :func:`fill` (a function of the state-dict name and shape only), writes the checkpoint
with OpenPifPaf's own ``Trainer.write_model`` (``torch.save({'model': Shell, 'epoch', 'meta'})``), loads that file
back through OpenPifPaf's ``Factory(checkpoint=...)`` (its model migration: BatchNorm eps >= 1e-3) and runs it in eval
mode in float64 on :func:`input_image`. It writes

- ``tests/data/openpifpaf_layouts.npz``: the input and every head's fields (``<case>.<head name>``, float64);
- ``tests/data/openpifpaf_layouts.json``: for each case the pickled module tree (class module + qualname, the
  non-tensor attributes of every module and head meta, parameter and buffer shapes, children names), the
  checkpoint's ``epoch`` and ``meta``, and the set of globals (pickle ``GLOBAL`` opcodes) of the real file.

``tests/network/openpifpaf_layouts.py`` rebuilds a pickle-compatible file from the JSON without OpenPifPaf; the
tests check that openfields converts it to a network with these fields. Only facts about the layout are recorded
here (class names, attribute names and values, shapes); no OpenPifPaf code.

This module imports OpenPifPaf only in :func:`main`: :func:`fill`, :func:`input_image` and :func:`pickled_globals`
are shared with the tests (which decode what :func:`encode` wrote). ``--cases`` rewrites both files with only the
cases named.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import pickletools
import tempfile
import zipfile
import zlib

import numpy as np
import torch

DATA = pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'data'
JSON_PATH = DATA / 'openpifpaf_layouts.json'
NPZ_PATH = DATA / 'openpifpaf_layouts.npz'

INPUT_SHAPE = (1, 3, 49, 25)  # small (features 4 x 2 at stride 16): all fields in about 200 KB

# name -> OpenPifPaf configuration (class attributes its CLI would set) and data module of the head metas
CASES = {
    # --basenet=shufflenetv2k30 --cocokp-with-dense --cocokp-upsample=2
    'shufflenetv2k30_cocokp_dense': {
        'basenet': 'shufflenetv2k30', 'datamodule': 'cocokp', 'upsample_stride': 2, 'with_dense': True,
        'resnet': {}},
    # --basenet=resnet50 --resnet-input-conv2-stride=2 --resnet-block5-dilation=2 --dataset=cocodet
    # --cocodet-upsample=2
    'resnet50_cocodet': {
        'basenet': 'resnet50', 'datamodule': 'cocodet', 'upsample_stride': 2, 'with_dense': False,
        'resnet': {'input_conv2_stride': 2, 'block5_dilation': 2}},
    # --basenet=resnet18 (defaults: no pool0, input conv stride 2) --dataset=cocokp (upsample 1: no PixelShuffle)
    'resnet18_cocokp': {
        'basenet': 'resnet18', 'datamodule': 'cocokp', 'upsample_stride': 1, 'with_dense': False,
        'resnet': {}},
}
EPOCH = 7


# --------------------------------------------------------------------------------------------------
# deterministic values (integer hashing: the same bits with any numpy version)


def _uniform(name: str, n: int) -> np.ndarray:
    """``n`` values in [0, 1) (float64, multiples of 2**-32) from ``name`` alone: a multiplicative hash of the
    index in uint32 arithmetic (wrapping modulo 2**32)."""
    h = np.arange(n, dtype=np.uint32)
    h *= np.uint32(2654435761)
    h += np.uint32((zlib.crc32(name.encode()) * 40503 + 12345) % 2**32)
    h ^= h >> np.uint32(15)
    h *= np.uint32(2246822519)
    h ^= h >> np.uint32(13)
    return h.astype(np.float64) * 2.0**-32


def fill(name: str, shape, dtype=torch.float32) -> torch.Tensor:
    """The value of state-dict entry ``name`` of ``shape``: conv weights uniform (variance from the fan-in), BatchNorm
    weights near 1, running variances in [0.5, 1.5), means and biases small, ``num_batches_tracked`` a count; computed
    in float64 (correctly rounded operations only) and rounded to ``dtype`` (float32, as OpenPifPaf trains)."""
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if name.endswith('num_batches_tracked'):
        return torch.tensor(zlib.crc32(name.encode()) % 1000, dtype=torch.int64).reshape(shape)
    u = _uniform(name, n)
    if name.endswith('running_var'):
        values = 0.5 + u
    elif name.endswith('running_mean'):
        values = 0.2 * (u - 0.5)
    elif name.endswith('weight') and len(shape) == 1:  # BatchNorm
        values = 1.0 + 0.4 * (u - 0.5)
    elif name.endswith('weight'):  # convs: uniform, variance 1 / fan_in (heads 4 / fan_in): unsaturated fields
        fan_in = int(np.prod(shape[1:]))
        variance = (4.0 if name.startswith('head_nets.') else 1.0) / fan_in
        values = (u - 0.5) * (2.0 * (3.0 * variance) ** 0.5)
    else:  # biases
        values = 0.2 * (u - 0.5)
    return torch.from_numpy(values.reshape(shape)).to(dtype)


def input_image() -> torch.Tensor:
    """The network input (float32 values, ImageNet-normalised range)."""
    return torch.from_numpy(4.0 * (_uniform('input', int(np.prod(INPUT_SHAPE))) - 0.5)).reshape(INPUT_SHAPE).to(
        torch.float32)


# --------------------------------------------------------------------------------------------------
# values as JSON (types kept: tuples, sets, numpy arrays, devices, objects)


def encode(value):
    """A JSON value of ``value`` that :func:`tests.network.openpifpaf_layouts.decode` turns back into the same
    types."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {'tuple': [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {'set': sorted(encode(v) for v in value)}
    if isinstance(value, dict):
        return {'dict': [[encode(k), encode(v)] for k, v in value.items()],
                **({'ordered': True} if type(value).__name__ == 'OrderedDict' else {})}
    if isinstance(value, np.ndarray):
        return {'ndarray': {'dtype': value.dtype.str, 'shape': list(value.shape), 'data': value.ravel().tolist()}}
    if isinstance(value, np.generic):
        return {'numpy_scalar': {'dtype': value.dtype.str, 'value': value.item()}}
    if isinstance(value, torch.device):
        return {'device': str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {'object': f'{cls.__module__}.{cls.__qualname__}', 'state': encode(dict(vars(value)))}
    raise TypeError(f'no JSON encoding for {type(value)}: {value!r}')


# --------------------------------------------------------------------------------------------------
# the pickled tree


def _internal_keys() -> set:
    """What ``torch.nn.Module.__init__`` puts in ``__dict__`` (rebuilt by it in the mimic), less ``training``."""
    return set(vars(torch.nn.Module())) - {'training'}


def describe(module: torch.nn.Module) -> dict:
    """Class, attributes, parameter and buffer shapes, children of ``module`` (recursively); empty tables and
    ``requires_grad=True`` left out."""
    internal = _internal_keys()
    cls = type(module)

    def tensors(table, parameters):
        return {k: None if v is None else {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', ''),
                                           **({'requires_grad': False} if parameters and not v.requires_grad
                                              else {})}
                for k, v in table.items()}

    description = {
        'class': f'{cls.__module__}.{cls.__qualname__}',
        'attributes': {k: encode(v) for k, v in vars(module).items() if k not in internal},
        'parameters': tensors(module._parameters, True),  # pylint: disable=protected-access
        'buffers': tensors(module._buffers, False),  # pylint: disable=protected-access
        'non_persistent_buffers': sorted(module._non_persistent_buffers_set),  # pylint: disable=protected-access
        'children': {k: None if v is None else describe(v)
                     for k, v in module._modules.items()},  # pylint: disable=protected-access
    }
    return {k: v for k, v in description.items() if v or k in ('class', 'attributes')}


def pickle_bytes(path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith('/data.pkl')))


def pickled_globals(path) -> list[str]:
    """The globals (``module.name``) of the GLOBAL opcodes of a ``torch.save`` file's pickle (protocol 2, as torch
    writes it: other opcodes that name classes are refused)."""
    names = set()
    for opcode, arg, _ in pickletools.genops(pickle_bytes(path)):
        if opcode.name == 'GLOBAL':
            names.add(arg.replace(' ', '.', 1) if ' ' in arg else arg)
        elif opcode.name in ('STACK_GLOBAL', 'INST', 'OBJ'):
            raise ValueError(f'{path}: {opcode.name} (not a protocol-2 torch.save pickle)')
    return sorted(names)


# --------------------------------------------------------------------------------------------------


def _head_metas(case: dict):
    from openpifpaf.plugins import coco  # pylint: disable=import-outside-toplevel
    if case['datamodule'] == 'cocokp':
        return coco.CocoKp(with_dense=case['with_dense'], upsample_stride=case['upsample_stride']).head_metas
    default = coco.CocoDet.upsample_stride
    try:
        coco.CocoDet.upsample_stride = case['upsample_stride']  # --cocodet-upsample
        return coco.CocoDet().head_metas
    finally:
        coco.CocoDet.upsample_stride = default


def _fields(net, image) -> list[np.ndarray]:
    net = net.double().eval()
    with torch.no_grad():
        return [f[0].numpy().copy() for f in net(image.double())]


def record_case(openpifpaf, name: str, case: dict, work: pathlib.Path) -> tuple[dict, dict, pathlib.Path]:
    basenetworks = openpifpaf.network.basenetworks
    defaults = {k: getattr(basenetworks.Resnet, k) for k in ('pretrained', 'pool0_stride', 'input_conv_stride',
                                                             'input_conv2_stride', 'remove_last_block',
                                                             'block5_dilation')}
    try:
        basenetworks.Resnet.pretrained = False  # --resnet-no-pretrain: nothing downloaded (all weights are filled)
        for key, value in case['resnet'].items():
            setattr(basenetworks.Resnet, key, value)
        metas = _head_metas(case)
        net, _ = openpifpaf.network.Factory(base_name=case['basenet']).factory(head_metas=metas)
    finally:
        for key, value in defaults.items():
            setattr(basenetworks.Resnet, key, value)

    with torch.no_grad():
        for key, value in net.state_dict(keep_vars=True).items():
            value.copy_(fill(key, value.shape, value.dtype))
    net.train()  # as the trainer writes it

    # the trainer's own writer and meta data (train.py)
    out = work / f'{name}.pkl'
    meta_data = {
        'args': {'basenet': case['basenet'], 'dataset': case['datamodule'], 'output': str(out), 'epochs': EPOCH,
                 'lr': 0.0001, 'batch_size': 8, 'device': torch.device('cpu'), 'debug': False},
        'version': openpifpaf.__version__,
        'plugin_versions': {},
        'hostname': 'openpifpaf-layout-reference',  # socket.gethostname() in train.py: not recorded here
    }
    trainer = openpifpaf.network.Trainer.__new__(openpifpaf.network.Trainer)
    trainer.model, trainer.checkpoint_shell, trainer.out, trainer.model_meta_data = net, None, str(out), meta_data
    tree = describe(net)  # what write_model pickles
    trainer.write_model(EPOCH, final=False)
    path = pathlib.Path(f'{out}.epoch{EPOCH:03d}')

    image = input_image()
    own = _fields(net, image)
    loaded, epoch = openpifpaf.network.Factory(checkpoint=str(path)).factory()  # OpenPifPaf's loader and migration
    assert epoch == EPOCH
    theirs = _fields(loaded, image)
    for a, b in zip(own, theirs):  # the migration raised no eps here: 1e-3 already
        assert np.array_equal(a, b)
    heads = [hn.meta.name for hn in loaded.head_nets]
    fields = {f'{name}.{head}': field for head, field in zip(heads, theirs)}
    for key, field in fields.items():
        print(f'{key}: shape {field.shape}, |max| {np.abs(field).max():.3g}, confidences in '
              f'({field[:, 1].min():.3g}, {field[:, 1].max():.3g}), log_b in '
              f'({field[:, 0].min():.3g}, {field[:, 0].max():.3g})', flush=True)

    description = {
        'openpifpaf': case,
        'file_size': path.stat().st_size,
        'epoch': EPOCH,
        'meta': encode(meta_data),
        'globals': pickled_globals(path),
        'heads': [{'name': hn.meta.name, 'class': type(hn.meta).__name__, 'shape': list(f.shape)}
                  for hn, f in zip(loaded.head_nets, theirs)],
        'state_dict_size': len(net.state_dict()),
        'tree': tree,
    }
    return description, fields, path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--keep-checkpoints', default=None,
                        help='folder for the real OpenPifPaf files (default: a temporary one, removed)')
    parser.add_argument('--cases', nargs='*', default=list(CASES))
    args = parser.parse_args()
    os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    torch.set_num_threads(1)
    import openpifpaf  # pylint: disable=import-outside-toplevel
    import openpifpaf.network  # pylint: disable=import-outside-toplevel

    with tempfile.TemporaryDirectory() as temporary:
        work = pathlib.Path(args.keep_checkpoints or temporary)
        work.mkdir(parents=True, exist_ok=True)
        cases, arrays = {}, {'input': input_image().numpy()}
        for name in args.cases:
            description, fields, path = record_case(openpifpaf, name, CASES[name], work)
            print(f'{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)', flush=True)
            cases[name] = description
            arrays.update(fields)
    record = {
        'about': 'tools/openpifpaf_layout_reference.py: OpenPifPaf checkpoint layouts (facts recorded from '
                 'OpenPifPaf\'s own objects), rebuilt by tests/network/openpifpaf_layouts.py',
        'versions': {'openpifpaf': openpifpaf.__version__, 'torch': torch.__version__, 'numpy': np.__version__},
        'input_shape': list(INPUT_SHAPE),
        'module_internal_keys': sorted(_internal_keys()),
        'cases': cases,
    }
    JSON_PATH.write_text(json.dumps(record, separators=(',', ':')) + '\n')
    np.savez_compressed(NPZ_PATH, **arrays)
    print(f'{JSON_PATH}: {JSON_PATH.stat().st_size} bytes, {NPZ_PATH}: {NPZ_PATH.stat().st_size} bytes')


if __name__ == '__main__':
    main()
