"""The detection training pipeline: COCO-style augmentation for boxes, with ignore regions for boxes
too small or too much cut away to be learnt from (:mod:`openfields.transforms.boxes`, shared with the
CIFdet detector of top-down mode)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openfields import transforms
from openfields.datasets.augmentation import Augmentation
from openfields.transforms import IgnoreCroppedBoxes, IgnoreTinyBoxes

__all__ = ['IgnoreCroppedBoxes', 'IgnoreTinyBoxes', 'train_pipeline']


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
