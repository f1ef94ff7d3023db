"""The standard COCO-keypoint pipelines, assembled from explicit arguments (DataModules expose them as flags)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .affine import Affine
from .annotations import NormalizeAnnotations
from .compose import Compose, RandomApply, RandomChoice
from .covering import Covering
from .crop import CROP_SAMPLING_METHODS, Crop, KeypointAwareCrop
from .encoders import Encoders
from .hflip import HFlip
from .image import (Blur, ColorJitter, GaussianNoise, HistogramEqualization, ImageToTensor, MotionBlur, Normalize,
                    RandomGrayscale, RandomJpeg)
from .pad import BORDER_MODES, CenterPad, CenterPadTight, PadToMultiple
from .rotate import RotateBy90, RotateUniform
from .scale import RescaleAbsolute, RescaleRelative, ResizeKeepRatio


def _tensor_tail(encoders: Sequence) -> list:
    return [ImageToTensor(), Normalize(), Encoders(encoders) if encoders else None]


@dataclasses.dataclass(frozen=True)
class ExtraAugmentation:
    """DeepLabCut's augmentations, added to the OpenPifPaf pipeline; the defaults switch every one off.

    Probabilities: ``affine``, ``hist_eq``, ``motion_blur``, ``covering``; ``gaussian_noise`` is a standard
    deviation in 0-255 units (applied with probability 0.5). ``crop_sampling`` ``'people'`` keeps OpenPifPaf's
    crop around the people, the other :data:`CROP_SAMPLING_METHODS` use :class:`KeypointAwareCrop`.
    """

    resize: tuple[int, int] | None = None  # (width, height): fit inside, keep the aspect ratio, pad
    resize_keep_ratio: bool = True  # False: a plain resize to (width, height)
    affine: float = 0.0
    affine_rotation: float = 30.0
    affine_scaling: tuple[float, float] = (0.5, 1.25)
    affine_translation: float = 0.0
    crop_sampling: str = 'people'
    crop_max_shift: float = 0.1
    crop_size: tuple[int, int] | None = None  # (width, height) of the crop; None: the square edge
    auto_padding: int | tuple[int, int] = 0  # divisor of both sides, or (width, height) divisors; 0: none
    auto_padding_min: tuple[int, int] = (0, 0)  # (width, height) the padding reaches at least
    auto_padding_border: str = 'constant'  # or 'reflect_101'
    hist_eq: float = 0.0
    motion_blur: float = 0.0
    covering: float = 0.0
    gaussian_noise: float = 0.0

    def __post_init__(self):
        if self.crop_sampling not in ('people', *CROP_SAMPLING_METHODS):
            raise ValueError(f'unknown crop sampling {self.crop_sampling!r}')
        if not isinstance(self.auto_padding, tuple):
            object.__setattr__(self, 'auto_padding', (int(self.auto_padding), int(self.auto_padding)))
        if self.auto_padding_border not in BORDER_MODES:
            raise ValueError(f'unknown border mode {self.auto_padding_border!r}; choose from {BORDER_MODES}')

    @property
    def pads(self) -> bool:
        """Whether the auto padding step is on (a divisor or a minimum size)."""
        return max(self.auto_padding) > 0 or max(self.auto_padding_min) > 0

    def resize_step(self):
        if self.resize is None:
            return None
        return ResizeKeepRatio(*self.resize, keep_ratio=self.resize_keep_ratio)

    def affine_step(self):
        if self.affine <= 0.0:
            return None
        return RandomApply(Affine(self.affine_rotation, self.affine_scaling, self.affine_translation), self.affine)

    def crop_step(self, square_edge: int, crop_area_of_interest: bool = True):
        size = square_edge if self.crop_size is None else self.crop_size
        if self.crop_sampling == 'people':
            return Crop(size, use_area_of_interest=crop_area_of_interest)
        return KeypointAwareCrop(size, self.crop_sampling, self.crop_max_shift)

    def padding_step(self):
        if not self.pads:
            return None
        return PadToMultiple(self.auto_padding, min_size=self.auto_padding_min, border=self.auto_padding_border)

    def image_steps(self) -> list:
        """Histogram equalisation, motion blur, covering (before the colour jitter)."""
        return [RandomApply(HistogramEqualization(), self.hist_eq) if self.hist_eq > 0.0 else None,
                RandomApply(MotionBlur(), self.motion_blur) if self.motion_blur > 0.0 else None,
                RandomApply(Covering(), self.covering) if self.covering > 0.0 else None]

    def noise_step(self):
        return GaussianNoise(self.gaussian_noise) if self.gaussian_noise > 0.0 else None


def train_pipeline(
    square_edge: int = 385, *,
    encoders: Sequence = (),
    keypoints: list[str] | None = None,
    hflip: dict[str, str] | None = None,
    augmentation: bool = True,
    extended_scale: bool = False,
    rescale_images: float = 1.0,
    stretch_range: tuple[float, float] | None = (0.75, 1.33),
    hflip_probability: float = 0.5,
    blur: float = 0.0,
    orientation_invariant: float = 0.0,
    upright_rotation: float = 0.4,
    max_rotation: float = 30.0,
    crop_area_of_interest: bool = True,
    color_jitter: bool = True,
    jpeg: float = 0.1,
    grayscale: float = 0.01,
    extras: ExtraAugmentation = ExtraAugmentation(),
    batch_resize: bool = False,
) -> Compose:
    """Training pipeline:

    NormalizeAnnotations -> ResizeKeepRatio (``extras.resize``) -> HFlip (``hflip_probability``, only with
    ``keypoints`` and an ``hflip`` map) -> RescaleRelative ([0.4, 2.0], [0.25, 2.0] with ``extended_scale``,
    times ``rescale_images``) -> Blur (probability ``blur``) -> one of RotateBy90 (probability
    ``orientation_invariant``) and RotateUniform(``max_rotation``) (probability ``upright_rotation``) ->
    Affine (``extras.affine``) -> Crop(``square_edge``) or KeypointAwareCrop (``extras.crop_sampling``; both
    ``extras.crop_size`` when set) -> CenterPad(the crop size, random gray) -> PadToMultiple
    (``extras.auto_padding``, ``auto_padding_min``, ``auto_padding_border``) -> HistogramEqualization,
    MotionBlur, Covering (``extras``) -> ColorJitter, RandomJpeg(50, ``jpeg``), RandomGrayscale (``grayscale``)
    -> GaussianNoise (``extras.gaussian_noise``) -> ImageToTensor -> Normalize -> Encoders (when ``encoders``
    are given).

    Every augmentation is switched off by a zero probability (or False). ``augmentation=False`` gives
    NormalizeAnnotations -> RescaleAbsolute(``square_edge``) -> CenterPad(``square_edge``) -> tensor -> Encoders.
    ``batch_resize=True`` leaves the size to the collate function (:mod:`openfields.datasets.collate`): no crop,
    padding, tensor conversion or encoders here; the samples stay PIL images with annotations.
    """
    if not augmentation:
        return Compose([
            NormalizeAnnotations(),
            RescaleAbsolute(square_edge) if not batch_resize else None,
            CenterPad(square_edge) if not batch_resize else None,
            *(_tensor_tail(encoders) if not batch_resize else []),
        ])

    scale_range = (0.25 if extended_scale else 0.4, 2.0)
    scale_range = (scale_range[0] * rescale_images, scale_range[1] * rescale_images)
    flip = None
    if hflip and keypoints and hflip_probability > 0.0:
        flip = RandomApply(HFlip(keypoints, hflip), hflip_probability)
    rotation = None
    if orientation_invariant > 0.0 or upright_rotation > 0.0:
        rotation = RandomChoice([RotateBy90(), RotateUniform(max_rotation)],
                                [orientation_invariant, upright_rotation])
    sizing = [extras.crop_step(square_edge, crop_area_of_interest),
              CenterPad(extras.crop_size or square_edge, fill=None), extras.padding_step()]
    return Compose([
        NormalizeAnnotations(),
        extras.resize_step(),
        flip,
        RescaleRelative(scale_range, power_law=True, stretch_range=stretch_range),
        RandomApply(Blur(), blur) if blur > 0.0 else None,
        rotation,
        extras.affine_step(),
        *(sizing if not batch_resize else []),
        *extras.image_steps(),
        ColorJitter() if color_jitter else None,
        RandomJpeg(50, p=jpeg) if jpeg > 0.0 else None,
        RandomGrayscale(p=grayscale) if grayscale > 0.0 else None,
        extras.noise_step(),
        *(_tensor_tail(encoders) if not batch_resize else []),
    ])


def eval_pipeline(long_edge: int | None = 641, *, pad: str = 'center', multiple: int = 16,
                  encoders: Sequence = (), image_resize: str = 'openfields') -> Compose:
    """Deterministic evaluation pipeline: NormalizeAnnotations -> RescaleAbsolute(``long_edge``, skipped when
    None) -> padding -> ImageToTensor -> Normalize -> Encoders (when given).

    ``pad``: ``'center'`` pads to a ``long_edge`` square (batches of equal size), ``'tight'`` to the next
    ``k * multiple + 1`` size per side, ``'none'`` leaves the size alone. Fill colour (124, 116, 104).
    ``image_resize``: :class:`RescaleAbsolute`'s (``'openpifpaf'`` for OpenPifPaf's checkpoints).
    """
    if pad not in ('center', 'tight', 'none'):
        raise ValueError(f"pad must be 'center', 'tight' or 'none', got {pad!r}")
    if pad == 'center' and long_edge is None:
        raise ValueError("pad='center' needs a long_edge")
    padding = {'center': lambda: CenterPad(long_edge), 'tight': lambda: CenterPadTight(multiple),
               'none': lambda: None}[pad]()
    return Compose([
        NormalizeAnnotations(),
        RescaleAbsolute(long_edge, image_resize=image_resize) if long_edge is not None else None,
        padding,
        *_tensor_tail(encoders),
    ])
