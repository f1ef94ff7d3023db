"""Random crop biased to the area where the people are."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import geometry


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


class Crop:
    """Random crop to at most ``long_edge x long_edge`` pixels (smaller sides are kept).

    With ``use_area_of_interest`` the window is drawn uniformly among positions that contain the union of the
    non-crowd boxes grown by 50 px (or lie inside it when it is larger than the window), so people are usually
    in the crop; otherwise uniformly over the image.
    """

    def __init__(self, long_edge: int, use_area_of_interest: bool = True, margin: float = 50.0):
        self.long_edge = int(long_edge)
        self.use_area_of_interest = use_area_of_interest
        self.margin = margin

    def __call__(self, image, anns, meta):
        w, h = image.size
        cw, ch = min(w, self.long_edge), min(h, self.long_edge)
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
        return f'Crop({self.long_edge}, use_area_of_interest={self.use_area_of_interest})'
