"""CIF-CAF decoder on oracle fields: recovery, force-complete, thresholds, options, NMS."""

import itertools

import numpy as np
import pytest
from decoder_samples import (boxes_overlap, caf_meta, cif_meta, decoder, mean_distances, oracle_fields,
                             people, person)

from openfields.decoder import CifCaf, DecoderSettings
from openfields.decoder.annotation import Annotation
from openfields.decoder.nms import keypoint_nms
from openfields.decoder.occupancy import Occupancy

LEFT_ELBOW, LEFT_WRIST, RIGHT_WRIST, LEFT_ANKLE = 7, 9, 10, 15


def match(annotations, anns):
    """Index of the closest ground truth (mean keypoint distance) for each annotation."""
    return [int(np.argmin(mean_distances(a, anns))) for a in annotations]


def assert_recovered(annotations, anns, tolerance=1.0):
    assert len(annotations) == len(anns)
    matched = match(annotations, anns)
    assert sorted(matched) == list(range(len(anns)))  # one annotation per person
    for annotation, i in zip(annotations, matched):
        visible = anns[i]['keypoints'][:, 2] > 0
        assert np.all(annotation.data[visible, 2] > 0)
        error = np.linalg.norm(annotation.data[visible, :2] - anns[i]['keypoints'][visible, :2], axis=1)
        assert error.max() < tolerance


@pytest.mark.parametrize('n', [1, 5, 20])
def test_oracle_people_are_recovered_within_one_pixel(n):
    anns = people(n, seed=n)
    if n == 20:
        assert sum(boxes_overlap(a, b) for a, b in itertools.combinations(anns, 2)) >= 10
    annotations = decoder()(oracle_fields(anns))
    assert_recovered(annotations, anns)
    scores = [a.score for a in annotations]
    assert scores == sorted(scores, reverse=True)
    assert all(s > 0.8 for s in scores)


@pytest.mark.parametrize('settings', [dict(greedy=True), dict(reverse_match=False),
                                      dict(force_complete_pose=True)])
def test_options_keep_the_oracle_exact(settings):
    anns = people(5, seed=5)
    assert_recovered(decoder(**settings)(oracle_fields(anns)), anns)


def test_touching_people_side_by_side_are_separated():
    anns = [person(200, 380, 200), person(245, 380, 200), person(290, 390, 210)]
    assert_recovered(decoder()(oracle_fields(anns)), anns)


def partly_invisible_people():
    anns = people(3, seed=3)
    for ann in anns:
        ann['keypoints'][[LEFT_WRIST, RIGHT_WRIST, LEFT_ANKLE], 2] = 0.0
    return anns


def test_invisible_keypoints_stay_unfound_without_force_complete():
    anns = partly_invisible_people()
    annotations = decoder()(oracle_fields(anns))
    assert_recovered(annotations, anns)
    for annotation in annotations:
        assert np.all(annotation.data[[LEFT_WRIST, RIGHT_WRIST, LEFT_ANKLE], 2] == 0)


def test_force_complete_fills_invisible_keypoints_weakly():
    anns = partly_invisible_people()
    annotations = decoder(force_complete_pose=True)(oracle_fields(anns))
    assert_recovered(annotations, anns)
    for annotation, i in zip(annotations, match(annotations, anns)):
        assert np.all(annotation.data[:, 2] > 0)
        missing = annotation.data[[LEFT_WRIST, RIGHT_WRIST, LEFT_ANKLE]]
        assert np.all(missing[:, 2] < 0.01)
        # nothing to find: copies of the neighbour (elbow for the left wrist) at 1e-5
        np.testing.assert_allclose(annotation.data[LEFT_WRIST, :2], annotation.data[LEFT_ELBOW, :2])
        assert annotation.data[LEFT_WRIST, 2] == pytest.approx(1e-5)


def test_force_complete_thresholds_default_to_zero():
    settings = DecoderSettings(force_complete_pose=True)
    assert (settings.instance_threshold, settings.keypoint_threshold, settings.keypoint_threshold_rel) == (0, 0, 0)
    settings = DecoderSettings(force_complete_pose=True, instance_threshold=0.3)
    assert settings.instance_threshold == 0.3
    assert DecoderSettings(seed_threshold=0.1).keypoint_threshold == 0.1  # lowered to the seed threshold


def weakened_fields(anns, factor):
    cif, caf = oracle_fields(anns)
    cif[:, 1] *= factor
    caf[:, 1] *= factor
    return [cif, caf]


