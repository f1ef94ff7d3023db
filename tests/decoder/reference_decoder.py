"""The CIF-CAF decoder as it was before its loops were compiled (numpy scatter-add of vote groups, the growth
and the connection query in plain Python), kept as the reference that the compiled decoder must match bit
for bit (test_decoder_compiled.py)."""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from unittest import mock

import numpy as np

from openfields.decoder import cifcaf, fragments, seeds
from openfields.decoder.caf_scored import HR_WEIGHT, Associations
from openfields.decoder.cifhr import confident_cells, most_confident
from openfields.decoder.cifcaf import FILTER_SIGMAS, FORCE_COMPLETE_FILTER_SIGMAS, CifCaf
from openfields.decoder.cifhr import CifHr
from openfields.decoder.nms import SUPPRESSION
from openfields.decoder.occupancy import Occupancy

PADDING = 64


def _window(center, sigma, size):
    first = np.maximum(np.ceil(center - sigma), 0).astype(np.int64)
    last = np.minimum(np.floor(center + sigma), size - 1).astype(np.int64)
    return first, last


class ReferenceCifHr(CifHr):
    """Votes grouped by window side, each group's ``(m, n, n)`` grid scatter-added with ``np.add.at``."""

    def reset(self, shape):
        self.shape = tuple(int(v) for v in shape)
        self._buffer = np.zeros(self._size() + PADDING * (self.shape[2] + 1), dtype=np.float32)
        return self

    def accumulate(self, field, x, y, sigma, amplitude):
        _, height, width = self.shape
        x0, x1 = _window(x, sigma, width)
        y0, y1 = _window(y, sigma, height)
        side = np.maximum(x1 - x0, y1 - y0) + 1
        order = np.flatnonzero((x1 >= x0) & (y1 >= y0))
        order = order[np.argsort(side[order], kind='stable')]
        if not len(order):
            return self
        corner = (field * height + y0) * width + x0
        x, y, sigma, amplitude, x0, x1, y0, y1, corner, side = (
            np.asarray(a)[order] for a in (x, y, sigma, amplitude, x0, x1, y0, y1, corner, side))
        x, y, sigma, amplitude = (a.astype(np.float32, copy=False) for a in (x, y, sigma, amplitude))
        size = self._size() + int(side[-1]) * (width + 1)
        if self._buffer.size < size:
            self._buffer = np.concatenate([self._buffer, np.zeros(size - self._buffer.size, np.float32)])
        starts = np.flatnonzero(np.diff(side, prepend=-1)).tolist() + [len(side)]
        for start, end in zip(starts[:-1], starts[1:]):
            group = slice(start, end)
            index, value = _group_votes(int(side[start]), x[group], y[group], sigma[group], amplitude[group],
                                        x0[group], x1[group], y0[group], y1[group], corner[group], width)
            np.add.at(self._buffer, index, value)
        return self


def _group_votes(n, x, y, sigma, amplitude, x0, x1, y0, y1, corner, width):
    offsets = np.arange(n, dtype=np.int64)
    in_x = offsets <= (x1 - x0)[:, None]
    in_y = offsets <= (y1 - y0)[:, None]
    dx = (x0[:, None] + offsets) - x[:, None]
    dy = (y0[:, None] + offsets) - y[:, None]
    inv = (np.float32(-0.5) / (sigma * sigma))[:, None]
    gx = np.where(in_x, np.exp((dx * dx * inv).astype(np.float32)), np.float32(0.0))
    gy = np.where(in_y, np.exp((dy * dy * inv).astype(np.float32)), np.float32(0.0)) * amplitude[:, None]
    value = gy[:, :, None] * gx[:, None, :]
    near_x, near_y = np.floor(x + 0.5).astype(np.int64) - x0, np.floor(y + 0.5).astype(np.int64) - y0
    on_grid = (near_x >= 0) & (near_x <= x1 - x0) & (near_y >= 0) & (near_y <= y1 - y0)
    value[np.flatnonzero(on_grid), near_y[on_grid], near_x[on_grid]] = amplitude[on_grid]
    grid = offsets[:, None] * width + offsets[None, :]
    index = corner[:, None, None] + grid
    return index.reshape(-1), value.reshape(-1)


