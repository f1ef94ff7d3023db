"""Evaluation metrics: predictions of the original images against their ground truth."""

from .coco import Coco, coco_sigmas

__all__ = ['Coco', 'coco_sigmas']
