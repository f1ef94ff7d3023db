"""Encoder flags (argument group 'encoders') and construction of one encoder per head."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from .. import headmeta
from .caf import Caf
from .cif import Cif
from .cifdet import CifDet
from .heatmap import Heatmap


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder configuration shared by all heads; defaults match the flag defaults."""

    cif_side_length: int = 4
    caf_min_size: int = 3
    caf_fixed_size: bool = False
    caf_aspect_ratio: float = 0.0
    suppress_selfhidden: bool = True
    suppress_invisible: bool = False
    suppress_collision: bool = False
    cifdet_side_length: int = 5

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'EncoderSettings':
        return cls(
            cif_side_length=args.cif_side_length,
            caf_min_size=args.caf_min_size,
            caf_fixed_size=args.caf_fixed_size,
            caf_aspect_ratio=args.caf_aspect_ratio,
            suppress_selfhidden=args.encoder_suppress_selfhidden,
            suppress_invisible=args.encoder_suppress_invisible,
            suppress_collision=args.encoder_suppress_collision,
            cifdet_side_length=args.cifdet_side_length,
        )


def cli(parser: argparse.ArgumentParser, defaults: EncoderSettings = EncoderSettings()) -> None:
    """Add the 'encoders' argument group; ``defaults`` gives the flag defaults (eval's oracle keeps
    every labelled keypoint, training suppresses self-hidden ones)."""
    group = parser.add_argument_group('encoders')
    group.add_argument('--cif-side-length', type=int, default=defaults.cif_side_length,
                       help='side (cells) of the square of CIF cells each keypoint claims')
    group.add_argument('--caf-min-size', type=int, default=defaults.caf_min_size,
                       help='minimum side (cells) of the neighbourhood along a CAF limb')
    group.add_argument('--caf-fixed-size', action='store_true', default=defaults.caf_fixed_size,
                       help='CAF: only the cells around the middle of each limb are positive')
    group.add_argument('--caf-aspect-ratio', type=float, default=defaults.caf_aspect_ratio,
                       help='CAF neighbourhood side as a fraction of the limb length (0: min size only)')
    selfhidden = group.add_mutually_exclusive_group()
    selfhidden.add_argument('--encoder-suppress-selfhidden', dest='encoder_suppress_selfhidden',
                            action='store_true', default=defaults.suppress_selfhidden,
                            help='unlabel occluded keypoints next to a visible one of the same type on '
                                 'another person' + (' (default)' if defaults.suppress_selfhidden else ''))
    selfhidden.add_argument('--encoder-no-suppress-selfhidden', dest='encoder_suppress_selfhidden',
                            action='store_false', help='keep such occluded keypoints as targets'
                            + ('' if defaults.suppress_selfhidden else ' (default)'))
    group.add_argument('--encoder-suppress-invisible', action='store_true',
                       default=defaults.suppress_invisible,
                       help='use only visible keypoints (v=2) as targets')
    group.add_argument('--encoder-suppress-collision', action='store_true',
                       default=defaults.suppress_collision,
                       help='unlabel same-type keypoints of two people that nearly coincide')
    group.add_argument('--cifdet-side-length', type=int, default=defaults.cifdet_side_length,
                       help='side (cells) of the square of CifDet cells each box claims around its centre')


def factory(head_metas: Sequence[headmeta.Base], settings: EncoderSettings,
            bmin: float = 0.1) -> list[Cif | Caf | CifDet | Heatmap]:
    """One encoder per head meta, in order; ``bmin`` in pixels."""
    return [_encoder(meta, settings, bmin) for meta in head_metas]


def _encoder(meta: headmeta.Base, settings: EncoderSettings, bmin: float) -> Cif | Caf | CifDet | Heatmap:
    suppress = dict(suppress_selfhidden=settings.suppress_selfhidden,
                    suppress_invisible=settings.suppress_invisible,
                    suppress_collision=settings.suppress_collision)
    if isinstance(meta, headmeta.Cif):
        return Cif(meta, bmin=bmin, side_length=settings.cif_side_length, **suppress)
    if isinstance(meta, headmeta.Caf):
        return Caf(meta, bmin=bmin, min_size=settings.caf_min_size, fixed_size=settings.caf_fixed_size,
                   aspect_ratio=settings.caf_aspect_ratio, **suppress)
    if isinstance(meta, headmeta.CifDet):
        return CifDet(meta, bmin=bmin, side_length=settings.cifdet_side_length)
    if isinstance(meta, headmeta.Heatmap):
        return Heatmap(meta, **suppress)
    raise ValueError(f'no encoder for head {meta.full_name!r} of type {type(meta).__name__} '
                     f'({meta.type_name!r}); known: cif, caf, cifdet, heatmap')