def reference_blend(rows: np.ndarray, x: float, y: float, scale: float, filter_sigmas: float):
    """The connection query over Python lists of the ``(n, 7)`` rows sorted by ``y_src``."""
    confidence, source_x, source_y, target_x, target_y, target_s = (rows[:, c].tolist() for c in (0, 1, 2, 3, 4, 6))
    s = max(scale, 0.5)
    radius = filter_sigmas * 0.5 * s
    factor = -2.0 / (s * s)
    low = bisect.bisect_left(source_y, y - radius)
    high = bisect.bisect_right(source_y, y + radius, lo=low)
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


class ReferenceCafScored:
    """Associations as a list per directed edge."""

    def __init__(self, directed):
        self.directed = directed

    def __getitem__(self, d):
        return self.directed[d]

    def above(self, threshold):
        return ReferenceCafScored([a.above(threshold) for a in self.directed])

    def followed_by(self, other):
        return ReferenceCafScored(self.directed + other.directed)


def reference_score_caf(caf, skeleton, stride, cifhr, threshold, confidence_scales=None, max_per_field=None):
    """CAF scoring in numpy: all rows at once, then split by directed edge and sorted."""
    scales = np.ones(len(skeleton), np.float32) if confidence_scales is None else np.asarray(confidence_scales)
    scaled = caf[:, 1] * scales[:, None, None].astype(caf.dtype)
    confident = scaled >= threshold
    if max_per_field is not None:
        confident = most_confident(scaled, confident, max_per_field)
    edge, row, column = np.nonzero(confident)
    values = caf[edge, :, row, column].astype(np.float64)
    conf = scaled[edge, row, column].astype(np.float64)
    position = values[:, 2:6] * stride
    size = values[:, 6:8] * stride
    forward = np.column_stack([conf, position, size])
    backward = np.column_stack([conf, position[:, 2:4], position[:, 0:2], size[:, ::-1]])
    forward[:, 0] *= (1.0 - HR_WEIGHT) + HR_WEIGHT * cifhr.at(skeleton[edge, 1], forward[:, 3], forward[:, 4], 0.0)
    backward[:, 0] *= (1.0 - HR_WEIGHT) + HR_WEIGHT * cifhr.at(skeleton[edge, 0], backward[:, 3], backward[:, 4], 0.0)
    directed = []
    bounds = np.searchsorted(edge, np.arange(len(skeleton) + 1))
    for e in range(len(skeleton)):
        for rows in (forward, backward):
            part = rows[bounds[e]:bounds[e + 1]]
            directed.append(Associations(part[part[:, 0] > threshold]))
    return ReferenceCafScored(directed)


def reference_cif_seeds(cif, stride, cifhr, threshold, max_per_field=None):
    """Seeds in numpy: the confident cells, rescored with the map (``cifhr.at``), sorted."""
    field, conf, x, y, scale = confident_cells(cif, threshold, (2, 3, 4), max_per_field)
    return seeds._rescored(field, conf, x * stride, y * stride, scale * stride, cifhr, threshold)


def reference_keypoint_nms(annotations, occupancy, keypoint_threshold, instance_threshold):
    """Keypoint NMS with the occupancy read and written per pose by numpy."""
    occupancy.clear()
    for ann in sorted(annotations, key=lambda a: -a.score):
        found = np.flatnonzero(ann.data[:, 2] > 0)
        if not len(found):
            continue
        occupied = occupancy.get_many(found, ann.data[found, 0], ann.data[found, 1])
        ann.data[found[occupied], 2] *= SUPPRESSION
        free = found[~occupied]
        occupancy.set_many(free, ann.data[free, 0], ann.data[free, 1], ann.joint_scales[free])
    scored = []
    for ann in annotations:
        ann.data[ann.data[:, 2] <= keypoint_threshold, 2] = 0.0
        if np.any(ann.data[:, 2] > 0):
            score = ann.score
            if score >= instance_threshold:
                scored.append((score, ann))
    scored.sort(key=lambda pair: -pair[0])
    return [ann for _, ann in scored]


def reference_merge_target(p, found, xy, implied_size, merged, max_distance):
    """The fragment's target with every candidate's size computed."""
    count = found.sum(axis=1)
    candidates = (~merged) & (count > count[p]) & ~(found & found[p]).any(axis=1)
    candidates[p] = False
    if not candidates.any():
        return None
    own = xy[p, found[p]]
    distance = np.linalg.norm(xy[:, None, :, :] - own[None, :, None, :], axis=-1)
    distance = np.where(found[:, None, :], distance, np.inf).min(axis=(1, 2))
    size = np.array([fragments._size(xy[q, found[q]], implied_size[q, found[q]]) if candidates[q] else 0.0
                     for q in range(len(found))])
    distance[~candidates | (distance > max_distance * size)] = np.inf
    best = int(distance.argmin())
    return best if np.isfinite(distance[best]) else None


