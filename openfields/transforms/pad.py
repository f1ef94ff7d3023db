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


class PadToDivisor:
    """Pad each side up to the next multiple of ``divisor`` (DeepLabCut's ``auto_padding``), the image placed
    at a random position on the canvas; ``fill=None`` uses a random gray. Sizes already divisible stay."""

    def __init__(self, divisor: int, fill: tuple[int, int, int] | None = None):
        if divisor < 1:
            raise ValueError(f'divisor must be >= 1, got {divisor}')
        self.divisor = int(divisor)
        self.fill = fill

    def __call__(self, image, anns, meta):
        w, h = image.size
        tw, th = -(-w // self.divisor) * self.divisor, -(-h // self.divisor) * self.divisor
        u, v = torch.rand(2).tolist()
        left, top = min(int(u * (tw - w + 1)), tw - w), min(int(v * (th - h + 1)), th - h)
        fill = random_gray() if self.fill is None else self.fill
        if (tw, th) == (w, h):
            return image, anns, meta
        return pad(image, anns, meta, left, top, tw, th, fill)

    def __repr__(self):
        return f'PadToDivisor({self.divisor})'
