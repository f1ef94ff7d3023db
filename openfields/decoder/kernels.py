"""Compiled loops of the CIF-CAF decoder (numba): the vote scatter of :class:`~.cifhr.CifHr`, the blended
connection query of :class:`~.caf_scored.Associations` and the pose growth of :class:`~.cifcaf.CifCaf`.

Each loop does the arithmetic of the numpy / plain-Python code it replaces in the same order and precision
(float32 votes added one by one in vote order; float64 connections with libm's ``exp``), so the decoded poses
are the same bit for bit (tests/decoder/test_decoder_compiled.py). Compiled on first use and cached on disk
(``cache=True``: later processes load the machine code instead of compiling it again).

Exponentials of the votes stay in numpy (:func:`numpy.exp` on float32 may round differently from libm's
``expf``): :func:`prepare_votes` lays out their arguments, numpy takes the exponentials, :func:`scatter_votes`
adds the products.
"""

from __future__ import annotations

import math

import numba
import numpy as np

jit = numba.njit(cache=True, nogil=True)


# --- accumulation ------------------------------------------------------------------------------------

@jit
def _axis_window(center, sigma, size):
    """First pixel and pixel count of ``[ceil(center - sigma), floor(center + sigma)]`` clipped to
    ``[0, size - 1]``, in the inputs' precision; count 0: no window (also for NaN or huge values)."""
    first = max(np.ceil(center - sigma), 0.0)
    last = min(np.floor(center + sigma), size - 1.0)
    if not first <= last:
        return 0, 0
    return int(first), int(last) - int(first) + 1


@jit
def prepare_votes(field, x, y, sigma, height, width):
    """Windows and Gaussian arguments of ``M`` votes for :func:`scatter_votes` (see ``CifHr.accumulate``):
    ``valid`` (a window on the map), ``x0, y0, n_x, n_y``, ``near_x, near_y`` (the nearest pixel in the
    window, -1: outside), ``corner``, the flat starts of each vote's arguments and the float32 arguments
    ``(first + i - center)^2 * (-0.5 / sigma^2)`` along x and y (center and sigma in float32)."""
    m = len(x)
    valid = np.zeros(m, np.bool_)
    x0 = np.zeros(m, np.int64)
    y0 = np.zeros(m, np.int64)
    n_x = np.zeros(m, np.int64)
    n_y = np.zeros(m, np.int64)
    for k in range(m):
        x0[k], n_x[k] = _axis_window(x[k], sigma[k], width)
        y0[k], n_y[k] = _axis_window(y[k], sigma[k], height)
        valid[k] = n_x[k] > 0 and n_y[k] > 0
        if not valid[k]:
            n_x[k] = n_y[k] = 0
    x_start = np.zeros(m + 1, np.int64)
    y_start = np.zeros(m + 1, np.int64)
    for k in range(m):
        x_start[k + 1] = x_start[k] + n_x[k]
        y_start[k + 1] = y_start[k] + n_y[k]
    ax = np.empty(x_start[m], np.float32)
    ay = np.empty(y_start[m], np.float32)
    near_x = np.full(m, -1, np.int64)
    near_y = np.full(m, -1, np.int64)
    corner = np.zeros(m, np.int64)
    half = np.float32(0.5)
    for k in range(m):
        if not valid[k]:
            continue
        cx, cy, s = np.float32(x[k]), np.float32(y[k]), np.float32(sigma[k])
        inv = np.float64(np.float32(-0.5) / (s * s))
        for i in range(n_x[k]):
            d = np.float64(x0[k] + i) - np.float64(cx)
            ax[x_start[k] + i] = np.float32(d * d * inv)
        for i in range(n_y[k]):
            d = np.float64(y0[k] + i) - np.float64(cy)
            ay[y_start[k] + i] = np.float32(d * d * inv)
        nx = np.floor(cx + half) - x0[k]
        ny = np.floor(cy + half) - y0[k]
        if 0 <= nx < n_x[k] and 0 <= ny < n_y[k]:
            near_x[k], near_y[k] = int(nx), int(ny)
        corner[k] = (field[k] * height + y0[k]) * width + x0[k]
    return valid, n_x, n_y, near_x, near_y, corner, x_start, y_start, ax, ay


