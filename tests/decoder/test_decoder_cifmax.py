"""``cifmax``: one pose per image, each keypoint at the peak of its accumulated CIF map."""

import numpy as np

from openfields.decoder import CifMax, DecoderSettings, factory

from decoder_samples import caf_meta, cif_meta, mean_distances, oracle_fields, people


def test_a_single_person_is_recovered_within_half_a_pixel():
    [ann] = people(1, seed=3)
    cif, _ = oracle_fields([ann])
    [pose] = CifMax(cif_meta(), DecoderSettings())([cif])
    assert mean_distances(pose, [ann])[0] < 0.5
    assert np.all(pose.data[:, 2] > 0.5)  # every keypoint found, confidently
    assert np.all(pose.joint_scales > 0)


def test_a_keypoint_without_votes_is_not_found_and_the_others_stay():
    [ann] = people(1, seed=4)
    ann['keypoints'][[9, 15], 2] = 0.0  # left wrist, left ankle unlabelled
    cif, _ = oracle_fields([ann])
    [pose] = CifMax(cif_meta(), DecoderSettings())([cif])
    assert np.all(pose.data[[9, 15]] == 0.0)
    labelled = ann['keypoints'][:, 2] > 0
    assert np.max(np.linalg.norm(pose.data[labelled, :2] - ann['keypoints'][labelled, :2], axis=1)) < 1.0


def test_sub_pixel_peaks_come_from_the_neighbourhood():
    # a keypoint at x = 100.4: the peak pixel is 100, the refined position lies between 100 and 101
    [ann] = people(1, seed=5)
    ann['keypoints'][:, 0] += 0.4 - (ann['keypoints'][0, 0] % 1.0)
    cif, _ = oracle_fields([ann])
    [pose] = CifMax(cif_meta(), DecoderSettings())([cif])
    assert abs(pose.data[0, 0] - ann['keypoints'][0, 0]) < 0.3


def test_empty_fields_give_no_pose():
    cif, _ = oracle_fields([])
    assert CifMax(cif_meta(), DecoderSettings())([cif]) == []


def test_chosen_by_name_only():
    metas = [cif_meta(), caf_meta()]
    assert factory.factory(metas, DecoderSettings()).names == ['cifcaf:0']
    decode = factory.factory(metas, DecoderSettings(), names=['cifmax'])
    assert decode.names == ['cifmax:0'] and decode.decoders[0][1] == (0,)
    [ann] = people(1, seed=6)
    assert len(decode(oracle_fields([ann]))) == 1
