"""CifDet encoder: boxes -> detection field targets ``(F, 7, h, w)``, one field per category."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import headmeta
from .annrescaler import AnnRescaler, claim_nearest, image_size, mask_valid_area


@dataclass
class CifDet:
    """Target generator for one CifDet head.

    Annotations are dicts with ``bbox`` (``x, y, w, h`` pixels), ``iscrowd`` and ``category_id``, the
    1-based position of the box's category in ``meta.categories`` (field ``category_id - 1``).

    Every non-crowd box with a positive width and height claims a ``side_length x side_length`` patch of
    cells around its centre ``c = (x + w / 2, y + h / 2) / stride``; a cell claimed by several boxes of
    one category goes to the nearest centre. Claimed cells within ``core_radius`` cells of the centre are
    positives (confidence 1), the outer claimed cells (towards the patch corners) have a NaN confidence: they
    are neither trained as positives nor as background, but still regress the box. Crowd boxes are
    ignore regions of their category's field (confidence NaN, grown by ``(side_length - 1) / 2`` cells);
    there only cells less than one cell from a centre are claimed.

    ``bmin`` is in pixels; the target's ``b_min`` (field units, both vectors) grows with the box:
    ``max(bmin / stride, 0.05 * min(w, h))``, a twentieth of the short side of the box in field units.
    """

    meta: headmeta.CifDet
    bmin: float = 1.0
    side_length: int = 5
    padding: int = 10

    def __post_init__(self):
        if self.side_length < 1:
            raise ValueError(f'{self.meta.full_name}: --cifdet-side-length must be >= 1, got {self.side_length}')

    @property
    def core_radius(self) -> float:
        return (self.side_length - 1) / 2

    def __call__(self, image, anns: list[dict], meta: dict) -> torch.Tensor:
        """Targets ``(F, 7, h, w)`` float32: ``[confidence, dx, dy, w, h, b_min_xy, b_min_wh]`` where
        ``(dx, dy)`` points from the cell to the box centre; all in field units."""
        stride = self.meta.stride
        width, height = image_size(image)
        bg_masks = self._bg_masks(anns, width, height, stride)  # (F, h, w)
        fields = np.full((self.meta.n_fields, 7) + bg_masks.shape[1:], np.nan, dtype=np.float32)
        fields[:, 0] = np.where(bg_masks, 0.0, np.nan)
        boxes = [ann for ann in anns if not ann.get('iscrowd', 0)]
        if boxes:
            xywh = np.array([np.asarray(ann['bbox'], dtype=np.float64) for ann in boxes]) / stride
            self._fill(fields, self._fields_of(boxes), xywh, bg_masks, stride)
        mask_valid_area(fields, meta.get('valid_area'), stride)
        return torch.from_numpy(fields)

    def _fields_of(self, anns: list[dict]) -> np.ndarray:
        """Field index ``(N,)`` of each annotation; an error names a category outside the head."""
        fields = np.array([int(ann.get('category_id', 1)) - 1 for ann in anns], dtype=np.int64)
        bad = (fields < 0) | (fields >= self.meta.n_fields)
        if bad.any():
            raise ValueError(f'{self.meta.full_name}: annotation category_id {int(fields[bad][0]) + 1} is not '
                             f'in 1..{self.meta.n_fields} (the positions of {self.meta.categories})')
        return fields

    def _bg_masks(self, anns: list[dict], width: int, height: int, stride: int) -> np.ndarray:
        """``(F, h, w)`` bool: False inside the crowd boxes of each field's category."""
        rescaler = AnnRescaler(stride)
        crowds = [ann for ann in anns if ann.get('iscrowd', 0)]
        crowd_fields = self._fields_of(crowds) if crowds else np.zeros(0, dtype=np.int64)
        return np.stack([
            rescaler.bg_mask([ann for ann, f in zip(crowds, crowd_fields) if f == field], width, height,
                             crowd_margin=(self.side_length - 1) / 2)
            for field in range(self.meta.n_fields)])

    def _fill(self, fields: np.ndarray, field: np.ndarray, boxes: np.ndarray, bg_masks: np.ndarray,
              stride: int) -> None:
        """Write the winning patch cells of the ``(N, 4)`` field-unit boxes into ``fields`` in place."""
        h, w = bg_masks.shape[1:]
        has_size = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        field, boxes = field[has_size], boxes[has_size]
        centre = boxes[:, :2] + 0.5 * boxes[:, 2:]
        corner = np.round(centre - (self.side_length - 1) / 2).astype(np.int64)
        in_padded = ((corner >= -self.padding).all(axis=1)
                     & (corner[:, 0] + self.side_length <= w + self.padding)
                     & (corner[:, 1] + self.side_length <= h + self.padding))
        field, boxes, centre, corner = field[in_padded], boxes[in_padded], centre[in_padded], corner[in_padded]

        patch = np.stack(np.meshgrid(np.arange(self.side_length), np.arange(self.side_length)), axis=-1)
        cells = (corner[:, None, :] + patch.reshape(1, -1, 2)).reshape(-1, 2)  # (N * S^2, 2) as x, y
        source = np.repeat(np.arange(len(boxes)), self.side_length ** 2)
        inside = (cells >= 0).all(axis=1) & (cells[:, 0] < w) & (cells[:, 1] < h)
        cells, source = cells[inside], source[inside]

        offset = centre[source] - cells  # points from the cell to the box centre
        distance = np.linalg.norm(offset, axis=1)
        limit = np.where(bg_masks, np.inf, 1.0)[field[source], cells[:, 1], cells[:, 0]]
        linear = (field[source] * h + cells[:, 1]) * w + cells[:, 0]
        win = claim_nearest(linear, distance, limit)

        f, x, y, src = field[source[win]], cells[win, 0], cells[win, 1], source[win]
        size = boxes[src, 2:]
        b_min = np.maximum(self.bmin / stride, 0.05 * size.min(axis=1))
        fields[f, 0, y, x] = np.where(distance[win] <= self.core_radius, 1.0, np.nan)
        fields[f, 1, y, x] = offset[win, 0]
        fields[f, 2, y, x] = offset[win, 1]
        fields[f, 3, y, x] = size[:, 0]
        fields[f, 4, y, x] = size[:, 1]
        fields[f, 5, y, x] = b_min
        fields[f, 6, y, x] = b_min
