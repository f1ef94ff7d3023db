"""CIF-CAF pose decoder: composite fields of one image -> poses (:class:`Annotation`)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from .. import headmeta
from .annotation import Annotation
from .caf_scored import CafScored, score_caf
from .cifhr import CifHr, max_cells
from .fragments import merge_fragments
from .nms import keypoint_nms
from .occupancy import Occupancy
from .seeds import Seeds, cif_seeds

from .settings import MIN_VOTES_PER_FIELD

if TYPE_CHECKING:
    from .settings import DecoderSettings

LOG = logging.getLogger(__name__)

# confidence of a joint copied from a neighbour by the force-complete flood fill
FLOOD_FILL_CONFIDENCE = 1e-5
# association box half-width in units of the joint's sigma (half its scale): normal and force-complete
FILTER_SIGMAS = 2.0
FORCE_COMPLETE_FILTER_SIGMAS = 4.0


def as_array(field) -> np.ndarray:
    """A CPU torch tensor or array -> float32 numpy array (no copy when possible)."""
    if hasattr(field, 'detach'):
        field = field.detach().cpu().numpy()
    return np.asarray(field, dtype=np.float32)


class CifCaf:
    """Pose decoder for one (Cif, Caf) head pair, optionally with a dense Caf head.

    ``__call__([cif (K, 5, h, w), caf (E, 8, h, w)(, dense caf (E', 8, h, w))])`` with eval-mode head
    outputs (field units) returns the poses, best first, in input pixels. Stages (``stats`` holds the
    milliseconds of each for the last call):

    1. ``accumulation``: :class:`CifHr` map ``(K, H, W)`` of the CIF cells with ``conf >= cif_th``;
    2. ``seeds``: :func:`cif_seeds`, cells with ``conf >= seed_threshold`` rescored with the map;
    3. ``caf_scoring``: :func:`score_caf`, associations per directed edge (the dense edges' confidences
       times ``dense_connections``); with ``force_complete_pose``, scored once at the lower
       ``force_complete_caf_th`` and the growth's taken from those (:meth:`CafScored.above`);
    4. ``growth``: for each seed in order whose place is not occupied yet, a pose grows from that joint
       (:meth:`grow`); its joints then occupy their places so weaker seeds on them start nothing;
       then fragments (joints the skeleton cannot connect to their person's pose) merge into the pose
       they belong to (:func:`merge_fragments`, ``fragment_merge_distance``);
    5. ``force_complete`` (``force_complete_pose`` only): associations again at ``force_complete_caf_th``,
       every pose grows once more without reverse match and with a wider search, and joints still
       missing copy a connected neighbour (confidence 1e-5);
    6. ``nms``: :func:`keypoint_nms` (duplicate joints, instance threshold), then at most
       ``max_instances`` poses by descending :attr:`Annotation.score`.

    Bounded work on noisy fields (an untrained network's confidences are near 0.5 everywhere, so every
    cell votes): each CIF and CAF field takes part with at most ``max_votes_fraction`` of its cells (at
    least ``MIN_VOTES_PER_FIELD``), its most confident, and at most ``max_grown_poses`` poses grow.
    ``counts`` holds what the last call considered (``confident_cells``, ``votes``, ``seeds``,
    ``poses_grown``, ``capped``); a capped call is logged (a warning the first time, then at debug level).
    """

    def __init__(self, cif_meta: headmeta.Cif, caf_meta: headmeta.Caf, settings: 'DecoderSettings',
                 dense_meta: headmeta.Caf | None = None):
        if len(caf_meta.keypoints) != len(cif_meta.keypoints):
            raise ValueError(f'{caf_meta.full_name} has {len(caf_meta.keypoints)} keypoints, '
                             f'{cif_meta.full_name} {len(cif_meta.keypoints)}')
        self.cif_meta = cif_meta
        self.caf_meta = caf_meta
        self.dense_meta = dense_meta if settings.dense_connections > 0 else None
        self.settings = settings
        self.n_keypoints = len(cif_meta.keypoints)
        self.sigmas = np.asarray(cif_meta.sigmas, dtype=np.float64)
        self.skeleton = np.asarray(caf_meta.skeleton, dtype=np.int64) - 1  # (E, 2), 0-based
        self.dense_skeleton = (np.asarray(self.dense_meta.skeleton, dtype=np.int64) - 1
                               if self.dense_meta is not None else np.zeros((0, 2), np.int64))
        self.all_skeleton = np.concatenate([self.skeleton, self.dense_skeleton])
        # directed edge d: 2 e runs skeleton[e] forward, 2 e + 1 backward
        self.edge_source = [int(j) for pair in self.all_skeleton for j in pair]  # a, b per edge
        self.edge_target = [int(j) for pair in self.all_skeleton for j in pair[::-1]]  # b, a per edge
        # the graph for the compiled growth: source and target of each directed edge, and the directed edges
        # leaving joint j, out_edge[out_start[j]:out_start[j + 1]] (ascending)
        out_edge = np.argsort(np.asarray(self.edge_source, dtype=np.int64), kind='stable')
        out_start = np.searchsorted(np.asarray(self.edge_source)[out_edge], np.arange(self.n_keypoints + 1))
        self._graph = (np.asarray(self.edge_source, dtype=np.int64), np.asarray(self.edge_target, dtype=np.int64),
                       out_start.astype(np.int64), out_edge.astype(np.int64))
        self.cifhr = CifHr()
        self.stats: dict[str, float] = {}
        self.counts: dict[str, int | bool] = {}
        self._capped_before = False

    # --- entry point ---------------------------------------------------------------------------

    def __call__(self, fields: list) -> list[Annotation]:
        settings = self.settings
        cif, caf = as_array(fields[0]), as_array(fields[1])
        stride = self.cif_meta.stride
        timer = _Timer()
        cap = self._cells_cap(cif)
        self.cifhr.fill_cif(cif, stride, settings.cif_th, cap)
        timer.lap('accumulation')
        seeds = cif_seeds(cif, stride, self.cifhr, settings.seed_threshold, cap)
        timer.lap('seeds')
        dense = as_array(fields[2]) if self.dense_meta is not None else None
        weak = None  # the force-complete associations, scored once: the strong ones are a subset
        if settings.force_complete_pose and settings.force_complete_caf_th <= settings.caf_th:
            weak = self.score_associations(caf, dense, settings.force_complete_caf_th)
            caf_scored = weak.above(settings.caf_th)
        else:
            caf_scored = self.score_associations(caf, dense, settings.caf_th)
        timer.lap('caf_scoring')
        occupancy = Occupancy(self.cifhr.shape)
        grown = self.grow_from_seeds(seeds, caf_scored, occupancy)
        joint_sets = merge_fragments(grown, settings.fragment_merge_distance, self.sigmas)
        timer.lap('growth')
        self._count(cif, cap, seeds, grown)
        if settings.force_complete_pose and any(v == 0.0 for joints in joint_sets for v, _, _, _ in joints):
            if weak is None:
                weak = self.score_associations(caf, dense, settings.force_complete_caf_th)
            self.complete(joint_sets, weak)
        timer.lap('force_complete')
        annotations = [self._annotation(joints) for joints in joint_sets]
        annotations = keypoint_nms(annotations, occupancy, settings.keypoint_threshold,
                                   settings.instance_threshold)[:settings.max_instances]
        timer.lap('nms')
        self.stats = timer.laps
        return annotations

    def score_associations(self, caf: np.ndarray, dense: np.ndarray | None, threshold: float) -> CafScored:
        """:func:`score_caf` of the Caf head, followed by the dense head's edges (coupling-scaled)."""
        stride = self.caf_meta.stride
        scored = score_caf(caf, self.skeleton, stride, self.cifhr, threshold, max_per_field=self._cells_cap(caf))
        if dense is not None:
            coupling = np.full(len(self.dense_skeleton), self.settings.dense_connections, np.float32)
            scored = scored.followed_by(score_caf(dense, self.dense_skeleton, self.dense_meta.stride, self.cifhr,
                                                  threshold, coupling, self._cells_cap(dense)))
        return scored

    # --- bounded work --------------------------------------------------------------------------

    def _cells_cap(self, fields: np.ndarray) -> int | None:
        fraction = self.settings.max_votes_fraction
        return max_cells(fields.shape[-2:], fraction, MIN_VOTES_PER_FIELD) if fraction > 0 else None

    def _count(self, cif: np.ndarray, cap: int | None, seeds: Seeds, grown: list) -> None:
        per_field = (cif[:, 1] >= self.settings.cif_th).reshape(len(cif), -1).sum(axis=1)
        votes = int(np.minimum(per_field, cap).sum()) if cap is not None else int(per_field.sum())
        capped = votes < int(per_field.sum()) or len(grown) >= self.settings.max_grown_poses
        self.counts = {'confident_cells': int(per_field.sum()), 'votes': votes, 'seeds': len(seeds),
                       'poses_grown': len(grown), 'capped': capped}
        if capped:
            LOG.log(logging.DEBUG if self._capped_before else logging.WARNING,
                    'noisy fields (an untrained or early network?): %d confident CIF cells, %d voted '
                    '(--max-votes-fraction %g); %d seeds, %d poses grown (--max-grown-poses %d)%s',
                    self.counts['confident_cells'], votes, self.settings.max_votes_fraction, len(seeds),
                    len(grown), self.settings.max_grown_poses,
                    '' if self._capped_before else '; further capped images are logged at debug level')
            self._capped_before = True

    # --- growth --------------------------------------------------------------------------------

    def grow_from_seeds(self, seeds: Seeds, caf_scored: CafScored, occupancy: Occupancy) -> list[list[list[float]]]:
        """Poses (``K`` joints ``[v, x, y, s]`` each) grown from the seeds in order, at most
        ``max_grown_poses``: a seed whose place is occupied by the joints of an earlier pose starts nothing;
        the others start a pose from that joint (:meth:`grow`), whose joints then occupy their places.
        One compiled loop (:func:`.kernels.grow_from_seeds`)."""
        from . import kernels
        settings = self.settings
        rows, bounds = caf_scored.packed()
        poses = kernels.grow_from_seeds(
            seeds.field.astype(np.int64, copy=False), *(a.astype(np.float64, copy=False) for a in (
                seeds.score, seeds.x, seeds.y, seeds.scale)), self.n_keypoints, int(settings.max_grown_poses),
            occupancy.map, int(occupancy.reduction), float(occupancy.min_scale), rows, bounds, *self._graph,
            bool(settings.greedy), bool(settings.reverse_match), FILTER_SIGMAS, float(settings.keypoint_threshold),
            float(settings.keypoint_threshold_rel))
        return poses.tolist()

    def grow(self, joints: list[list[float]], packed: tuple[np.ndarray, np.ndarray], reverse_match: bool,
             filter_sigmas: float, keypoint_threshold: float, keypoint_threshold_rel: float) -> None:
        """Grow a pose in place from its found joints (``joints[j][0] > 0``) along the skeleton, on the
        associations ``packed`` (:meth:`CafScored.packed`); compiled (:func:`.kernels.grow`).

        A frontier (a max-heap on priorities, ties first-in first-out) holds directed edges from found to
        missing joints, each pushed once, first with the optimistic priority ``sqrt(v_source)`` and no
        value. Popping an entry whose target is found meanwhile discards it; an unevaluated entry gets
        its value from the connection rule below (none: dropped). Non-greedy (default): the evaluated entry goes
        back with its value as priority, so joints are accepted in the order of their actual
        confidences (an unevaluated entry's priority bounds its value from above); greedy: accepted at
        once. An accepted joint pushes its own edges to missing joints.

        Connection from ``source = (v_source, x, y, scale)`` along directed edge ``d``:

        1. blended association from the source (:meth:`Associations.blend`) -> ``(c, x, y, s)``;
        2. ``v = sqrt(c * v_source)`` (geometric mean); rejected below ``keypoint_threshold`` or below
           ``keypoint_threshold_rel * v_source``;
        3. reverse match: blending back from the target along ``d ^ 1`` must find something within an
           L1 distance of the source's scale from the source.
        """
        from . import kernels
        values = np.array(joints, dtype=np.float64)
        kernels.grow(values, *packed, *self._graph, bool(self.settings.greedy), bool(reverse_match),
                     float(filter_sigmas), float(keypoint_threshold), float(keypoint_threshold_rel))
        joints[:] = values.tolist()

    # --- force complete ------------------------------------------------------------------------

    def complete(self, joint_sets: list[list[list[float]]], caf_scored: CafScored) -> None:
        """Force-complete every pose in place: grow again on the weak associations (no reverse match,
        search box of 4 sigmas, no keypoint thresholds), then flood-fill the joints still missing."""
        packed = caf_scored.packed()
        for joints in joint_sets:
            if all(v > 0 for v, _, _, _ in joints):
                continue
            self.grow(joints, packed, False, FORCE_COMPLETE_FILTER_SIGMAS, 0.0, 0.0)
            self.flood_fill(joints)

    def flood_fill(self, joints: list[list[float]]) -> None:
        """Missing joints copy position and scale of a found skeleton neighbour with confidence 1e-5,
        repeated until nothing changes (filled joints pass it on)."""
        changed = True
        while changed:
            changed = False
            for a, b in self.all_skeleton.tolist():
                for source, target in ((a, b), (b, a)):
                    if joints[source][0] > 0 and joints[target][0] == 0.0:
                        _, x, y, s = joints[source]
                        joints[target] = [FLOOD_FILL_CONFIDENCE, x, y, s]
                        changed = True

    def _annotation(self, joints: list[list[float]]) -> Annotation:
        values = np.asarray(joints, dtype=np.float32)  # (K, 4) v, x, y, s
        return Annotation(meta=self.cif_meta, data=values[:, [1, 2, 0]].copy(), joint_scales=values[:, 3].copy())


class _Timer:
    """Milliseconds between successive :meth:`lap` calls, by stage name."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = 1000.0 * (now - self._last)
        self._last = now
