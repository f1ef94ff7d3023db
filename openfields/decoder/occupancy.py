"""Occupancy maps: which places of which keypoint type already belong to a decoded instance."""

from __future__ import annotations

import numpy as np


class Occupancy:
    """Boolean maps ``(F, ceil(H / reduction), ceil(W / reduction))`` for an image of ``H x W`` pixels.

    * :meth:`set` marks, in field ``f``, the square of half-side ``max(scale, min_scale)`` pixels
      around ``(x, y)`` (in reduced cells ``[x/r - s', x/r + s')`` with ``s' = max(scale, min_scale) / r``,
      at least the cell holding the point);
    * :meth:`get` / :meth:`get_many` read the cell holding a point. Points off the image read the
      nearest border cell, so a joint regressed slightly outside is treated like one on the edge.

    ``reduction`` (2) halves the resolution: occupancy only needs to be as precise as joint sizes, and
    ``min_scale`` (4 px) keeps tiny joints from leaving gaps between neighbouring cells.
    """

    def __init__(self, shape: tuple[int, int, int], reduction: int = 2, min_scale: float = 4.0):
        n_fields, height, width = shape
        self.reduction = reduction
        self.min_scale = min_scale
        self.map = np.zeros((n_fields, (height - 1) // reduction + 1, (width - 1) // reduction + 1), dtype=bool)

    def clear(self) -> None:
        self.map.fill(False)

    def set(self, field: int, x: float, y: float, scale: float) -> None:
        """Mark the square around ``(x, y)`` (pixels) in ``field``."""
        _, height, width = self.map.shape
        r = self.reduction
        half = max(scale, self.min_scale) / r
        x0, x1 = _span(x / r, half, width)
        y0, y1 = _span(y / r, half, height)
        self.map[field, y0:y1, x0:x1] = True

    def set_many(self, field: np.ndarray, x: np.ndarray, y: np.ndarray, scale: np.ndarray) -> None:
        """:meth:`set` for ``(M,)`` arrays: the squares are computed at once, then written one by one."""
        _, height, width = self.map.shape
        r = self.reduction
        half = np.maximum(np.asarray(scale, dtype=np.float64), self.min_scale) / r
        x0, x1 = _spans(np.asarray(x, dtype=np.float64) / r, half, width)
        y0, y1 = _spans(np.asarray(y, dtype=np.float64) / r, half, height)
        occupancy = self.map
        for f, a, b, c, d in zip(np.asarray(field).tolist(), y0.tolist(), y1.tolist(), x0.tolist(), x1.tolist()):
            occupancy[f, a:b, c:d] = True

    def get(self, field: int, x: float, y: float) -> bool:
        _, height, width = self.map.shape
        column = min(max(int(x / self.reduction), 0), width - 1)
        row = min(max(int(y / self.reduction), 0), height - 1)
        return bool(self.map[field, row, column])

    def get_many(self, field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`get` for ``(M,)`` arrays -> bool ``(M,)``."""
        _, height, width = self.map.shape
        column = np.clip((np.asarray(x) / self.reduction).astype(np.int64), 0, width - 1)
        row = np.clip((np.asarray(y) / self.reduction).astype(np.int64), 0, height - 1)
        return self.map[field, row, column]


def _span(center: float, half: float, size: int) -> tuple[int, int]:
    """``[first, end)`` cells of ``[center - half, center + half)`` clipped to ``[0, size)``, never empty."""
    first = min(max(int(center - half), 0), size - 1)
    end = min(max(int(center + half) + 1, first + 1), size)
    return first, end


def _spans(center: np.ndarray, half: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`_span`."""
    first = np.clip(np.trunc(center - half), 0, size - 1).astype(np.int64)
    end = np.minimum(np.maximum(np.trunc(center + half).astype(np.int64) + 1, first + 1), size)
    return first, end
