"""Non-maximum suppression of decoded instances: keypoints (poses) and boxes (detections)."""

from __future__ import annotations

import numpy as np
import torch
import torchvision

from .annotation import Annotation, AnnotationDet
from .occupancy import Occupancy

# a joint that lands on a place already taken keeps this fraction of its confidence
SUPPRESSION = 1e-5


def keypoint_nms(annotations: list[Annotation], occupancy: Occupancy, keypoint_threshold: float,
                 instance_threshold: float) -> list[Annotation]:
    """Suppress joints that land where a better pose already has a joint of the same type.

    1. clear ``occupancy`` (one map per keypoint type); order poses by descending
       :attr:`Annotation.score`;
    2. per pose: its found joints (``v > 0``) that read an occupied cell are multiplied by 1e-5; the
       others mark their square (joint scale) as occupied;
    3. joints with ``v <= keypoint_threshold`` are zeroed (found nothing);
    4. poses scoring below ``instance_threshold`` are dropped; the rest is returned by descending score.

    Modifies the annotations' ``data`` in place.
    """
    from . import kernels
    occupancy.clear()
    ordered = sorted(annotations, key=lambda a: -a.score)
    if ordered:
        data = np.stack([ann.data for ann in ordered])
        scales = np.stack([ann.joint_scales for ann in ordered])
        kernels.suppress_joints(data, scales, occupancy.map, np.array([occupancy.reduction], dtype=data.dtype),
                                float(occupancy.min_scale), data.dtype.type(SUPPRESSION))
        for ann, values in zip(ordered, data):
            ann.data[:] = values
    scored = []
    for ann in annotations:
        ann.data[ann.data[:, 2] <= keypoint_threshold, 2] = 0.0
        if np.any(ann.data[:, 2] > 0):
            score = ann.score
            if score >= instance_threshold:
                scored.append((score, ann))
    scored.sort(key=lambda pair: -pair[0])  # stable: ties keep the decoding order
    return [ann for _, ann in scored]


def box_nms(annotations: list[AnnotationDet], iou_threshold: float = 0.5, suppression: float = 0.1,
            instance_threshold: float = 0.15) -> list[AnnotationDet]:
    """Soft NMS of boxes per category.

    ``torchvision.ops.batched_nms`` (IoU ``iou_threshold``, categories apart) picks the boxes to keep;
    the others are not removed but their score is multiplied by ``suppression`` (0.1). Boxes scoring
    ``<= instance_threshold`` are dropped; the rest is returned by descending score.
    """
    if not annotations:
        return []
    xywh = torch.tensor(np.stack([a.bbox for a in annotations]), dtype=torch.float32)
    boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
    scores = torch.tensor([a.score for a in annotations], dtype=torch.float32)
    categories = torch.tensor([a.category_id for a in annotations])
    keep = torchvision.ops.batched_nms(boxes, scores, categories, iou_threshold)
    kept = np.zeros(len(annotations), dtype=bool)
    kept[keep.numpy()] = True
    for ann, is_kept in zip(annotations, kept):
        if not is_kept:
            ann.score *= suppression
    return sorted((a for a in annotations if a.score > instance_threshold), key=lambda a: -a.score)
