"""Build a network from flags (a basenet plus one head per head meta) or from a checkpoint.

``--basenet NAME`` builds a fresh network; ``--checkpoint PATH`` starts from a trained one: its basenet
and every head whose (dataset, name, meta) matches the dataset's heads are kept, other heads are created
new (and logged); ``--dlc-snapshot PATH`` (training) fills a fresh basenet, and the heatmap head where it
matches, from a DeepLabCut snapshot (:mod:`openfields.deeplabcut.snapshot`). :class:`NetworkChoice` is that
choice, resolved once from the flags (the checkpoint or snapshot file read once): the basenet's name and stride
before any network exists, then the network itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging

from .. import headmeta
from . import basenets, checkpoint, heads, nets

LOG = logging.getLogger(__name__)

DEFAULT_BASENET = 'shufflenetv2k16'


def cli(parser: argparse.ArgumentParser,
        checkpoint_help: str = 'start from the weights of this trained checkpoint (a new run, epoch 0)') -> None:
    group = parser.add_argument_group('network')
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument('--basenet', default=None,
                           help=f'base network to train, one of: {", ".join(sorted(basenets.BASENETS))} '
                                f'(default: {DEFAULT_BASENET}); from ImageNet weights where it has them '
                                '(--basenet-pretrained), else from scratch')
    exclusive.add_argument('--checkpoint', default=None, help=checkpoint_help)
    group.add_argument('--head-dropout', type=float, default=0.0, help='Dropout2d before each head')
    group.add_argument('--batchnorm-eps', type=float, default=1e-4,
                       help='BatchNorm epsilon; stability needs lr * clip-grad-value <= sqrt(eps)')
    group.add_argument('--batchnorm-momentum', type=float, default=0.01,
                       help='BatchNorm running-statistics momentum (PyTorch default 0.1)')
    basenets.cli(parser)


def assemble(basenet, head_metas: list[headmeta.Base], *, head_dropout: float = 0.0,
             batchnorm_eps: float = 1e-4, batchnorm_momentum: float = 0.01) -> nets.Shell:
    """A Shell of ``basenet`` with one head per meta (:func:`.heads.build`)."""
    head_nets = [heads.build(meta, basenet.out_features, dropout=head_dropout) for meta in head_metas]
    model = nets.Shell(basenet, head_nets)
    nets.set_batchnorm(model, eps=batchnorm_eps, momentum=batchnorm_momentum)
    return model


def build(basenet_name: str, basenet_config: dict, head_metas: list[headmeta.Base], **kwargs) -> nets.Shell:
    """A fresh network from a basenet name and its plain config (see :func:`assemble` for kwargs)."""
    return assemble(basenets.build(basenet_name, basenet_config), head_metas, **kwargs)


def from_checkpoint(ckpt: dict, head_metas: list[headmeta.Base] | None = None) -> nets.Shell:
    """Rebuild the checkpoint's network; with ``head_metas``, keep matching heads and create the rest."""
    description = ckpt['model']
    saved_metas = checkpoint.head_metas(ckpt)
    wanted = head_metas if head_metas is not None else saved_metas
    model = build(description['basenet']['name'], description['basenet']['config'], wanted,
                  head_dropout=description.get('head_dropout', 0.0),
                  batchnorm_eps=description['batchnorm']['eps'],
                  batchnorm_momentum=description['batchnorm']['momentum'])
    state = description['state_dict']
    own = model.state_dict()
    own.update({k: v for k, v in state.items() if k.startswith('basenet.')})
    for new_index, meta in enumerate(wanted):
        old_index = _matching_head(meta, saved_metas)
        if old_index is None:
            LOG.info('head %s is not in the checkpoint: created new', meta.full_name)
            continue
        old_prefix, new_prefix = f'heads.{old_index}.', f'heads.{new_index}.'
        own.update({new_prefix + k[len(old_prefix):]: v for k, v in state.items() if k.startswith(old_prefix)})
    model.load_state_dict(own)
    return model


