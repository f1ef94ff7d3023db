"""Random crop biased to the area where the people are."""

from __future__ import annotations

import math

import numpy as np
import PIL.Image
import torch

from . import geometry
from .pad import random_gray
from .scale import rescale


def crop(image, anns, meta, x0: int, y0: int, width: int, height: int):
    """Crop the window ``[x0, x0 + width) x [y0, y0 + height)`` (inside the image); returns copies.

    Boxes are clipped to the new image, keypoints are kept as they are (encoders skip those outside),
    valid_area is intersected with the new image.
    """
    anns, meta = geometry.copy_anns(anns), geometry.copy_meta(meta)
    image = image.crop((x0, y0, x0 + width, y0 + height))
    geometry.translate(anns, meta, (x0, y0))
    geometry.clip_boxes(anns, width, height)
    geometry.clip_valid_area(meta, width, height)
    return image, anns, meta


def area_of_interest(anns: list[dict], width: int, height: int, margin: float = 50.0) -> np.ndarray | None:
    """``x0, y0, x1, y1``: union of non-crowd boxes grown by ``margin``, clipped to the image; None if none."""
    boxes = [a['bbox'] for a in anns if not a.get('iscrowd') and a.get('bbox') is not None]
    if not boxes:
        return None
    b = np.asarray(boxes, dtype=np.float64)
    x0, y0 = b[:, 0].min() - margin, b[:, 1].min() - margin
    x1, y1 = (b[:, 0] + b[:, 2]).max() + margin, (b[:, 1] + b[:, 3]).max() + margin
    return np.array([max(x0, 0.0), max(y0, 0.0), min(x1, width), min(y1, height)])


def _start_range(length: int, edge: int, lo: float, hi: float) -> tuple[int, int]:
    """Range of crop starts (inclusive) on one axis: the window contains ``[lo, hi]`` when it fits, else lies
    inside it; always within ``[0, length - edge]``."""
    last = length - edge
    if hi - lo <= edge:
        a, b = math.ceil(hi - edge), math.floor(lo)  # window covers the whole interval
    else:
        a, b = math.ceil(lo), math.floor(hi - edge)  # window inside the interval
    a, b = min(max(a, 0), last), min(max(b, 0), last)
    return (a, b) if a <= b else (b, a)


