"""Crop geometry of top-down pose estimation: one individual's box -> a fixed-size crop, and back.

A crop of ``width x height`` output pixels shows the image region of ``box_width x box_height`` image pixels
centred on ``center``, turned by ``rotation`` degrees (counter-clockwise on screen, as
:func:`openfields.transforms.geometry.rotation_matrix`). Both frames use the pixel-centre convention of
:mod:`openfields.transforms.geometry` (pixel ``i`` is centred on ``i``; a crop spans ``[-0.5, width - 0.5]``),
and the crop's edges are the region's edges, so with ``s = width / box_width = height / box_height``::

    crop  = s R (image - center) + c_out,      c_out = ((width - 1) / 2, (height - 1) / 2)
    image = R^T (crop - c_out) / s + center

The region has the crop's aspect ratio (the box is widened or heightened around its centre, never
stretched), then grows by ``padding`` (1.25 as MMPose's ``GetBBoxCenterScale``) for context.

Jitter (:meth:`CropGeometry.jittered`) follows MMPose's ``RandomBBoxTransform`` (DeepLabCut's
``random_bbox_transform``, RTMPose's values 0.16 / 0.3 / (0.75, 1.25)): see its docstring for the
distributions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import PIL.Image

from ..transforms.geometry import rotation_matrix
from ..transforms.pad import EVAL_FILL

# Pixels of the crop outside the image: the ImageNet mean colour, which Normalize turns into zeros, the
# same "no signal" as the padding of bottom-up evaluation images (DeepLabCut pads crops with black, which
# after normalisation is a strong dark edge the network could learn to read as a border of the person).
CROP_FILL = EVAL_FILL


def truncated_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size,)`` draws of a standard normal truncated to ``[-1, 1]`` (rejection sampling: 68 % accepted)."""
    out = np.empty(0)
    while len(out) < size:
        draws = rng.standard_normal(2 * size + 4)
        out = np.concatenate([out, draws[np.abs(draws) <= 1.0]])
    return out[:size]


