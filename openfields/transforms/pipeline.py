"""The standard COCO-keypoint pipelines, assembled from explicit arguments (DataModules expose them as flags)."""

from __future__ import annotations

from collections.abc import Sequence

from .annotations import NormalizeAnnotations
from .compose import Compose, RandomApply, RandomChoice
from .crop import Crop
from .encoders import Encoders
from .hflip import HFlip
from .image import Blur, ColorJitter, ImageToTensor, Normalize, RandomGrayscale, RandomJpeg
from .pad import CenterPad, CenterPadTight
from .rotate import RotateBy90, RotateUniform
from .scale import RescaleAbsolute, RescaleRelative


def _tensor_tail(encoders: Sequence) -> list:
    return [ImageToTensor(), Normalize(), Encoders(encoders) if encoders else None]


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
) -> Compose:
    """Training pipeline:

    NormalizeAnnotations -> HFlip (``hflip_probability``, only with ``keypoints`` and an ``hflip`` map) ->
    RescaleRelative ([0.4, 2.0], [0.25, 2.0] with ``extended_scale``, times ``rescale_images``) ->
    Blur (probability ``blur``) -> one of RotateBy90 (probability ``orientation_invariant``) and
    RotateUniform(``max_rotation``) (probability ``upright_rotation``) -> Crop(``square_edge``) ->
    CenterPad(``square_edge``, random gray) -> ColorJitter, RandomJpeg(50, ``jpeg``), RandomGrayscale
    (``grayscale``) -> ImageToTensor -> Normalize -> Encoders (when ``encoders`` are given).

    Every augmentation is switched off by a zero probability (or False). ``augmentation=False`` gives
    NormalizeAnnotations -> RescaleAbsolute(``square_edge``) -> CenterPad(``square_edge``) -> tensor -> Encoders.
    """
    if not augmentation:
        return Compose([
            NormalizeAnnotations(),
            RescaleAbsolute(square_edge),
            CenterPad(square_edge),
            *_tensor_tail(encoders),
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
    return Compose([
        NormalizeAnnotations(),
        flip,
        RescaleRelative(scale_range, power_law=True, stretch_range=stretch_range),
        RandomApply(Blur(), blur) if blur > 0.0 else None,
        rotation,
        Crop(square_edge, use_area_of_interest=crop_area_of_interest),
        CenterPad(square_edge, fill=None),
        ColorJitter() if color_jitter else None,
        RandomJpeg(50, p=jpeg) if jpeg > 0.0 else None,
        RandomGrayscale(p=grayscale) if grayscale > 0.0 else None,
        *_tensor_tail(encoders),
    ])


def eval_pipeline(long_edge: int | None = 641, *, pad: str = 'center', multiple: int = 16,
                  encoders: Sequence = ()) -> Compose:
    """Deterministic evaluation pipeline: NormalizeAnnotations -> RescaleAbsolute(``long_edge``, skipped when
    None) -> padding -> ImageToTensor -> Normalize -> Encoders (when given).

    ``pad``: ``'center'`` pads to a ``long_edge`` square (batches of equal size), ``'tight'`` to the next
    ``k * multiple + 1`` size per side, ``'none'`` leaves the size alone. Fill colour (124, 116, 104).
    """
    if pad not in ('center', 'tight', 'none'):
        raise ValueError(f"pad must be 'center', 'tight' or 'none', got {pad!r}")
    if pad == 'center' and long_edge is None:
        raise ValueError("pad='center' needs a long_edge")
    padding = {'center': lambda: CenterPad(long_edge), 'tight': lambda: CenterPadTight(multiple),
               'none': lambda: None}[pad]()
    return Compose([
        NormalizeAnnotations(),
        RescaleAbsolute(long_edge) if long_edge is not None else None,
        padding,
        *_tensor_tail(encoders),
    ])
