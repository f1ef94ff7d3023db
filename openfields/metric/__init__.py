"""Evaluation metrics: predictions of the original images against their ground truth."""

from .coco import Coco, coco_sigmas
from .keypoint_error import KeypointError

__all__ = ['Coco', 'KeypointError', 'coco_sigmas']
