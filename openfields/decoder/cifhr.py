"""High-resolution accumulation of CIF (and CifDet) confidences ("CifHr").

Every confident field cell votes for its regressed position with a small Gaussian at input-pixel
resolution. Peaks where many cells agree approach 1; isolated, unconfirmed votes stay low. Seeds and
CAF associations are rescored with this map.
"""

from __future__ import annotations

import numpy as np

# each vote carries conf / 16: a 4x4 patch of fully confident cells (the CIF encoder's patch) that
# agree on one pixel saturates it
AMPLITUDE_DIVISOR = 16.0
MAX_VALUE = 1.0
# a reset zeroes only the windows written since the last one when they cover less than 1/4 of the map
ZERO_WINDOWS_BELOW = 4


def hr_shape(field_shape: tuple[int, int], stride: int) -> tuple[int, int]:
    """``(H, W)`` in pixels of the high-resolution map for a field of ``(h, w)`` cells."""
    h, w = field_shape
    return (h - 1) * stride + 1, (w - 1) * stride + 1


class CifHr:
    """Accumulated confidence maps ``(F, H, W)`` with ``H = (h - 1) * stride + 1`` (same for W).

    Algorithm (:meth:`accumulate`), for ``M`` votes given as flat arrays (field ``f``, pixel position
    ``x, y``, width ``sigma``, amplitude ``a``):

    1. window per vote: the pixels ``[ceil(x - sigma), floor(x + sigma)]`` (same in y, the Gaussian
       truncated at one sigma), clipped to the map; ``sigma >= 1`` so the window always holds the
       nearest pixel when that lies in the map; a vote with a NaN or huge position or width has none;
    2. the Gaussian is separable: per vote, the ``n_x`` values ``exp(-0.5 dx^2 / sigma^2)`` along x and the
       ``n_y`` along y (float32, numpy's ``exp`` over all votes at once); pixel ``(r, c)`` of the window
       gets ``(a g_y[r]) g_x[c]``, the nearest pixel the full ``a``;
    3. the votes are added one by one into a flat float32 buffer (a compiled loop,
       :func:`.kernels.scatter_votes`), ordered by window side (``max(n_x, n_y)``, stably): the order of the
       additions, and so every rounding, is that of the earlier grouped numpy scatter-add;
    4. the map saturates at 1: reads are ``min(1, sum)`` (identical to clamping after every add since
       all contributions are positive), so the buffer itself is never clipped.

    The ``(F, H, W)`` float32 buffer is kept between calls of the same shape and set back to 0 (cheaper than a
    fresh allocation): only the windows the last votes wrote when they cover little of it (a map of 17 x 427 x
    641 pixels is 19 MB, the votes of a few people a few percent of it), else all of it, plane by plane just
    before the scatter writes into that plane (while it is in the cache). A decoder instance must therefore not
    be shared between threads.
    """

    def __init__(self):
        self._buffer = np.zeros(0, dtype=np.float32)
        self.shape: tuple[int, int, int] = (0, 0, 0)
        self._written: list[tuple] = []  # the windows written since the last reset
        self._written_pixels = 0
        self._stale = False  # the buffer still holds the last map: the next scatter zeroes it plane by plane

    # --- building ------------------------------------------------------------------------------

    def reset(self, shape: tuple[int, int, int]) -> 'CifHr':
        """Empty map of ``shape = (F, H, W)``."""
        self.shape = tuple(int(v) for v in shape)
        if self._buffer.size != self._size():
            self._buffer = np.zeros(self._size(), dtype=np.float32)
        elif self._written_pixels < self._buffer.size // ZERO_WINDOWS_BELOW:
            from . import kernels
            for windows in self._written:  # a few windows: zeroing them beats zeroing the whole map
                kernels.zero_votes(self._buffer, *windows)
        else:
            self._stale = True
        self._written, self._written_pixels = [], 0
        return self

    def _settle(self) -> None:
        if self._stale:
            self._buffer.fill(0.0)
            self._stale = False

    def _size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def fill_cif(self, cif: np.ndarray, stride: int, threshold: float, max_per_field: int | None = None) -> 'CifHr':
        """Map of CIF fields ``(K, 5, h, w)`` ``[log_b, conf, x, y, scale]`` (field units).

        Votes: cells with ``conf >= threshold`` (the ``max_per_field`` most confident of each field);
        ``sigma = max(1, 0.5 * scale * stride)`` pixels.
        """
        field, conf, x, y, scale = confident_cells(cif, threshold, (2, 3, 4), max_per_field)
        self.reset((cif.shape[0],) + hr_shape(cif.shape[-2:], stride))
        sigma = np.maximum(1.0, 0.5 * scale * stride)
        return self.accumulate(field, x * stride, y * stride, sigma, conf / AMPLITUDE_DIVISOR)

    def fill_cifdet(self, cifdet: np.ndarray, stride: int, threshold: float) -> 'CifHr':
        """Map of CifDet fields ``(N, 6, h, w)`` ``[log_b, conf, x, y, w, h]``;
        ``sigma = max(1, 0.1 * min(w, h) * stride)`` pixels."""
        field, conf, x, y, width, height = confident_cells(cifdet, threshold, (2, 3, 4, 5))
        self.reset((cifdet.shape[0],) + hr_shape(cifdet.shape[-2:], stride))
        sigma = np.maximum(1.0, 0.1 * np.minimum(width, height) * stride)
        return self.accumulate(field, x * stride, y * stride, sigma, conf / AMPLITUDE_DIVISOR)

    def accumulate(self, field: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: np.ndarray,
                   amplitude: np.ndarray) -> 'CifHr':
        """Add ``M`` truncated Gaussians (flat ``(M,)`` arrays, pixels) into the map."""
        from . import kernels
        _, height, width = self.shape
        field = np.asarray(field, dtype=np.int64)
        valid, n_x, n_y, near_x, near_y, corner, x_start, y_start, ax, ay = kernels.prepare_votes(
            field, *(np.asarray(a) for a in (x, y, sigma)), height, width)
        order = np.flatnonzero(valid)
        if not len(order):
            self._settle()
            return self
        # by window side, stably, as the earlier grouped scatter-add did; field by field first (a field's votes
        # only touch its own plane, so every pixel still gets its additions in the same order): fewer cache
        # misses than visiting all planes for every side
        side = np.maximum(n_x, n_y)[order]
        order = order[np.argsort(field[order] * (int(side.max()) + 1) + side, kind='stable')]
        amplitude = np.asarray(amplitude).astype(np.float32, copy=False)
        gx, gy = np.exp(ax), np.exp(ay)
        kernels.scatter_votes(self._buffer, order, corner, width, n_x, n_y, x_start, y_start, gx, gy, amplitude,
                              near_x, near_y, self._stale, height * width)
        self._stale = False
        self._written.append((order, corner, width, n_x, n_y))
        self._written_pixels += int(np.dot(n_x[order], n_y[order]))
        return self

    # --- reading -------------------------------------------------------------------------------

    def buffer(self) -> np.ndarray:
        """The flat ``F * H * W`` float32 sums, unsaturated (read ``min(1, value)``), for compiled readers."""
        self._settle()
        return self._buffer

    def values(self) -> np.ndarray:
        """A saturated copy ``(F, H, W)`` of the map (for inspection and plots)."""
        self._settle()
        return np.minimum(self._buffer[:self._size()], MAX_VALUE).reshape(self.shape)

    def at(self, field: np.ndarray, x: np.ndarray, y: np.ndarray, outside: float) -> np.ndarray:
        """Map values at the nearest pixels of ``(M,)`` positions (pixels); ``outside`` off the map."""
        self._settle()
        _, height, width = self.shape
        column = np.floor(np.asarray(x) + 0.5).astype(np.int64)
        row = np.floor(np.asarray(y) + 0.5).astype(np.int64)
        inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
        index = (np.asarray(field, dtype=np.int64) * height + row) * width + column
        value = np.minimum(self._buffer[np.where(inside, index, 0)], MAX_VALUE)
        return np.where(inside, value, np.float32(outside))