@jit
def scatter_votes(buffer, order, corner, width, nx, ny, x_start, y_start, gx, gy, amplitude, near_x, near_y,
                  stale, plane):
    """Add the votes ``order`` (in that order) into the flat float32 ``buffer``: vote ``k`` covers ``ny[k]``
    rows of ``nx[k]`` pixels from flat index ``corner[k]`` (rows ``width`` apart), pixel ``(r, c)`` gets
    ``(gy[r] * amplitude) * gx[c]``, the nearest pixel ``(near_y, near_x)`` the full amplitude.

    ``stale``: the buffer holds old values; each plane of ``plane`` pixels is zeroed before its first vote
    (the votes come plane by plane), the planes without votes at the end."""
    n_planes = len(buffer) // plane
    zeroed = np.zeros(n_planes if stale else 0, np.bool_)
    for k in order:
        if stale:
            f = corner[k] // plane
            if not zeroed[f]:
                buffer[f * plane:(f + 1) * plane] = 0.0
                zeroed[f] = True
        a = amplitude[k]
        xs, ys = x_start[k], y_start[k]
        for r in range(ny[k]):
            g = gy[ys + r] * a
            row = corner[k] + r * width
            if r == near_y[k]:
                for c in range(nx[k]):
                    buffer[row + c] += a if c == near_x[k] else g * gx[xs + c]
            else:
                for c in range(nx[k]):
                    buffer[row + c] += g * gx[xs + c]
    for f in range(len(zeroed)):
        if not zeroed[f]:
            buffer[f * plane:(f + 1) * plane] = 0.0


@jit
def zero_votes(buffer, order, corner, width, nx, ny):
    """Set the windows of the votes ``order`` (as in :func:`scatter_votes`) back to 0."""
    for k in order:
        for r in range(ny[k]):
            row = corner[k] + r * width
            buffer[row:row + nx[k]] = 0.0


# --- connections -------------------------------------------------------------------------------------

@jit
def _bisect_left(rows, low, high, value):
    while low < high:
        middle = (low + high) // 2
        if rows[middle, 2] < value:
            low = middle + 1
        else:
            high = middle
    return low


@jit
def _bisect_right(rows, low, high, value):
    while low < high:
        middle = (low + high) // 2
        if value < rows[middle, 2]:
            high = middle
        else:
            low = middle + 1
    return low


@jit
def blend(rows, low, high, x, y, scale, filter_sigmas):
    """:meth:`~.caf_scored.Associations.blend` on rows ``[low, high)`` of ``(n, 7)`` associations sorted by
    ``y_src``: ``(found, score, x, y, scale)`` of the target (``found`` False: none)."""
    s = max(scale, 0.5)
    radius = filter_sigmas * 0.5 * s
    factor = -2.0 / (s * s)
    low = _bisect_left(rows, low, high, y - radius)
    high = _bisect_right(rows, low, high, y + radius)
    best = second = 0.0
    first = second_index = -1
    for i in range(low, high):
        dx = rows[i, 1] - x
        if dx > radius or dx < -radius:
            continue
        dy = rows[i, 2] - y
        score = rows[i, 0] * math.exp((dx * dx + dy * dy) * factor)
        if score > best:
            second, second_index, best, first = best, first, score, i
        elif score > second:
            second, second_index = score, i
    if first < 0:
        return False, 0.0, 0.0, 0.0, 0.0
    bx, by, bs = rows[first, 3], rows[first, 4], rows[first, 6]
    if second < 0.01 or second < 0.5 * best:
        return True, 0.5 * best, bx, by, bs
    sx, sy, ss = rows[second_index, 3], rows[second_index, 4], rows[second_index, 6]
    if math.hypot(bx - sx, by - sy) > 0.5 * bs:
        return True, 0.5 * best, bx, by, bs
    total = best + second
    return (True, 0.5 * total, (best * bx + second * sx) / total, (best * by + second * sy) / total,
            (best * bs + second * ss) / total)


