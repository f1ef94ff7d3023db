"""Resizing in the pixel-centre convention.

A resize from ``old`` to ``new`` pixels maps ``x -> x * (new - 1) / (old - 1)`` for the image content *and* for
keypoints and boxes, so a bright pixel stays on its keypoint (PIL's plain ``resize`` uses a half-pixel
convention instead; here its ``box`` argument realises the pixel-centre mapping, with anti-aliasing).
"""

from __future__ import annotations

import math

import numpy as np
import PIL.Image
import torch

from . import geometry
from .pad import pad, random_gray


def _factor(old: int, new: int) -> float:
    return (new - 1) / (old - 1) if old > 1 and new > 1 else new / old


def resize_image(image: PIL.Image.Image, size: tuple[int, int],
                 resample=PIL.Image.Resampling.BICUBIC) -> PIL.Image.Image:
    """Resize so that pixel centre ``i`` of the output samples input position ``i * (old - 1) / (new - 1)``."""
    (w, h), (nw, nh) = image.size, size
    if (w, h) == (nw, nh):
        return image.copy()
    rx, ry = 1.0 / _factor(w, nw), 1.0 / _factor(h, nh)
    # output pixel j (PIL samples at j + 0.5 inside box) must read input centre j * r, i.e. PIL position j*r + 0.5
    x0, y0 = 0.5 - 0.5 * rx, 0.5 - 0.5 * ry
    margin = max(0, math.ceil(max(-x0, -y0) - 1e-9))
    if margin:
        # when shrinking, the box reaches up to half an output pixel beyond the image: replicate the edge
        image = PIL.Image.fromarray(np.pad(np.asarray(image), ((margin, margin), (margin, margin), (0, 0)),
                                           mode='edge'))
    box = (margin + x0, margin + y0, margin + x0 + rx * nw, margin + y0 + ry * nh)
    return image.resize((nw, nh), resample, box=box)


def rescale(image, anns, meta, size: tuple[int, int], resample=PIL.Image.Resampling.BICUBIC):
    """Resize the sample to ``size = (width, height)`` pixels; returns copies."""
    w, h = image.size
    nw, nh = max(1, int(size[0])), max(1, int(size[1]))
    anns, meta = geometry.copy_anns(anns), geometry.copy_meta(meta)
    image = resize_image(image, (nw, nh), resample)
    geometry.scale(anns, meta, (_factor(w, nw), _factor(h, nh)))
    return image, anns, meta


class RescaleRelative:
    """Random resize by a factor from ``scale_range`` (log-uniform when ``power_law``) with an extra horizontal
    stretch uniform in ``stretch_range``. With ``absolute_reference`` the factor is relative to an image whose
    long edge is ``absolute_reference`` pixels."""

    def __init__(self, scale_range: tuple[float, float] = (0.4, 2.0), power_law: bool = True,
                 stretch_range: tuple[float, float] | None = (0.75, 1.33),
                 absolute_reference: int | None = None, resample=PIL.Image.Resampling.BICUBIC):
        if not 0.0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f'invalid scale_range {scale_range}')
        self.scale_range = tuple(scale_range)
        self.power_law = power_law
        self.stretch_range = None if stretch_range is None else tuple(stretch_range)
        self.absolute_reference = absolute_reference
        self.resample = resample

    def _draw(self) -> tuple[float, float]:
        u, v = torch.rand(2).tolist()
        lo, hi = self.scale_range
        if self.power_law:
            s = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        else:
            s = lo + u * (hi - lo)
        stretch = 1.0 if self.stretch_range is None else \
            self.stretch_range[0] + v * (self.stretch_range[1] - self.stretch_range[0])
        return s, stretch

    def __call__(self, image, anns, meta):
        s, stretch = self._draw()
        w, h = image.size
        if self.absolute_reference is not None:
            s *= self.absolute_reference / max(w, h)
        return rescale(image, anns, meta, (round(w * s * stretch), round(h * s)), self.resample)

    def __repr__(self):
        return (f'RescaleRelative({self.scale_range}, power_law={self.power_law}, '
                f'stretch_range={self.stretch_range}, absolute_reference={self.absolute_reference})')


# how a model's images are resized for prediction: openfields' own (above), or OpenPifPaf's (an OpenPifPaf
# checkpoint sees the images it was made for)
IMAGE_RESIZES = ('openfields', 'openpifpaf')


def rescale_as_openpifpaf(image, anns, meta, size: tuple[int, int]):
    """OpenPifPaf's prediction resize: PIL's plain bilinear ``resize`` (half-pixel convention, anti-aliased),
    the annotations and meta scaled by the pixel-centre factors as everywhere else (as OpenPifPaf does)."""
    w, h = image.size
    anns, meta = geometry.copy_anns(anns), geometry.copy_meta(meta)
    image = image.resize(size, PIL.Image.Resampling.BILINEAR)
    geometry.scale(anns, meta, (_factor(w, size[0]), _factor(h, size[1])))
    return image, anns, meta


class RescaleAbsolute:
    """Resize so that the long edge is exactly ``long_edge`` pixels, keeping the aspect ratio; ``image_resize``
    (:data:`IMAGE_RESIZES`) ``'openpifpaf'`` resizes as OpenPifPaf's predictor does (short edge rounded down)."""

    def __init__(self, long_edge: int, resample=PIL.Image.Resampling.BICUBIC, image_resize: str = 'openfields'):
        if image_resize not in IMAGE_RESIZES:
            raise ValueError(f'image_resize must be one of {IMAGE_RESIZES}, got {image_resize!r}')
        self.long_edge = int(long_edge)
        self.resample = resample
        self.image_resize = image_resize

    def __call__(self, image, anns, meta):
        w, h = image.size
        s = self.long_edge / max(w, h)
        if self.image_resize == 'openpifpaf':
            size = (self.long_edge, int(h * s)) if w >= h else (int(w * s), self.long_edge)
            return rescale_as_openpifpaf(image, anns, meta, size)
        size = (self.long_edge, round(h * s)) if w >= h else (round(w * s), self.long_edge)
        return rescale(image, anns, meta, size, self.resample)

    def __repr__(self):
        return f'RescaleAbsolute({self.long_edge}, image_resize={self.image_resize!r})'


class ResizeKeepRatio:
    """Resize to fit inside ``width x height`` keeping the aspect ratio, then pad at the bottom and right to
    exactly that size (DeepLabCut's ``resize`` with ``keep_ratio``); ``fill=None`` uses a random gray.
    ``keep_ratio=False`` is a plain resize to ``width x height`` (``keep_ratio: false``)."""

    def __init__(self, width: int, height: int, fill: tuple[int, int, int] | None = None,
                 resample=PIL.Image.Resampling.BICUBIC, keep_ratio: bool = True):
        if width < 1 or height < 1:
            raise ValueError(f'size must be positive, got {width} x {height}')
        self.width, self.height = int(width), int(height)
        self.fill = fill
        self.resample = resample
        self.keep_ratio = keep_ratio

    def __call__(self, image, anns, meta):
        if not self.keep_ratio:
            return rescale(image, anns, meta, (self.width, self.height), self.resample)
        w, h = image.size
        s = min(self.width / w, self.height / h)
        size = (min(self.width, max(1, round(w * s))), min(self.height, max(1, round(h * s))))
        image, anns, meta = rescale(image, anns, meta, size, self.resample)
        fill = random_gray() if self.fill is None else self.fill
        return pad(image, anns, meta, 0, 0, self.width, self.height, fill)

    def __repr__(self):
        return f'ResizeKeepRatio({self.width}, {self.height}, keep_ratio={self.keep_ratio})'
