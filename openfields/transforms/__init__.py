"""Augmentation and preprocessing of ``(image, anns, meta)`` samples.

Every transform is a callable ``t(image, anns, meta) -> (image, anns, meta)`` that returns copies of what it
changes (the caller's arrays are never modified) and draws randomness from torch's global RNG.
Coordinate and ``meta`` conventions (pixel centres, ``original = (current + offset) / scale`` after undoing the
rotation, then undoing the flip) are documented in :mod:`openfields.transforms.geometry`; use
:func:`to_original` / :func:`keypoints_to_original` to map predictions back.
"""

from .affine import Affine, affine
from .annotations import NormalizeAnnotations, bbox_from_keypoints
from .boxes import IgnoreCroppedBoxes, IgnoreTinyBoxes
from .compose import Compose, RandomApply, RandomChoice
from .covering import Covering
from .crop import CROP_SAMPLING_METHODS, CoverResizeCrop, Crop, KeypointAwareCrop, area_of_interest, crop, window
from .encoders import Encoders
from .geometry import keypoints_to_original, to_current, to_original, unlabel_outside
from .hflip import HFlip
from .image import (IMAGENET_MEAN, IMAGENET_STD, Blur, ColorJitter, GaussianNoise, HistogramEqualization,
                    ImageToTensor, MotionBlur, Normalize, RandomGrayscale, RandomJpeg)
from .pad import BORDER_MODES, EVAL_FILL, CenterPad, CenterPadTight, PadToMultiple, SquarePad, pad
from .pipeline import ExtraAugmentation, eval_pipeline, train_pipeline
from .rotate import Rotate, RotateBy90, RotateUniform, rotate
from .scale import RescaleAbsolute, RescaleRelative, ResizeKeepRatio, rescale

__all__ = [
    'Affine', 'BORDER_MODES', 'Blur', 'CROP_SAMPLING_METHODS', 'CenterPad', 'CenterPadTight', 'ColorJitter', 'Compose', 'CoverResizeCrop', 'Covering',
    'Crop', 'EVAL_FILL', 'Encoders', 'ExtraAugmentation', 'GaussianNoise', 'HFlip', 'HistogramEqualization',
    'IMAGENET_MEAN', 'IMAGENET_STD', 'IgnoreCroppedBoxes', 'IgnoreTinyBoxes', 'ImageToTensor', 'KeypointAwareCrop',
    'MotionBlur', 'Normalize',
    'NormalizeAnnotations', 'PadToMultiple', 'RandomApply', 'RandomChoice', 'RandomGrayscale', 'RandomJpeg',
    'RescaleAbsolute', 'RescaleRelative', 'ResizeKeepRatio', 'Rotate', 'RotateBy90', 'RotateUniform', 'SquarePad',
    'affine', 'area_of_interest', 'bbox_from_keypoints', 'crop', 'eval_pipeline', 'keypoints_to_original', 'pad',
    'rescale', 'rotate', 'to_current', 'to_original', 'train_pipeline', 'unlabel_outside', 'window',
]