def test_instance_threshold_above_the_scores_removes_the_poses():
    anns = people(5, seed=5)
    fields = weakened_fields(anns, 0.6)
    annotations = decoder()(fields)
    assert len(annotations) == 5
    top = max(a.score for a in annotations)
    assert top < 0.7
    assert decoder(instance_threshold=top + 0.01)(fields) == []


def test_max_instances_caps_the_count():
    anns = people(5, seed=5)
    annotations = decoder(max_instances=3)(oracle_fields(anns))
    assert len(annotations) == 3
    assert all(a.score >= 0.99 for a in annotations)


def test_seeds_below_the_seed_threshold_start_nothing():
    fields = weakened_fields(people(2, seed=2), 0.5)  # seeds score 0.9 * 0.5 + 0.1 * 0.5 = 0.5
    assert decoder(seed_threshold=0.6)(fields) == []
    assert len(decoder(seed_threshold=0.45, keypoint_threshold=0.1, cif_th=0.2, caf_th=0.1)(fields)) == 2


def test_keypoint_nms_suppresses_a_pose_decoded_twice():
    anns = people(2, seed=2)
    annotations = decoder()(oracle_fields(anns))
    duplicate = Annotation(meta=annotations[0].meta, data=annotations[0].data.copy() + [1.0, 1.0, 0.0],
                           joint_scales=annotations[0].joint_scales.copy())
    duplicate.data[:, 2] *= 0.9
    occupancy = Occupancy((17, 427, 641))
    kept = keypoint_nms(annotations + [duplicate], occupancy, keypoint_threshold=0.15, instance_threshold=0.15)
    assert len(kept) == 2
    assert all(a is not duplicate for a in kept)
    assert np.all(duplicate.data[:, 2] == 0)


def test_dense_connections_join_the_growth():
    anns = people(2, seed=2)
    sparse = caf_meta()
    dense = caf_meta(skeleton=[(8, 12), (9, 13)], name='caf_dense', sparse_skeleton=sparse.skeleton)
    cif, caf, dense_fields = oracle_fields(anns, [cif_meta(), sparse, dense])
    left_arm = sparse.skeleton.index((6, 8))  # left shoulder - left elbow, the only way to the left arm
    caf[left_arm, 1] = 0.0
    without = CifCaf(cif_meta(), sparse, DecoderSettings(instance_threshold=0.1, fragment_merge_distance=0.0))(
        [cif, caf])
    # without the dense edge (and fragment merging) each left arm is cut off: the bodies lack it, the arms
    # decode on their own
    bodies = [a for a in without if np.sum(a.data[:, 2] > 0) == 15]
    assert len(bodies) == 2 and all(np.all(a.data[[LEFT_ELBOW, LEFT_WRIST], 2] == 0) for a in bodies)
    with_dense = CifCaf(cif_meta(), sparse, DecoderSettings(dense_connections=1.0), dense)([cif, caf, dense_fields])
    assert_recovered(with_dense, anns)


def test_fragments_cut_off_by_the_skeleton_merge_into_their_pose():
    anns = people(2, seed=2)
    cif, caf = oracle_fields(anns)
    caf[caf_meta().skeleton.index((6, 8)), 1] = 0.0  # no association reaches the left arms
    merged = CifCaf(cif_meta(), caf_meta(), DecoderSettings(instance_threshold=0.1))([cif, caf])
    assert len(merged) == 2
    assert_recovered(merged, anns)


def test_fragment_merging_leaves_separate_people_apart():
    anns = people(2, seed=2)
    cif, caf = oracle_fields(anns)
    arm = caf_meta().skeleton.index((6, 8))
    caf[arm, 1] = 0.0
    tight = CifCaf(cif_meta(), caf_meta(), DecoderSettings(instance_threshold=0.1, fragment_merge_distance=0.01))
    # a distance limit far below an arm's length keeps the arms apart: 2 bodies + 2 arms
    assert len(tight([cif, caf])) == 4


def test_torch_inputs_and_stage_timings():
    torch = pytest.importorskip('torch')
    anns = people(1, seed=1)
    decode = decoder()
    annotations = decode([torch.from_numpy(f) for f in oracle_fields(anns)])
    assert_recovered(annotations, anns)
    assert {'accumulation', 'seeds', 'caf_scoring', 'growth', 'nms'} <= set(decode.stats)
    assert all(v >= 0 for v in decode.stats.values())
