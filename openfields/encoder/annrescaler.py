"""Annotation preprocessing shared by the CIF and CAF encoders.

Converts pixel annotations into field units (``x / stride``), applies the
optional keypoint suppressions, builds the ignore mask of crowd regions and
estimates an instance scale that stays sensible for partly visible people.
"""

from __future__ import annotations

import math

import numpy as np

# a labelled-occluded keypoint this close (pixels, in x and in y) to a visible
# keypoint of the same type on another person is most likely hidden by that person
SELFHIDDEN_DISTANCE_PX = 32.0
# collision suppression: minimum distance (pixels) and fraction of the larger bbox side
COLLISION_MIN_PX = 16.0
COLLISION_BBOX_FRACTION = 0.2
MAX_SCALE_FACTOR = 5.0
MIN_SCALE = 0.1


def field_shape(width_px: int, height_px: int, stride: int) -> tuple[int, int]:
    """Field size ``(h, w)`` for an ``height_px x width_px`` input: cell ``i`` sits on pixel ``i * stride``."""
    return (height_px - 1) // stride + 1, (width_px - 1) // stride + 1


def image_size(image) -> tuple[int, int]:
    """``(width, height)`` in pixels of a PIL image or of a ``(..., H, W)`` tensor / array."""
    if hasattr(image, 'size') and isinstance(image.size, tuple):
        return int(image.size[0]), int(image.size[1])  # PIL: (W, H)
    return int(image.shape[-1]), int(image.shape[-2])


