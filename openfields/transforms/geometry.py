"""Coordinate conventions shared by all geometric transforms, and the bookkeeping of ``meta``.

Pixel-centre convention
-----------------------
Pixel ``(i, j)`` (column ``i``, row ``j``) has its centre at the coordinate ``(i, j)``; an image of width ``W``
spans ``[-0.5, W - 0.5]``. Keypoints and the two corners ``(x, y)``, ``(x + w, y + h)`` of every ``bbox`` are
treated as points in this frame and move with exactly the same mapping as the image content:

* resize ``old -> new`` pixels: ``x' = x * (new - 1) / (old - 1)`` (first and last pixel centres stay aligned,
  which matches the ``stride + 1`` field alignment);
* horizontal flip of an image of width ``W``: ``x' = (W - 1) - x``;
* crop at ``(x0, y0)``: ``x' = x - x0``; pad by ``left``: ``x' = x + left``;
* rotation by ``angle`` degrees, counter-clockwise as seen on screen (y points down), about the image centre
  ``((W - 1) / 2, (H - 1) / 2)`` into an expanded canvas whose centre receives the old centre.

Meta
----
``meta`` describes how the current pixel coordinates ``p`` relate to the original image coordinates ``x0``::

    G(x0) = x0, or ((W0 - 1) - x0_x, x0_y) when meta['hflip'] (W0 = meta['width_height'][0])
    q     = G(x0) * meta['scale'] - meta['offset']           (axis-aligned part, per component)
    p     = R(angle) (q - C) + C,   C = ((rotation['width'] - 1) / 2, (rotation['height'] - 1) / 2)

so the inverse is: undo the rotation about ``C`` (``rotation`` = ``{'angle', 'width', 'height'}``), then
``(p + offset) / scale``, then undo the flip (and swap left/right keypoint rows). ``C`` is the pivot of the
accumulated rotation in current coordinates: right after a rotation it is the centre of the rotated canvas,
later crops/pads/resizes move it along with the content (so ``width``/``height`` may then be fractional and no
longer equal the image size). Everything is exact except a non-uniform resize (``scale_x != scale_y``) after a
rotation, which is approximated (never happens in the standard pipelines).

``valid_area`` is ``(x, y, w, h)``: the pixels with index ``x <= i < x + w`` and ``y <= j < y + h`` hold image
content (everything else is padding); after a rotation it is the bounding box of the rotated region.
"""

from __future__ import annotations

import copy
import math

import numpy as np


def copy_anns(anns: list[dict]) -> list[dict]:
    """New list of new dicts with copied ``keypoints`` and ``bbox`` arrays (other values shared)."""
    out = []
    for ann in anns:
        ann = dict(ann)
        for key in ('keypoints', 'bbox'):
            if key in ann:
                ann[key] = np.array(ann[key], dtype=np.float32, copy=True)
        out.append(ann)
    return out


def copy_meta(meta: dict) -> dict:
    """Copy of ``meta`` whose geometric entries can be modified without touching the caller's."""
    meta = dict(meta)
    for key in ('offset', 'scale', 'valid_area'):
        if key in meta:
            meta[key] = np.array(meta[key], dtype=np.float64, copy=True)
    if 'rotation' in meta:
        meta['rotation'] = dict(meta['rotation'])
    return meta


def default_meta(meta: dict, width: int, height: int) -> dict:
    """Copy of ``meta`` with identity geometry filled in where missing."""
    meta = copy.copy(meta)
    meta.setdefault('offset', np.zeros(2))
    meta.setdefault('scale', np.ones(2))
    meta.setdefault('rotation', {'angle': 0.0, 'width': width, 'height': height})
    meta.setdefault('hflip', False)
    meta.setdefault('valid_area', np.array([0.0, 0.0, width, height]))
    meta.setdefault('width_height', np.array([width, height]))
    return copy_meta(meta)


def rotation_matrix(angle: float) -> np.ndarray:
    """2x2 matrix of a counter-clockwise (on screen, y down) rotation by ``angle`` degrees."""
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    # multiples of 90 degrees exactly, so that flips/rotations by 90 stay integer-exact
    c, s = (round(c) if abs(c - round(c)) < 1e-12 else c), (round(s) if abs(s - round(s)) < 1e-12 else s)
    return np.array([[c, s], [-s, c]])


