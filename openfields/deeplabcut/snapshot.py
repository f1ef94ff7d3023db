"""DeepLabCut 3 snapshots (``snapshot-050.pt``, ``snapshot-best-100.pt``) as the weights a run starts from.

``--dlc-snapshot PATH`` (what ``resume_training_from: PATH.pt`` of a ``pytorch_config.yaml`` becomes) builds the
basenet of the flags, fills it with the snapshot's backbone and fills the heatmap head with the snapshot's
``bodypart`` head where they match; the run starts at epoch 0 (weights only, as ``--checkpoint``).

The file, as DeepLabCut 3.0.2's training runner writes it (``torch.save`` of a dict)::

    {'model': {key: tensor},                                  # PoseModel.state_dict()
     'metadata': {'epoch': int, 'metrics': {name: float}, 'losses': {name: float}},
     'scheduler': {...},                                      # the LR scheduler's state, when there is one
     'optimizer': {'state': ..., 'param_groups': [...]}}     # only with runner.snapshots.save_optimizer_state

Keys of ``model``: ``backbone.model.<timm key>`` for ResNet and HRNet (timm's model; HRNet built as timm's
``features_only`` extractor), ``backbone.<key>`` for CSPNeXt (DeepLabCut's module names, which openfields'
CSPNeXt shares), and per head ``heads.<name>.heatmap_head.deconv_layers.<2 i>.{weight,bias}`` (transposed
convolutions, a ReLU between them) or ``heads.<name>.heatmap_head.final_conv.{weight,bias}``, the same below
``locref_head`` (2 K maps, x and y per keypoint). The file is read with ``torch.load(weights_only=True)``:
plain tensors and containers, plus the numpy float scalars older DeepLabCut releases left in
``metadata.metrics`` (:data:`NUMPY_METRICS`); any other class is refused in one line, nothing of it is run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import pickle
import re

import numpy as np
import torch

from .. import headmeta
from ..errors import first_line
from ..network import basenets
from . import pytorch_config

LOG = logging.getLogger(__name__)

# DeepLabCut's model.backbone type -> (where its keys sit in the snapshot, where they sit in openfields' basenet)
BACKBONE_PREFIXES = {'ResNet': ('backbone.model.', ''), 'HRNet': ('backbone.model.', 'hrnet.'),
                     'CSPNeXt': ('backbone.', '')}
# snapshot keys openfields' basenet lacks on purpose: the last fusion into HRNet's coarse branches and their
# incre blocks, which openfields does not compute without interpolate_branches (hrnet._only_first_branch)
UNUSED_KEYS = re.compile(r'hrnet\.(stage4\.\d+\.fuse_layers\.[1-9]|incre_modules\.[1-9])')
BODYPART_HEAD = 'bodypart'  # DeepLabCut's name of the keypoints' head
BRANCHES = {'heatmap_head': 'heatmap', 'locref_head': 'locref'}  # DeepLabCut's -> openfields' HeatmapHead


def _numpy_metrics() -> list:
    """What ``pickle`` names for a numpy float: its reconstructor and dtype (nothing of the file runs)."""
    try:
        from numpy._core.multiarray import scalar  # pylint: disable=import-outside-toplevel
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # pylint: disable=import-outside-toplevel
    return [scalar, np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType]


NUMPY_METRICS = _numpy_metrics()


class DlcSnapshotError(ValueError):
    """A snapshot openfields cannot start from; the message names the file and the key."""


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('DeepLabCut snapshot')
    group.add_argument('--dlc-snapshot', default=None, metavar='PATH',
                       help='start from the weights of this DeepLabCut 3 snapshot (snapshot-050.pt; '
                            'resume_training_from of a pytorch_config.yaml): its backbone fills the basenet of '
                            '--basenet (refused when it does not fit), its body part head the heatmap head where '
                            'the shapes match; a new run from epoch 0, the snapshot\'s optimizer is not used')
    group.add_argument('--dlc-snapshot-backbone-only', action='store_true', default=False,
                       help='take only the backbone of --dlc-snapshot; the heads start fresh (weight_init of a '
                            'pytorch_config.yaml without with_decoder: true)')


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A read snapshot: ``backbone`` under the basenet's own keys (checked against it), ``heads`` as
    ``{DeepLabCut head name: {key below heads.<name>.: tensor}}`` and the ``epoch`` it was saved at."""

    path: str
    epoch: int | None
    backbone: dict = dataclasses.field(repr=False)
    heads: dict = dataclasses.field(repr=False)
    backbone_only: bool = False  # --dlc-snapshot-backbone-only: every head starts fresh

    def load_into(self, model) -> None:
        """Fill ``model`` (a :class:`~openfields.network.nets.Shell`) in place; one log line per head."""
        model.basenet.load_state_dict(self.backbone)
        LOG.info('DeepLabCut snapshot %s (epoch %s): backbone loaded into basenet %s (%d tensors); the run '
                 'starts at epoch 0 with a new optimizer', self.path, self.epoch, model.basenet.name,
                 len(self.backbone))
        if self.backbone_only:
            LOG.info('DeepLabCut snapshot %s: heads start fresh (--dlc-snapshot-backbone-only, weight_init '
                     'without with_decoder)', self.path)
            return
        for head in model.heads:
            self._load_head(head)
        for name in sorted(set(self.heads) - {BODYPART_HEAD}):
            LOG.info('DeepLabCut snapshot %s: head %s not loaded: openfields trains the body part head only',
                     self.path, name)

    def _load_head(self, head) -> None:
        name = head.meta.full_name
        if not isinstance(head.meta, headmeta.Heatmap):
            LOG.info('head %s starts fresh: DeepLabCut snapshot %s has heatmap heads only', name, self.path)
            return
        saved = self.heads.get(BODYPART_HEAD)
        if saved is None:
            LOG.info('head %s starts fresh: DeepLabCut snapshot %s has no %s head', name, self.path, BODYPART_HEAD)
            return
        state, mismatch = head_state(saved, head)
        if mismatch is not None:
            LOG.warning('head %s starts fresh: it does not match DeepLabCut snapshot %s (%s)', name, self.path,
                        mismatch)
            return
        head.load_state_dict(state)
        LOG.info('head %s loaded from head %s of DeepLabCut snapshot %s', name, BODYPART_HEAD, self.path)


