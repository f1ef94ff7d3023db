"""The decoder's fast paths against straightforward reference implementations of the same math.

The stages are written for speed (plain-Python loops where numpy's call overhead dominates, grouped
scatter-adds, scoring once for two thresholds); these tests pin them to the plain vectorised
definitions on random inputs, so a speed-up cannot change results.
"""

import math

import numpy as np
import pytest
from decoder_samples import caf_meta, oracle_fields, people

from openfields.decoder.caf_scored import Associations, score_caf
from openfields.decoder.cifhr import CifHr


def reference_blend(rows: np.ndarray, x, y, scale, filter_sigmas):
    """:meth:`Associations.blend` in plain numpy over all rows (no sorting, no bisection)."""
    s = max(scale, 0.5)
    radius = filter_sigmas * 0.5 * s
    dx, dy = rows[:, 1] - x, rows[:, 2] - y
    score = rows[:, 0] * np.exp((dx * dx + dy * dy) * (-2.0 / (s * s)))
    score[(np.abs(dx) > radius) | (np.abs(dy) > radius)] = 0.0
    if not len(rows) or score.max() <= 0.0:
        return None
    first = int(score.argmax())
    best = float(score[first])
    score[first] = 0.0
    second_index = int(score.argmax())
    second = float(score[second_index])
    bx, by, bs = rows[first, [3, 4, 6]]
    sx, sy, ss = rows[second_index, [3, 4, 6]]
    if second < 0.01 or second < 0.5 * best or math.hypot(bx - sx, by - sy) > 0.5 * bs:
        return 0.5 * best, bx, by, bs
    total = best + second
    return 0.5 * total, (best * bx + second * sx) / total, (best * by + second * sy) / total, \
        (best * bs + second * ss) / total


def random_rows(rng, n):
    """``n`` association rows in clusters (so that blending two targets happens), y sorted."""
    centers = rng.uniform(0, 100, (max(n // 8, 1), 2))
    source = centers[rng.integers(0, len(centers), n)] + rng.normal(0, 2, (n, 2))
    target = source + 20 + rng.normal(0, 1, (n, 2))
    rows = np.column_stack([rng.uniform(0.2, 1, n), source, target, rng.uniform(2, 8, (n, 2))])
    return rows[np.argsort(rows[:, 2], kind='stable')]


@pytest.mark.parametrize('filter_sigmas', [2.0, 4.0])
def test_blend_matches_the_reference(filter_sigmas):
    rng = np.random.default_rng(0)
    n_blended = 0
    for n in (0, 1, 2, 40, 300):
        rows = random_rows(rng, n)
        associations = Associations(rows)
        for x, y, scale in zip(*rng.uniform(0, 100, (2, 200)), rng.uniform(0.1, 10, 200)):
            expected = reference_blend(rows, x, y, scale, filter_sigmas)
            found = associations.blend(x, y, scale, filter_sigmas)
            if expected is None:
                assert found is None
            else:
                np.testing.assert_allclose(found, expected, rtol=1e-12)
                n_blended += not np.any(rows[:, 3] == found[1])  # a mean of two targets
    assert n_blended > 10  # the weighted mean of two targets was exercised


def test_equal_scores_pick_the_first_row_as_argmax_does():
    rows = np.array([[0.5, 0, 0, 10, 10, 1, 4], [0.5, 0, 0, 30, 30, 1, 4], [0.5, 0, 0, 50, 50, 1, 4]], float)
    assert Associations(rows).blend(0.0, 0.0, 4.0, 2.0) == (0.25, 10.0, 10.0, 4.0)


def test_associations_above_a_threshold_equal_scoring_at_it():
    cif, caf = oracle_fields(people(5, seed=5))
    rng = np.random.default_rng(1)
    caf[:, 1] *= rng.uniform(0, 1, caf[:, 1].shape).astype(np.float32)  # confidences of all sizes
    hr = CifHr().fill_cif(cif, 8, 0.3)
    skeleton = np.asarray(caf_meta().skeleton) - 1
    weak = score_caf(caf, skeleton, 8, hr, threshold=0.001)
    strong = score_caf(caf, skeleton, 8, hr, threshold=0.3)
    assert sum(len(a) for a in strong.directed) < sum(len(a) for a in weak.directed)
    for derived, direct in zip(weak.above(0.3).directed, strong.directed):
        np.testing.assert_array_equal(derived.rows, direct.rows)


def reference_cifhr(shape, field, x, y, sigma, amplitude) -> np.ndarray:
    """:meth:`CifHr.accumulate` one vote at a time: the window ``[ceil(c - sigma), floor(c + sigma)]``
    clipped to the map, ``a exp(-0.5 d^2 / sigma^2)`` per pixel, the nearest pixel the full ``a``."""
    hr = np.zeros(shape, np.float32)
    _, height, width = shape
    for f, vx, vy, s, a in zip(field, x, y, sigma, amplitude):
        x0, x1 = max(math.ceil(vx - s), 0), min(math.floor(vx + s), width - 1)
        y0, y1 = max(math.ceil(vy - s), 0), min(math.floor(vy + s), height - 1)
        if x1 < x0 or y1 < y0:
            continue
        gx = np.exp(((np.arange(x0, x1 + 1) - vx) ** 2 * (-0.5 / s ** 2)).astype(np.float32))
        gy = np.exp(((np.arange(y0, y1 + 1) - vy) ** 2 * (-0.5 / s ** 2)).astype(np.float32)) * a
        patch = gy[:, None] * gx[None, :]
        nx, ny = math.floor(vx + 0.5), math.floor(vy + 0.5)
        if x0 <= nx <= x1 and y0 <= ny <= y1:
            patch[ny - y0, nx - x0] = a
        hr[f, y0:y1 + 1, x0:x1 + 1] += patch
    return np.minimum(hr, 1.0)


def test_cifhr_matches_one_vote_at_a_time():
    rng = np.random.default_rng(2)
    shape, m = (3, 40, 50), 400
    field = rng.integers(0, 3, m)
    x, y = rng.uniform(-5, 55, m).astype(np.float32), rng.uniform(-5, 45, m).astype(np.float32)
    sigma = np.maximum(1.0, rng.uniform(0, 40, m)).astype(np.float32)  # sides past DEFAULT_PADDING too
    amplitude = rng.uniform(0, 0.3, m).astype(np.float32)
    hr = CifHr().reset(shape).accumulate(field, x, y, sigma, amplitude)
    np.testing.assert_allclose(hr.values(), reference_cifhr(shape, field, x, y, sigma, amplitude),
                               rtol=1e-5, atol=1e-6)
