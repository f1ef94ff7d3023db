"""CIF encoder: annotations -> Composite Intensity Field targets ``(K, 5, h, w)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import headmeta
from .annrescaler import AnnRescaler, claim_nearest, image_size, mask_valid_area


@dataclass
class Cif:
    """Target generator for one CIF head.

    Each keypoint with ``v > v_threshold`` claims a ``side_length x side_length`` patch of
    cells around it; a cell claimed by several people goes to the closest keypoint.
    ``bmin`` is in pixels. ``padding`` (cells): a patch is dropped only when it leaves the
    field extended by this margin, so keypoints slightly outside the image still contribute.
    """

    meta: headmeta.Cif
    bmin: float = 0.1
    side_length: int = 4
    padding: int = 10
    v_threshold: int = 0
    suppress_selfhidden: bool = True
    suppress_invisible: bool = False
    suppress_collision: bool = False

    def __call__(self, image, anns: list[dict], meta: dict) -> torch.Tensor:
        """Targets ``(K, 5, h, w)`` float32: ``[confidence, dx, dy, b_min, scale]`` (field units)."""
        stride = self.meta.stride
        width, height = image_size(image)
        rescaler = AnnRescaler(stride, self.meta.pose, self.suppress_selfhidden,
                               self.suppress_invisible, self.suppress_collision)
        keypoints = rescaler.keypoint_sets(anns)
        bg_mask = rescaler.bg_mask(anns, width, height, crowd_margin=(self.side_length - 1) / 2)
        fields = self._empty_fields(bg_mask)
        if len(keypoints):
            self._fill(fields, keypoints, rescaler.scales(keypoints), bg_mask, stride)
        mask_valid_area(fields, meta.get('valid_area'), stride)
        return torch.from_numpy(fields)

    def _empty_fields(self, bg_mask: np.ndarray) -> np.ndarray:
        """``(K, 5, h, w)``: confidence 0 (NaN in ignore regions), everything else NaN."""
        fields = np.full((len(self.meta.keypoints), 5) + bg_mask.shape, np.nan, dtype=np.float32)
        fields[:, 0] = np.where(bg_mask, 0.0, np.nan)
        return fields

    def _fill(self, fields: np.ndarray, keypoints: np.ndarray, instance_scales: np.ndarray,
              bg_mask: np.ndarray, stride: int) -> None:
        """Write the winning patch cells of all ``(N, K, 3)`` keypoints into ``fields`` in place."""
        h, w = bg_mask.shape
        person, field = np.nonzero(keypoints[:, :, 2] > self.v_threshold)  # person-major: ties go to earlier people
        xy = keypoints[person, field, :2]  # (M, 2)
        corner = np.round(xy - (self.side_length - 1) / 2).astype(np.int64)
        in_padded = ((corner >= -self.padding).all(axis=1)
                     & (corner[:, 0] + self.side_length <= w + self.padding)
                     & (corner[:, 1] + self.side_length <= h + self.padding))
        person, field, xy, corner = person[in_padded], field[in_padded], xy[in_padded], corner[in_padded]

        patch = np.stack(np.meshgrid(np.arange(self.side_length), np.arange(self.side_length)), axis=-1)
        cells = (corner[:, None, :] + patch.reshape(1, -1, 2)).reshape(-1, 2)  # (M * S, 2) as x, y
        n_cells = self.side_length ** 2
        source = np.repeat(np.arange(len(xy)), n_cells)
        inside = (cells >= 0).all(axis=1) & (cells[:, 0] < w) & (cells[:, 1] < h)
        cells, source = cells[inside], source[inside]

        offset = xy[source] - cells  # points from the cell to the keypoint
        distance = np.linalg.norm(offset, axis=1)
        # ignore regions start at distance 1: only cells very close to a keypoint are claimed there
        limit = np.where(bg_mask, np.inf, 1.0)[cells[:, 1], cells[:, 0]]
        linear = (field[source] * h + cells[:, 1]) * w + cells[:, 0]
        win = claim_nearest(linear, distance, limit)

        f, x, y, src = field[source[win]], cells[win, 0], cells[win, 1], source[win]
        sigmas = np.asarray(self.meta.sigmas, dtype=np.float64)
        fields[f, 0, y, x] = 1.0
        fields[f, 1, y, x] = offset[win, 0]
        fields[f, 2, y, x] = offset[win, 1]
        fields[f, 3, y, x] = self.bmin / stride
        fields[f, 4, y, x] = instance_scales[person[src]] * sigmas[f]
