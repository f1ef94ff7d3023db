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

    @classmethod
    def presorted(cls, rows: np.ndarray) -> 'Associations':
        """Rows already sorted by ``y_src`` (float64, C order), kept as they are."""
        associations = cls.__new__(cls)
        associations.rows = rows
        return associations

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
    (forward), ``2 e + 1`` from ``b`` to ``a`` (backward); ``d ^ 1`` is the reverse of ``d``.

    Held packed: every directed edge's rows (each edge's sorted by ``y_src``) in one ``(N, 7)`` float64 array
    ``rows``, those of directed edge ``d`` at ``bounds[d]:bounds[d + 1]``."""

    rows: np.ndarray
    bounds: np.ndarray

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, directed_edge: int) -> Associations:
        return Associations.presorted(self.rows[self.bounds[directed_edge]:self.bounds[directed_edge + 1]])

    @property
    def directed(self) -> list[Associations]:
        return [self[d] for d in range(len(self))]

    def above(self, threshold: float) -> 'CafScored':
        """The associations with ``c > threshold``: for ``threshold`` at least the one these were
        scored with, the same as :func:`score_caf` at ``threshold`` (a rescored ``c`` never exceeds the
        unscored one), without scoring again."""
        keep = self.rows[:, 0] > threshold
        kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        return CafScored(self.rows[keep], kept_before[self.bounds])

    def followed_by(self, other: 'CafScored') -> 'CafScored':
        """These directed edges, then ``other``'s."""
        return CafScored(np.concatenate([self.rows, other.rows]),
                         np.concatenate([self.bounds, self.bounds[-1] + other.bounds[1:]]))

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, bounds)`` for the compiled growth."""
        return self.rows, self.bounds


def score_caf(caf: np.ndarray, skeleton: np.ndarray, stride: int, cifhr: CifHr, threshold: float,
              confidence_scales: np.ndarray | None = None, max_per_field: int | None = None) -> CafScored:
    """Rescored associations of CAF fields ``(E, 8, h, w)`` ``[log_b, conf, x1, y1, x2, y2, s1, s2]``.

    ``skeleton``: ``(E, 2)`` 0-based joint pairs; ``confidence_scales``: optional ``(E,)`` factors on the
    confidences (dense connections), applied before thresholding.

    1. cells with ``conf * scale >= threshold`` -> ``M`` rows (edge, c, x1, y1, x2, y2, s1, s2), all
       edges at once, positions and scales times ``stride`` (float64);
    2. forward rows ``[c, x1, y1, x2, y2, s1, s2]`` are rescored with the second joint's map,
       ``c * (0.1 + 0.9 * cifhr[b](x2, y2))`` (0 off the map; the factor in float32), backward rows (joints
       swapped) with the first joint's map;
    3. rows with a rescored ``c > threshold`` are kept per directed edge, in cell order, then sorted stably by
       ``y_src``.

    With ``max_per_field``, step 1 keeps the most confident cells of each edge's field only. Steps 2 and 3 are
    one compiled loop (:func:`.kernels.score_associations`), the sort one stable ``np.lexsort``.
    """
    from . import kernels
    scales = np.ones(len(skeleton), np.float32) if confidence_scales is None else np.asarray(confidence_scales)
    scaled = caf[:, 1] * scales[:, None, None].astype(caf.dtype)
    confident = scaled >= threshold
    if max_per_field is not None:
        confident = most_confident(scaled, confident, max_per_field)
    _, height, width = cifhr.shape
    rows, bounds = kernels.score_associations(
        np.ascontiguousarray(caf, dtype=np.float32), np.ascontiguousarray(confident),
        np.ascontiguousarray(scaled, dtype=np.float32), np.ascontiguousarray(skeleton, dtype=np.int64), int(stride),
        cifhr.buffer(), height, width, float(threshold), np.float32(HR_WEIGHT), np.float32(1.0 - HR_WEIGHT))
    directed = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    return CafScored(rows[np.lexsort((rows[:, 2], directed))], bounds)  # stable: by y_src within each edge