def _pivot(meta: dict) -> np.ndarray:
    rot = meta['rotation']
    return np.array([(rot['width'] - 1.0) / 2.0, (rot['height'] - 1.0) / 2.0])


def _set_pivot(meta: dict, pivot: np.ndarray) -> None:
    meta['rotation']['width'] = float(2.0 * pivot[0] + 1.0)
    meta['rotation']['height'] = float(2.0 * pivot[1] + 1.0)


# ---- point mappings on annotations (in place on already copied anns) ----

def _map_anns(anns: list[dict], fn) -> None:
    """Apply a point mapping ``fn((N, 2)) -> (N, 2)`` to keypoints and to the four box corners."""
    for ann in anns:
        kps = ann.get('keypoints')
        if kps is not None and len(kps):
            kps[:, :2] = fn(kps[:, :2].astype(np.float64))
        box = ann.get('bbox')
        if box is not None:
            x, y, w, h = box.astype(np.float64)
            corners = fn(np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]))
            lo, hi = corners.min(axis=0), corners.max(axis=0)
            box[:] = (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])


def _map_valid_area(meta: dict, fn) -> None:
    """Map the pixel centres of the valid area's corners and take the bounding box."""
    x, y, w, h = meta['valid_area']
    corners = fn(np.array([[x, y], [x + w - 1, y], [x, y + h - 1], [x + w - 1, y + h - 1]]))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    meta['valid_area'] = np.array([lo[0], lo[1], hi[0] - lo[0] + 1, hi[1] - lo[1] + 1])


def clip_valid_area(meta: dict, width: int, height: int) -> None:
    x, y, w, h = meta['valid_area']
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, width), min(y + h, height)
    meta['valid_area'] = np.array([x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)])


def clip_boxes(anns: list[dict], width: int, height: int) -> None:
    """Clip boxes to the image extent ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``."""
    for ann in anns:
        box = ann.get('bbox')
        if box is None:
            continue
        x0 = np.clip(box[0], -0.5, width - 0.5)
        y0 = np.clip(box[1], -0.5, height - 0.5)
        x1 = np.clip(box[0] + box[2], -0.5, width - 0.5)
        y1 = np.clip(box[1] + box[3], -0.5, height - 0.5)
        box[:] = (x0, y0, x1 - x0, y1 - y0)


def unlabel_outside(anns: list[dict], width: int, height: int) -> None:
    """Keypoints outside the image extent ``[-0.5, W - 0.5) x [-0.5, H - 0.5)`` get ``v = 0`` (unlabelled);
    their coordinates are kept, never clamped onto the border."""
    for ann in anns:
        kps = ann.get('keypoints')
        if kps is None or not len(kps):
            continue
        x, y = kps[:, 0], kps[:, 1]
        outside = (x < -0.5) | (x >= width - 0.5) | (y < -0.5) | (y >= height - 0.5)
        kps[outside, 2] = 0.0


# ---- the elementary moves; each updates anns (copied by the caller) and meta (copied by the caller) ----

def translate(anns: list[dict], meta: dict, shift: tuple[float, float]) -> None:
    """Content moves by ``-shift``: a crop at ``shift`` or a pad by ``-shift``."""
    t = np.asarray(shift, dtype=np.float64)
    _map_anns(anns, lambda xy: xy - t)
    meta['offset'] = meta['offset'] + t
    _set_pivot(meta, _pivot(meta) - t)
    meta['valid_area'] = meta['valid_area'] - np.array([t[0], t[1], 0.0, 0.0])


def scale(anns: list[dict], meta: dict, factors: tuple[float, float]) -> None:
    """Coordinates are multiplied by ``factors`` (x, y): a resize in the pixel-centre convention."""
    k = np.asarray(factors, dtype=np.float64)
    _map_anns(anns, lambda xy: xy * k)
    meta['scale'] = meta['scale'] * k
    meta['offset'] = meta['offset'] * k
    _set_pivot(meta, _pivot(meta) * k)
    _map_valid_area(meta, lambda xy: xy * k)


