"""Padding around the image. The padded pixels lie outside ``meta['valid_area']``, which encoders turn into
negatives (confidence 0, regressions ignored)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from . import geometry

EVAL_FILL = (124, 116, 104)  # ImageNet mean colour: zero after Normalize


def random_gray() -> tuple[int, int, int]:
    g = int(torch.randint(0, 256, ()))
    return (g, g, g)


def pad(image, anns, meta, left: int, top: int, width: int, height: int, fill=EVAL_FILL):
    """Place the image at ``(left, top)`` on a ``width x height`` canvas of colour ``fill``; returns copies."""
    anns, meta = geometry.copy_anns(anns), geometry.copy_meta(meta)
    canvas = PIL.Image.new(image.mode, (width, height), tuple(fill))
    canvas.paste(image, (left, top))
    geometry.translate(anns, meta, (-left, -top))
    geometry.clip_valid_area(meta, width, height)
    return canvas, anns, meta


class _CenterPadBase:
    """Centre the image on a larger canvas; ``fill=None`` draws a random gray per sample (training)."""

    def __init__(self, fill: tuple[int, int, int] | None = EVAL_FILL):
        self.fill = fill

    def target(self, width: int, height: int) -> tuple[int, int]:
        raise NotImplementedError

    def __call__(self, image, anns, meta):
        w, h = image.size
        tw, th = self.target(w, h)
        tw, th = max(tw, w), max(th, h)  # never crops
        fill = random_gray() if self.fill is None else self.fill
        if (tw, th) == (w, h):
            return image, anns, meta
        return pad(image, anns, meta, (tw - w) // 2, (th - h) // 2, tw, th, fill)


class CenterPad(_CenterPadBase):
    """Pad to ``target_size`` (an int for a square, or ``(width, height)``); larger sides are left alone."""

    def __init__(self, target_size: int | tuple[int, int], fill: tuple[int, int, int] | None = EVAL_FILL):
        super().__init__(fill)
        self.target_size = (target_size, target_size) if isinstance(target_size, int) else tuple(target_size)

    def target(self, width, height):
        return self.target_size

    def __repr__(self):
        return f'CenterPad({self.target_size}, fill={self.fill})'


class CenterPadTight(_CenterPadBase):
    """Pad each side to the next size of the form ``k * multiple + 1`` (aligned with stride-``multiple`` fields)."""

    def __init__(self, multiple: int, fill: tuple[int, int, int] | None = EVAL_FILL):
        super().__init__(fill)
        self.multiple = int(multiple)

    def target(self, width, height):
        def tight(n):
            return -(-(n - 1) // self.multiple) * self.multiple + 1
        return tight(width), tight(height)

    def __repr__(self):
        return f'CenterPadTight({self.multiple}, fill={self.fill})'


class SquarePad(_CenterPadBase):
    """Pad the short side to the long side."""

    def target(self, width, height):
        edge = max(width, height)
        return edge, edge

    def __repr__(self):
        return f'SquarePad(fill={self.fill})'


BORDER_MODES = ('constant', 'reflect_101')


class PadToMultiple:
    """DeepLabCut's ``auto_padding``: pad each side to at least ``min_size`` (``(width, height)``), then up to
    the next size of the form ``k * multiple + 1`` (``multiple``: one divisor for both sides or ``(width,
    height)``, 0 for none; the ``+ 1`` is openfields' field alignment: cells on the first and the last pixel,
    which upsampled heads need), the image at a random place on the canvas.

    ``border``: ``'constant'`` fills with ``fill`` (None: a random gray), ``'reflect_101'`` mirrors the image
    without repeating its edge pixel (``dcb|abcd|cba``, OpenCV's BORDER_REFLECT_101). Either way the padding
    lies outside ``valid_area``: mirrored animals there carry no labels."""

    def __init__(self, multiple: int | tuple[int, int], fill: tuple[int, int, int] | None = None, *,
                 min_size: tuple[int, int] = (0, 0), border: str = 'constant'):
        self.multiple = tuple(int(m) for m in (multiple if isinstance(multiple, (tuple, list))
                                               else (multiple, multiple)))
        self.min_size = tuple(int(m) for m in min_size)
        if min(self.multiple) < 0 or min(self.min_size) < 0 or (max(self.multiple) < 1 and max(self.min_size) < 1):
            raise ValueError(f'padding needs a divisor >= 1 or a minimum size, got multiple {multiple}, '
                             f'min_size {min_size}')
        if border not in BORDER_MODES:
            raise ValueError(f'border must be one of {BORDER_MODES}, got {border!r}')
        self.fill = fill
        self.border = border

    def target(self, width: int, height: int) -> tuple[int, int]:
        """The padded ``(width, height)`` of a ``width x height`` image."""
        def side(n, multiple, minimum):
            n = max(n, minimum)
            return aligned_size(n, multiple) if multiple > 0 else n
        return (side(width, self.multiple[0], self.min_size[0]), side(height, self.multiple[1], self.min_size[1]))

    def __call__(self, image, anns, meta):
        w, h = image.size
        tw, th = self.target(w, h)
        u, v = torch.rand(2).tolist()
        left, top = min(int(u * (tw - w + 1)), tw - w), min(int(v * (th - h + 1)), th - h)
        fill = random_gray() if self.fill is None else self.fill
        if (tw, th) == (w, h):
            return image, anns, meta
        if self.border == 'reflect_101':
            return reflect(image, anns, meta, left, top, tw, th)
        return pad(image, anns, meta, left, top, tw, th, fill)

    def __repr__(self):
        multiple = self.multiple[0] if self.multiple[0] == self.multiple[1] else self.multiple
        extra = ''.join([f', min_size={self.min_size}' if any(self.min_size) else '',
                         f', border={self.border!r}' if self.border != 'constant' else ''])
        return f'PadToMultiple({multiple}{extra})'


def reflect(image, anns, meta, left: int, top: int, width: int, height: int):
    """:func:`pad` with the image mirrored into the border (``reflect_101``) instead of a fill colour."""
    w, h = image.size
    pixels = np.asarray(image)
    widths = ((top, height - h - top), (left, width - w - left)) + ((0, 0),) * (pixels.ndim - 2)
    image, anns, meta = pad(image, anns, meta, left, top, width, height)
    return PIL.Image.fromarray(np.pad(pixels, widths, mode='reflect'), mode=image.mode), anns, meta


def aligned_size(n: int, multiple: int) -> int:
    """The smallest ``k * multiple + 1 >= n``."""
    return -(-(n - 1) // multiple) * multiple + 1
