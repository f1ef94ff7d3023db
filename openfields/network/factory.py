"""Build a network from flags (a basenet plus one head per head meta) or from a checkpoint.

``--basenet NAME`` builds a fresh network; ``--checkpoint PATH`` starts from a trained one: its basenet
and every head whose (dataset, name, meta) matches the dataset's heads are kept, other heads are created
new (and logged).
"""

import argparse
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
                           help=f'base network to train from scratch, one of: {", ".join(sorted(basenets.BASENETS))} '
                                f'(default: {DEFAULT_BASENET})')
    exclusive.add_argument('--checkpoint', default=None, help=checkpoint_help)
    group.add_argument('--head-dropout', type=float, default=0.0, help='Dropout2d before each head')
    group.add_argument('--batchnorm-eps', type=float, default=1e-4,
                       help='BatchNorm epsilon; stability needs lr * clip-grad-value <= sqrt(eps)')
    group.add_argument('--batchnorm-momentum', type=float, default=0.01,
                       help='BatchNorm running-statistics momentum (PyTorch default 0.1)')
    basenets.cli(parser)


def _check_args(args):
    if not 0.0 <= args.head_dropout < 1.0:
        raise ValueError(f'--head-dropout must be in [0, 1), got {args.head_dropout}')
    if args.batchnorm_eps <= 0:
        raise ValueError(f'--batchnorm-eps must be positive, got {args.batchnorm_eps}')
    if not 0.0 <= args.batchnorm_momentum <= 1.0:
        raise ValueError(f'--batchnorm-momentum must be in [0, 1], got {args.batchnorm_momentum}')


def assemble(basenet, head_metas: list[headmeta.Base], *, head_dropout: float = 0.0,
             batchnorm_eps: float = 1e-4, batchnorm_momentum: float = 0.01) -> nets.Shell:
    """A Shell of ``basenet`` with one composite head per meta."""
    head_nets = [heads.CompositeField(meta, basenet.out_features, dropout=head_dropout)
                 for meta in head_metas]
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


def base_stride(args: argparse.Namespace, ckpt: dict | None = None) -> int:
    """The stride of the basenet a run will use, known before any network exists (datasets create their
    head metas with it): ``ckpt``'s (a resumed run's), ``--checkpoint``'s, or ``--basenet``'s with its flags."""
    if ckpt is None and getattr(args, 'checkpoint', None):
        ckpt = checkpoint.load(args.checkpoint)
    if ckpt is not None:
        return checkpoint_stride(ckpt)
    name = args.basenet or DEFAULT_BASENET
    return basenets.stride(name, basenets.config_from_args(name, args))


def basenet_name(args: argparse.Namespace) -> str:
    """The name of the basenet a new run will train, before any network exists: ``--checkpoint``'s, else
    ``--basenet``, else the default (what :func:`factory` resolves ``args.basenet`` to)."""
    if getattr(args, 'checkpoint', None):
        return checkpoint.load(args.checkpoint)['model']['basenet']['name']
    return args.basenet or DEFAULT_BASENET


def factory(args: argparse.Namespace, head_metas: list[headmeta.Base]) -> nets.Shell:
    """The network a training run starts from."""
    _check_args(args)
    if args.checkpoint:
        model = from_checkpoint(checkpoint.load(args.checkpoint), head_metas)
        nets.set_batchnorm(model, eps=args.batchnorm_eps, momentum=args.batchnorm_momentum)
        args.basenet = model.basenet.name  # resolved value, recorded in the log
        return model
    args.basenet = args.basenet or DEFAULT_BASENET
    if args.basenet not in basenets.BASENETS:
        raise ValueError(f'unknown --basenet {args.basenet!r}; choose from: {", ".join(sorted(basenets.BASENETS))}')
    basenet = basenets.from_args(args.basenet, args)  # with ImageNet weights if --basenet-pretrained
    return assemble(basenet, head_metas, head_dropout=args.head_dropout,
                    batchnorm_eps=args.batchnorm_eps, batchnorm_momentum=args.batchnorm_momentum)
