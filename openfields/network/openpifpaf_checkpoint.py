"""OpenPifPaf checkpoints (``torch.save`` of a whole ``openpifpaf.network.nets.Shell``) read without running them.

OpenPifPaf 0.13 pickles its modules. The file is read by :class:`RestrictedUnpickler`: every global the pickle
names must be on :data:`ALLOWED` (torch's tensor rebuild functions, ``OrderedDict``, ``set``, numpy arrays) or be
one of the module and head-meta classes of :data:`STAND_INS`, which become :class:`Recorded` objects that only keep
the state the pickle gives them (``__dict__``): no OpenPifPaf code is imported, no class of the file is
instantiated, no ``__setstate__`` of the file's classes runs. Any other global is refused in one line naming it.

The recorded modules are then converted into an openfields checkpoint (the dict of
:mod:`openfields.network.checkpoint`): the basenet (``shufflenetv2k16``/``k30``, ``resnet18/50/101/152`` with
their flags) and one head per OpenPifPaf head (``cif``, ``caf``, ``caf25`` dense, ``cifdet``; ``CompositeField4``),
whose eval-mode outputs are OpenPifPaf's: both heads are a 1x1 conv, a pixel shuffle cropped by
``(u - 1) // 2`` / ``ceil((u - 1) / 2)``, and ``[log_b, sigmoid(conf), vectors + cell index, softplus(scales)]``.
A layout this module does not know (another OpenPifPaf version, flags openfields has no equivalent for) is refused
in one line; nothing is guessed.

Users reach it through ``--checkpoint model.pkl`` of every command (:func:`openfields.network.checkpoint.load`) and
``python -m openfields.models import model.pkl NAME`` (written once as an openfields checkpoint).
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import pickletools
import zipfile
from typing import Callable

import numpy as np
import torch

from .. import headmeta
from ..errors import first_line
from ..datasets import coco_person

LOG = logging.getLogger(__name__)


class OpenPifPafError(ValueError):
    """An OpenPifPaf checkpoint openfields cannot read (one line: the file and the class, head or layout)."""


class Recorded:
    """Stand-in for a pickled class: keeps what the pickle gives it, runs nothing of the class it stands for."""

    pickled_name = '?'
    state: dict = {}  # until the pickle's BUILD gives this instance its own

    def __init__(self, *args):
        if args:  # REDUCE / NEWOBJ with arguments: not how torch modules or dataclasses are pickled
            raise pickle.UnpicklingError(f'{self.pickled_name} built with arguments: not an OpenPifPaf 0.13 layout')
        self.state = {}

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f'{self.pickled_name}: state is a {type(state).__name__}, not a dict')
        self.state = state

    def get(self, key, default=None):
        return self.state.get(key, default)

    @property
    def class_name(self) -> str:
        return self.pickled_name.rsplit('.', 1)[-1]


def _stand_in(full_name: str) -> type:
    return type(full_name.rsplit('.', 1)[-1], (Recorded,), {'pickled_name': full_name})


# classes whose state is recorded (module name, class name)
STAND_INS = {name: _stand_in(name) for name in (
    'openpifpaf.network.nets.Shell',
    'openpifpaf.network.basenetworks.ShuffleNetV2K',
    'openpifpaf.network.basenetworks.InvertedResidualK',
    'openpifpaf.network.basenetworks.Resnet',
    'openpifpaf.network.heads.CompositeField4',
    'openpifpaf.headmeta.Cif',
    'openpifpaf.headmeta.Caf',
    'openpifpaf.headmeta.CifDet',
    'torch.nn.modules.container.Sequential',
    'torch.nn.modules.container.ModuleList',
    'torch.nn.modules.conv.Conv2d',
    'torch.nn.modules.batchnorm.BatchNorm2d',
    'torch.nn.modules.activation.ReLU',
    'torch.nn.modules.dropout.Dropout2d',
    'torch.nn.modules.pixelshuffle.PixelShuffle',
    'torch.nn.modules.pooling.MaxPool2d',
    'torchvision.models.resnet.BasicBlock',
    'torchvision.models.resnet.Bottleneck',
)}


def _latin1_encode(text, encoding='latin1'):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: str -> bytes in latin-1 only."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError('_codecs.encode used for something else than bytes')
    return text.encode('latin1')


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # pylint: disable=import-outside-toplevel
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # pylint: disable=import-outside-toplevel
    return _reconstruct


def _safe_dtype(*args):
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError('numpy arrays of Python objects are not read')
    return dtype


# functions and plain types the pickle may call (none runs code named by the file)
ALLOWED = {
    'torch._utils._rebuild_tensor_v2': torch._utils._rebuild_tensor_v2,  # pylint: disable=protected-access
    'torch._utils._rebuild_parameter': torch._utils._rebuild_parameter,  # pylint: disable=protected-access
    'torch.device': torch.device,
    'collections.OrderedDict': collections.OrderedDict,
    'builtins.set': set,
    '__builtin__.set': set,
    '_codecs.encode': _latin1_encode,
    'numpy.core.multiarray._reconstruct': _numpy_reconstruct(),
    'numpy._core.multiarray._reconstruct': _numpy_reconstruct(),
    'numpy.ndarray': np.ndarray,
    'numpy.dtype': _safe_dtype,
}

# head metas of OpenPifPaf that openfields has no head for
UNSUPPORTED_HEADS = ('TSingleImageCif', 'TSingleImageCaf', 'Raf', 'CifPan')


class Refused(pickle.UnpicklingError):
    """A global outside the allow-list (raised before anything of it is imported)."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED` and :data:`STAND_INS`; never imports a module."""

    def find_class(self, module, name):
        full_name = f'{module}.{name}'
        if full_name in STAND_INS:
            return STAND_INS[full_name]
        if full_name in ALLOWED:
            return ALLOWED[full_name]
        raise Refused(full_name)


