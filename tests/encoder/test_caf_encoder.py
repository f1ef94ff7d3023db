"""CAF encoder targets (E, 9, h, w) = [confidence, x1, y1, x2, y2, b_min1, b_min2, scale1, scale2]."""

import dataclasses

import numpy as np
import pytest
import torch

from openfields import encoder
from openfields.datasets import coco_person
from encoder_samples import caf_meta, person

IMAGE = torch.zeros(3, 385, 385)
SKELETON = np.array(coco_person.COCO_PERSON_SKELETON) - 1  # 0-based


def limb(joint1, joint2, edge=(6, 8)):
    """A person with only the two joints of ``edge`` (1-based) labelled, at field positions ``joint1, joint2``
    (stride 8)."""
    ann = person(100, 300, 200)
    ann['keypoints'][:, 2] = 0
    ann['keypoints'][edge[0] - 1] = [8 * joint1[0], 8 * joint1[1], 2]
    ann['keypoints'][edge[1] - 1] = [8 * joint2[0], 8 * joint2[1], 2]
    return ann


def sample_meta():
    return {'valid_area': np.array([0.0, 0.0, 385.0, 385.0])}


def positives(field):
    """Cells ``(P, 2)`` (x, y) of the positive cells and the recovered joints ``(P, 2)`` each."""
    y, x = np.nonzero(field[0] == 1)
    cells = np.stack([x, y], axis=1).astype(np.float64)
    return (cells, cells + np.stack([field[1, y, x], field[2, y, x]], axis=1),
            cells + np.stack([field[3, y, x], field[4, y, x]], axis=1))


def along_and_across(cells, joint1, joint2):
    """Fraction along the limb and perpendicular distance (cells) of each cell."""
    direction = np.subtract(joint2, joint1)
    length = np.linalg.norm(direction)
    relative = cells - joint1
    along = relative @ direction / length ** 2
    across = np.abs(direction[0] * relative[:, 1] - direction[1] * relative[:, 0]) / length
    return along, across


def test_output_shapes():
    for base_stride, size in ((16, 25), (8, 49)):
        targets = encoder.Caf(caf_meta(base_stride))(IMAGE, [person(190, 370, 300)], sample_meta())
        assert targets.shape == (19, 9, size, size) and targets.dtype == torch.float32


def test_oracle_round_trip_recovers_both_joints_of_every_limb():
    rng = np.random.default_rng(2)
    anns = [person(70, 200, 180), person(200, 300, 250), person(330, 390, 140)]
    for ann in anns:
        ann['keypoints'][:, :2] += rng.uniform(-3, 3, size=(17, 2))
        ann['keypoints'][rng.choice(17, 3, replace=False), 2] = 0
    targets = encoder.Caf(caf_meta())(IMAGE, anns, sample_meta()).numpy()
    keypoints = np.stack([ann['keypoints'] for ann in anns]).astype(np.float64)
    keypoints[:, :, :2] /= 8
    for e, (j1, j2) in enumerate(SKELETON):
        labelled = (keypoints[:, j1, 2] > 0) & (keypoints[:, j2, 2] > 0)
        truth1, truth2 = keypoints[labelled, j1, :2], keypoints[labelled, j2, :2]
        _, recovered1, recovered2 = positives(targets[e])
        # both joints come from the same person
        error = (np.linalg.norm(recovered1[:, None] - truth1[None], axis=-1)
                 + np.linalg.norm(recovered2[:, None] - truth2[None], axis=-1))
        assert (error.min(axis=1) < 1e-5).all()
        assert (error < 1e-5).any(axis=0).all()  # every labelled limb has a positive cell
        positive = targets[e, 0] == 1
        assert np.allclose(targets[e, 5:7][:, positive], 0.1 / 8)
        assert np.isnan(targets[e, 1:][:, ~positive]).all()
        sigma1, sigma2 = coco_person.COCO_PERSON_SIGMAS[j1], coco_person.COCO_PERSON_SIGMAS[j2]
        np.testing.assert_allclose(targets[e, 8][positive] / targets[e, 7][positive], sigma2 / sigma1, rtol=1e-5)


@pytest.mark.parametrize('joint1, joint2, max_across', [
    ((10.0, 20.0), (30.0, 20.0), 1.01),  # horizontal: the 3 x 3 neighbourhood is 1 cell either side
    ((10.3, 10.6), (28.2, 30.1), 2.2),  # diagonal: plus rounding to cells
])
def test_positive_cells_lie_in_the_middle_of_the_limb(joint1, joint2, max_across):
    targets = encoder.Caf(caf_meta())(IMAGE, [limb(joint1, joint2)], sample_meta()).numpy()
    edge = list(map(tuple, SKELETON)).index((5, 7))
    cells, _, _ = positives(targets[edge])
    along, across = along_and_across(cells, joint1, joint2)
    length = np.linalg.norm(np.subtract(joint2, joint1))
    tolerance = max_across / length
    assert across.max() <= max_across
    assert along.min() >= 0.25 - tolerance and along.max() <= 0.75 + tolerance
    assert along.min() < 0.3 and along.max() > 0.7  # the whole middle part is covered
    assert np.nansum(np.delete(targets[:, 0], edge, axis=0)) == 0


