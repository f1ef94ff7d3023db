"""Loss flags, their settings and the factory that builds the loss of a network."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ... import headmeta
from .composite import CompositeLoss
from .heatmap import HeatmapLoss
from .multi_head import MultiHeadLoss
from .settings import LossSettings


def cli(parser: argparse.ArgumentParser):
    """Add the 'losses' argument group."""
    defaults = LossSettings()
    group = parser.add_argument_group('losses')
    group.add_argument('--lambdas', nargs='+', type=float, default=None,
                       help='loss weight per head, applied to all components of that head')
    group.add_argument('--component-lambdas', nargs='+', type=float, default=None,
                       help='loss weight per component (c, vec[, scales] of each head); '
                            'overrides --lambdas')
    group.add_argument('--focal-alpha', type=float, default=defaults.focal_alpha,
                       help='focal loss alpha of the confidence loss')
    group.add_argument('--focal-gamma', type=float, default=defaults.focal_gamma,
                       help='focal loss gamma of the confidence loss (0: plain BCE gradient)')
    group.add_argument('--bce-soft-clamp', type=float, default=defaults.bce_soft_clamp,
                       help='soft clamp of the elementwise confidence loss')
    group.add_argument('--bce-background-clamp', type=float,
                       default=defaults.bce_background_clamp,
                       help='background cells with a logit below this get no loss')
    group.add_argument('--regression-soft-clamp', type=float,
                       default=defaults.regression_soft_clamp,
                       help='soft clamp of the normalised regression distance')
    group.add_argument('--b-scale', type=float, default=defaults.b_scale,
                       help='Laplace b of the relative scale loss (larger: weaker)')
    group.add_argument('--scale-soft-clamp', type=float, default=defaults.scale_soft_clamp,
                       help='soft clamp of the relative scale error')


def factory(args: argparse.Namespace, head_metas: Sequence[headmeta.Base]) -> MultiHeadLoss:
    """Build the loss of a network with heads ``head_metas`` from parsed flags (the boundary for callers
    that hold them; training runs keep :class:`LossSettings` in their recipe and call :func:`build`)."""
    return build(LossSettings.from_args(args), head_metas)


def build(settings: LossSettings, head_metas: Sequence[headmeta.Base]) -> MultiHeadLoss:
    """The loss of a network with heads ``head_metas``; a ValueError naming the flag when ``--lambdas`` or
    ``--component-lambdas`` do not match the heads."""
    composite_losses = [_head_loss(meta, settings) for meta in head_metas]
    if settings.lambdas is not None and len(settings.lambdas) != len(head_metas):
        raise ValueError(f'--lambdas needs one value per head: expected {len(head_metas)} '
                         f'({", ".join(m.full_name for m in head_metas)}), '
                         f'got {len(settings.lambdas)}')
    component_names = [name for loss in composite_losses for name in loss.field_names]
    if settings.component_lambdas is not None \
            and len(settings.component_lambdas) != len(component_names):
        raise ValueError(f'--component-lambdas needs one value per loss component: expected '
                         f'{len(component_names)} ({", ".join(component_names)}), '
                         f'got {len(settings.component_lambdas)}')
    return MultiHeadLoss(composite_losses, settings.lambdas, settings.component_lambdas)


def _head_loss(meta: headmeta.Base, settings: LossSettings) -> CompositeLoss | HeatmapLoss:
    """The loss of one head: DeepLabCut's criteria for a heatmap head (configured by its meta), else the
    composite-field loss of the flags."""
    if isinstance(meta, headmeta.Heatmap):
        return HeatmapLoss(meta)
    return CompositeLoss(meta, settings)
