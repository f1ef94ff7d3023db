"""CAF associations rescored with the CifHr map, and the blended connection query on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cifhr import CifHr, most_confident

# share of the target joint's CifHr value in an association's score
HR_WEIGHT = 0.9


class Associations:
    """Associations of one directed skeleton edge: ``(n, 7)`` float64 rows
    ``[c, x_src, y_src, x_tgt, y_tgt, s_src, s_tgt]`` (pixels), sorted by ``y_src`` so that a box
    query only visits a contiguous range (bisection on ``y_src``)."""

    def __init__(self, rows: np.ndarray):
        order = np.argsort(rows[:, 2], kind='stable')
        self.rows = np.ascontiguousarray(rows[order], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.rows)

    def above(self, threshold: float) -> 'Associations':
        """The associations with ``c > threshold`` (still sorted)."""
        return Associations(self.rows[self.rows[:, 0] > threshold])

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

        Returns ``(score, x, y, scale)`` of the target or None. The growth runs the same compiled query
        (:func:`.kernels.blend`) on all edges' rows at once (:meth:`CafScored.packed`).
        """
        from . import kernels
        found, score, tx, ty, ts = kernels.blend(self.rows, 0, len(self.rows), float(x), float(y), float(scale),
                                                 float(filter_sigmas))
        return (score, tx, ty, ts) if found else None


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

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """Every directed edge's rows in one ``(N, 7)`` array, and ``(D + 1,)`` bounds: the rows of directed
        edge ``d`` are ``bounds[d]:bounds[d + 1]``."""
        counts = [len(a) for a in self.directed]
        bounds = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=bounds[1:])
        rows = (np.concatenate([a.rows for a in self.directed]) if self.directed
                else np.zeros((0, 7), np.float64))
        return np.ascontiguousarray(rows, dtype=np.float64), bounds


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