@jit
def _connection(joints, source, d, rows, bounds, reverse_match, filter_sigmas, threshold, threshold_rel):
    """Target ``(found, v, x, y, s)`` of directed edge ``d`` from joint ``source`` (CifCaf.connection)."""
    v_source, x, y, scale = joints[source, 0], joints[source, 1], joints[source, 2], joints[source, 3]
    found, value, tx, ty, ts = blend(rows, bounds[d], bounds[d + 1], x, y, scale, filter_sigmas)
    if not found:
        return False, 0.0, 0.0, 0.0, 0.0
    v = math.sqrt(value * v_source)
    if v < threshold or v < threshold_rel * v_source:
        return False, 0.0, 0.0, 0.0, 0.0
    if reverse_match:
        back, _, bx, by, _ = blend(rows, bounds[d ^ 1], bounds[(d ^ 1) + 1], tx, ty, ts, filter_sigmas)
        if not back or abs(bx - x) + abs(by - y) > scale:
            return False, 0.0, 0.0, 0.0, 0.0
    return True, v, tx, ty, ts


@jit
def _hr_factor(buffer, field, x, y, height, width, hr_weight, hr_floor):
    """``hr_floor + hr_weight * min(1, map[field](nearest pixel of (x, y)))`` in float32 (0 off the map)."""
    column = np.floor(x + 0.5)  # floats: NaN and huge values fall off the map as in numpy
    row = np.floor(y + 0.5)
    value = np.float32(0.0)
    if 0 <= column < width and 0 <= row < height:
        value = min(buffer[(field * height + int(row)) * width + int(column)], np.float32(1.0))
    return hr_floor + hr_weight * value


@jit
def score_associations(caf, confident, scaled, skeleton, stride, buffer, height, width, threshold, hr_weight,
                       hr_floor):
    """Steps 2 and 3 of :func:`~.caf_scored.score_caf` but the sort: ``(N, 7)`` rows in cell order per directed
    edge and ``(2 E + 1,)`` bounds."""
    n_edges, _, h, w = caf.shape
    out = np.empty((2 * max(np.count_nonzero(confident), 1), 7), np.float64)
    bounds = np.zeros(2 * n_edges + 1, np.int64)
    n = 0
    for e in range(n_edges):
        for backward in (False, True):
            start = n
            joint = skeleton[e, 0] if backward else skeleton[e, 1]
            for j in range(h):
                for i in range(w):
                    if not confident[e, j, i]:
                        continue
                    x1, y1 = np.float64(caf[e, 2, j, i]) * stride, np.float64(caf[e, 3, j, i]) * stride
                    x2, y2 = np.float64(caf[e, 4, j, i]) * stride, np.float64(caf[e, 5, j, i]) * stride
                    s1, s2 = np.float64(caf[e, 6, j, i]) * stride, np.float64(caf[e, 7, j, i]) * stride
                    if backward:
                        x1, y1, x2, y2, s1, s2 = x2, y2, x1, y1, s2, s1
                    c = np.float64(scaled[e, j, i]) * np.float64(
                        _hr_factor(buffer, joint, x2, y2, height, width, hr_weight, hr_floor))
                    if not c > threshold:
                        continue
                    out[n, 0], out[n, 1], out[n, 2], out[n, 3] = c, x1, y1, x2
                    out[n, 4], out[n, 5], out[n, 6] = y2, s1, s2
                    n += 1
            bounds[2 * e + (1 if backward else 0) + 1] = n
    return out[:n].copy(), bounds


@jit
def cif_seed_candidates(cif, confident, stride, buffer, height, width, threshold, hr_weight, conf_weight):
    """Seed candidates of :func:`~.seeds.cif_seeds` in cell order: the ``confident`` cells of ``cif``
    ``(K, 5, h, w)`` scoring ``hr_weight * min(1, map[f](nearest pixel)) + conf_weight * conf >= threshold``
    (float32 throughout, as numpy; -1 off the map); returns field, score, x, y, scale (pixels, float32)."""
    n_fields, _, h, w = cif.shape
    n = np.count_nonzero(confident)
    field = np.empty(n, np.int64)
    score = np.empty(n, np.float32)
    x = np.empty(n, np.float32)
    y = np.empty(n, np.float32)
    scale = np.empty(n, np.float32)
    s = np.float32(stride)
    half = np.float32(0.5)
    k = 0
    for f in range(n_fields):
        for j in range(h):
            for i in range(w):
                if not confident[f, j, i]:
                    continue
                cx, cy = cif[f, 2, j, i] * s, cif[f, 3, j, i] * s
                column, row = np.floor(cx + half), np.floor(cy + half)
                value = np.float32(-1.0)
                if 0 <= column < width and 0 <= row < height:
                    value = min(buffer[(f * height + int(row)) * width + int(column)], np.float32(1.0))
                total = hr_weight * value + conf_weight * cif[f, 1, j, i]
                if not total >= threshold:
                    continue
                field[k], score[k], x[k], y[k], scale[k] = f, total, cx, cy, cif[f, 4, j, i] * s
                k += 1
    return field[:k], score[:k], x[:k], y[:k], scale[:k]


