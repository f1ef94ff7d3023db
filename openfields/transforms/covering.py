"""Covering (coarse dropout, DeepLabCut's ``covering``): rectangles painted over the image.

A keypoint under a rectangle can no longer be seen, so it becomes unlabelled (``v = 0``), as in DeepLabCut;
boxes and the valid area are unchanged (a covered area is still image, not padding).
"""

from __future__ import annotations

import numpy as np
import PIL.ImageDraw
import torch

from . import geometry
from .pad import random_gray


class Covering:
    """Paint 1 to ``max_holes`` (uniform) rectangles, each side a uniform fraction in ``size_range`` of the
    image side, at uniform positions; ``fill=None`` gives each a random gray."""

    def __init__(self, max_holes: int = 10, size_range: tuple[float, float] = (0.01, 0.05),
                 fill: tuple[int, int, int] | None = None):
        if max_holes < 1 or not 0.0 < size_range[0] <= size_range[1] <= 1.0:
            raise ValueError(f'need max_holes >= 1 and 0 < size_range <= 1, got {max_holes}, {size_range}')
        self.max_holes = int(max_holes)
        self.size_range = (float(size_range[0]), float(size_range[1]))
        self.fill = fill

    def holes(self, width: int, height: int) -> np.ndarray:
        """``(N, 4)`` rectangles ``x0, y0, x1, y1``: pixels ``x0 <= i < x1``, ``y0 <= j < y1``."""
        n = 1 + int(torch.randint(0, self.max_holes, ()))
        u = torch.rand(n, 4).double().numpy()
        lo, hi = self.size_range
        sizes = np.maximum(1, np.rint((lo + u[:, :2] * (hi - lo)) * [width, height])).astype(int)
        x0 = (u[:, 2] * (width - sizes[:, 0] + 1)).astype(int)
        y0 = (u[:, 3] * (height - sizes[:, 1] + 1)).astype(int)
        return np.stack([x0, y0, x0 + sizes[:, 0], y0 + sizes[:, 1]], axis=1)

    def __call__(self, image, anns, meta):
        holes = self.holes(*image.size)
        image = image.copy()
        draw = PIL.ImageDraw.Draw(image)
        for x0, y0, x1, y1 in holes:
            fill = random_gray() if self.fill is None else self.fill
            draw.rectangle((int(x0), int(y0), int(x1) - 1, int(y1) - 1), fill=tuple(fill))
        anns = geometry.copy_anns(anns)
        for ann in anns:
            kps = ann['keypoints']
            if not len(kps):
                continue
            column, row = np.rint(kps[:, 0]), np.rint(kps[:, 1])  # the pixel that shows the keypoint
            covered = ((column[:, None] >= holes[:, 0]) & (column[:, None] < holes[:, 2])
                       & (row[:, None] >= holes[:, 1]) & (row[:, None] < holes[:, 3])).any(axis=1)
            kps[covered, 2] = 0.0
        return image, anns, meta

    def __repr__(self):
        return f'Covering(max_holes={self.max_holes}, size_range={self.size_range})'

