"""Heatmap encoder: annotations -> DeepLabCut-style heatmap and location-refinement targets ``(K, 3, h, w)``.

Facts followed (DeepLabCut's HeatmapGaussianGenerator / HeatmapPlateauGenerator): distances are in pixels of
the network input; the Gaussian has sigma ``2 * pos_dist_thresh / 3`` and the plateau is 1 within
``pos_dist_thresh``; with several individuals a map holds the maximum of theirs. The locref target of a cell
within ``pos_dist_thresh`` of a keypoint is ``(keypoint - cell) / locref_std`` (pixels), from the nearest such
keypoint. Unlike DeepLabCut (cell centres at ``stride * i + stride / 2``), field cell ``i`` sits on pixel
``i * stride``, openfields' convention, which the heatmap head keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import headmeta
from .annrescaler import AnnRescaler, image_size, mask_valid_area


@dataclass
class Heatmap:
    """Target generator for one heatmap head; keypoints with ``v > 0`` are targets, unlabelled ones leave their
    map at 0 (the network learns that they are absent). Crowd regions are NaN (ignored)."""

    meta: headmeta.Heatmap
    suppress_selfhidden: bool = True
    suppress_invisible: bool = False
    suppress_collision: bool = False

    def __call__(self, image, anns: list[dict], meta: dict) -> torch.Tensor:
        """Targets ``(K, 3, h, w)`` float32 (``(K, 1, h, w)`` without locref): ``[heatmap, locref_x, locref_y]``."""
        stride = self.meta.stride
        width, height = image_size(image)
        rescaler = AnnRescaler(stride, None, self.suppress_selfhidden, self.suppress_invisible,
                               self.suppress_collision)
        keypoints = rescaler.keypoint_sets(anns)  # (N, K, 3) field units
        bg_mask = rescaler.bg_mask(anns, width, height, crowd_margin=0.0)
        fields = self.encode(keypoints, bg_mask.shape)
        fields[:, 0][:, ~bg_mask] = np.nan
        mask_valid_area(fields, meta.get('valid_area'), stride)
        return torch.from_numpy(fields)

    def encode(self, keypoints: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """``(N, K, 3)`` keypoints in field units -> ``(K, C, h, w)`` float32 targets of a field of ``shape``."""
        meta, stride = self.meta, self.meta.stride
        n_keypoints = len(meta.keypoints)
        h, w = shape
        fields = np.zeros((n_keypoints, meta.n_components, h, w), dtype=np.float32)
        if meta.locref:
            fields[:, 1:] = np.nan
        rows, columns = np.mgrid[0:h, 0:w].astype(np.float64) * stride  # cell positions in pixels
        nearest = np.full((n_keypoints, h, w), np.inf)
        for person in keypoints:
            for k in np.flatnonzero(person[:, 2] > 0):
                x, y = person[k, 0] * stride, person[k, 1] * stride
                dx, dy = x - columns, y - rows
                distance = np.hypot(dx, dy)
                np.maximum(fields[k, 0], self.peak(distance), out=fields[k, 0])
                if meta.locref:
                    closer = (distance <= meta.pos_dist_thresh) & (distance < nearest[k])
                    nearest[k][closer] = distance[closer]
                    fields[k, 1][closer] = dx[closer] / meta.locref_std
                    fields[k, 2][closer] = dy[closer] / meta.locref_std
        return fields

    def peak(self, distance: np.ndarray) -> np.ndarray:
        """The map value at ``distance`` pixels from a keypoint: the Gaussian or the plateau."""
        if self.meta.target == 'plateau':
            return (distance <= self.meta.pos_dist_thresh).astype(np.float32)
        sigma = 2.0 * self.meta.pos_dist_thresh / 3.0
        return np.exp(-distance ** 2 / (2.0 * sigma ** 2)).astype(np.float32)