# --- growth ------------------------------------------------------------------------------------------

@jit
def _before(heap_key, heap_order, a, b):
    return heap_key[a] < heap_key[b] or (heap_key[a] == heap_key[b] and heap_order[a] < heap_order[b])


@jit
def _heap_push(heap, size, heap_key, heap_order, slot):
    """Sift slot ``slot`` (its key and order already written) up a min-heap of ``size`` slots."""
    heap[size] = slot
    i = size
    while i > 0:
        parent = (i - 1) // 2
        if not _before(heap_key, heap_order, heap[i], heap[parent]):
            break
        heap[i], heap[parent] = heap[parent], heap[i]
        i = parent
    return size + 1


@jit
def _heap_pop(heap, size, heap_key, heap_order):
    top = heap[0]
    size -= 1
    heap[0] = heap[size]
    i = 0
    while True:
        left, smallest = 2 * i + 1, i
        if left < size and _before(heap_key, heap_order, heap[left], heap[smallest]):
            smallest = left
        if left + 1 < size and _before(heap_key, heap_order, heap[left + 1], heap[smallest]):
            smallest = left + 1
        if smallest == i:
            break
        heap[i], heap[smallest] = heap[smallest], heap[i]
        i = smallest
    return top, size


@jit
def grow(joints, rows, bounds, edge_source, edge_target, out_start, out_edge, greedy, reverse_match,
         filter_sigmas, threshold, threshold_rel):
    """:meth:`~.cifcaf.CifCaf.grow` in place on ``joints`` ``(K, 4)`` float64 ``[v, x, y, s]``.

    Associations of directed edge ``d``: rows ``bounds[d]:bounds[d + 1]`` of ``rows``; the outgoing
    directed edges of joint ``j``: ``out_edge[out_start[j]:out_start[j + 1]]``. The frontier is a binary
    min-heap on ``(-priority, push order)``, so entries pop in the order of ``heapq`` on those tuples.
    """
    n_directed = len(edge_source)
    capacity = 2 * n_directed + 1  # every directed edge is pushed once unevaluated, once evaluated
    heap = np.empty(capacity, np.int64)
    heap_key = np.empty(capacity, np.float64)
    heap_order = np.empty(capacity, np.int64)
    slot_edge = np.empty(capacity, np.int64)
    slot_found = np.zeros((capacity, 4), np.float64)
    slot_evaluated = np.zeros(capacity, np.bool_)
    queued = np.zeros(n_directed, np.bool_)
    size = 0
    pushed = 0
    for joint in range(len(joints)):
        if joints[joint, 0] > 0:
            priority = -math.sqrt(joints[joint, 0])
            for e in range(out_start[joint], out_start[joint + 1]):
                d = out_edge[e]
                if joints[edge_target[d], 0] == 0.0 and not queued[d]:
                    queued[d] = True
                    heap_key[pushed], heap_order[pushed], slot_edge[pushed] = priority, pushed, d
                    size = _heap_push(heap, size, heap_key, heap_order, pushed)
                    pushed += 1
    while size > 0:
        slot, size = _heap_pop(heap, size, heap_key, heap_order)
        d = slot_edge[slot]
        target = edge_target[d]
        if joints[target, 0] > 0:
            continue
        if not slot_evaluated[slot]:
            found, v, x, y, s = _connection(joints, edge_source[d], d, rows, bounds, reverse_match,
                                            filter_sigmas, threshold, threshold_rel)
            if not found:
                continue
            if not greedy:
                heap_key[pushed], heap_order[pushed], slot_edge[pushed] = -v, pushed, d
                slot_evaluated[pushed] = True
                slot_found[pushed, 0], slot_found[pushed, 1], slot_found[pushed, 2], slot_found[pushed, 3] = \
                    v, x, y, s
                size = _heap_push(heap, size, heap_key, heap_order, pushed)
                pushed += 1
                continue
            joints[target, 0], joints[target, 1], joints[target, 2], joints[target, 3] = v, x, y, s
        else:
            for c in range(4):
                joints[target, c] = slot_found[slot, c]
        priority = -math.sqrt(joints[target, 0])
        for e in range(out_start[target], out_start[target + 1]):
            d2 = out_edge[e]
            if joints[edge_target[d2], 0] == 0.0 and not queued[d2]:
                queued[d2] = True
                heap_key[pushed], heap_order[pushed], slot_edge[pushed] = priority, pushed, d2
                size = _heap_push(heap, size, heap_key, heap_order, pushed)
                pushed += 1


