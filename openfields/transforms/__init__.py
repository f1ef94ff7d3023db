"""Augmentation and preprocessing of ``(image, anns, meta)`` samples.

Every transform is a callable ``t(image, anns, meta) -> (image, anns, meta)`` that returns copies of what it
changes (the caller's arrays are never modified) and draws randomness from torch's global RNG.
Coordinate and ``meta`` conventions (pixel centres, ``original = (current + offset) / scale`` after undoing the
rotation, then undoing the flip) are documented in :mod:`openfields.transforms.geometry`; use
:func:`to_original` / :func:`keypoints_to_original` to map predictions back.
"""

from .annotations import NormalizeAnnotations, bbox_from_keypoints
from .compose import Compose, RandomApply, RandomChoice
from .crop import Crop, area_of_interest, crop
from .encoders import Encoders
from .geometry import keypoints_to_original, to_current, to_original
from .hflip import HFlip
from .image import (IMAGENET_MEAN, IMAGENET_STD, Blur, ColorJitter, ImageToTensor, Normalize, RandomGrayscale,
                    RandomJpeg)
from .pad import EVAL_FILL, CenterPad, CenterPadTight, SquarePad, pad
from .pipeline import eval_pipeline, train_pipeline
from .rotate import Rotate, RotateBy90, RotateUniform, rotate
from .scale import RescaleAbsolute, RescaleRelative, rescale

__all__ = [
    'Blur', 'CenterPad', 'CenterPadTight', 'ColorJitter', 'Compose', 'Crop', 'EVAL_FILL', 'Encoders', 'HFlip',
    'IMAGENET_MEAN', 'IMAGENET_STD', 'ImageToTensor', 'Normalize', 'NormalizeAnnotations', 'RandomApply',
    'RandomChoice', 'RandomGrayscale', 'RandomJpeg', 'RescaleAbsolute', 'RescaleRelative', 'Rotate',
    'RotateBy90', 'RotateUniform', 'SquarePad', 'area_of_interest', 'bbox_from_keypoints', 'crop',
    'eval_pipeline', 'keypoints_to_original', 'pad', 'rescale', 'rotate', 'to_current', 'to_original',
    'train_pipeline',
]
