"""Turn COCO json annotations into arrays and fill in the identity geometry of ``meta``."""

from __future__ import annotations

import numpy as np
import PIL.Image

from .geometry import default_meta


def bbox_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """``x, y, w, h`` of the labelled (v > 0) keypoints; zeros when none is labelled."""
    labelled = keypoints[keypoints[:, 2] > 0] if len(keypoints) else keypoints
    if not len(labelled):
        return np.zeros(4, dtype=np.float32)
    x0, y0 = labelled[:, :2].min(axis=0)
    x1, y1 = labelled[:, :2].max(axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)


def normalize_annotation(ann: dict) -> dict:
    """One COCO annotation dict -> the array form of the transform contract (a new dict)."""
    ann = dict(ann)
    kps = ann.get('keypoints')
    kps = np.zeros((0, 3), dtype=np.float32) if kps is None else np.array(kps, dtype=np.float32).reshape(-1, 3)
    ann['keypoints'] = kps
    box = ann.get('bbox')
    ann['bbox'] = bbox_from_keypoints(kps) if box is None else np.array(box, dtype=np.float32).reshape(4)
    ann['iscrowd'] = int(ann.get('iscrowd', 0))
    ann['category_id'] = int(ann.get('category_id', 1))
    return ann


class NormalizeAnnotations:
    """COCO json dicts (flat keypoint list of ``3K``, bbox list) -> float32 arrays; ``meta`` defaults.

    Missing boxes are computed from the labelled keypoints; missing ``iscrowd`` is 0 and missing
    ``category_id`` is 1. The image is converted to RGB if needed. ``meta`` gets offset 0, scale 1, rotation
    angle 0, hflip False, valid_area = the full image and width_height = the image size unless already set.
    """

    def __call__(self, image, anns, meta):
        if isinstance(image, PIL.Image.Image) and image.mode != 'RGB':
            image = image.convert('RGB')
        anns = [normalize_annotation(ann) for ann in anns]
        w, h = image.size
        meta = default_meta(meta or {}, w, h)
        return image, anns, meta

    def __repr__(self):
        return 'NormalizeAnnotations()'
