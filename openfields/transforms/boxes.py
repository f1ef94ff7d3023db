"""Ignore regions for boxes a detector cannot learn from: boxes too small after augmentation, and boxes of
which a crop kept too little. Such boxes become crowd boxes (``iscrowd=1``): the CifDet encoder neither
teaches them as objects nor as background."""

from __future__ import annotations

# a box whose width or height is at most this many pixels (after augmentation) is an ignore region
MIN_SIDE = 4.0
# a box that kept less than this fraction of its area in the crop is an ignore region
MIN_KEPT_FRACTION = 0.75


def _area(bbox) -> float:
    return float(max(bbox[2], 0.0) * max(bbox[3], 0.0))


class IgnoreTinyBoxes:
    """Boxes with a side of at most ``min_side`` pixels become crowd boxes (ignore regions)."""

    def __init__(self, min_side: float = MIN_SIDE):
        self.min_side = min_side

    def __call__(self, image, anns, meta):
        anns = [dict(ann, iscrowd=1) if min(ann['bbox'][2], ann['bbox'][3]) <= self.min_side else ann
                for ann in anns]
        return image, anns, meta

    def __repr__(self):
        return f'IgnoreTinyBoxes({self.min_side})'


class IgnoreCroppedBoxes:
    """Run ``crop``; boxes that kept less than ``min_kept_fraction`` of their area become crowd boxes.

    A person cut at the waist is still a box to find, but the box of a person of whom only a hand is left
    in the crop does not describe what is visible: it is ignored rather than taught as background.
    """

    def __init__(self, crop, min_kept_fraction: float = MIN_KEPT_FRACTION):
        self.crop = crop
        self.min_kept_fraction = min_kept_fraction

    def __call__(self, image, anns, meta):
        areas_before = [_area(ann['bbox']) for ann in anns]
        image, anns, meta = self.crop(image, anns, meta)  # keeps the annotations and their order
        anns = [dict(ann, iscrowd=1) if _area(ann['bbox']) < self.min_kept_fraction * before else ann
                for ann, before in zip(anns, areas_before)]
        return image, anns, meta

    def __repr__(self):
        return f'IgnoreCroppedBoxes({self.crop!r}, {self.min_kept_fraction})'
