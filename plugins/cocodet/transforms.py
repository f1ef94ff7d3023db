"""The detection training pipeline: COCO-style augmentation for boxes, with ignore regions for boxes
too small or too much cut away to be learnt from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openfields import transforms
from openfields.datasets.augmentation import Augmentation

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


def train_pipeline(augmentation: Augmentation, encoders: Sequence, batch_resize: bool = False) -> transforms.Compose:
    """Detection training pipeline, the keypoint pipeline's steps for boxes:

    NormalizeAnnotations -> ResizeKeepRatio (``extras.resize``) -> HFlip (probability ``hflip``, 0.5 by default)
    -> RescaleRelative ([0.4, 2.0], [0.25, 2.0] with ``extended_scale``, times ``rescale_images``) -> Blur ->
    RotateBy90 or RotateUniform(30) -> Affine (``extras``) -> Crop(``square_edge``) or KeypointAwareCrop (box
    centres attract it) with :class:`IgnoreCroppedBoxes` -> CenterPad -> PadToMultiple -> HistogramEqualization,
    MotionBlur, Covering -> ColorJitter, RandomJpeg, RandomGrayscale -> GaussianNoise -> :class:`IgnoreTinyBoxes`
    -> ImageToTensor -> Normalize -> Encoders. The DeepLabCut steps (``extras``) are off by default.

    Without augmentation: NormalizeAnnotations -> RescaleAbsolute -> CenterPad -> IgnoreTinyBoxes -> tensor.
    With ``batch_resize`` the pipeline stops before the crop, the padding and the tail: the collate function
    resizes each batch, then ignores tiny boxes, converts and encodes.
    """
    a = augmentation
    extras = a.extras
    tail = [IgnoreTinyBoxes(), transforms.ImageToTensor(), transforms.Normalize(), transforms.Encoders(encoders)]
    if batch_resize:
        tail = []
    if not a.enabled:
        return transforms.Compose([transforms.NormalizeAnnotations(),
                                   *([transforms.RescaleAbsolute(a.square_edge), transforms.CenterPad(a.square_edge)]
                                     if not batch_resize else []), *tail])
    scale_range = np.array([0.25 if a.extended_scale else 0.4, 2.0]) * a.rescale_images
    rotation = None
    if a.orientation_invariant > 0.0 or a.rotate > 0.0:
        rotation = transforms.RandomChoice([transforms.RotateBy90(), transforms.RotateUniform(30.0)],
                                           [a.orientation_invariant, a.rotate])
    hflip = a.hflip_probability(None, '--cocodet-hflip')  # boxes flip without a keypoint map
    return transforms.Compose([
        transforms.NormalizeAnnotations(),
        extras.resize_step(),
        transforms.RandomApply(transforms.HFlip([], {}), hflip) if hflip > 0.0 else None,
        transforms.RescaleRelative(tuple(scale_range), power_law=True, stretch_range=(0.75, 1.33)),
        transforms.RandomApply(transforms.Blur(), a.blur) if a.blur > 0.0 else None,
        rotation,
        extras.affine_step(),
        *([IgnoreCroppedBoxes(extras.crop_step(a.square_edge)), transforms.CenterPad(a.square_edge, fill=None),
           extras.padding_step()] if not batch_resize else []),
        *extras.image_steps(),
        transforms.ColorJitter() if a.color_jitter else None,
        transforms.RandomJpeg(50, p=0.1) if a.color_jitter else None,
        transforms.RandomGrayscale(p=0.01) if a.color_jitter else None,
        extras.noise_step(),
        *tail,
    ])
