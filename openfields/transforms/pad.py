"""Padding around the image. The padded pixels lie outside ``meta['valid_area']``, which encoders turn into
negatives (confidence 0, regressions ignored)."""

from __future__ import annotations

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


class PadToMultiple:
    """Pad each side up to the next size of the form ``k * multiple + 1`` (DeepLabCut's ``auto_padding`` to a
    divisor; the ``+ 1`` is openfields' field alignment: cells on the first and the last pixel, which
    upsampled heads need), the image at a random place on the canvas; ``fill=None`` uses a random gray."""

    def __init__(self, multiple: int, fill: tuple[int, int, int] | None = None):
        if multiple < 1:
            raise ValueError(f'multiple must be >= 1, got {multiple}')
        self.multiple = int(multiple)
        self.fill = fill

    def __call__(self, image, anns, meta):
        w, h = image.size
        tw, th = aligned_size(w, self.multiple), aligned_size(h, self.multiple)
        u, v = torch.rand(2).tolist()
        left, top = min(int(u * (tw - w + 1)), tw - w), min(int(v * (th - h + 1)), th - h)
        fill = random_gray() if self.fill is None else self.fill
        if (tw, th) == (w, h):
            return image, anns, meta
        return pad(image, anns, meta, left, top, tw, th, fill)

    def __repr__(self):
        return f'PadToMultiple({self.multiple})'


def aligned_size(n: int, multiple: int) -> int:
    """The smallest ``k * multiple + 1 >= n``."""
    return -(-(n - 1) // multiple) * multiple + 1
