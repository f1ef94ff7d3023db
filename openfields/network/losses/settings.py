"""The values the loss flags configure (see ``factory.cli``)."""

from __future__ import annotations

import argparse
import dataclasses


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
