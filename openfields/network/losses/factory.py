"""Loss flags, their settings and the factory that builds the loss of a network."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from ... import headmeta
from .composite import CompositeLoss
from .multi_head import MultiHeadLoss


@dataclasses.dataclass(frozen=True)
class LossSettings:
    """Everything the loss flags configure; defaults equal the flag defaults."""

    lambdas: tuple[float, ...] | None = None
    component_lambdas: tuple[float, ...] | None = None
    focal_alpha: float = 0.5
    focal_gamma: float = 1.0
    bce_soft_clamp: float = 5.0
    bce_background_clamp: float = -15.0
    regression_soft_clamp: float = 5.0
    b_scale: float = 1.0
    scale_soft_clamp: float = 5.0

    def __post_init__(self):
        if self.focal_gamma < 0.0:
            raise ValueError(f'--focal-gamma must be >= 0, got {self.focal_gamma}')
        if self.b_scale <= 0.0:
            raise ValueError(f'--b-scale must be > 0, got {self.b_scale}')
        for flag, value in (('--bce-soft-clamp', self.bce_soft_clamp),
                            ('--regression-soft-clamp', self.regression_soft_clamp),
                            ('--scale-soft-clamp', self.scale_soft_clamp)):
            # a positive clamp keeps clamped losses non-negative
            if value <= 0.0:
                raise ValueError(f'{flag} must be > 0, got {value}')

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'LossSettings':
        def optional_tuple(values):
            return None if values is None else tuple(float(v) for v in values)

        return cls(
            lambdas=optional_tuple(args.lambdas),
            component_lambdas=optional_tuple(args.component_lambdas),
            focal_alpha=args.focal_alpha,
            focal_gamma=args.focal_gamma,
            bce_soft_clamp=args.bce_soft_clamp,
            bce_background_clamp=args.bce_background_clamp,
            regression_soft_clamp=args.regression_soft_clamp,
            b_scale=args.b_scale,
            scale_soft_clamp=args.scale_soft_clamp,
        )


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
    """Build the loss of a network with heads ``head_metas`` from parsed flags."""
    settings = LossSettings.from_args(args)
    composite_losses = [CompositeLoss(meta, settings) for meta in head_metas]
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
