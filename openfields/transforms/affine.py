"""Affine augmentation on a canvas of the same size (DeepLabCut's ``affine``).

A point ``p`` (pixel-centre convention, see :mod:`.geometry`) moves to ``p' = s R(angle) (p - c) + c + t``
with ``c = ((W - 1) / 2, (H - 1) / 2)`` the image centre, ``s`` a uniform scale and ``t`` a translation in
pixels. The canvas keeps its size, so content can leave it: keypoints that leave become unlabelled
(``v = 0``, coordinates kept), boxes are clipped, and the uncovered canvas lies outside ``valid_area``.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from . import geometry
from .pad import random_gray


def affine_image(image: PIL.Image.Image, angle: float, scale: float, shift, fill=(124, 116, 104),
                 resample=PIL.Image.Resampling.BILINEAR) -> PIL.Image.Image:
    """Warp ``image`` by ``p' = scale R(angle) (p - c) + c + shift`` into a canvas of the same size."""
    w, h = image.size
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    inverse = geometry.rotation_matrix(-angle) / scale
    # input p = inverse (p' - c - shift) + c; PIL positions are pixel-centre coordinates + 0.5
    t = centre - inverse @ (centre + np.asarray(shift, dtype=np.float64)) + 0.5 - inverse @ np.array([0.5, 0.5])
    data = (inverse[0, 0], inverse[0, 1], t[0], inverse[1, 0], inverse[1, 1], t[1])
    return image.transform((w, h), PIL.Image.Transform.AFFINE, data, resample=resample, fillcolor=tuple(fill))


def affine(image, anns, meta, angle: float, scale: float, shift=(0.0, 0.0), fill=(124, 116, 104)):
    """Rotate by ``angle`` degrees (counter-clockwise on screen) and scale by ``scale`` about the image
    centre, then translate by ``shift`` pixels; the canvas keeps its size. Returns copies."""
    if scale <= 0:
        raise ValueError(f'scale must be positive, got {scale}')
    w, h = image.size
    anns, meta = geometry.copy_anns(anns), geometry.copy_meta(meta)
    image = affine_image(image, angle, scale, shift, fill)
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    geometry.scale(anns, meta, (scale, scale))
    geometry.translate(anns, meta, (scale - 1.0) * centre)  # scaled about the centre
    geometry.rotate(anns, meta, angle, (w, h), (w, h))
    geometry.translate(anns, meta, -np.asarray(shift, dtype=np.float64))
    geometry.clip_valid_area(meta, w, h)
    geometry.clip_boxes(anns, w, h)
    geometry.unlabel_outside(anns, w, h)
    return image, anns, meta


class Affine:
    """Random affine: angle uniform in ``[-rotation, rotation]`` degrees, scale uniform in ``scaling``, a
    translation uniform in ``[-translation, translation]`` pixels per axis; ``fill=None`` uses a random gray."""

    def __init__(self, rotation: float = 30.0, scaling: tuple[float, float] = (1.0, 1.0),
                 translation: float = 0.0, fill: tuple[int, int, int] | None = None):
        if not 0.0 < scaling[0] <= scaling[1]:
            raise ValueError(f'scaling must be 0 < low <= high, got {tuple(scaling)}')
        if rotation < 0 or translation < 0:
            raise ValueError(f'rotation and translation must be >= 0, got {rotation} and {translation}')
        self.rotation = float(rotation)
        self.scaling = (float(scaling[0]), float(scaling[1]))
        self.translation = float(translation)
        self.fill = fill

    def __call__(self, image, anns, meta):
        u_angle, u_scale, u_x, u_y = torch.rand(4).tolist()
        angle = (2.0 * u_angle - 1.0) * self.rotation
        scale = self.scaling[0] + u_scale * (self.scaling[1] - self.scaling[0])
        shift = ((2.0 * u_x - 1.0) * self.translation, (2.0 * u_y - 1.0) * self.translation)
        fill = random_gray() if self.fill is None else self.fill
        return affine(image, anns, meta, angle, scale, shift, fill)

    def __repr__(self):
        return f'Affine(rotation={self.rotation}, scaling={self.scaling}, translation={self.translation})'
