"""Annotations and head metas shared by the encoder tests (COCO person layout)."""

import numpy as np

from openfields import headmeta
from openfields.datasets import coco_person

POSE = np.array(coco_person.COCO_UPRIGHT_POSE)


def cif_meta(base_stride=8):
    return headmeta.Cif(name='cif', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, pose=coco_person.COCO_UPRIGHT_POSE,
                        base_stride=base_stride)


def caf_meta(base_stride=8, skeleton=coco_person.COCO_PERSON_SKELETON, **kwargs):
    return headmeta.Caf(name='caf', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, skeleton=skeleton,
                        pose=coco_person.COCO_UPRIGHT_POSE, base_stride=base_stride, **kwargs)


def person(x, y, height, v=2.0):
    """COCO person standing with feet near ``(x, y)`` pixels, ``height`` pixels tall."""
    keypoints = POSE.copy()
    keypoints[:, :2] = keypoints[:, :2] * height / 1.8 + [x, y]
    keypoints[:, 2] = v
    x0, y0 = keypoints[:, :2].min(axis=0)
    x1, y1 = keypoints[:, :2].max(axis=0)
    return {'keypoints': keypoints.astype(np.float32), 'bbox': np.array([x0, y0, x1 - x0, y1 - y0], np.float32),
            'iscrowd': 0, 'category_id': 1}


def box(x, y, w, h, iscrowd=1):
    """A crowd box (or, with iscrowd=0, a person box without labelled keypoints)."""
    return {'keypoints': np.zeros((17, 3), np.float32), 'bbox': np.array([x, y, w, h], np.float32),
            'iscrowd': iscrowd, 'category_id': 1}


def sample_meta(width=385, height=385):
    return {'valid_area': np.array([0.0, 0.0, width, height])}
