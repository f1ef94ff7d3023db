"""Single-instance decoder ``heatmap``: DeepLabCut's HeatmapPredictor read-out of a heatmap head.

Per keypoint: the cell of the map's maximum, its score, and the position the locref field gives at that cell
(the head's eval mode already turned locref into absolute field coordinates). One pose per image: for
single-animal projects and top-down crops, as ``cifmax`` for CIF heads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import headmeta
from .annotation import Annotation
from .cifcaf import as_array

if TYPE_CHECKING:
    from .settings import DecoderSettings


class HeatmapMax:
    """``__call__([fields (K, C, h, w)])`` -> at most one pose, in pixels of the network input.

    1. per keypoint ``k`` the peak cell ``(i_k, j_k) = argmax fields[k, 0]``;
    2. confidence ``c_k = fields[k, 0, i_k, j_k]``, clipped to [0, 1] with ``meta.clip_scores`` (the head has
       applied the sigmoid when ``meta.apply_sigmoid``); ``c_k <= 0``: not found;
    3. position ``stride * fields[k, 1:3, i_k, j_k]`` with locref, else ``stride * (j_k, i_k)``;
    4. one pose when a keypoint is found and the pose's score passes ``--instance-threshold``. Joint scales
       are the head's stride (a heatmap has no keypoint size).
    """

    def __init__(self, meta: headmeta.Heatmap, settings: 'DecoderSettings'):
        self.meta = meta
        self.settings = settings
        self.stats: dict[str, float] = {}

    def __call__(self, fields: list) -> list[Annotation]:
        data = self.keypoints(as_array(fields[0]))
        found = data[:, 2] > 0.0
        data[~found] = 0.0
        joint_scales = np.where(found, float(self.meta.stride), 0.0).astype(np.float32)
        pose = Annotation(meta=self.meta, data=data, joint_scales=joint_scales)
        if not np.any(found) or pose.score < self.settings.instance_threshold:
            return []
        return [pose]

    def keypoints(self, fields: np.ndarray) -> np.ndarray:
        """``(K, C, h, w)`` eval-mode fields -> ``(K, 3)`` float32 ``x, y, confidence`` in input pixels."""
        n_keypoints, _, _, width = fields.shape
        peak = np.nan_to_num(fields[:, 0], nan=-np.inf).reshape(n_keypoints, -1).argmax(axis=1)
        row, column = np.divmod(peak, width)
        index = np.arange(n_keypoints)
        confidence = fields[index, 0, row, column].astype(np.float64)
        if self.meta.clip_scores:
            confidence = np.clip(confidence, 0.0, 1.0)
        if self.meta.locref:
            x, y = fields[index, 1, row, column], fields[index, 2, row, column]
        else:
            x, y = column, row
        stride = self.meta.stride
        return np.stack([x * stride, y * stride, confidence], axis=1).astype(np.float32)


def oracle_fields(meta: headmeta.Heatmap, target) -> np.ndarray:
    """Eval-mode fields ``(K, C, h, w)`` of a perfect network from one image's target ``(K, C, h, w)`` (tests,
    oracle evaluation): the heatmap target is the score, locref (units of ``locref_std`` pixels) plus the cell
    index gives absolute field coordinates; NaN (ignore regions, cells without a locref target) becomes 0."""
    target = np.asarray(target.numpy() if hasattr(target, 'numpy') else target, dtype=np.float32)
    fields = np.nan_to_num(target, nan=0.0).copy()
    if meta.locref:
        height, width = target.shape[-2:]
        scale = meta.locref_std / meta.stride
        fields[:, 1] = fields[:, 1] * scale + np.arange(width, dtype=np.float32)[None, None, :]
        fields[:, 2] = fields[:, 2] * scale + np.arange(height, dtype=np.float32)[None, :, None]
    return fields