def hflip(anns: list[dict], meta: dict, width: int) -> None:
    """Mirror about the vertical centre line of an image ``width`` pixels wide (keypoint rows not swapped)."""
    def fn(xy):
        return np.stack([(width - 1.0) - xy[:, 0], xy[:, 1]], axis=1)
    _map_anns(anns, fn)
    w0 = float(meta['width_height'][0])
    # derivation: q'_x = (width - 1) - q_x and G toggles, see module docstring
    meta['offset'][0] = (w0 - 1.0) * meta['scale'][0] - meta['offset'][0] - (width - 1.0)
    pivot = _pivot(meta)
    _set_pivot(meta, np.array([(width - 1.0) - pivot[0], pivot[1]]))
    meta['rotation']['angle'] = -meta['rotation']['angle']
    meta['hflip'] = not meta['hflip']
    _map_valid_area(meta, fn)


def rotate(anns: list[dict], meta: dict, angle: float,
           old_size: tuple[int, int], new_size: tuple[int, int]) -> None:
    """Rotate about the centre of ``old_size`` into a canvas of ``new_size`` with the centres aligned."""
    c_old = (np.asarray(old_size, dtype=np.float64) - 1.0) / 2.0
    c_new = (np.asarray(new_size, dtype=np.float64) - 1.0) / 2.0
    r = rotation_matrix(angle)
    _map_anns(anns, lambda xy: (xy - c_old) @ r.T + c_new)

    # p' = R_phi(p - c_old) + c_new with p = R_theta(q - C) + C becomes R_(theta+phi)(q' - c_new) + c_new
    # with q' = q - C + c_new + R_(-theta)(C - c_old)
    theta = meta['rotation']['angle']
    pivot = _pivot(meta)
    meta['offset'] = meta['offset'] + pivot - c_new - rotation_matrix(-theta) @ (pivot - c_old)
    meta['rotation']['angle'] = _wrap_angle(theta + angle)
    _set_pivot(meta, c_new)
    _map_valid_area(meta, lambda xy: (xy - c_old) @ r.T + c_new)
    clip_valid_area(meta, *new_size)


def _wrap_angle(angle: float) -> float:
    """Angle in (-180, 180]."""
    angle = math.fmod(angle, 360.0)
    if angle > 180.0:
        angle -= 360.0
    elif angle <= -180.0:
        angle += 360.0
    return angle


# ---- mapping points between the current and the original image ----

def to_original(xy: np.ndarray, meta: dict) -> np.ndarray:
    """Map current pixel coordinates ``(N, 2)`` back to the original image (no keypoint-row swap)."""
    xy = np.asarray(xy, dtype=np.float64)
    pivot = _pivot(meta)
    r_inv = rotation_matrix(-meta['rotation']['angle'])
    q = (xy - pivot) @ r_inv.T + pivot
    x0 = (q + meta['offset']) / meta['scale']
    if meta['hflip']:
        x0[:, 0] = (meta['width_height'][0] - 1.0) - x0[:, 0]
    return x0


def to_current(xy: np.ndarray, meta: dict) -> np.ndarray:
    """Map original image coordinates ``(N, 2)`` into the current image (inverse of :func:`to_original`)."""
    xy = np.array(xy, dtype=np.float64)
    if meta['hflip']:
        xy[:, 0] = (meta['width_height'][0] - 1.0) - xy[:, 0]
    q = xy * meta['scale'] - meta['offset']
    pivot = _pivot(meta)
    return (q - pivot) @ rotation_matrix(meta['rotation']['angle']).T + pivot


def keypoints_to_original(keypoints: np.ndarray, meta: dict,
                          flip_permutation: list[int] | None = None) -> np.ndarray:
    """Copy of ``(K, 3)`` keypoints mapped to the original image; rows swapped back when the sample was
    flipped and a ``flip_permutation`` (:func:`openfields.headmeta.flip_permutation`) is given."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[:, :2] = to_original(out[:, :2], meta)
    if meta['hflip'] and flip_permutation is not None:
        out = out[flip_permutation]
    return out