def _comparable(meta: headmeta.Base) -> dict:
    d = meta.to_dict()
    for key in ('base_stride', 'training_weights'):
        d.pop(key, None)
    return d


def _matching_head(meta: headmeta.Base, saved: list[headmeta.Base]) -> int | None:
    for i, old in enumerate(saved):
        if (old.dataset, old.name) == (meta.dataset, meta.name):
            if _comparable(old) == _comparable(meta):
                return i
            LOG.warning('head %s in the checkpoint differs (keypoints, skeleton, sigmas or upsampling); '
                        'created new', meta.full_name)
            return None
    return None


def checkpoint_stride(ckpt: dict) -> int:
    """The stride of a checkpoint's basenet (its saved head metas carry it)."""
    strides = {meta.base_stride for meta in checkpoint.head_metas(ckpt)} - {0}
    if len(strides) == 1:
        return strides.pop()
    basenet = ckpt['model']['basenet']
    return basenets.stride(basenet['name'], basenet['config'])


@dataclasses.dataclass(frozen=True)
class NetworkChoice:
    """Which network a run starts from, resolved once: a fresh ``basenet`` of ``config`` (with ImageNet
    weights from ``pretrained``, or from the read ``dlc_snapshot``), or the network of a loaded checkpoint
    (``--checkpoint``'s, or the resumed run's with ``resumed``), and the head and BatchNorm flags."""

    basenet: str = DEFAULT_BASENET
    config: dict = dataclasses.field(default_factory=dict)  # the fresh basenet's (basenets.config_from_args)
    pretrained: str | None = None  # --basenet-pretrained resolved (pretrained.resolve_source): None from scratch
    checkpoint: str | None = None  # the path of ``loaded``
    loaded: dict | None = dataclasses.field(default=None, repr=False, compare=False)  # checkpoint.load's
    resumed: bool = False  # ``loaded`` is the resumed run's: its network as saved, heads included
    dlc_snapshot: object | None = dataclasses.field(default=None, repr=False, compare=False)  # snapshot.Snapshot
    head_dropout: float = 0.0
    batchnorm_eps: float = 1e-4
    batchnorm_momentum: float = 0.01

    def __post_init__(self):
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f'--head-dropout must be in [0, 1), got {self.head_dropout}')
        if self.batchnorm_eps <= 0:
            raise ValueError(f'--batchnorm-eps must be positive, got {self.batchnorm_eps}')
        if not 0.0 <= self.batchnorm_momentum <= 1.0:
            raise ValueError(f'--batchnorm-momentum must be in [0, 1], got {self.batchnorm_momentum}')

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, resumed: dict | None = None,
                  with_checkpoint: bool = True) -> NetworkChoice:
        """The choice of the flags: ``resumed`` (a resumed run's checkpoint) first, then ``--checkpoint``
        (loaded here, the one load of the run; ignored with ``with_checkpoint=False``), else ``--basenet``
        (default :data:`DEFAULT_BASENET`) with its flags."""
        flags = dict(head_dropout=args.head_dropout, batchnorm_eps=args.batchnorm_eps,
                     batchnorm_momentum=args.batchnorm_momentum)
        if resumed is not None:
            name = resumed['model']['basenet']['name']
            if args.basenet not in (None, name):
                raise ValueError(f'--resume: the checkpoint is a {name}, not --basenet {args.basenet}')
            return cls(basenet=name, loaded=resumed, resumed=True, **flags)
        path = getattr(args, 'checkpoint', None) if with_checkpoint else None
        snapshot_path = getattr(args, 'dlc_snapshot', None)
        if path and snapshot_path:
            raise ValueError(f'--checkpoint {path} and --dlc-snapshot {snapshot_path} both give the starting weights; '
                             'give one')
        if path:
            loaded = checkpoint.load(path)
            return cls(basenet=loaded['model']['basenet']['name'], checkpoint=path, loaded=loaded, **flags)
        name = args.basenet or DEFAULT_BASENET
        config = basenets.config_from_args(name, args)
        if snapshot_path:  # the DeepLabCut snapshot's backbone replaces ImageNet weights, as in DeepLabCut
            from ..deeplabcut import snapshot  # pylint: disable=import-outside-toplevel,cyclic-import
            read = snapshot.read(snapshot_path, name, config, getattr(args, 'dlc_snapshot_backbone_only', False))
            if getattr(args, 'basenet_pretrained', None):
                LOG.info('--dlc-snapshot %s: its backbone replaces --basenet-pretrained', snapshot_path)
            return cls(basenet=name, config=config, dlc_snapshot=read, **flags)
        from . import pretrained  # pylint: disable=import-outside-toplevel
        source = pretrained.resolve_source(name, getattr(args, 'basenet_pretrained', None))
        return cls(basenet=name, config=config, pretrained=source, **flags)

    @functools.cached_property
    def pretrained_weights(self):
        """The ImageNet weights file of a fresh basenet with ``pretrained`` (:class:`~.pretrained.Weights`:
        its source, url, path and sha256, what the run's log records), found in the cache or downloaded
        there once per choice; None without ``pretrained`` or for a network from a checkpoint. Raises
        :class:`~.pretrained.PretrainedWeightsMissing`."""
        if self.pretrained is None or self.loaded is not None:
            return None
        from . import pretrained  # pylint: disable=import-outside-toplevel
        return pretrained.locate(self.basenet, self.pretrained)

    @property
    def stride(self) -> int:
        """The basenet's stride, known before any network exists (datasets create their head metas with it)."""
        if self.loaded is not None:
            return checkpoint_stride(self.loaded)
        return basenets.stride(self.basenet, self.config)

    def build(self, head_metas: list[headmeta.Base]) -> nets.Shell:
        """The network a run starts from, with one head per meta."""
        if self.resumed:
            saved = [meta.full_name for meta in checkpoint.head_metas(self.loaded)]
            wanted = [meta.full_name for meta in head_metas]
            if saved != wanted:
                raise ValueError(f'--resume: the checkpoint has heads {saved}, the run trains {wanted}')
            return from_checkpoint(self.loaded, head_metas)
        if self.loaded is not None:
            model = from_checkpoint(self.loaded, head_metas)
            nets.set_batchnorm(model, eps=self.batchnorm_eps, momentum=self.batchnorm_momentum)
            return model
        basenet = basenets.build(self.basenet, self.config)
        if self.pretrained_weights is not None:
            from . import pretrained  # pylint: disable=import-outside-toplevel
            pretrained.load(basenet, self.pretrained_weights)
        elif basenet.config.get('freeze_bn_stats') and self.dlc_snapshot is None:
            LOG.warning('basenet %s: --basenet-freeze-bn-stats without --basenet-pretrained: its BatchNorms keep '
                        'their initial statistics (mean 0, variance 1), normalise nothing, and training may '
                        'diverge', self.basenet)
        model = assemble(basenet, head_metas, head_dropout=self.head_dropout,
                         batchnorm_eps=self.batchnorm_eps, batchnorm_momentum=self.batchnorm_momentum)
        if self.dlc_snapshot is not None:
            self.dlc_snapshot.load_into(model)
        return model


def base_stride(args: argparse.Namespace, ckpt: dict | None = None) -> int:
    """The stride of the basenet of the flags (the evaluation CLI's boundary): ``ckpt``'s (already loaded),
    else :class:`NetworkChoice`'s."""
    if ckpt is not None:
        return checkpoint_stride(ckpt)
    return NetworkChoice.from_args(args).stride


def factory(args: argparse.Namespace, head_metas: list[headmeta.Base]) -> nets.Shell:
    """The network of the flags (``--basenet`` or ``--checkpoint``) with one head per meta: the boundary
    for callers that hold parsed flags; training runs build a :class:`NetworkChoice` once."""
    return NetworkChoice.from_args(args).build(head_metas)
