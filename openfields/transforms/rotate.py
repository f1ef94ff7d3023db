"""Rotations with an expanded canvas.

``angle`` is in degrees, counter-clockwise as seen on screen (y axis down). The image rotates about its centre
``((W - 1) / 2, (H - 1) / 2)``; the canvas grows to ``round(W |cos| + H |sin|) x round(W |sin| + H |cos|)``
and its centre receives the old centre. Boxes (crowd and keypoint-less ones too) become the bounding box of
their rotated corners; valid_area the bounding box of the rotated valid pixels. See :mod:`.geometry`.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from . import geometry
from .pad import random_gray

_TRANSPOSE = {
    90: PIL.Image.Transpose.ROTATE_90,
    180: PIL.Image.Transpose.ROTATE_180,
    270: PIL.Image.Transpose.ROTATE_270,
}


def rotated_size(width: int, height: int, angle: float) -> tuple[int, int]:
    r = geometry.rotation_matrix(angle)
    c, s = abs(r[0, 0]), abs(r[0, 1])
    return round(width * c + height * s), round(width * s + height * c)


def rotate_image(image: PIL.Image.Image, angle: float, fill=(124, 116, 104),
                 resample=PIL.Image.Resampling.BILINEAR) -> PIL.Image.Image:
    """Rotate into the expanded canvas, pixel-exactly consistent with :func:`geometry.rotate`."""
    quarter = angle % 360.0
    if quarter in (0.0, 90.0, 180.0, 270.0):
        # multiples of 90 degrees: lossless and fast
        return image.copy() if quarter == 0.0 else image.transpose(_TRANSPOSE[int(quarter)])
    w, h = image.size
    nw, nh = rotated_size(w, h, angle)
    c_old = np.array([(w - 1) / 2, (h - 1) / 2])
    c_new = np.array([(nw - 1) / 2, (nh - 1) / 2])
    r_inv = geometry.rotation_matrix(-angle)
    # PIL maps output position u' (pixel i at i + 0.5) to input position A u' + t; centre coordinates are u - 0.5
    t = -r_inv @ (c_new + 0.5) + c_old + 0.5
    data = (r_inv[0, 0], r_inv[0, 1], t[0], r_inv[1, 0], r_inv[1, 1], t[1])
    return image.transform((nw, nh), PIL.Image.Transform.AFFINE, data, resample=resample, fillcolor=tuple(fill))


def rotate(image, anns, meta, angle: float, fill=(124, 116, 104)):
    """Rotate the sample by ``angle`` degrees (counter-clockwise on screen); returns copies."""
    w, h = image.size
    anns, meta = geometry.copy_anns(anns), geometry.copy_meta(meta)
    image = rotate_image(image, angle, fill)
    geometry.rotate(anns, meta, angle, (w, h), image.size)
    return image, anns, meta


class Rotate:
    """Rotate by a fixed ``angle`` (degrees, counter-clockwise on screen)."""

    def __init__(self, angle: float, fill: tuple[int, int, int] | None = None):
        self.angle = float(angle)
        self.fill = fill

    def __call__(self, image, anns, meta):
        fill = random_gray() if self.fill is None else self.fill
        return rotate(image, anns, meta, self.angle, fill)

    def __repr__(self):
        return f'Rotate({self.angle})'


class RotateUniform:
    """Rotate by an angle uniform in ``[-max_angle, max_angle]``; ``fill=None`` uses a random gray."""

    def __init__(self, max_angle: float = 30.0, fill: tuple[int, int, int] | None = None):
        self.max_angle = float(max_angle)
        self.fill = fill

    def __call__(self, image, anns, meta):
        angle = (2.0 * float(torch.rand(())) - 1.0) * self.max_angle
        fill = random_gray() if self.fill is None else self.fill
        return rotate(image, anns, meta, angle, fill)

    def __repr__(self):
        return f'RotateUniform({self.max_angle})'


class RotateBy90:
    """Rotate by 0, 90, 180 or 270 degrees (uniformly) plus a perturbation uniform in
    ``[-angle_perturbation, angle_perturbation]``; ``fill=None`` uses a random gray."""

    def __init__(self, angle_perturbation: float = 0.0, fill: tuple[int, int, int] | None = None):
        self.angle_perturbation = float(angle_perturbation)
        self.fill = fill

    def __call__(self, image, anns, meta):
        quarter = int(torch.randint(0, 4, ()))
        perturbation = (2.0 * float(torch.rand(())) - 1.0) * self.angle_perturbation
        angle = quarter * 90.0 + perturbation
        fill = random_gray() if self.fill is None else self.fill
        return rotate(image, anns, meta, angle, fill)

    def __repr__(self):
        return f'RotateBy90(angle_perturbation={self.angle_perturbation})'
