"""Decoded instances: poses (:class:`Annotation`) and boxes (:class:`AnnotationDet`).

Coordinates are pixels of the image the network saw until :meth:`Annotation.inverse_transform` maps them
to the original image through the sample's ``meta`` (see ``openfields.transforms.geometry``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import headmeta


@dataclasses.dataclass
class Annotation:
    """One pose.

    ``data``: ``(K, 3)`` float array of ``x, y, confidence`` per keypoint (confidence 0: not found);
    ``joint_scales``: ``(K,)`` keypoint sizes in pixels (the decoded CIF scales times the stride).
    """

    meta: headmeta.Cif
    data: np.ndarray
    joint_scales: np.ndarray
    category_id: int = 1
    fixed_score: float | None = None

    @classmethod
    def empty(cls, meta: headmeta.Cif, category_id: int = 1) -> 'Annotation':
        n = len(meta.keypoints)
        return cls(meta=meta, data=np.zeros((n, 3), dtype=np.float32),
                   joint_scales=np.zeros(n, dtype=np.float32), category_id=category_id)

    @property
    def score(self) -> float:
        """Weighted mean of the keypoint confidences sorted in decreasing order.

        ``score = sum_i w_i c_(i) / sum_i w_i`` with ``c_(1) >= c_(2) >= ...`` and the head's
        ``score_weights`` (uniform when absent): for COCO the three most confident keypoints count 3x.
        """
        if self.fixed_score is not None:
            return self.fixed_score
        confidences = np.sort(self.data[:, 2])[::-1]
        weights = np.asarray(self.meta.score_weights if self.meta.score_weights is not None
                             else np.ones(len(confidences)), dtype=np.float64)
        return float(np.sum(weights * confidences) / np.sum(weights))

    def bbox(self) -> np.ndarray:
        """``x, y, w, h`` of the found keypoints, each expanded by its joint scale."""
        found = self.data[:, 2] > 0
        if not np.any(found):
            return np.zeros(4, dtype=np.float32)
        xy, scales = self.data[found, :2], self.joint_scales[found]
        x0, y0 = np.min(xy - scales[:, None], axis=0)
        x1, y1 = np.max(xy + scales[:, None], axis=0)
        return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)

    def json_data(self, digits: int = 2) -> dict:
        """COCO result format: keypoints flat ``x, y, v``, ``bbox``, ``score`` (>= 0.001) and ``category_id``."""
        keypoints = self.data.astype(np.float64).copy()
        keypoints[:, 2] = np.where(keypoints[:, 2] > 0, np.maximum(keypoints[:, 2], 0.01), 0.0)
        return {
            'category_id': int(self.category_id),
            'keypoints': [round(float(v), digits) for v in keypoints.reshape(-1)],
            'bbox': [round(float(v), digits) for v in self.bbox()],
            'score': max(0.001, round(self.score, 3)),
        }


@dataclasses.dataclass
class AnnotationDet:
    """One box: ``bbox`` ``x, y, w, h`` in pixels, ``score`` in [0, 1], ``category_id`` 1-based."""

    meta: headmeta.CifDet
    category_id: int
    score: float
    bbox: np.ndarray

    def json_data(self, digits: int = 2) -> dict:
        return {'category_id': int(self.category_id), 'score': max(0.001, round(float(self.score), 3)),
                'bbox': [round(float(v), digits) for v in self.bbox]}


def _to_original(xy: np.ndarray, meta: dict) -> np.ndarray:
    from ..transforms.geometry import to_original  # decoding does not need transforms otherwise
    return to_original(xy, meta)


def inverse_transform(annotation, meta: dict):
    """A copy of ``annotation`` in the coordinates of the original image (see transforms.geometry)."""
    mean_scale = float(np.mean(meta['scale']))
    if isinstance(annotation, AnnotationDet):
        x, y, w, h = annotation.bbox
        corners = _to_original(np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]), meta)
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        return dataclasses.replace(annotation, bbox=np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32))
    data = annotation.data.copy()
    data[:, :2] = _to_original(data[:, :2], meta)
    joint_scales = annotation.joint_scales / mean_scale
    permutation = annotation.meta.flip_permutation() if meta.get('hflip') else None
    if permutation is not None:
        data, joint_scales = data[permutation], joint_scales[permutation]
    return dataclasses.replace(annotation, data=data, joint_scales=joint_scales)
