"""Oracle conversion and the single decoder stages: CifHr, seeds, CAF scoring, occupancy."""

import numpy as np
import pytest
from decoder_samples import caf_meta, cif_meta, oracle_fields, people

from openfields.decoder.caf_scored import score_caf
from openfields.decoder.cifhr import CifHr
from openfields.decoder.occupancy import Occupancy
from openfields.decoder.oracle import DEFAULT_SCALE, fields_from_targets
from openfields.decoder.seeds import cif_seeds


def test_oracle_fields_have_the_eval_layout():
    target = np.full((2, 5, 3, 4), np.nan, np.float32)
    target[:, 0] = 0.0
    target[1, :, 2, 3] = [1.0, 0.25, -0.5, 0.1, np.nan]
    target[0, 0, 0, 0] = np.nan
    fields = fields_from_targets(cif_meta(), target)
    assert fields.shape == (2, 5, 3, 4)
    assert np.all(np.isfinite(fields))
    np.testing.assert_allclose(fields[1, :, 2, 3], [0.0, 1.0, 3.25, 1.5, DEFAULT_SCALE])
    assert fields[0, 1, 0, 0] == 0.0  # ignored -> negative
    np.testing.assert_allclose(fields[0, 2, 1], np.arange(4))  # no target: the cell's own position
    caf = fields_from_targets(caf_meta(), np.zeros((19, 9, 3, 4), np.float32))
    assert caf.shape == (19, 8, 3, 4)
    np.testing.assert_allclose(caf[0, 5, :, 0], np.arange(3))  # y2 = offset + row


def test_cifhr_saturates_at_one_with_a_full_patch():
    cif = np.zeros((1, 5, 10, 10), np.float32)
    cif[0, 1, 3:7, 3:7] = 1.0
    cif[0, 2], cif[0, 3], cif[0, 4] = 4.5, 4.25, 0.5  # every cell votes for (36, 34) px, sigma 2 px
    hr = CifHr().fill_cif(cif, stride=8, threshold=0.3)
    assert hr.shape == (1, 73, 73)
    values = hr.values()[0]
    assert values[34, 36] == pytest.approx(1.0)
    assert values[34, 38] == pytest.approx(np.exp(-0.5), rel=1e-5)  # one sigma: 16 votes of e^-0.5 / 16
    assert values[34, 39] == 0.0  # beyond the window
    assert values.max() <= 1.0


def test_seeds_are_rescored_and_sorted():
    cif = np.zeros((2, 5, 10, 10), np.float32)
    cif[0, 1, 2, 2] = 0.9  # isolated: low CifHr
    cif[1, 1, 5:9, 5:9] = 0.8
    grid = np.mgrid[0:10, 0:10].astype(np.float32)
    cif[:, 2], cif[:, 3], cif[:, 4] = grid[1], grid[0], 1.0
    cif[1, 2, 5:9, 5:9], cif[1, 3, 5:9, 5:9] = 6.5, 6.5
    hr = CifHr().fill_cif(cif, 8, 0.3)
    seeds = cif_seeds(cif, 8, hr, threshold=0.2)
    assert list(seeds.field) == [1] * 16
    np.testing.assert_allclose(seeds.score, 0.9 * 0.8 + 0.1 * 0.8, rtol=1e-5)
    np.testing.assert_allclose(seeds.x, 52.0)
    assert np.all(np.diff(seeds.score) <= 0)


def test_caf_associations_point_both_ways_and_are_rescored():
    anns = people(1, seed=1)
    cif, caf = oracle_fields(anns)
    meta = caf_meta()
    hr = CifHr().fill_cif(cif, 8, 0.3)
    skeleton = np.asarray(meta.skeleton) - 1
    scored = score_caf(caf, skeleton, 8, hr, threshold=0.3)
    assert len(scored.directed) == 2 * len(skeleton)
    keypoints = anns[0]['keypoints']
    a, b = skeleton[0]
    forward, backward = scored[0].rows, scored[1].rows
    assert len(forward) == len(backward) > 0
    np.testing.assert_allclose(forward[:, 1:3], np.broadcast_to(keypoints[a, :2], (len(forward), 2)), atol=1e-3)
    np.testing.assert_allclose(backward[:, 1:3], np.broadcast_to(keypoints[b, :2], (len(backward), 2)), atol=1e-3)
    np.testing.assert_allclose(forward[:, 0], 1.0, atol=1e-5)  # 1 * (0.1 + 0.9 * saturated CifHr)
    # without CifHr support the associations fall below the threshold
    empty = CifHr().reset(hr.shape)
    assert all(len(d) == 0 for d in score_caf(caf, skeleton, 8, empty, threshold=0.3).directed)


def test_occupancy_marks_a_square_of_the_joint_scale():
    occupancy = Occupancy((2, 101, 101))
    assert occupancy.map.shape == (2, 51, 51)
    occupancy.set(1, 50.0, 50.0, 10.0)
    assert occupancy.get(1, 50, 50) and occupancy.get(1, 41, 59)
    assert not occupancy.get(1, 50, 62) and not occupancy.get(0, 50, 50)
    occupancy.set(0, 20.0, 20.0, 1.0)  # min scale 4 px
    assert occupancy.get(0, 17, 23) and not occupancy.get(0, 27, 20)
    np.testing.assert_array_equal(occupancy.get_many(np.array([1, 1, 0]), np.array([50.0, 90.0, -5.0]),
                                                     np.array([50.0, 50.0, 20.0])), [True, False, False])