class ReferenceCifCaf(CifCaf):
    """:class:`CifCaf` with the reference accumulation, seeds, CAF scoring, growth, force-complete growth,
    fragment merging and keypoint NMS."""

    def __call__(self, fields):
        with mock.patch.object(cifcaf, 'keypoint_nms', reference_keypoint_nms), \
                mock.patch.object(cifcaf, 'score_caf', reference_score_caf), \
                mock.patch.object(cifcaf, 'cif_seeds', reference_cif_seeds), \
                mock.patch.object(fragments, '_merge_target', reference_merge_target):
            return super().__call__(fields)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cifhr = ReferenceCifHr()
        self.outgoing = [[(d, self.edge_target[d]) for d in range(len(self.edge_source)) if self.edge_source[d] == j]
                         for j in range(self.n_keypoints)]

    def grow_from_seeds(self, seeds, caf_scored, occupancy: Occupancy):
        settings = self.settings
        remaining = np.arange(len(seeds))
        joint_sets = []
        while len(remaining) and len(joint_sets) < settings.max_grown_poses:
            i, remaining = int(remaining[0]), remaining[1:]
            joints = [[0.0, 0.0, 0.0, 0.0] for _ in range(self.n_keypoints)]
            joints[int(seeds.field[i])] = [float(seeds.score[i]), float(seeds.x[i]), float(seeds.y[i]),
                                           float(seeds.scale[i])]
            self.reference_grow(joints, caf_scored, settings.reverse_match, FILTER_SIGMAS,
                                settings.keypoint_threshold, settings.keypoint_threshold_rel)
            joint_sets.append(joints)
            values = np.asarray(joints)
            found = np.flatnonzero(values[:, 0] > 0)
            occupancy.set_many(found, values[found, 1], values[found, 2], values[found, 3])
            if len(remaining):
                remaining = remaining[~occupancy.get_many(seeds.field[remaining], seeds.x[remaining],
                                                          seeds.y[remaining])]
        return joint_sets

    def reference_grow(self, joints, caf_scored, reverse_match, filter_sigmas, keypoint_threshold,
                       keypoint_threshold_rel):
        greedy = self.settings.greedy
        frontier: list = []
        queued: set[int] = set()
        counter = itertools.count()

        def push_edges(joint: int) -> None:
            priority = -math.sqrt(joints[joint][0])
            for d, target in self.outgoing[joint]:
                if joints[target][0] == 0.0 and d not in queued:
                    queued.add(d)
                    heapq.heappush(frontier, (priority, next(counter), d, None))

        for joint in range(self.n_keypoints):
            if joints[joint][0] > 0:
                push_edges(joint)
        while frontier:
            _, _, d, found = heapq.heappop(frontier)
            target = self.edge_target[d]
            if joints[target][0] > 0:
                continue
            if found is None:
                found = self.reference_connection(joints[self.edge_source[d]], d, caf_scored, reverse_match,
                                                  filter_sigmas, keypoint_threshold, keypoint_threshold_rel)
                if found is None:
                    continue
                if not greedy:
                    heapq.heappush(frontier, (-found[0], next(counter), d, found))
                    continue
            joints[target] = list(found)
            push_edges(target)

    @staticmethod
    def reference_connection(source, d, caf_scored, reverse_match, filter_sigmas, keypoint_threshold,
                             keypoint_threshold_rel):
        v_source, x, y, scale = source
        found = reference_blend(caf_scored[d].rows, x, y, scale, filter_sigmas)
        if found is None:
            return None
        value, tx, ty, ts = found
        v = math.sqrt(value * v_source)
        if v < keypoint_threshold or v < keypoint_threshold_rel * v_source:
            return None
        if reverse_match:
            back = reference_blend(caf_scored[d ^ 1].rows, tx, ty, ts, filter_sigmas)
            if back is None or abs(back[1] - x) + abs(back[2] - y) > scale:
                return None
        return v, tx, ty, ts

    def complete(self, joint_sets, caf_scored):
        for joints in joint_sets:
            if all(v > 0 for v, _, _, _ in joints):
                continue
            self.reference_grow(joints, caf_scored, False, FORCE_COMPLETE_FILTER_SIGMAS, 0.0, 0.0)
            self.flood_fill(joints)