def read(path: str, basenet_name: str, basenet_config: dict, backbone_only: bool = False) -> Snapshot:
    """The snapshot at ``path`` with its backbone mapped onto basenet ``basenet_name`` of ``basenet_config``
    (its heads not used with ``backbone_only``); a :class:`DlcSnapshotError` naming the file (and the first key
    that does not fit) otherwise."""
    content = read_file(path)
    state = content.get('model')
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DlcSnapshotError(f'{path}: not a DeepLabCut snapshot (no "model" entry of tensors)')
    backbone = _backbone(path, state, basenet_name, basenet_config)
    heads: dict[str, dict] = {}
    for key, value in state.items():
        if key.startswith('heads.'):
            name, _, rest = key[len('heads.'):].partition('.')
            heads.setdefault(name, {})[rest] = value
    metadata = content.get('metadata')
    epoch = metadata.get('epoch') if isinstance(metadata, dict) else None
    return Snapshot(path=str(path), epoch=epoch, backbone=backbone, heads=heads, backbone_only=backbone_only)


def read_file(path) -> dict:
    """The file's dict, read with ``weights_only`` (and :data:`NUMPY_METRICS`); one-line errors."""
    try:
        with torch.serialization.safe_globals(NUMPY_METRICS):
            content = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise DlcSnapshotError(f'{path}: no such DeepLabCut snapshot') from None
    except pickle.UnpicklingError as error:
        found = re.search(r'GLOBAL (\S+)', str(error))
        what = f'it pickles {found.group(1)}' if found else first_line(error)
        raise DlcSnapshotError(f'{path}: refused as a DeepLabCut snapshot: {what}, outside the allow-list '
                               '(tensors, plain containers, numpy floats); nothing of it was run') from None
    except Exception as error:  # pylint: disable=broad-except  # torch raises several types for foreign files
        raise DlcSnapshotError(f'{path}: not a readable DeepLabCut snapshot ({first_line(error)})') from None
    if not isinstance(content, dict):
        raise DlcSnapshotError(f'{path}: not a DeepLabCut snapshot (a {type(content).__name__}, not a dict)')
    if content.get('format') == 'openfields.checkpoint':
        raise DlcSnapshotError(f'{path}: an openfields checkpoint, not a DeepLabCut snapshot: continue it with '
                               '--resume, or start from it with --checkpoint')
    return content


