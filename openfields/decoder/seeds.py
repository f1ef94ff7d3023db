"""Seeds: the CIF cells that may start a pose, best first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cifhr import CifHr, confident_cells, most_confident

# weight of the accumulated map in a seed's score; the rest is the cell's own confidence
HR_WEIGHT = 0.9


@dataclass
class Seeds:
    """``M`` seeds as flat arrays sorted by descending ``score``; positions and scales in pixels."""

    field: np.ndarray  # int64 (M,)
    score: np.ndarray  # float (M,)
    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray

    def __len__(self) -> int:
        return len(self.score)


def cif_seeds(cif: np.ndarray, stride: int, cifhr: CifHr, threshold: float,
              max_per_field: int | None = None) -> Seeds:
    """Seeds of CIF fields ``(K, 5, h, w)`` ``[log_b, conf, x, y, scale]``.

    1. cells with ``conf >= threshold`` -> ``M`` candidates (field, conf, x, y, scale), field units;
    2. positions and scales times ``stride`` -> pixels;
    3. score ``0.9 * cifhr[field](nearest pixel) + 0.1 * conf`` (a position off the map reads -1, which
       drops the candidate);
    4. keep ``score >= threshold``, stable sort by descending score.

    With ``max_per_field``, step 1 keeps the most confident cells of each field only. Steps 2 to 4 (up to the
    sort) are one compiled loop (:func:`.kernels.cif_seed_candidates`), in numpy's float32 arithmetic.
    """
    from . import kernels
    confident = cif[:, 1] >= threshold
    if max_per_field is not None:
        confident = most_confident(cif[:, 1], confident, max_per_field)
    _, height, width = cifhr.shape
    field, score, x, y, scale = kernels.cif_seed_candidates(
        np.ascontiguousarray(cif, dtype=np.float32), np.ascontiguousarray(confident), int(stride), cifhr.buffer(),
        height, width, np.float32(threshold), np.float32(HR_WEIGHT), np.float32(1.0 - HR_WEIGHT))
    order = np.argsort(-score, kind='stable')
    return Seeds(field=field[order], score=score[order].astype(np.float64), x=x[order].astype(np.float64),
                 y=y[order].astype(np.float64), scale=scale[order].astype(np.float64))


def cifdet_seeds(cifdet: np.ndarray, stride: int, cifhr: CifHr, threshold: float):
    """Seeds of CifDet fields ``(N, 6, h, w)`` as for :func:`cif_seeds`; returns ``(seeds, width,
    height)`` with the box sizes (pixels, ``(M,)``) in the seeds' order; ``seeds.scale`` holds
    ``0.1 * min(width, height)``, the size used for occupancy."""
    field, conf, x, y, width, height = confident_cells(cifdet, threshold, (2, 3, 4, 5))
    width, height = width * stride, height * stride
    scale = 0.1 * np.minimum(width, height)
    order, seeds = _rescored(field, conf, x * stride, y * stride, scale, cifhr, threshold, with_order=True)
    return seeds, width[order], height[order]


def _rescored(field, conf, x, y, scale, cifhr: CifHr, threshold: float, with_order: bool = False):
    score = HR_WEIGHT * cifhr.at(field, x, y, outside=-1.0) + (1.0 - HR_WEIGHT) * conf
    keep = np.flatnonzero(score >= threshold)
    order = keep[np.argsort(-score[keep], kind='stable')]
    seeds = Seeds(field=field[order], score=score[order].astype(np.float64), x=x[order].astype(np.float64),
                  y=y[order].astype(np.float64), scale=scale[order].astype(np.float64))
    return (order, seeds) if with_order else seeds