def valid_area_mask(valid_area, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``(h, w)`` map, True for cells inside ``valid_area`` (pixels ``x, y, w, h``).

    A cell counts as valid when its row/column index lies between the truncated
    field coordinates of the area's first and last pixel (lenient by less than one
    cell, so the border cells of a padded image stay trainable).
    """
    h, w = shape
    x, y, aw, ah = (float(v) / stride for v in valid_area)
    cols = np.arange(w)
    rows = np.arange(h)
    col_ok = (cols >= int(x)) & (cols <= int(x + aw))
    row_ok = (rows >= int(y)) & (rows <= int(y + ah))
    return row_ok[:, None] & col_ok[None, :]


def mask_valid_area(fields: np.ndarray, valid_area, stride: int) -> np.ndarray:
    """In place on ``(F, C, h, w)`` targets: outside ``valid_area`` the confidence (channel 0)
    becomes 0 and all other channels NaN."""
    if valid_area is None:
        return fields
    outside = ~valid_area_mask(valid_area, stride, fields.shape[-2:])
    fields[:, 0, outside] = 0.0
    fields[:, 1:, outside] = np.nan
    return fields


def claim_nearest(linear_index: np.ndarray, distance: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Indices of the candidates that win their target cell: per distinct ``linear_index`` the one
    with the smallest ``distance``, considering only candidates with ``distance < limit``.

    Equivalent to filling candidates in order and overwriting a cell only when strictly closer
    than what it holds (ties go to the earlier candidate), starting from ``limit``.
    """
    candidates = np.flatnonzero(distance < limit)
    order = candidates[np.lexsort((distance[candidates], linear_index[candidates]))]  # stable
    cells = linear_index[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = cells[1:] != cells[:-1]
    return order[first]


def _bbox_areas(xy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bounding-box area of the points ``xy`` ``(..., K, 2)`` where ``mask`` ``(..., K)`` is True -> ``(...)``."""
    low = np.where(mask[..., None], xy, np.inf).min(axis=-2)
    high = np.where(mask[..., None], xy, -np.inf).max(axis=-2)
    extent = high - low
    extent = np.where(np.isfinite(extent), extent, 0.0)
    return extent[..., 0] * extent[..., 1]


class AnnRescaler:
    """Annotations (pixels) -> keypoint sets, ignore mask and instance scales (field units).

    ``pose``: upright reference pose ``(K, 3)`` (x, y, v) used to correct the scale of
    partly visible people; None disables the correction.
    """

    def __init__(self, stride: int, pose=None, suppress_selfhidden: bool = True,
                 suppress_invisible: bool = False, suppress_collision: bool = False):
        self.stride = int(stride)
        self.suppress_selfhidden = suppress_selfhidden
        self.suppress_invisible = suppress_invisible
        self.suppress_collision = suppress_collision
        self.pose_xy = None
        if pose is not None:
            pose = np.asarray(pose, dtype=np.float64)
            self.pose_xy = _reference_poses(pose[:, :2])  # (2, K, 2): upright and rotated by 45 degrees
            self.pose_valid = pose[:, 2] > 0
            self.pose_areas = _bbox_areas(self.pose_xy, self.pose_valid)  # (2,)

    # --- keypoints -------------------------------------------------------------------------------

    def keypoint_sets(self, anns: list[dict]) -> np.ndarray:
        """``(N, K, 3)`` float keypoints ``x / stride, y / stride, v`` of the non-crowd annotations.

        Suppressions are decided in pixels; suppressed keypoints get ``v = 0``.
        """
        persons = [ann for ann in anns if not ann.get('iscrowd', 0) and ann.get('keypoints') is not None]
        if not persons:
            n_keypoints = 0 if self.pose_xy is None else self.pose_xy.shape[1]
            return np.zeros((0, n_keypoints, 3), dtype=np.float64)
        keypoints = np.stack([np.asarray(ann['keypoints'], dtype=np.float64).reshape(-1, 3)
                              for ann in persons])
        if self.suppress_collision:
            bboxes = np.stack([np.asarray(ann['bbox'], dtype=np.float64) for ann in persons])
            _suppress_collisions(keypoints, bboxes)
        if self.suppress_invisible:
            keypoints[keypoints[:, :, 2] < 2, 2] = 0.0
        elif self.suppress_selfhidden:
            _suppress_selfhidden(keypoints)
        keypoints[:, :, :2] /= self.stride
        return keypoints

    # --- ignore regions --------------------------------------------------------------------------

    def bg_mask(self, anns: list[dict], width_px: int, height_px: int, crowd_margin: float) -> np.ndarray:
        """Boolean ``(h, w)``: False inside crowd boxes and boxes of annotations without a labelled
        keypoint, each expanded by ``crowd_margin`` cells; True elsewhere."""
        h, w = field_shape(width_px, height_px, self.stride)
        mask = np.ones((h, w), dtype=bool)
        for ann in anns:
            if not _is_ignore_region(ann):
                continue
            if 'mask' in ann and ann['mask'] is not None:
                raise NotImplementedError('segmentation masks are not supported as ignore regions')
            x, y, bw, bh = (float(v) / self.stride for v in ann['bbox'])
            left = max(0, math.floor(x - crowd_margin))
            top = max(0, math.floor(y - crowd_margin))
            right = min(w, math.ceil(x + bw + crowd_margin) + 1)
            bottom = min(h, math.ceil(y + bh + crowd_margin) + 1)
            mask[top:bottom, left:right] = False
        return mask

    # --- scale -----------------------------------------------------------------------------------

    def scale(self, keypoints: np.ndarray) -> float:
        """Instance scale (field units) of one ``(K, 3)`` keypoint set; NaN if it cannot be estimated."""
        return float(self.scales(np.asarray(keypoints)[None])[0])

    def scales(self, keypoint_sets: np.ndarray) -> np.ndarray:
        """Instance scales ``(N,)`` for ``(N, K, 3)`` keypoint sets (field units).

        ``sqrt(area of the visible keypoints' bbox) * factor``; the factor extrapolates
        from the visible part to the whole body with the reference pose:
        ``sqrt(min over {upright, rotated 45 deg} of A_total / A_visible)``, clipped to 5.
        NaN with fewer than 3 visible keypoints or a result below 0.1.
        """
        if len(keypoint_sets) == 0:
            return np.zeros((0,), dtype=np.float64)
        visible = keypoint_sets[:, :, 2] > 0
        area = _bbox_areas(keypoint_sets[:, :, :2], visible)
        factor = self._pose_factors(visible)
        with np.errstate(invalid='ignore'):
            scale = np.sqrt(area) * factor
        return np.where((visible.sum(axis=1) >= 3) & (scale >= MIN_SCALE), scale, np.nan)

    def _pose_factors(self, visible: np.ndarray) -> np.ndarray:
        """Correction factor ``(N,)`` for the visibility masks ``(N, K)``; 1 without a pose."""
        if self.pose_xy is None:
            return np.ones(len(visible))
        if visible.shape[1] != self.pose_xy.shape[1]:
            raise ValueError(f'{visible.shape[1]} keypoints but a reference pose of {self.pose_xy.shape[1]}')
        seen = visible & self.pose_valid  # (N, K)
        areas_visible = _bbox_areas(self.pose_xy[None], seen[:, None, :])  # (N, 2)
        with np.errstate(divide='ignore', invalid='ignore'):
            ratio = (self.pose_areas[None, :] / areas_visible).min(axis=1)
        factor = np.minimum(np.sqrt(ratio), MAX_SCALE_FACTOR)
        # an infinite ratio (degenerate visible part) carries no size information
        return np.where(np.isfinite(ratio), factor, np.nan)


def _reference_poses(xy: np.ndarray) -> np.ndarray:
    """``(K, 2)`` -> ``(2, K, 2)``: the pose and the pose rotated by 45 degrees."""
    c = s = math.sqrt(0.5)
    rotation = np.array([[c, -s], [s, c]])
    return np.stack([xy, xy @ rotation.T])


def _is_ignore_region(ann: dict) -> bool:
    if ann.get('iscrowd', 0):
        return True
    keypoints = ann.get('keypoints')
    if keypoints is None:
        return True
    return not np.any(np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)[:, 2] > 0)


def _close_pairs(keypoints: np.ndarray, threshold) -> np.ndarray:
    """``(N, N, K)`` bool: same-type keypoints of two different people closer than
    ``threshold`` (scalar or ``(N, N)``) pixels in x and in y."""
    delta = np.abs(keypoints[:, None, :, :2] - keypoints[None, :, :, :2])  # (N, N, K, 2)
    threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), delta.shape[:2])
    close = (delta < threshold[:, :, None, None]).all(axis=-1)
    n = len(keypoints)
    close[np.arange(n), np.arange(n)] = False
    return close


def _suppress_selfhidden(keypoints: np.ndarray) -> None:
    """In place on ``(N, K, 3)`` pixel keypoints: a v=1 keypoint near a v=2 keypoint of the same
    type on another person is unlabelled (v=0)."""
    if len(keypoints) < 2:
        return
    v = keypoints[:, :, 2]
    close = _close_pairs(keypoints, SELFHIDDEN_DISTANCE_PX)
    hidden = (close & (v[None, :, :] == 2)).any(axis=1) & (v == 1)
    v[hidden] = 0.0


def _suppress_collisions(keypoints: np.ndarray, bboxes: np.ndarray) -> None:
    """In place on ``(N, K, 3)``: labelled same-type keypoints of two people closer than
    ``max(16, 0.2 * larger bbox side)`` pixels in x and y are both unlabelled."""
    if len(keypoints) < 2:
        return
    v = keypoints[:, :, 2]
    side = bboxes[:, 2:].max(axis=1)
    threshold = np.maximum(COLLISION_MIN_PX, COLLISION_BBOX_FRACTION * np.maximum(side[:, None], side[None, :]))
    labelled = v > 0
    close = _close_pairs(keypoints, threshold) & labelled[:, None, :] & labelled[None, :, :]
    v[close.any(axis=1)] = 0.0
