"""Oracle fields: encoder targets turned into the eval-mode layout of a perfect network.

Used by the decoder tests and by ``eval --oracle`` to measure what the encoder + decoder pair recovers
independently of any training.

Conversions (per head type, ``(F, C, h, w)`` arrays):

* CIF target ``[conf, dx, dy, b_min, scale]`` -> ``[log_b, conf, x, y, scale]``;
* CAF target ``[conf, x1, y1, x2, y2, b_min1, b_min2, s1, s2]`` -> ``[log_b, conf, x1, y1, x2, y2, s1, s2]``;
* CifDet target ``[conf, dx, dy, w, h, b_min, b_min]`` -> ``[log_b, conf, x, y, w, h]``.

Rules: ``log_b = 0``; a NaN confidence (ignore region) becomes 0; offsets plus the cell index give
absolute field coordinates (column for x, row for y), a NaN offset (cells without a target) becomes 0
so positions stay finite; a NaN scale or size becomes :data:`DEFAULT_SCALE`.
"""

from __future__ import annotations

import numpy as np

from .. import headmeta

# field units (one stride). The encoders leave the scale NaN for people with fewer than three
# labelled keypoints (no instance size): one stride is about the size of a small joint of a
# mid-sized person, gives a CifHr Gaussian of half a stride and an occupancy square of one stride.
DEFAULT_SCALE = 1.0


def fields_from_targets(meta: headmeta.Base, target) -> np.ndarray:
    """Eval-mode fields ``(F, C_eval, h, w)`` float32 from one image's target ``(F, C_target, h, w)``."""
    target = np.asarray(target.numpy() if hasattr(target, 'numpy') else target, dtype=np.float32)
    if isinstance(meta, headmeta.Cif):
        return _convert(target, positions=[(1, 2)], scales=[4])
    if isinstance(meta, headmeta.Caf):
        return _convert(target, positions=[(1, 2), (3, 4)], scales=[7, 8])
    if isinstance(meta, headmeta.CifDet):
        return _convert(target, positions=[(1, 2)], scales=[3, 4])
    raise TypeError(f'no oracle for head meta {type(meta).__name__}')


def _convert(target: np.ndarray, positions: list[tuple[int, int]], scales: list[int]) -> np.ndarray:
    """``log_b`` (0), confidence, then each ``(x, y)`` offset pair as absolute positions, then scales."""
    n_fields, _, height, width = target.shape
    columns = np.arange(width, dtype=np.float32)[None, :]
    rows = np.arange(height, dtype=np.float32)[:, None]
    channels = [np.zeros((n_fields, height, width), np.float32), np.nan_to_num(target[:, 0], nan=0.0)]
    for x_channel, y_channel in positions:
        channels.append(np.nan_to_num(target[:, x_channel], nan=0.0) + columns)
        channels.append(np.nan_to_num(target[:, y_channel], nan=0.0) + rows)
    for channel in scales:
        channels.append(np.nan_to_num(target[:, channel], nan=DEFAULT_SCALE))
    return np.stack(channels, axis=1)