def _prefixes(path, name: str) -> tuple[str, str]:
    """Where basenet ``name``'s keys sit in a snapshot and in the basenet (:data:`BACKBONE_PREFIXES`)."""
    family = next((kind for kind, names in pytorch_config.BASENETS.items() if name in names), None)
    if family is None:
        fitting = ', '.join(n for names in pytorch_config.BASENETS.values() for n in names)
        raise DlcSnapshotError(f'{path}: --basenet {name} has no DeepLabCut counterpart; a DeepLabCut snapshot '
                               f'fills the basenets {fitting}')
    return BACKBONE_PREFIXES[family]


def _backbone(path, state: dict, name: str, config: dict) -> dict:
    """The snapshot's backbone under basenet ``name``'s keys, checked key by key against it (built on the
    meta device: shapes only)."""
    dlc_prefix, own_prefix = _prefixes(path, name)
    mapped = {own_prefix + k[len(dlc_prefix):]: v for k, v in state.items() if k.startswith(dlc_prefix)}
    with torch.device('meta'):
        own = basenets.build(name, config).state_dict()

    def refuse(key: str, why: str):
        raise DlcSnapshotError(f'{path}: the DeepLabCut snapshot\'s backbone does not fit --basenet {name}: '
                               + why.format(dlc_prefix + key[len(own_prefix):]))

    for key, value in own.items():
        if key not in mapped:
            refuse(key, 'it has no {}')
        if mapped[key].shape != value.shape:
            refuse(key, f'{{}} is {tuple(mapped[key].shape)}, the basenet\'s {tuple(value.shape)}')
    extra = [k for k in mapped if k not in own and not UNUSED_KEYS.match(k)]
    if extra:
        refuse(extra[0], '{} has no place in it')
    return {k: v for k, v in mapped.items() if k in own}


def head_state(saved: dict, head) -> tuple[dict, str | None]:
    """``saved`` (a DeepLabCut HeatmapHead's keys below ``heads.<name>.``) under the keys of ``head`` (an
    openfields HeatmapHead), and the first mismatch (None: they match)."""
    meta = head.meta
    if meta.deconv_kernels and meta.final_conv_kernel:
        return {}, ('openfields puts a ReLU between the last deconvolution and the final convolution, '
                    'DeepLabCut does not')
    own = head.state_dict()
    state = {}
    for key, value in saved.items():
        own_key = _head_key(key, len(meta.deconv_kernels))
        if own_key not in own:
            return {}, f'{key}: no such layer in its layout'
        if own[own_key].shape != value.shape:
            return {}, f'{key} is {tuple(value.shape)}, the head\'s {tuple(own[own_key].shape)}'
        state[own_key] = value
    missing = [k for k in own if k not in state]
    if missing:
        return {}, f'the snapshot has no layer for {missing[0]}'
    return state, None


def _head_key(key: str, n_deconv: int) -> str | None:
    """DeepLabCut's ``heatmap_head.deconv_layers.2.weight`` -> openfields' ``heatmap.2.weight``; its
    ``final_conv`` follows the deconvolutions and their ReLUs (index ``2 n_deconv``)."""
    branch, _, rest = key.partition('.')
    if branch not in BRANCHES:
        return None
    if rest.startswith('deconv_layers.'):
        index, _, name = rest[len('deconv_layers.'):].partition('.')
        inside = index.isdigit() and int(index) % 2 == 0 and int(index) // 2 < n_deconv
        return f'{BRANCHES[branch]}.{index}.{name}' if inside else None
    if rest.startswith('final_conv.'):
        return f'{BRANCHES[branch]}.{2 * n_deconv}.{rest[len("final_conv."):]}'
    return None