def confident_cells(fields: np.ndarray, threshold: float, channels: tuple[int, ...],
                    max_per_field: int | None = None):
    """Cells of ``(F, C, h, w)`` fields with confidence (channel 1) ``>= threshold``; with ``max_per_field``,
    only the most confident ``max_per_field`` of each field (in their original order).

    Returns ``field`` (int64 ``(M,)``), ``conf`` and the requested channels as float32 ``(M,)`` arrays.
    """
    confident = fields[:, 1] >= threshold
    if max_per_field is not None:
        confident = most_confident(fields[:, 1], confident, max_per_field)
    field, row, column = np.nonzero(confident)
    values = fields[field, :, row, column]  # (M, C)
    return (field, values[:, 1]) + tuple(values[:, c] for c in channels)


def most_confident(confidence: np.ndarray, confident: np.ndarray, keep: int) -> np.ndarray:
    """``confident`` ``(F, h, w)`` reduced, in every field with more, to its cells at least as confident as
    the field's ``keep``-th most confident one (ties at the cut all stay)."""
    flat_confident = confident.reshape(len(confident), -1)
    over = np.flatnonzero(flat_confident.sum(axis=1) > keep)
    if not len(over):
        return confident
    values = np.where(flat_confident[over], confidence.reshape(len(confidence), -1)[over], -np.inf)
    cut = -np.partition(-values, keep - 1, axis=1)[:, keep - 1]  # the keep-th largest per field
    reduced = confident.copy()
    reduced.reshape(len(reduced), -1)[over] = values >= cut[:, None]
    return reduced


def max_cells(field_shape: tuple[int, int], fraction: float, floor: int) -> int:
    """The cells of one field that may vote: ``fraction`` of its cells, at least ``floor``."""
    return max(floor, int(fraction * field_shape[0] * field_shape[1]))