# --- occupancy ---------------------------------------------------------------------------------------

@jit
def occupancy_set(occupancy, field, x, y, scale, reduction, min_scale):
    """:meth:`~.occupancy.Occupancy.set` on the boolean ``(F, h, w)`` map."""
    _, height, width = occupancy.shape
    half = max(scale, min_scale) / reduction
    cx, cy = x / reduction, y / reduction
    x0 = int(min(max(math.trunc(cx - half), 0.0), width - 1.0))
    x1 = min(max(int(math.trunc(cx + half)) + 1, x0 + 1), width)
    y0 = int(min(max(math.trunc(cy - half), 0.0), height - 1.0))
    y1 = min(max(int(math.trunc(cy + half)) + 1, y0 + 1), height)
    occupancy[field, y0:y1, x0:x1] = True


@jit
def occupancy_get(occupancy, field, x, y, reduction):
    """:meth:`~.occupancy.Occupancy.get_many` of one point."""
    _, height, width = occupancy.shape
    column = min(max(int(x / reduction), 0), width - 1)
    row = min(max(int(y / reduction), 0), height - 1)
    return occupancy[field, row, column]


@jit
def grow_from_seeds(seed_field, seed_score, seed_x, seed_y, seed_scale, n_keypoints, max_poses,
                    occupancy, reduction, min_scale, rows, bounds, edge_source, edge_target, out_start, out_edge,
                    greedy, reverse_match, filter_sigmas, threshold, threshold_rel):
    """:meth:`~.cifcaf.CifCaf.grow_from_seeds`: ``(P, K, 4)`` poses grown from the seeds in order, each seed
    skipped when its place is occupied by an earlier pose's joints; at most ``max_poses``."""
    poses = np.zeros((min(len(seed_score), max_poses), n_keypoints, 4), np.float64)
    n_poses = 0
    for i in range(len(seed_score)):
        if n_poses >= max_poses:
            break
        if occupancy_get(occupancy, seed_field[i], seed_x[i], seed_y[i], reduction):
            continue
        joints = poses[n_poses]
        f = seed_field[i]
        joints[f, 0], joints[f, 1], joints[f, 2], joints[f, 3] = seed_score[i], seed_x[i], seed_y[i], seed_scale[i]
        grow(joints, rows, bounds, edge_source, edge_target, out_start, out_edge, greedy, reverse_match,
             filter_sigmas, threshold, threshold_rel)
        for j in range(n_keypoints):
            if joints[j, 0] > 0:
                occupancy_set(occupancy, j, joints[j, 1], joints[j, 2], joints[j, 3], reduction, min_scale)
        n_poses += 1
    return poses[:n_poses]


@jit
def suppress_joints(data, scales, occupancy, reduction, min_scale, suppression):
    """The joint loop of :func:`~.nms.keypoint_nms` on poses ``data`` ``(P, K, 3)`` ``[x, y, v]`` in NMS order
    (scales ``(P, K)``): per pose, its found joints (``v > 0``) on an occupied place get ``v * suppression``
    (in ``data``'s precision), the others then occupy their places. ``reduction``: a 1-element array of
    ``data``'s dtype (positions are divided in that precision, as numpy does)."""
    n_keypoints = data.shape[1]
    occupied = np.zeros(n_keypoints, np.bool_)
    r = reduction[0]
    for p in range(data.shape[0]):
        for j in range(n_keypoints):
            occupied[j] = data[p, j, 2] > 0 and occupancy_get(occupancy, j, data[p, j, 0], data[p, j, 1], r)
        for j in range(n_keypoints):
            if data[p, j, 2] > 0:
                if occupied[j]:
                    data[p, j, 2] *= suppression
                else:
                    occupancy_set(occupancy, j, np.float64(data[p, j, 0]), np.float64(data[p, j, 1]),
                                  np.float64(scales[p, j]), reduction[0], min_scale)
