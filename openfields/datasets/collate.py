"""Batching of preprocessed samples, and variable-size batches (:class:`BatchResizeCollate`)."""

from __future__ import annotations

import argparse
import dataclasses
import math

import torch

from .. import transforms


def collate_images_targets_meta(batch):
    """Stack ``(image, targets, meta)`` samples into ``(images, targets, metas)``.

    ``images``: ``(B, 3, H, W)``; ``targets``: one ``(B, F, C, h, w)`` tensor per head of the
    dataset; ``metas``: list of dicts. Samples that failed to load (None) are dropped.
    """
    batch = [sample for sample in batch if sample is not None]
    if not batch:
        return None
    images = torch.stack([image for image, _, _ in batch])
    n_heads = len(batch[0][1])
    targets = [torch.stack([sample_targets[i] for _, sample_targets, _ in batch])
               for i in range(n_heads)]
    metas = [meta for _, _, meta in batch]
    return images, targets, metas


def collate_images_anns_meta(batch):
    """Stack ``(image, anns, meta)`` evaluation samples into ``(images, [anns], metas)``.

    Images of one batch must have the same size (evaluation pads them). Unreadable samples are dropped.
    """
    batch = [sample for sample in batch if sample is not None]
    if not batch:
        return None
    images = torch.stack([image for image, _, _ in batch])
    return images, [anns for _, anns, _ in batch], [meta for _, _, meta in batch]


def _aligned_up(n: float, multiple: int) -> int:
    """The smallest ``k * multiple + 1 >= n``."""
    return math.ceil((n - 1) / multiple) * multiple + 1


def _aligned_down(n: float, multiple: int) -> int:
    """The largest ``k * multiple + 1 <= n``."""
    return math.floor((n - 1) / multiple) * multiple + 1


