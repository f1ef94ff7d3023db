"""CAF encoder: annotations -> Composite Association Field targets ``(E, 9, h, w)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import headmeta
from .annrescaler import AnnRescaler, claim_nearest, image_size, mask_valid_area


@dataclass
class Caf:
    """Target generator for one CAF head.

    Every limb (skeleton edge with both joints labelled) claims the cells in an
    ``s x s`` neighbourhood (``s = max(min_size, int(length * aspect_ratio))``) of points
    sampled along its middle part, fractions ``fm .. 1 - fm`` with
    ``fm = clip((s / 2) / length, 0.25, 0.4)`` (only the midpoint with ``fixed_size``).
    A cell claimed by several people goes to the limb with the smallest perpendicular
    distance. ``bmin`` is in pixels; ``padding`` is kept for symmetry with the CIF encoder
    (cells outside the image never reach the output).
    """

    meta: headmeta.Caf
    bmin: float = 0.1
    min_size: int = 3
    fixed_size: bool = False
    aspect_ratio: float = 0.0
    padding: int = 10
    suppress_selfhidden: bool = True
    suppress_invisible: bool = False
    suppress_collision: bool = False

    def __call__(self, image, anns: list[dict], meta: dict) -> torch.Tensor:
        """Targets ``(E, 9, h, w)`` float32:
        ``[confidence, x1, y1, x2, y2, b_min1, b_min2, scale1, scale2]`` (field units)."""
        stride = self.meta.stride
        width, height = image_size(image)
        rescaler = AnnRescaler(stride, self.meta.pose, self.suppress_selfhidden,
                               self.suppress_invisible, self.suppress_collision)
        keypoints = rescaler.keypoint_sets(anns)
        bg_mask = rescaler.bg_mask(anns, width, height, crowd_margin=(self.min_size - 1) / 2)
        fields = np.full((len(self.meta.skeleton), 9) + bg_mask.shape, np.nan, dtype=np.float32)
        fields[:, 0] = np.where(bg_mask, 0.0, np.nan)
        if len(keypoints):
            self._fill(fields, keypoints, rescaler.scales(keypoints), bg_mask, stride)
        mask_valid_area(fields, meta.get('valid_area'), stride)
        return torch.from_numpy(fields)

    def _limbs(self, keypoints: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``(person, edge)`` index arrays of the limbs to encode, person-major."""
        edges = np.asarray(self.meta.skeleton) - 1
        joint1, joint2 = keypoints[:, edges[:, 0]], keypoints[:, edges[:, 1]]  # (N, E, 3)
        selected = (joint1[:, :, 2] > 0) & (joint2[:, :, 2] > 0)
        in_view1, in_view2 = _in_view(joint1, shape), _in_view(joint2, shape)
        if self.meta.only_in_field_of_view:
            selected &= in_view1 & in_view2
        else:
            selected &= in_view1 | in_view2
        if self.meta.sparse_skeleton is not None:
            selected &= ~self._covered_by_sparse(keypoints, edges)
        return np.nonzero(selected)

    def _covered_by_sparse(self, keypoints: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """``(N, E)`` bool for dense heads: the edge is not sparse and both of its joints already
        have a labelled sparse connection shorter than ``length / dense_to_sparse_radius``."""
        sparse = np.asarray(self.meta.sparse_skeleton) - 1
        n_keypoints = keypoints.shape[1]
        s1, s2 = keypoints[:, sparse[:, 0]], keypoints[:, sparse[:, 1]]  # (N, Es, 3)
        sparse_length = np.where((s1[:, :, 2] > 0) & (s2[:, :, 2] > 0),
                                 np.linalg.norm(s2[:, :, :2] - s1[:, :, :2], axis=-1), np.inf)
        incident = np.zeros((len(sparse), n_keypoints), dtype=bool)  # (Es, K)
        incident[np.arange(len(sparse)), sparse[:, 0]] = True
        incident[np.arange(len(sparse)), sparse[:, 1]] = True
        shortest = np.where(incident[None], sparse_length[:, :, None], np.inf).min(axis=1)  # (N, K)

        sparse_pairs = {frozenset(pair) for pair in sparse.tolist()}
        is_dense = np.array([frozenset(pair) not in sparse_pairs for pair in edges.tolist()])
        length = np.linalg.norm(keypoints[:, edges[:, 1], :2] - keypoints[:, edges[:, 0], :2], axis=-1)
        limit = length / self.meta.dense_to_sparse_radius
        return is_dense[None] & (shortest[:, edges[:, 0]] < limit) & (shortest[:, edges[:, 1]] < limit)

    def _sample_points(self, length: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points along each of ``M`` limbs: ``(limb index (P,), fraction along the limb (P,))``."""
        if self.fixed_size:
            return np.arange(len(length)), np.full(len(length), 0.5)
        with np.errstate(divide='ignore'):
            margin = np.clip((size / 2) / length, 0.25, 0.4)
        count = np.maximum(2, np.ceil(length).astype(np.int64))
        limb = np.repeat(np.arange(len(length)), count)
        step = np.arange(len(limb)) - np.repeat(np.cumsum(count) - count, count)
        fraction = margin[limb] + (1 - 2 * margin[limb]) * step / (count[limb] - 1)
        return limb, fraction

    def _fill(self, fields: np.ndarray, keypoints: np.ndarray, instance_scales: np.ndarray,
              bg_mask: np.ndarray, stride: int) -> None:
        """Write the winning cells of all limbs of the ``(N, K, 3)`` keypoints into ``fields`` in place."""
        h, w = bg_mask.shape
        person, edge = self._limbs(keypoints, (h, w))
        edges = np.asarray(self.meta.skeleton) - 1
        joint1 = keypoints[person, edges[edge, 0], :2]  # (M, 2)
        joint2 = keypoints[person, edges[edge, 1], :2]
        direction = joint2 - joint1
        length = np.linalg.norm(direction, axis=1)
        size = np.maximum(self.min_size, (length * self.aspect_ratio).astype(np.int64))

        limb, fraction = self._sample_points(length, size)
        points = joint1[limb] + fraction[:, None] * direction[limb]
        corner = np.round(points - (size[limb, None] - 1) / 2).astype(np.int64)

        # every point claims its size x size neighbourhood (ragged when sizes differ)
        count = size[limb] ** 2
        point = np.repeat(np.arange(len(points)), count)
        step = np.arange(len(point)) - np.repeat(np.cumsum(count) - count, count)
        point_size = size[limb[point]]
        cells = corner[point] + np.stack([step % point_size, step // point_size], axis=1)
        source = limb[point]
        inside = (cells >= 0).all(axis=1) & (cells[:, 0] < w) & (cells[:, 1] < h)
        cells, source = cells[inside], source[inside]

        relative = cells - joint1[source]
        cross = direction[source, 0] * relative[:, 1] - direction[source, 1] * relative[:, 0]
        distance = np.abs(cross) / (length[source] + 0.01)  # perpendicular distance to the limb
        limit = np.where(bg_mask, np.inf, 1.0)[cells[:, 1], cells[:, 0]]
        linear = (edge[source] * h + cells[:, 1]) * w + cells[:, 0]
        win = claim_nearest(linear, distance, limit)
        self._write(fields, cells[win], source[win], person, edge, joint1, joint2, instance_scales, stride)

    def _write(self, fields, cells, source, person, edge, joint1, joint2, instance_scales, stride) -> None:
        """Set the target values of the winning ``cells`` ``(W, 2)`` coming from limbs ``source``."""
        edges = np.asarray(self.meta.skeleton) - 1
        sigmas = np.asarray(self.meta.sigmas, dtype=np.float64)
        e, x, y = edge[source], cells[:, 0], cells[:, 1]
        scale = instance_scales[person[source]]
        fields[e, 0, y, x] = 1.0
        fields[e, 1, y, x] = joint1[source, 0] - x
        fields[e, 2, y, x] = joint1[source, 1] - y
        fields[e, 3, y, x] = joint2[source, 0] - x
        fields[e, 4, y, x] = joint2[source, 1] - y
        fields[e, 5, y, x] = self.bmin / stride
        fields[e, 6, y, x] = self.bmin / stride
        fields[e, 7, y, x] = scale * sigmas[edges[e, 0]]
        fields[e, 8, y, x] = scale * sigmas[edges[e, 1]]


def _in_view(joints: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(..., 3)`` field-unit joints -> bool ``(...)``: inside the unpadded field ``(h, w)``."""
    h, w = shape
    x, y = joints[..., 0], joints[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
