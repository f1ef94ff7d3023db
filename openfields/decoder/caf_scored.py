"""CAF associations rescored with the CifHr map, and the blended connection query on them."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from .cifhr import CifHr, most_confident

# share of the target joint's CifHr value in an association's score
HR_WEIGHT = 0.9


class Associations:
    """Associations of one directed skeleton edge: ``(n, 7)`` float64 rows
    ``[c, x_src, y_src, x_tgt, y_tgt, s_src, s_tgt]`` (pixels), sorted by ``y_src`` so that a box
    query only visits a contiguous range (``bisect`` on the list of ``y_src``)."""

    def __init__(self, rows: np.ndarray):
        order = np.argsort(rows[:, 2], kind='stable')
        self.rows = np.ascontiguousarray(rows[order], dtype=np.float64)
        self._columns = None

    def __len__(self) -> int:
        return len(self.rows)

    def above(self, threshold: float) -> 'Associations':
        """The associations with ``c > threshold`` (still sorted)."""
        return Associations(self.rows[self.rows[:, 0] > threshold])

    def columns(self) -> tuple[list[float], ...]:
        """``c, x_src, y_src, x_tgt, y_tgt, s_tgt`` as Python lists, built on the first query.

        A query visits 10-100 candidates, where numpy's per-call overhead (about 20 calls per query)
        costs twice a plain loop over lists. Flat lists only: a list per row would add a container
        per association for the cyclic garbage collector to track.
        """
        if self._columns is None:
            self._columns = tuple(self.rows[:, c].tolist() for c in (0, 1, 2, 3, 4, 6))
        return self._columns

    def blend(self, x: float, y: float, scale: float, filter_sigmas: float):
        """Connection from a joint at ``(x, y)`` with ``scale`` (pixels) along this edge.

        1. ``s = max(scale, 0.5)``, ``sigma = s / 2``; candidates: associations whose source lies in the
           box ``|dx|, |dy| <= filter_sigmas * sigma`` around the joint (rows ``[low, high)`` by
           bisection on the sorted ``y_src``, then a test of ``x_src``);
        2. each candidate scores ``c * exp(-0.5 d^2 / sigma^2)`` (``d``: source-joint distance); one
           pass keeps the best and the second best (first of equal scores, as ``argmax``);
        3. none -> None; with a best and a second candidate: if the second scores below 0.01 or below
           half the best, or the two targets lie farther apart than half the best's target scale, the
           result is the best target at half its score; otherwise the score-weighted mean of the two
           targets (position and scale) at the mean of the two scores.

        Returns ``(score, x, y, scale)`` of the target or None.
        """
        s = max(scale, 0.5)
        radius = filter_sigmas * 0.5 * s
        factor = -2.0 / (s * s)  # -1 / (2 sigma^2)
        confidence, source_x, source_y, target_x, target_y, target_s = self.columns()
        low = bisect.bisect_left(source_y, y - radius)
        high = bisect.bisect_right(source_y, y + radius, lo=low)
        # best and second score with their rows; strict comparisons keep the first of equal scores
        best = second = 0.0
        first = second_index = -1
        for i in range(low, high):
            dx = source_x[i] - x
            if dx > radius or dx < -radius:
                continue
            dy = source_y[i] - y
            score = confidence[i] * math.exp((dx * dx + dy * dy) * factor)
            if score > best:
                second, second_index, best, first = best, first, score, i
            elif score > second:
                second, second_index = score, i
        if first < 0:
            return None
        bx, by, bs = target_x[first], target_y[first], target_s[first]
        if second < 0.01 or second < 0.5 * best:
            return 0.5 * best, bx, by, bs
        sx, sy, ss = target_x[second_index], target_y[second_index], target_s[second_index]
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

    def above(self, threshold: float) -> 'CafScored':
        """The associations with ``c > threshold``: for ``threshold`` at least the one these were
        scored with, the same as :func:`score_caf` at ``threshold`` (a rescored ``c`` never exceeds the
        unscored one), without scoring again."""
        return CafScored([associations.above(threshold) for associations in self.directed])


def score_caf(caf: np.ndarray, skeleton: np.ndarray, stride: int, cifhr: CifHr, threshold: float,
              confidence_scales: np.ndarray | None = None, max_per_field: int | None = None) -> CafScored:
    """Rescored associations of CAF fields ``(E, 8, h, w)`` ``[log_b, conf, x1, y1, x2, y2, s1, s2]``.

    ``skeleton``: ``(E, 2)`` 0-based joint pairs; ``confidence_scales``: optional ``(E,)`` factors on the
    confidences (dense connections), applied before thresholding.

    1. cells with ``conf * scale >= threshold`` -> ``M`` rows (edge, c, x1, y1, x2, y2, s1, s2), all
       edges at once, positions and scales times ``stride``;
    2. forward rows ``[c, x1, y1, x2, y2, s1, s2]`` are rescored with the second joint's map,
       ``c * (0.1 + 0.9 * cifhr[b](x2, y2))`` (0 off the map), backward rows (joints swapped) with the
       first joint's map;
    3. rows with a rescored ``c > threshold`` are kept and split by directed edge.

    With ``max_per_field``, step 1 keeps the most confident cells of each edge's field only.
    """
    scales = np.ones(len(skeleton), np.float32) if confidence_scales is None else np.asarray(confidence_scales)
    scaled = caf[:, 1] * scales[:, None, None].astype(caf.dtype)
    confident = scaled >= threshold
    if max_per_field is not None:
        confident = most_confident(scaled, confident, max_per_field)
    edge, row, column = np.nonzero(confident)
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
