"""AnnRescaler: keypoint sets in field units, suppressions, ignore mask, instance scale, valid area."""

import math

import numpy as np
import pytest

from openfields.encoder.annrescaler import AnnRescaler, claim_nearest, mask_valid_area, valid_area_mask
from encoder_samples import POSE, person, box


def test_keypoint_sets_are_in_field_units_and_skip_crowds():
    anns = [person(100, 300, 200), box(0, 0, 50, 50), person(250, 350, 150)]
    keypoints = AnnRescaler(8, POSE).keypoint_sets(anns)
    assert keypoints.shape == (2, 17, 3)
    np.testing.assert_allclose(keypoints[0, :, :2], anns[0]['keypoints'][:, :2] / 8, rtol=1e-6)
    np.testing.assert_allclose(keypoints[1, :, :2], anns[2]['keypoints'][:, :2] / 8, rtol=1e-6)
    # the input annotations are not modified
    assert anns[0]['keypoints'][0, 0] == pytest.approx(100 + POSE[0, 0] * 200 / 1.8)


def test_keypoint_sets_empty():
    assert AnnRescaler(16, POSE).keypoint_sets([]).shape == (0, 17, 3)
    assert AnnRescaler(16, POSE).keypoint_sets([box(0, 0, 10, 10)]).shape == (0, 17, 3)


def test_selfhidden_occluded_keypoint_next_to_visible_one_is_dropped():
    a, b = person(100, 300, 200), person(110, 300, 200)  # 10 px apart: all pairs within 32 px
    a['keypoints'][0, 2] = 1.0  # occluded nose right next to b's visible nose
    b['keypoints'][5, 2] = 1.0  # occluded shoulder of b, a's shoulder visible
    far = person(300, 300, 200)
    far['keypoints'][0, 2] = 1.0  # occluded but alone: kept
    keypoints = AnnRescaler(8, POSE).keypoint_sets([a, b, far])
    assert keypoints[0, 0, 2] == 0 and keypoints[1, 5, 2] == 0
    assert keypoints[2, 0, 2] == 1
    assert keypoints[1, 0, 2] == 2  # the visible ones stay
    kept = AnnRescaler(8, POSE, suppress_selfhidden=False).keypoint_sets([a, b, far])
    assert kept[0, 0, 2] == 1 and kept[1, 5, 2] == 1


def test_suppress_invisible_drops_all_occluded_keypoints():
    a = person(100, 300, 200)
    a['keypoints'][:4, 2] = 1.0
    keypoints = AnnRescaler(8, POSE, suppress_invisible=True).keypoint_sets([a])
    np.testing.assert_array_equal(keypoints[0, :, 2], [0] * 4 + [2] * 13)


def test_suppress_collision_drops_coinciding_keypoints_of_both_people():
    a, b = person(100, 300, 200), person(300, 300, 200)
    b['keypoints'][9, :2] = a['keypoints'][9, :2] + 5  # b's left wrist lands on a's
    keypoints = AnnRescaler(8, POSE, suppress_collision=True).keypoint_sets([a, b])
    assert keypoints[0, 9, 2] == 0 and keypoints[1, 9, 2] == 0
    assert (keypoints[:, :9, 2] == 2).all()
    assert (AnnRescaler(8, POSE).keypoint_sets([a, b])[:, 9, 2] == 2).all()


def test_bg_mask_covers_crowd_and_unlabelled_boxes_with_margin():
    anns = [box(40, 40, 80, 40), box(200, 240, 40, 40, iscrowd=0), person(300, 300, 100)]
    mask = AnnRescaler(8, POSE).bg_mask(anns, 385, 385, crowd_margin=1.5)
    assert mask.shape == (49, 49) and mask.dtype == bool
    expected = np.ones((49, 49), dtype=bool)
    # crowd: x 5..15, y 5..10 cells; margin 1.5 -> floor(3.5)=3 .. ceil(16.5)=17, 3 .. ceil(11.5)=12
    expected[3:13, 3:18] = False
    # unlabelled person: x 25..30, y 30..35 -> 23..32, 28..37
    expected[28:38, 23:33] = False
    np.testing.assert_array_equal(mask, expected)


def test_bg_mask_clips_at_the_border():
    mask = AnnRescaler(16, POSE).bg_mask([box(-50, 300, 500, 200)], 385, 385, crowd_margin=1.0)
    assert mask.shape == (25, 25)
    assert not mask[17:, :].any() and mask[:17, :].all()


def test_scale_without_pose_is_sqrt_of_visible_bbox_area():
    keypoints = np.array([[0, 0, 2], [4, 0, 2], [0, 9, 1], [100, 100, 0]], dtype=float)
    assert AnnRescaler(8).scale(keypoints) == pytest.approx(6.0)


def test_scale_of_partly_visible_person_is_corrected_by_the_pose():
    full = AnnRescaler(8, POSE).keypoint_sets([person(200, 350, 240)])[0]
    upper = full.copy()
    upper[11:, 2] = 0  # hips, knees and ankles unlabelled
    rescaler = AnnRescaler(8, POSE)
    assert rescaler.scale(upper) == pytest.approx(rescaler.scale(full), rel=0.3)
    # without the pose the upper body alone looks much smaller
    assert AnnRescaler(8).scale(upper) < 0.75 * AnnRescaler(8).scale(full)


def test_scale_correction_factor_is_clipped_at_5():
    full = AnnRescaler(8, POSE).keypoint_sets([person(200, 350, 240)])[0]
    face = full.copy()
    face[5:, 2] = 0
    rescaler = AnnRescaler(8, POSE)
    assert rescaler.scale(face) == pytest.approx(5 * AnnRescaler(8).scale(face))


def test_scale_is_nan_with_fewer_than_3_keypoints_or_tiny():
    keypoints = np.array([[0, 0, 2], [4, 4, 2], [9, 9, 0]], dtype=float)
    assert math.isnan(AnnRescaler(8).scale(keypoints))
    tiny = np.array([[0, 0, 2], [0.05, 0, 2], [0, 0.05, 2]], dtype=float)
    assert math.isnan(AnnRescaler(8).scale(tiny))


def test_scales_vectorised_matches_single():
    rescaler = AnnRescaler(8, POSE)
    keypoints = rescaler.keypoint_sets([person(100, 300, 200), person(250, 380, 120)])
    keypoints[1, 12:, 2] = 0
    np.testing.assert_allclose(rescaler.scales(keypoints), [rescaler.scale(k) for k in keypoints])


def test_valid_area_mask_and_masking():
    mask = valid_area_mask([16, 0, 200, 385], 16, (25, 25))
    assert mask[:, 1:14].all() and not mask[:, 0].any() and not mask[:, 14:].any()
    fields = np.ones((2, 5, 25, 25), dtype=np.float32)
    mask_valid_area(fields, [16, 0, 200, 385], 16)
    assert (fields[:, 0, :, 0] == 0).all() and np.isnan(fields[:, 1:, :, 0]).all()
    assert (fields[:, :, :, 1:14] == 1).all()


def test_claim_nearest_keeps_closest_and_first_on_ties():
    cells = np.array([3, 3, 5, 5, 7, 7])
    distance = np.array([0.5, 0.2, 0.3, 0.3, 2.0, 0.9])
    limit = np.array([np.inf, np.inf, np.inf, np.inf, 1.0, 1.0])
    assert sorted(claim_nearest(cells, distance, limit).tolist()) == [1, 2, 5]