@dataclasses.dataclass(frozen=True)
class BatchResize:
    """One target size per batch, DeepLabCut's ``ResizeFromDataSizeCollate``, with openfields' sizes.

    For a first image of ``W x H`` (short side ``s``, long side ``l``) and a factor ``f`` uniform in
    ``[min_scale, max_scale]``:

    * short side ``s' = clamp(round(f s), min_short_side, max_short_side)``, rounded up to the next
      ``k * multiple + 1`` (openfields' field alignment: cells on the first and the last pixel), down when
      that would pass ``max_short_side``;
    * ``to_square``: the target is ``s' x s'``; otherwise the long side is ``min(l / s, max_ratio) s'``
      rounded down to the next ``k * multiple + 1`` and at most ``max_size``, the orientation of the first
      image kept.

    Every image of the batch is then resized to cover the target and cropped to it
    (:class:`openfields.transforms.CoverResizeCrop`, window up to ``max_shift`` px past the image, long side
    at most ``max_size`` before the crop).
    """

    min_scale: float = 0.4
    max_scale: float = 1.0
    min_short_side: int = 128
    max_short_side: int = 1152
    max_ratio: float = 2.0
    multiple: int = 16
    to_square: bool = False
    max_shift: int = 10
    max_size: int = 2048
    sizes: tuple[tuple[int, int], ...] = ()  # DeepLabCut's ResizeFromListCollate: (width, height) drawn per batch

    def draw_target(self, width: int, height: int) -> tuple[int, int]:
        """The ``(width, height)`` of a batch whose first image is ``width x height``: one of ``sizes`` drawn
        uniformly (each side rounded up to ``k * multiple + 1``), else :meth:`target_size` of a random factor."""
        if self.sizes:
            w, h = self.sizes[int(torch.randint(len(self.sizes), ()))]
            return _aligned_up(w, self.multiple), _aligned_up(h, self.multiple)
        scale = self.min_scale + float(torch.rand(())) * (self.max_scale - self.min_scale)
        return self.target_size(width, height, scale)

    def target_size(self, width: int, height: int, scale: float) -> tuple[int, int]:
        """``(width, height)`` of the batch for a first image of ``width x height`` and the factor ``scale``."""
        short, long = min(width, height), max(width, height)
        side = min(max(round(scale * short), self.min_short_side), self.max_short_side)
        short_side = min(_aligned_up(side, self.multiple), _aligned_down(self.max_short_side, self.multiple))
        if self.to_square:
            return short_side, short_side
        ratio = min(long / short, self.max_ratio)
        long_side = max(short_side, min(_aligned_down(ratio * short_side, self.multiple),
                                        _aligned_down(self.max_size, self.multiple)))
        return (long_side, short_side) if width >= height else (short_side, long_side)

    @staticmethod
    def cli(group, prefix: str) -> None:
        d = BatchResize()
        group.add_argument(f'--{prefix}-collate-scale', type=float, nargs=2, default=None, metavar=('MIN', 'MAX'),
                           help='variable-size training batches: each batch takes the size of its first image '
                                'times a factor uniform in [MIN, MAX], within the bounds below (off by default; '
                                'replaces the square-edge crop and padding)')
        group.add_argument(f'--{prefix}-collate-sizes', nargs='+', default=None, metavar='WxH',
                           help='variable-size training batches of these sizes, one drawn per batch: N (an N x N '
                                'square) or WIDTHxHEIGHT, sides rounded up to k * multiple + 1 (DeepLabCut\'s '
                                'ResizeFromListCollate; instead of the collate scale above)')
        group.add_argument(f'--{prefix}-collate-short-side', type=int, nargs=2, metavar=('MIN', 'MAX'),
                           default=[d.min_short_side, d.max_short_side],
                           help='variable-size batches: bounds of the short side in pixels')
        group.add_argument(f'--{prefix}-collate-max-ratio', type=float, default=d.max_ratio,
                           help='variable-size batches: largest long / short side ratio')
        group.add_argument(f'--{prefix}-collate-multiple', type=int, default=0, metavar='N',
                           help='variable-size batches: sides are k * N + 1 pixels (default 0: the basenet '
                                'stride)')
        group.add_argument(f'--{prefix}-collate-to-square', default=False, action='store_true',
                           help='variable-size batches: square batches (short side x short side)')
        group.add_argument(f'--{prefix}-collate-max-shift', type=int, default=d.max_shift, metavar='PIXELS',
                           help='variable-size batches: the crop may reach this far past the resized image')
        group.add_argument(f'--{prefix}-collate-max-size', type=int, default=d.max_size, metavar='PIXELS',
                           help='variable-size batches: the longest side of a resized image and of a batch')

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str) -> 'BatchResize | None':
        """The settings of ``--<prefix>-collate-...``; None (fixed-size batches) without ``--<prefix>-collate-scale``.
        ``multiple`` 0 stands for the basenet stride (see :meth:`with_multiple`)."""
        get = lambda name: getattr(args, f'{prefix}_collate_{name}')  # noqa: E731
        flag = f'--{prefix}-collate'
        sizes = tuple(_size(text, f'{flag}-sizes') for text in get('sizes') or ())
        if get('scale') is not None and sizes:
            raise ValueError(f'{flag}-scale and {flag}-sizes: a batch size from a scale or from a list; choose one')
        if get('scale') is None and not sizes:
            return None
        (min_scale, max_scale), (min_short, max_short) = get('scale') or (1.0, 1.0), get('short_side')
        checks = [(0 < min_scale <= max_scale, f'{flag}-scale must be 0 < MIN <= MAX, got {get("scale")}'),
                  (0 < min_short <= max_short, f'{flag}-short-side must be 0 < MIN <= MAX, got {get("short_side")}'),
                  (get('max_ratio') >= 1, f'{flag}-max-ratio must be >= 1, got {get("max_ratio")}'),
                  (get('multiple') >= 0, f'{flag}-multiple must be >= 0, got {get("multiple")}'),
                  (get('max_shift') >= 0, f'{flag}-max-shift must be >= 0, got {get("max_shift")}'),
                  (get('max_size') >= max_short, f'{flag}-max-size must be at least the largest short side '
                                                 f'{max_short}, got {get("max_size")}')]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return cls(min_scale=min_scale, max_scale=max_scale, min_short_side=min_short, max_short_side=max_short,
                   max_ratio=get('max_ratio'), multiple=get('multiple'), to_square=get('to_square'),
                   max_shift=get('max_shift'), max_size=get('max_size'), sizes=sizes)

    def with_multiple(self, stride: int, flag: str = '--collate-multiple') -> 'BatchResize':
        """These settings with ``multiple`` 0 resolved to ``stride``; checks that an aligned short side fits."""
        settings = self if self.multiple > 0 else dataclasses.replace(self, multiple=stride)
        if settings.sizes:
            return settings
        if _aligned_up(settings.min_short_side, settings.multiple) > settings.max_short_side:
            raise ValueError(f'{flag} {settings.multiple}: no side of the form k * {settings.multiple} + 1 lies '
                             f'between the short-side bounds {settings.min_short_side} and {settings.max_short_side}')
        return settings


def _size(text: str, flag: str) -> tuple[int, int]:
    """``(width, height)`` of ``N`` or ``WIDTHxHEIGHT``."""
    parts = str(text).lower().split('x')
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) >= 16 for p in parts):
        raise ValueError(f'{flag} {text}: a size is N (a square) or WIDTHxHEIGHT, each side at least 16 pixels')
    return (int(parts[0]), int(parts[-1]))


class BatchResizeCollate:
    """``collate_fn`` for variable-size batches: one :class:`BatchResize` target size per batch, every sample
    resized and cropped to it (:class:`openfields.transforms.CoverResizeCrop`), then ``finish`` (tensor
    conversion, normalisation, encoders: targets are encoded after the resize), then stacked.

    Samples are ``(PIL image, anns, meta)`` from a pipeline built with ``batch_resize=True``. Random draws
    come from torch's global RNG, which the DataLoader seeds per worker (its base seed, drawn from the
    loader's generator, plus the worker id): runs are reproducible and workers draw different sizes.
    """

    def __init__(self, settings: BatchResize, finish):
        self.settings = settings
        self.finish = finish

    def __call__(self, batch):
        batch = [sample for sample in batch if sample is not None]
        if not batch:
            return None
        s = self.settings
        width, height = s.draw_target(*batch[0][0].size)
        resize = transforms.CoverResizeCrop(width, height, max_size=s.max_size, max_shift=s.max_shift)
        return collate_images_targets_meta([self.finish(*resize(*sample)) for sample in batch])

    def __repr__(self):
        return f'BatchResizeCollate({self.settings}, {self.finish!r})'