def window_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of a crop given as one side (a square) or as ``(width, height)``."""
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


class Crop:
    """Random crop to at most ``size`` pixels: one side for a square, or ``(width, height)``; smaller image
    sides are kept.

    With ``use_area_of_interest`` the window is drawn uniformly among positions that contain the union of the
    non-crowd boxes grown by 50 px (or lie inside it when it is larger than the window), so people are usually
    in the crop; otherwise uniformly over the image.
    """

    def __init__(self, size: int | tuple[int, int], use_area_of_interest: bool = True, margin: float = 50.0):
        self.width, self.height = window_size(size)
        self.use_area_of_interest = use_area_of_interest
        self.margin = margin

    def __call__(self, image, anns, meta):
        w, h = image.size
        cw, ch = min(w, self.width), min(h, self.height)
        aoi = area_of_interest(anns, w, h, self.margin) if self.use_area_of_interest else None
        if aoi is None:
            aoi = np.array([0.0, 0.0, w, h])
        u, v = torch.rand(2).tolist()
        ax, bx = _start_range(w, cw, aoi[0], aoi[2])
        ay, by = _start_range(h, ch, aoi[1], aoi[3])
        x0 = ax + min(int(u * (bx - ax + 1)), bx - ax)
        y0 = ay + min(int(v * (by - ay + 1)), by - ay)
        return crop(image, anns, meta, x0, y0, cw, ch)

    def __repr__(self):
        return f'Crop({_size_repr(self.width, self.height)}, use_area_of_interest={self.use_area_of_interest})'


CROP_SAMPLING_METHODS = ('uniform', 'keypoints', 'density', 'hybrid')


def points_of_interest(anns: list[dict], width: int, height: int) -> np.ndarray:
    """``(N, 2)`` labelled keypoints (v > 0) inside the image of the non-crowd annotations, and the box centre
    of non-crowd annotations without keypoint rows (detection); crowd regions do not attract crops."""
    points = []
    for ann in anns:
        if ann.get('iscrowd'):
            continue
        kps = ann.get('keypoints')
        if kps is not None and len(kps):
            points.extend(kps[kps[:, 2] > 0, :2])
        elif ann.get('bbox') is not None:
            x, y, w, h = ann['bbox']
            points.append((x + w / 2, y + h / 2))
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    inside = (points[:, 0] >= -0.5) & (points[:, 0] < width - 0.5) & \
        (points[:, 1] >= -0.5) & (points[:, 1] < height - 0.5)
    return points[inside]


def density_weights(points: np.ndarray, radius: float) -> np.ndarray:
    """``1 +`` the number of other points within ``radius`` of each point."""
    distances = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
    return (distances <= radius).sum(axis=1).astype(np.float64)  # each point counts itself: the 1


class KeypointAwareCrop:
    """Crop to at most ``size`` pixels (one side: a square, or ``(width, height)``; DeepLabCut's ``crop_sampling``
    with its ``width`` and ``height``) placed by DeepLabCut's sampling methods; smaller image sides are kept.

    The window start on each axis is ``floor(f (L - l))`` for an image side ``L`` and window side ``l``, with
    the start fraction ``f``:

    * ``uniform``: ``f`` uniform in ``[0, 1)``;
    * ``keypoints``: ``f = (p + shift) / L`` clipped to ``[0, 1)`` for a random point of interest ``p``
      (:func:`points_of_interest`), so ``p`` lands at about the same relative place inside the window;
    * ``density``: the same with ``p`` drawn proportionally to ``1 +`` the number of other points within
      ``0.1 min(W, H)`` (crowded places more often);
    * ``hybrid``: ``uniform`` or ``density`` with probability 1/2 each.

    ``shift = max_shift * u * l`` with ``u`` uniform in ``[0, 1)`` per axis (``max_shift`` in ``[0, 0.4]``, a
    fraction of the window). Without points of interest every method is ``uniform``. Keypoints outside the
    window become unlabelled (``v = 0``).
    """

    def __init__(self, size: int | tuple[int, int], method: str = 'hybrid', max_shift: float = 0.1):
        if method not in CROP_SAMPLING_METHODS:
            raise ValueError(f'unknown crop sampling method {method!r}; choose from {CROP_SAMPLING_METHODS}')
        if not 0.0 <= max_shift <= 0.4:
            raise ValueError(f'max_shift must be in [0, 0.4], got {max_shift}')
        self.width, self.height = window_size(size)
        self.method = method
        self.max_shift = float(max_shift)

    def _start_fractions(self, anns, w, h, cw, ch) -> np.ndarray:
        method = self.method
        if method == 'hybrid':
            method = 'uniform' if float(torch.rand(())) < 0.5 else 'density'
        points = points_of_interest(anns, w, h) if method != 'uniform' else np.zeros((0, 2))
        u = np.array(torch.rand(2).tolist())
        if not len(points):
            return u
        weights = density_weights(points, 0.1 * min(w, h)) if method == 'density' else np.ones(len(points))
        point = points[int(torch.multinomial(torch.as_tensor(weights), 1))]
        shift = self.max_shift * u * np.array([cw, ch])
        return np.clip((point + shift) / np.array([w, h]), 0.0, np.nextafter(1.0, 0.0))

    def __call__(self, image, anns, meta):
        w, h = image.size
        cw, ch = min(w, self.width), min(h, self.height)
        fx, fy = self._start_fractions(anns, w, h, cw, ch)
        x0, y0 = int(fx * (w - cw)), int(fy * (h - ch))
        image, anns, meta = crop(image, anns, meta, x0, y0, cw, ch)
        geometry.unlabel_outside(anns, cw, ch)
        return image, anns, meta

    def __repr__(self):
        return (f'KeypointAwareCrop({_size_repr(self.width, self.height)}, method={self.method!r}, '
                f'max_shift={self.max_shift})')


def _size_repr(width: int, height: int) -> str:
    return str(width) if width == height else f'({width}, {height})'


def window(image, anns, meta, x0: int, y0: int, width: int, height: int, fill=(124, 116, 104)):
    """The window ``[x0, x0 + width) x [y0, y0 + height)``, which may reach past the image (filled with
    ``fill``, outside ``valid_area``); boxes are clipped, keypoints outside become unlabelled. Returns copies."""
    anns, meta = geometry.copy_anns(anns), geometry.copy_meta(meta)
    canvas = PIL.Image.new(image.mode, (width, height), tuple(fill))
    canvas.paste(image, (-x0, -y0))
    geometry.translate(anns, meta, (x0, y0))
    geometry.clip_boxes(anns, width, height)
    geometry.clip_valid_area(meta, width, height)
    geometry.unlabel_outside(anns, width, height)
    return canvas, anns, meta


def _window_start_range(size: int, target: int, max_shift: int) -> tuple[int, int]:
    """Inclusive range of window starts on one axis: the window covers the image where it can and may reach
    ``max_shift`` px past it, but never so far that more than half of the window is empty."""
    low = -min(max(0, target - size) + max_shift, target // 2)
    high = max(0, size - target) + min(max_shift, min(size, target) // 2)
    return low, high


class CoverResizeCrop:
    """Resize keeping the aspect ratio so the image covers ``width x height`` (the long side at most
    ``max_size``), then take a random ``width x height`` window that may reach ``max_shift`` px past the image
    (DeepLabCut's per-item step of its resizing collate functions); ``fill=None`` uses a random gray."""

    def __init__(self, width: int, height: int, max_size: int = 2048, max_shift: int = 10,
                 fill: tuple[int, int, int] | None = None):
        self.width, self.height = int(width), int(height)
        self.max_size = int(max_size)
        self.max_shift = int(max_shift)
        self.fill = fill

    def __call__(self, image, anns, meta):
        w, h = image.size
        factor = min(max(self.width / w, self.height / h), self.max_size / max(w, h))
        image, anns, meta = rescale(image, anns, meta, (max(1, round(w * factor)), max(1, round(h * factor))))
        (x_low, x_high), (y_low, y_high) = (_window_start_range(image.size[0], self.width, self.max_shift),
                                            _window_start_range(image.size[1], self.height, self.max_shift))
        x0 = int(torch.randint(x_low, x_high + 1, ()))
        y0 = int(torch.randint(y_low, y_high + 1, ()))
        fill = random_gray() if self.fill is None else self.fill
        return window(image, anns, meta, x0, y0, self.width, self.height, fill)

    def __repr__(self):
        return f'CoverResizeCrop({self.width}, {self.height}, max_size={self.max_size}, max_shift={self.max_shift})'