@dataclasses.dataclass(frozen=True)
class CropGeometry:
    """One crop: the image region (``center_x, center_y``, ``box_width x box_height`` image pixels, aspect
    ratio of the crop) mapped onto ``width x height`` crop pixels, turned by ``rotation`` degrees."""

    center_x: float
    center_y: float
    box_width: float
    box_height: float
    width: int
    height: int
    rotation: float = 0.0

    def __post_init__(self):
        if self.width < 1 or self.height < 1:
            raise ValueError(f'crop size must be positive, got {self.width} x {self.height}')
        if not (self.box_width > 0 and self.box_height > 0):
            raise ValueError(f'crop region must have a positive size, got {self.box_width} x {self.box_height}')

    @classmethod
    def around(cls, box_xywh, width: int, height: int, padding: float = 1.25) -> 'CropGeometry':
        """The crop of ``width x height`` around the box ``x, y, w, h`` (image pixels): the box widened or
        heightened to the crop's aspect ratio about its centre, then scaled by ``padding``."""
        if not padding > 0:
            raise ValueError(f'padding must be positive, got {padding}')
        x, y, w, h = (float(v) for v in box_xywh)
        center_x, center_y = x + w / 2, y + h / 2
        aspect = width / height
        if w > aspect * h:
            h = w / aspect
        else:
            w = h * aspect
        return cls(center_x=center_x, center_y=center_y, box_width=w * padding, box_height=h * padding,
                   width=int(width), height=int(height))

    # --- the mapping ------------------------------------------------------------------------------------

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel (the same along both axes: no distortion)."""
        return self.width / self.box_width

    def _center(self) -> np.ndarray:
        return np.array([self.center_x, self.center_y])

    def _crop_center(self) -> np.ndarray:
        return np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])

    @property
    def matrix(self) -> np.ndarray:
        """``(2, 3)`` affine map image -> crop: ``crop = matrix[:, :2] @ image + matrix[:, 2]``."""
        linear = self.scale * rotation_matrix(self.rotation)
        return np.concatenate([linear, (self._crop_center() - linear @ self._center())[:, None]], axis=1)

    def to_crop(self, points) -> np.ndarray:
        """``(N, 2)`` image pixels -> ``(N, 2)`` crop pixels (float64)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        rotated = (points - self._center()) @ rotation_matrix(self.rotation).T
        return self.scale * rotated + self._crop_center()

    def to_image(self, points) -> np.ndarray:
        """``(N, 2)`` crop pixels -> ``(N, 2)`` image pixels (float64); the exact inverse of :meth:`to_crop`."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        unrotated = (points - self._crop_center()) @ rotation_matrix(self.rotation)  # R^T applied to rows
        return unrotated / self.scale + self._center()

    def crop(self, image: PIL.Image.Image, fill=CROP_FILL) -> PIL.Image.Image:
        """The ``width x height`` crop of ``image`` (bilinear; pixels outside the image are ``fill``)."""
        linear, shift = self.matrix[:, :2], self.matrix[:, 2]
        inverse = np.linalg.inv(linear)
        # PIL samples the input at inverse(output) in coordinates where a pixel's centre is at index + 0.5:
        # image = inverse (crop - shift) in ours becomes image' = inverse (crop' - 0.5 - shift) + 0.5
        offset = 0.5 - inverse @ (shift + 0.5)
        data = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
        return image.transform((self.width, self.height), PIL.Image.Transform.AFFINE, data,
                               resample=PIL.Image.Resampling.BILINEAR, fillcolor=tuple(fill))

    def transform_meta(self, image_width: int, image_height: int) -> dict:
        """The crop as the geometry of a transforms ``meta`` (:mod:`openfields.transforms.geometry`), so
        ``to_original`` and ``inverse_transform`` map crop pixels back: ``scale = s``,
        ``offset = s center - c_out`` and a rotation by ``rotation`` about ``c_out``; the whole crop is valid
        (pixels outside the image hold the fill colour, which is background to the encoders anyway)."""
        crop_center = self._crop_center()
        return {'offset': self.scale * self._center() - crop_center, 'scale': np.array([self.scale, self.scale]),
                'rotation': {'angle': float(self.rotation), 'width': float(self.width), 'height': float(self.height)},
                'hflip': False, 'valid_area': np.array([0.0, 0.0, self.width, self.height]),
                'width_height': np.array([image_width, image_height])}

    # --- augmentation -----------------------------------------------------------------------------------

    def jittered(self, rng: np.random.Generator, shift_factor: float = 0.16, shift_prob: float = 0.3,
                 scale_range: tuple[float, float] = (0.75, 1.25), scale_prob: float = 1.0,
                 rotation: float = 0.0, rotation_prob: float = 0.0) -> 'CropGeometry':
        """A randomly moved, resized and turned copy (MMPose's ``RandomBBoxTransform``).

        * shift, with probability ``shift_prob``: the centre moves by ``shift_factor * t * box_width`` in x
          and ``shift_factor * t' * box_height`` in y, with ``t, t'`` independent standard normals truncated
          to ``[-1, 1]`` (so at most ``shift_factor`` of the region's size);
        * scale, with probability ``scale_prob``: the region's sides are multiplied by
          ``f = mid + half * t''`` (``mid``, ``half``: centre and half-width of ``scale_range``, ``t''`` a
          standard normal truncated to ``[-1, 1]``): ``f`` lies in the range, symmetric about its middle
          (MMPose's choice; DeepLabCut truncates the standard normal to the range itself, which skews
          (0.75, 1.25) towards 0.75);
        * rotation, with probability ``rotation_prob``: uniform in ``[-rotation, rotation]`` degrees, added.
        """
        low, high = scale_range
        if not 0 < low <= high:
            raise ValueError(f'scale range must be 0 < low <= high, got {scale_range}')
        shift_x, shift_y = truncated_normal(rng, 2) * shift_factor if rng.random() < shift_prob else (0.0, 0.0)
        factor = (low + high) / 2 + (high - low) / 2 * truncated_normal(rng, 1)[0] if rng.random() < scale_prob \
            else 1.0
        turn = rng.uniform(-rotation, rotation) if rng.random() < rotation_prob else 0.0
        return dataclasses.replace(
            self, center_x=self.center_x + shift_x * self.box_width,
            center_y=self.center_y + shift_y * self.box_height, box_width=self.box_width * factor,
            box_height=self.box_height * factor, rotation=self.rotation + turn)

    # --- plain values (sample metas, checkpoints) -------------------------------------------------------

    def as_dict(self) -> dict:
        """Plain floats and ints; :meth:`from_dict` rebuilds the geometry."""
        return {field.name: (int if field.name in ('width', 'height') else float)(getattr(self, field.name))
                for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> 'CropGeometry':
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class CropSettings:
    """Size of every crop (``width x height`` pixels) and the context around a box (``padding``)."""

    width: int = 192
    height: int = 256
    padding: float = 1.25

    def around(self, box_xywh) -> CropGeometry:
        return CropGeometry.around(box_xywh, self.width, self.height, self.padding)


@dataclasses.dataclass(frozen=True)
class JitterSettings:
    """Training-time box jitter (:meth:`CropGeometry.jittered`); ``rotation`` in degrees, uniform +-, drawn for
    every sample."""

    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_range: tuple[float, float] = (0.75, 1.25)
    scale_prob: float = 1.0
    rotation: float = 0.0

    def apply(self, geometry: CropGeometry, rng: np.random.Generator) -> CropGeometry:
        return geometry.jittered(rng, self.shift_factor, self.shift_prob, self.scale_range, self.scale_prob,
                                 self.rotation, rotation_prob=1.0 if self.rotation > 0 else 0.0)