class _RestrictedPickle:
    """What ``torch.load(pickle_module=...)`` needs of a pickle module."""

    __name__ = 'openfields.network.openpifpaf_checkpoint'
    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()


def refusal(path, class_name: str) -> str:
    """The one line for a refused global."""
    module, _, name = class_name.rpartition('.')
    if module in ('openpifpaf.headmeta', 'openpifpaf.network.heads') or name in UNSUPPORTED_HEADS:
        return f'{path}: head {class_name} of OpenPifPaf has no openfields equivalent (cif, caf, caf25, cifdet only)'
    if module.startswith(('torch.nn.modules.', 'torchvision.models.')):
        return (f'{path}: layer {class_name} has no place in openfields\' basenets and heads (OpenPifPaf flags such '
                'as --shufflenetv2k-leaky-relu, --shufflenetv2k-instance-norm or --shufflenetv2k-group-norm)')
    if module.startswith('openpifpaf'):
        return (f'{path}: class {class_name} is not in the layout of the OpenPifPaf 0.13 checkpoints openfields '
                'reads (another OpenPifPaf version or basenet?)')
    return f'{path}: class {class_name} is outside the allow-list of OpenPifPaf checkpoints; refused, nothing was run'


def read(path: str | os.PathLike):
    """The unpickled file (stand-ins for modules and metas, tensors for weights); :class:`OpenPifPafError`."""
    if os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '0') not in ('0', ''):
        raise OpenPifPafError(f'{path}: pickled classes (an OpenPifPaf checkpoint?) are read through openfields\' '
                              'own allow-list, which TORCH_FORCE_WEIGHTS_ONLY_LOAD turns off: unset it')
    try:
        return torch.load(path, map_location='cpu', weights_only=False, pickle_module=_RestrictedPickle)
    except Refused as error:
        raise OpenPifPafError(refusal(path, str(error))) from None
    except Exception as error:  # pylint: disable=broad-except  # torch's and pickle's own types
        raise OpenPifPafError(f'{path}: not a readable OpenPifPaf checkpoint ({first_line(error)})') from None


