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
# windows up to this side fit the buffer's padding behind the map without growing it
DEFAULT_PADDING = 64


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
       nearest pixel when that lies in the map;
    2. votes are grouped by window side ``n`` (a few distinct values); per group the ``(m, n, n)`` pixel
       grid is built at once (separable: ``(m, n)`` Gaussians in x and y) and each pixel gets
       ``a * exp(-0.5 d^2 / sigma^2)``, the nearest pixel the full ``a``; the indices are each window's
       first pixel plus one ``(n, n)`` grid of flat offsets shared by the group;
    3. all contributions are scatter-added (``np.add.at``) into a flat buffer;
    4. the map saturates at 1: reads are ``min(1, sum)`` (identical to clamping after every add since
       all contributions are positive), so the buffer itself is never clipped.

    The ``(F, H, W)`` float32 buffer (plus padding behind it, where the shared grids of windows at the
    map's end point, with value 0) is kept between calls of the same shape and zero-filled (cheaper
    than a fresh allocation); a decoder instance must therefore not be shared between threads.
    """

    def __init__(self):
        self._buffer = np.zeros(0, dtype=np.float32)
        self.shape: tuple[int, int, int] = (0, 0, 0)

    # --- building ------------------------------------------------------------------------------

    def reset(self, shape: tuple[int, int, int]) -> 'CifHr':
        """Empty map of ``shape = (F, H, W)``."""
        self.shape = tuple(int(v) for v in shape)
        size = self._size() + DEFAULT_PADDING * (self.shape[2] + 1)
        if not size <= self._buffer.size <= 2 * size:  # kept when padded further by an earlier call
            self._buffer = np.zeros(size, dtype=np.float32)
        else:
            self._buffer.fill(0.0)
        return self

    def _size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def _pad(self, side: int) -> None:
        """Room behind the map for the ``side x side`` grid of a window in the last pixel."""
        size = self._size() + side * (self.shape[2] + 1)
        if self._buffer.size < size:
            self._buffer = np.concatenate([self._buffer, np.zeros(size - self._buffer.size, np.float32)])

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
        _, height, width = self.shape
        x0, x1 = _window(x, sigma, width)
        y0, y1 = _window(y, sigma, height)
        side = np.maximum(x1 - x0, y1 - y0) + 1
        # by side, stably: groups are slices, added in the order of one group per distinct side
        order = np.flatnonzero((x1 >= x0) & (y1 >= y0))
        order = order[np.argsort(side[order], kind='stable')]
        if not len(order):
            return self
        corner = (field * height + y0) * width + x0  # (M,) flat index of each window's first pixel
        x, y, sigma, amplitude, x0, x1, y0, y1, corner, side = (
            np.asarray(a)[order] for a in (x, y, sigma, amplitude, x0, x1, y0, y1, corner, side))
        x, y, sigma, amplitude = (a.astype(np.float32, copy=False) for a in (x, y, sigma, amplitude))
        self._pad(int(side[-1]))
        starts = np.flatnonzero(np.diff(side, prepend=-1)).tolist() + [len(side)]
        for start, end in zip(starts[:-1], starts[1:]):
            group = slice(start, end)
            index, value = _group_votes(int(side[start]), x[group], y[group], sigma[group], amplitude[group],
                                        x0[group], x1[group], y0[group], y1[group], corner[group], width)
            np.add.at(self._buffer, index, value)
        return self

    # --- reading -------------------------------------------------------------------------------

    def values(self) -> np.ndarray:
        """A saturated copy ``(F, H, W)`` of the map (for inspection and plots)."""
        return np.minimum(self._buffer[:self._size()], MAX_VALUE).reshape(self.shape)

    def at(self, field: np.ndarray, x: np.ndarray, y: np.ndarray, outside: float) -> np.ndarray:
        """Map values at the nearest pixels of ``(M,)`` positions (pixels); ``outside`` off the map."""
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


def _window(center: np.ndarray, sigma: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last pixel (inclusive, int64) of ``[center - sigma, center + sigma]`` clipped to
    ``[0, size - 1]``; empty windows have ``last < first``."""
    first = np.maximum(np.ceil(center - sigma), 0).astype(np.int64)
    last = np.minimum(np.floor(center + sigma), size - 1).astype(np.int64)
    return first, last


def _group_votes(n, x, y, sigma, amplitude, x0, x1, y0, y1, corner, width):
    """Flat buffer indices and float32 values of ``m`` votes whose windows fit an ``n x n`` grid.

    Every vote uses the same ``(n, n)`` grid of flat offsets from its window's first pixel (``corner``),
    so the ``(m, n, n)`` indices take one addition. Grid pixels beyond a vote's own (smaller) window get
    the value 0: they may wrap into the next rows or run past the map into the buffer's padding, and
    adding 0 changes nothing there.
    """
    offsets = np.arange(n, dtype=np.int64)
    in_x = offsets <= (x1 - x0)[:, None]  # (m, n)
    in_y = offsets <= (y1 - y0)[:, None]
    dx = (x0[:, None] + offsets) - x[:, None]  # float64, as the Gaussian's argument always was
    dy = (y0[:, None] + offsets) - y[:, None]
    inv = (np.float32(-0.5) / (sigma * sigma))[:, None]
    gx = np.where(in_x, np.exp((dx * dx * inv).astype(np.float32)), np.float32(0.0))
    gy = np.where(in_y, np.exp((dy * dy * inv).astype(np.float32)), np.float32(0.0)) * amplitude[:, None]
    value = gy[:, :, None] * gx[:, None, :]  # (m, n, n)
    # the nearest pixel gets the full amplitude (it lies in the window whenever it is on the map)
    near_x, near_y = np.floor(x + 0.5).astype(np.int64) - x0, np.floor(y + 0.5).astype(np.int64) - y0
    on_grid = (near_x >= 0) & (near_x <= x1 - x0) & (near_y >= 0) & (near_y <= y1 - y0)
    value[np.flatnonzero(on_grid), near_y[on_grid], near_x[on_grid]] = amplitude[on_grid]
    grid = offsets[:, None] * width + offsets[None, :]  # (n, n)
    index = corner[:, None, None] + grid
    return index.reshape(-1), value.reshape(-1)
