"""Single-instance decoder ``cifmax``: each keypoint at the peak of its accumulated CIF map.

For images that hold at most one individual (single-animal DeepLabCut projects, crops of one person):
no seeds, no associations, so a body part far from the others (a mouse's tail base) can never be lost
by a weak connection or attached to the wrong pose. This is DeepLabCut's single-animal read-out (the
maximum of each body part's map), on the CIF high-resolution map. Chosen by name only
(``--decoder cifmax``): on images with several individuals it returns one mixed pose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import headmeta
from .annotation import Annotation
from .cifcaf import as_array
from .cifhr import CifHr

if TYPE_CHECKING:
    from .settings import DecoderSettings


class CifMax:
    """``__call__([cif (K, 5, h, w)])`` -> at most one pose.

    1. accumulation: :class:`CifHr` of the confident cells (``--cif-th``), map ``hr`` of ``(K, H, W)``;
    2. per keypoint ``k``: the peak pixel ``p_k = argmax hr[k]``, refined to sub-pixel precision by the
       map-weighted mean over the 3x3 pixels around it,
       ``x_k = sum_q hr[k, q] x_q / sum_q hr[k, q]`` (same for y);
    3. confidence ``c_k = hr[k, p_k]`` (0: no vote, the keypoint is not found); the joint scale is the
       CIF scale of the cell nearest the peak times the stride;
    4. one pose when any keypoint is found and its score passes ``--instance-threshold``.
    """

    def __init__(self, meta: headmeta.Cif, settings: 'DecoderSettings'):
        self.meta = meta
        self.settings = settings
        self.cifhr = CifHr()
        self.stats: dict[str, float] = {}

    def __call__(self, fields: list) -> list[Annotation]:
        cif = as_array(fields[0])
        stride = self.meta.stride
        hr = self.cifhr.fill_cif(cif, stride, self.settings.cif_th).values()  # (K, H, W)
        n_keypoints, height, width = hr.shape
        peak = hr.reshape(n_keypoints, -1).argmax(axis=1)
        row, column = np.divmod(peak, width)
        confidence = hr[np.arange(n_keypoints), row, column]
        x, y = _refined(hr, row, column)
        cell_row = np.clip(np.rint(row / stride).astype(np.int64), 0, cif.shape[2] - 1)
        cell_column = np.clip(np.rint(column / stride).astype(np.int64), 0, cif.shape[3] - 1)
        scales = cif[np.arange(n_keypoints), 4, cell_row, cell_column] * stride
        found = confidence > 0.0
        data = np.stack([np.where(found, x, 0.0), np.where(found, y, 0.0), confidence], axis=1).astype(np.float32)
        pose = Annotation(meta=self.meta, data=data, joint_scales=np.where(found, scales, 0.0).astype(np.float32))
        if not np.any(found) or pose.score < self.settings.instance_threshold:
            return []
        return [pose]


def _refined(hr: np.ndarray, row: np.ndarray, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map-weighted mean position over the 3x3 pixels around ``(row, column)`` per map, ``(K,)`` each;
    the peak itself where the neighbourhood holds no weight."""
    n_keypoints, height, width = hr.shape
    offsets = np.arange(-1, 2)
    rows, columns = row[:, None] + offsets, column[:, None] + offsets  # (K, 3) each
    inside = (((rows >= 0) & (rows < height))[:, :, None] & ((columns >= 0) & (columns < width))[:, None, :])
    patch = hr[np.arange(n_keypoints)[:, None, None], np.clip(rows, 0, height - 1)[:, :, None],
               np.clip(columns, 0, width - 1)[:, None, :]]  # (K, 3, 3)
    patch = np.where(inside, patch, 0.0)  # pixels beyond the border weigh nothing
    weight = patch.sum(axis=(1, 2))
    safe = np.where(weight > 0, weight, 1.0)
    x = np.where(weight > 0, (patch * columns[:, None, :]).sum(axis=(1, 2)) / safe, column)
    y = np.where(weight > 0, (patch * rows[:, :, None]).sum(axis=(1, 2)) / safe, row)
    return x.astype(np.float64), y.astype(np.float64)
