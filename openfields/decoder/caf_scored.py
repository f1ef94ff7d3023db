"""CAF associations rescored with the CifHr map, and the blended connection query on them."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from .cifhr import CifHr

# share of the target joint's CifHr value in an association's score
HR_WEIGHT = 0.9


class Associations:
    """Associations of one directed skeleton edge: ``(n, 7)`` float64 rows
    ``[c, x_src, y_src, x_tgt, y_tgt, s_src, s_tgt]`` (pixels), sorted by ``y_src`` so that a box
    query slices a contiguous range (``bisect`` on a Python list of ``y_src``) before any array work."""

    def __init__(self, rows: np.ndarray):
        order = np.argsort(rows[:, 2], kind='stable')
        self.rows = np.ascontiguousarray(rows[order], dtype=np.float64)
        # contiguous columns and a Python list for bisect: queries work on short slices, where
        # numpy's per-call overhead dominates
        self.confidence = self.rows[:, 0].copy()
        self.source_x = self.rows[:, 1].copy()
        self.source_y_array = self.rows[:, 2].copy()
        self.source_y = self.source_y_array.tolist()
        self.targets = self.rows[:, [3, 4, 6]]  # x_tgt, y_tgt, s_tgt

    def __len__(self) -> int:
        return len(self.source_y)

    def blend(self, x: float, y: float, scale: float, filter_sigmas: float):
        """Connection from a joint at ``(x, y)`` with ``scale`` (pixels) along this edge.

        1. ``s = max(scale, 0.5)``, ``sigma = s / 2``; candidates: associations whose source lies in the
           box ``|dx|, |dy| <= filter_sigmas * sigma`` around the joint (rows ``[low, high)`` by
           bisection on the sorted ``y_src``, then a mask on ``x_src``);
        2. each candidate scores ``c * exp(-0.5 d^2 / sigma^2)`` (``d``: source-joint distance);
        3. none -> None; with a best and a second candidate: if the second scores below 0.01 or below
           half the best, or the two targets lie farther apart than half the best's target scale, the
           result is the best target at half its score; otherwise the score-weighted mean of the two
           targets (position and scale) at the mean of the two scores.

        Returns ``(score, x, y, scale)`` of the target or None.
        """
        s = max(scale, 0.5)
        radius = filter_sigmas * 0.5 * s
        low = bisect.bisect_left(self.source_y, y - radius)
        high = bisect.bisect_right(self.source_y, y + radius, lo=low)
        if low == high:
            return None
        dx = self.source_x[low:high] - x
        dy = self.source_y_array[low:high] - y
        score = self.confidence[low:high] * np.exp((dx * dx + dy * dy) * (-2.0 / (s * s)))
        score[np.abs(dx) > radius] = 0.0
        first = int(score.argmax())
        best = float(score[first])
        if best <= 0.0:
            return None
        bx, by, bs = self.targets[low + first].tolist()
        if high - low == 1:
            return 0.5 * best, bx, by, bs
        score[first] = 0.0
        second_index = int(score.argmax())
        second = float(score[second_index])
        if second < 0.01 or second < 0.5 * best:
            return 0.5 * best, bx, by, bs
        sx, sy, ss = self.targets[low + second_index].tolist()
        if math.hypot(bx - sx, by - sy) > 0.5 * bs:
            return 0.5 * best, bx, by, bs
        total = best + second
        return (0.5 * total, (best * bx + second * sx) / total, (best * by + second * sy) / total,
                (best * bs + second * ss) / total)


@dataclass
class CafScored:
    """Associations per directed edge: index ``2 e`` runs edge ``e = (a, b)`` from ``a`` to ``b``
    (forward), ``2 e + 1`` from ``b`` to ``a`` (backward); ``d ^ 1`` is the reverse of ``d``."""

    directed: list[Associations]

    def __getitem__(self, directed_edge: int) -> Associations:
        return self.directed[directed_edge]


def score_caf(caf: np.ndarray, skeleton: np.ndarray, stride: int, cifhr: CifHr, threshold: float,
              confidence_scales: np.ndarray | None = None) -> CafScored:
    """Rescored associations of CAF fields ``(E, 8, h, w)`` ``[log_b, conf, x1, y1, x2, y2, s1, s2]``.

    ``skeleton``: ``(E, 2)`` 0-based joint pairs; ``confidence_scales``: optional ``(E,)`` factors on the
    confidences (dense connections), applied before thresholding.

    1. cells with ``conf * scale >= threshold`` -> ``M`` rows (edge, c, x1, y1, x2, y2, s1, s2), all
       edges at once, positions and scales times ``stride``;
    2. forward rows ``[c, x1, y1, x2, y2, s1, s2]`` are rescored with the second joint's map,
       ``c * (0.1 + 0.9 * cifhr[b](x2, y2))`` (0 off the map), backward rows (joints swapped) with the
       first joint's map;
    3. rows with a rescored ``c > threshold`` are kept and split by directed edge.
    """
    scales = np.ones(len(skeleton), np.float32) if confidence_scales is None else np.asarray(confidence_scales)
    scaled = caf[:, 1] * scales[:, None, None].astype(caf.dtype)
    edge, row, column = np.nonzero(scaled >= threshold)
    values = caf[edge, :, row, column].astype(np.float64)  # (M, 8)
    conf = scaled[edge, row, column].astype(np.float64)
    position = values[:, 2:6] * stride
    size = values[:, 6:8] * stride
    forward = np.column_stack([conf, position, size])
    backward = np.column_stack([conf, position[:, 2:4], position[:, 0:2], size[:, ::-1]])
    forward[:, 0] *= (1.0 - HR_WEIGHT) + HR_WEIGHT * cifhr.at(skeleton[edge, 1], forward[:, 3], forward[:, 4], 0.0)
    backward[:, 0] *= (1.0 - HR_WEIGHT) + HR_WEIGHT * cifhr.at(skeleton[edge, 0], backward[:, 3], backward[:, 4], 0.0)

    directed = []
    bounds = np.searchsorted(edge, np.arange(len(skeleton) + 1))  # np.nonzero sorts by edge
    for e in range(len(skeleton)):
        for rows in (forward, backward):
            part = rows[bounds[e]:bounds[e + 1]]
            directed.append(Associations(part[part[:, 0] > threshold]))
    return CafScored(directed)