def _pickle_bytes(path) -> bytes:
    """The pickle of a ``torch.save`` archive (``data.pkl``), else the file's first MiB."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith('data.pkl')), None)
            return archive.read(name) if name else b''
    with open(path, 'rb') as f:
        return f.read(1 << 20)


def names_globals(path: str | os.PathLike) -> bool:
    """Is the file a well-formed pickle that names globals (classes, functions)? Read from its opcodes only,
    nothing unpickled: such a file goes through :func:`read`, a broken one is not an OpenPifPaf checkpoint."""
    try:
        for opcode, _, _ in pickletools.genops(_pickle_bytes(path)):
            if opcode.name in ('GLOBAL', 'STACK_GLOBAL', 'INST', 'OBJ'):
                return True
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return False


# --------------------------------------------------------------------------------------------------
# module tree -> flat state


def _children(module: Recorded) -> dict:
    children = module.get('_modules')
    if not isinstance(children, dict):
        raise OpenPifPafError(f'{module.pickled_name} without submodules: not an OpenPifPaf 0.13 layout')
    return children


def flat_state(module: Recorded, prefix: str = '') -> dict[str, torch.Tensor]:
    """``state_dict()`` of a recorded module tree: parameters and persistent buffers by dotted name."""
    state = {}
    for key in ('_parameters', '_buffers'):
        skip = (module.get('_non_persistent_buffers_set') or set()) if key == '_buffers' else set()
        for name, value in (module.get(key) or {}).items():
            if value is not None and name not in skip:
                if not isinstance(value, torch.Tensor):
                    raise OpenPifPafError(f'{module.pickled_name}.{name} is not a tensor')
                state[prefix + name] = value.detach()
    for name, child in _children(module).items():
        if child is not None:
            state.update(flat_state(child, f'{prefix}{name}.'))
    return state


def modules(module: Recorded, prefix: str = ''):
    """``named_modules()`` of a recorded tree: (dotted name, module)."""
    yield prefix.rstrip('.'), module
    for name, child in _children(module).items():
        if child is not None:
            yield from modules(child, f'{prefix}{name}.')


# --------------------------------------------------------------------------------------------------
# basenets: OpenPifPaf's names -> openfields' (name, config, key of every state entry)

KeyMap = Callable[[str], 'str | None']  # OpenPifPaf's state key (below base_net.) -> openfields' (below basenet.)


def _shufflenetv2k(path, base_net: Recorded) -> tuple[dict, KeyMap]:
    """Config and key map of ``ShuffleNetV2K``; flags without an openfields equivalent are refused."""
    children = _children(base_net)
    if len(_children(children['input_block'])) != 1:
        raise OpenPifPafError(f'{path}: shufflenetv2k with --shufflenetv2k-input-conv2-stride: '
                              'no openfields equivalent')
    if any(child.class_name == 'InvertedResidualK' for child in _children(children['conv5']).values()):
        raise OpenPifPafError(f'{path}: shufflenetv2k with --shufflenetv2k-conv5-as-stage: no openfields equivalent')
    first = _children(_children(children['stage2'])['0'])['branch2']
    depthwise = _children(first)['3']
    kernel_size = depthwise.get('kernel_size', (0,))[0]
    # OpenPifPaf's Sequential indices -> openfields' (conv, bn) pairs of _conv_bn
    branch1 = {'0': '0.0', '1': '0.1', '2': '1.0', '3': '1.1'}
    branch2 = {'0': '0.0', '1': '0.1', '3': '1.0', '4': '1.1', '5': '2.0', '6': '2.1'}

    def key(name: str) -> str | None:
        parts = name.split('.')
        if parts[0] == 'input_block' and parts[1] == '0':
            return '.'.join(['input_block'] + parts[2:])
        if parts[0] in ('stage2', 'stage3', 'stage4') and len(parts) >= 5:
            table = {'branch1': branch1, 'branch2': branch2}.get(parts[2], {})
            if parts[3] in table:
                return '.'.join(parts[:3] + [table[parts[3]]] + parts[4:])
            return None
        if parts[0] == 'conv5':
            return name
        return None
    return {'kernel_size': kernel_size}, key


def _resnet(path, base_net: Recorded) -> tuple[dict, KeyMap]:
    """Config and key map of ``Resnet`` (torchvision's blocks as ``layer1``..``layer4``)."""
    children = _children(base_net)
    input_block = _children(children['input_block'])
    config = {'input_conv_stride': input_block['0'].get('stride', (2,))[0], 'pool0_stride': 0,
              'input_conv2_stride': 0, 'block5_dilation': 1, 'remove_last_block': children.get('block5') is None}
    extra = input_block.get('3')
    if extra is not None and extra.class_name == 'MaxPool2d':
        stride = extra.get('stride')
        config['pool0_stride'] = stride[0] if isinstance(stride, tuple) else stride
    elif extra is not None:
        config['input_conv2_stride'] = _children(extra)['0'].get('stride', (2,))[0]
    if children.get('block5') is not None:
        config['block5_dilation'] = max(m.get('dilation', (1,))[0] for _, m in modules(children['block5'])
                                        if m.class_name == 'Conv2d')
    layers = {'block2': 'layer1', 'block3': 'layer2', 'block4': 'layer3', 'block5': 'layer4'}

    def key(name: str) -> str | None:
        parts = name.split('.')
        if parts[0] == 'input_block':
            if parts[1] == '0':
                return '.'.join(['conv1'] + parts[2:])
            if parts[1] == '1':
                return '.'.join(['bn1'] + parts[2:])
            if parts[1] == '3' and config['input_conv2_stride']:
                return '.'.join(['input_conv2'] + parts[2:])
            return None
        if parts[0] in layers:
            return '.'.join([layers[parts[0]]] + parts[1:])
        return None
    return config, key


BASENETS: dict[str, Callable[..., tuple[dict, KeyMap]]] = {'ShuffleNetV2K': _shufflenetv2k, 'Resnet': _resnet}


# --------------------------------------------------------------------------------------------------
# head metas

META_FIELDS = {  # OpenPifPaf's fields that carry over (others: decoder-only options, checked below)
    'Cif': ('keypoints', 'sigmas', 'pose', 'draw_skeleton', 'score_weights'),
    'Caf': ('keypoints', 'sigmas', 'skeleton', 'pose', 'sparse_skeleton', 'dense_to_sparse_radius',
            'only_in_field_of_view'),
    'CifDet': ('categories',),
}
UNSUPPORTED_META_FIELDS = ('decoder_seed_mask', 'decoder_confidence_scales')


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def head_meta(path, meta: Recorded, base_stride: int) -> headmeta.Base:
    """An openfields head meta from a recorded OpenPifPaf one (hflip from the keypoint names, as openfields'
    keypoint datasets derive it)."""
    kind = meta.class_name
    name = meta.get('name')
    for field in UNSUPPORTED_META_FIELDS:
        if meta.get(field) is not None:
            raise OpenPifPafError(f'{path}: head {name} sets {field}, which openfields does not have')
    fields = {field: _plain(meta.get(field)) for field in META_FIELDS[kind] if meta.get(field) is not None}
    if 'pose' in fields:  # OpenPifPaf's reference pose has y upwards in other units than openfields'
        fields['pose'] = (coco_person.COCO_UPRIGHT_POSE if fields['keypoints'] == coco_person.COCO_KEYPOINTS
                          else None)
        if fields['pose'] is None:
            LOG.info('%s: head %s: OpenPifPaf\'s reference pose is not carried over (no openfields equivalent '
                     'for these keypoints)', path, name)
    common = dict(name=name, dataset=meta.get('dataset'), upsample_stride=int(meta.get('upsample_stride', 1)),
                  base_stride=base_stride, training_weights=_plain(meta.get('training_weights')))
    if kind in ('Cif', 'Caf'):
        common['hflip'] = headmeta.hflip_from_names(fields['keypoints']) or None
    cls = {'Cif': headmeta.Cif, 'Caf': headmeta.Caf, 'CifDet': headmeta.CifDet}[kind]
    try:
        return cls(**common, **fields)
    except (TypeError, ValueError) as error:
        raise OpenPifPafError(f'{path}: head {name}: {error}') from None


# --------------------------------------------------------------------------------------------------
# the whole model


def convert(path, saved) -> dict:
    """An openfields checkpoint (:mod:`openfields.network.checkpoint`'s dict) from what :func:`read` returned."""
    from . import basenets, checkpoint, factory  # pylint: disable=import-outside-toplevel  # they import this module

    shell = saved.get('model') if isinstance(saved, dict) else saved
    if not isinstance(shell, Recorded) or shell.class_name != 'Shell':
        raise OpenPifPafError(f'{path}: no openpifpaf.network.nets.Shell in the file (an OpenPifPaf checkpoint '
                              'holds {"model": Shell, ...})')
    for hook in ('process_input', 'process_heads'):
        if shell.get(hook) is not None:
            raise OpenPifPafError(f'{path}: Shell with {hook}: no openfields equivalent')
    children = _children(shell)
    base_net, head_nets = children.get('base_net'), children.get('head_nets')
    if base_net is None or head_nets is None or base_net.class_name not in BASENETS:
        found = base_net.pickled_name if isinstance(base_net, Recorded) else None
        raise OpenPifPafError(f'{path}: basenet {found} is not one openfields reads (ShuffleNetV2K, Resnet)')
    name = base_net.get('name')
    if name not in basenets.BASENETS:
        raise OpenPifPafError(f'{path}: basenet {name} has no openfields equivalent')
    config, basenet_key = BASENETS[base_net.class_name](path, base_net)
    try:
        basenet = basenets.build(name, config)
    except ValueError as error:
        raise OpenPifPafError(f'{path}: basenet {name}: {error}') from None
    if basenet.stride != base_net.get('stride') or basenet.out_features != base_net.get('out_features'):
        raise OpenPifPafError(f'{path}: basenet {name} of stride {base_net.get("stride")} and '
                              f'{base_net.get("out_features")} features: not the layout openfields builds')

    heads = list(_children(head_nets).values())
    metas = []
    for head in heads:
        if head.class_name != 'CompositeField4':
            raise OpenPifPafError(f'{path}: head {head.pickled_name} has no openfields equivalent')
        meta = head.get('meta')
        if not isinstance(meta, Recorded):
            raise OpenPifPafError(f'{path}: head without a meta: not an OpenPifPaf 0.13 layout')
        conv = _children(head)['conv']
        if tuple(conv.get('kernel_size')) != (1, 1):
            raise OpenPifPafError(f'{path}: head {meta.get("name")} with kernel size {conv.get("kernel_size")}: '
                                  'openfields heads are 1x1')
        metas.append(head_meta(path, meta, basenet.stride))

    dropout = [float(_children(h)['dropout'].get('p', 0.0)) for h in heads if _children(h).get('dropout')]
    batchnorms = [m for _, m in modules(base_net) if m.class_name == 'BatchNorm2d']
    eps = {float(m.get('eps')) for m in batchnorms}
    momentum = {float(m.get('momentum')) for m in batchnorms}
    if len(eps) > 1 or len(momentum) > 1:
        raise OpenPifPafError(f'{path}: BatchNorms with several eps {sorted(eps)} or momenta {sorted(momentum)}')
    # OpenPifPaf's loader raises every BatchNorm's eps to at least 1e-3 (and sets momentum 0.01) before it runs a
    # checkpoint: the same network here
    model = factory.assemble(basenet, metas, head_dropout=max(dropout, default=0.0),
                             batchnorm_eps=max(eps.pop(), 1e-3) if eps else 1e-3,
                             batchnorm_momentum=momentum.pop() if momentum else 0.01)

    state = {}
    for key, value in flat_state(base_net).items():
        mapped = basenet_key(key)
        if mapped is None:
            raise OpenPifPafError(f'{path}: basenet entry {key} has no place in openfields\' {name}')
        state['basenet.' + mapped] = value
    for index, head in enumerate(heads):
        state.update({f'heads.{index}.{k}': v for k, v in flat_state(head).items()})
    _check_modules(path, base_net, basenet, basenet_key)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise OpenPifPafError(f'{path}: layout differs from openfields\' {name}: '
                              f'missing {missing[:3]}, unexpected {unexpected[:3]}')
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise OpenPifPafError(f'{path}: {key} is {tuple(value.shape)}, openfields\' {name} has '
                                  f'{tuple(own[key].shape)}')
    model.load_state_dict(state)
    meta = saved.get('meta') if isinstance(saved, dict) else None
    return checkpoint.payload(model, epoch=int(saved.get('epoch', 0)) if isinstance(saved, dict) else 0, meta={
        'args': {}, 'argv': [], 'version': '',
        'image_resize': 'openpifpaf',  # predict and video resize its images as OpenPifPaf's predictor does
        'openpifpaf': {'file': str(path), 'version': str((meta or {}).get('version', '?')), 'basenet': name}})


def _check_modules(path, base_net: Recorded, basenet: torch.nn.Module, basenet_key) -> None:
    """Every conv of the file has the stride, padding, dilation and groups of its openfields counterpart."""
    own = dict(basenet.named_modules())
    for name, module in modules(base_net):
        if module.class_name != 'Conv2d':
            continue
        mapped = basenet_key(name + '.weight')
        counterpart = own.get(mapped[:-len('.weight')]) if mapped else None
        if counterpart is None:
            raise OpenPifPafError(f'{path}: conv {name} has no place in openfields\' {basenet.name}')
        for attribute in ('stride', 'padding', 'dilation', 'groups', 'kernel_size'):
            theirs, ours = module.get(attribute), getattr(counterpart, attribute)
            if _plain(theirs) != _plain(ours):
                raise OpenPifPafError(f'{path}: conv {name} has {attribute} {theirs}, openfields\' {mapped} {ours}')


def load(path: str | os.PathLike) -> dict:
    """An OpenPifPaf checkpoint file as an openfields checkpoint dict; :class:`OpenPifPafError` otherwise."""
    return convert(path, read(path))