def test_fixed_size_claims_only_the_midpoint_neighbourhood():
    targets = encoder.Caf(caf_meta(), fixed_size=True)(IMAGE, [limb((10.0, 20.0), (30.0, 20.0))], sample_meta())
    cells, _, _ = positives(targets.numpy()[list(map(tuple, SKELETON)).index((5, 7))])
    assert sorted(map(tuple, cells.astype(int))) == [(x, y) for x in (19, 20, 21) for y in (19, 20, 21)]


def test_nearest_limb_wins_by_perpendicular_distance():
    a = limb((10.0, 20.0), (30.0, 20.0))
    b = limb((10.0, 21.5), (30.0, 21.5))  # parallel, 1.5 cells lower
    targets = encoder.Caf(caf_meta())(IMAGE, [a, b], sample_meta()).numpy()
    edge = list(map(tuple, SKELETON)).index((5, 7))
    cells, recovered1, _ = positives(targets[edge])
    owner_b = np.abs(recovered1[:, 1] - 21.5) < 1e-5
    assert owner_b.any() and (~owner_b).any()
    closer_to_b = np.abs(cells[:, 1] - 21.5) < np.abs(cells[:, 1] - 20.0)
    np.testing.assert_array_equal(owner_b, closer_to_b)


def test_limb_with_both_joints_outside_is_skipped():
    outside = limb((-3.0, 20.0), (-1.0, 25.0))
    targets = encoder.Caf(caf_meta())(IMAGE, [outside], sample_meta()).numpy()
    assert np.nansum(targets[:, 0]) == 0
    half = limb((-3.0, 20.0), (2.0, 20.0))
    assert np.nansum(encoder.Caf(caf_meta())(IMAGE, [half], sample_meta()).numpy()[:, 0]) > 0


def test_only_in_field_of_view_skips_limbs_with_one_joint_outside():
    half = limb((-3.0, 20.0), (2.0, 20.0))
    meta = caf_meta(only_in_field_of_view=True)
    assert np.nansum(encoder.Caf(meta)(IMAGE, [half], sample_meta()).numpy()[:, 0]) == 0
    inside = limb((3.0, 20.0), (8.0, 20.0))
    assert np.nansum(encoder.Caf(meta)(IMAGE, [inside], sample_meta()).numpy()[:, 0]) > 0


def test_dense_edge_skipped_when_both_joints_have_short_sparse_connections():
    # dense edge shoulder - wrist, sparse edges shoulder - elbow and elbow - wrist
    meta = caf_meta(skeleton=[(6, 10), (6, 8), (8, 10)], sparse_skeleton=[(6, 8), (8, 10)])
    ann = person(100, 300, 200)
    ann['keypoints'][:, 2] = 0
    ann['keypoints'][[5, 7, 9]] = [[80, 80, 2], [160, 80, 2], [240, 80, 2]]  # sparse limbs of 10 cells
    targets = encoder.Caf(meta)(IMAGE, [ann], sample_meta()).numpy()
    assert np.nansum(targets[0, 0]) > 0  # 20 / 2 = 10 is not shorter than 10
    # 20 / 1.5 > 10: the sparse limbs make the dense one redundant
    meta = dataclasses.replace(meta, dense_to_sparse_radius=1.5)
    targets = encoder.Caf(meta)(IMAGE, [ann], sample_meta()).numpy()
    assert np.nansum(targets[0, 0]) == 0
    assert np.nansum(targets[1, 0]) > 0 and np.nansum(targets[2, 0]) > 0


def test_crowd_and_unlabelled_boxes_are_ignored_with_margin():
    anns = [{'keypoints': np.zeros((17, 3), np.float32), 'bbox': np.array([40, 40, 80, 40], np.float32),
             'iscrowd': 1},
            {'keypoints': np.zeros((17, 3), np.float32), 'bbox': np.array([200, 240, 40, 40], np.float32),
             'iscrowd': 0}]
    targets = encoder.Caf(caf_meta())(IMAGE, anns, sample_meta()).numpy()
    ignored = np.zeros((49, 49), dtype=bool)
    ignored[4:12, 4:17] = True  # margin (3 - 1) / 2 = 1 cell
    ignored[29:37, 24:32] = True
    assert np.isnan(targets[:, 0][:, ignored]).all()
    assert (targets[:, 0][:, ~ignored] == 0).all()


def test_outside_valid_area_confidence_zero_and_regression_nan():
    meta = {'valid_area': np.array([0.0, 0.0, 385.0, 160.0])}  # rows 0 .. 20 valid
    targets = encoder.Caf(caf_meta())(IMAGE, [person(190, 370, 340)], meta).numpy()
    assert (targets[:, 0, 21:] == 0).all() and np.isnan(targets[:, 1:, 21:]).all()
    assert (targets[:, 0, :21] == 1).any()


def test_fewer_than_3_keypoints_give_nan_scales_but_positive_confidence():
    targets = encoder.Caf(caf_meta())(IMAGE, [limb((10.0, 20.0), (30.0, 20.0))], sample_meta()).numpy()
    positive = targets[:, 0] == 1
    assert positive.sum() > 0
    assert np.isfinite(targets[:, 1:7].transpose(1, 0, 2, 3)[:, positive]).all()
    assert np.isnan(targets[:, 7:].transpose(1, 0, 2, 3)[:, positive]).all()
