"""Heatmap encoder targets (K, 3, h, w) = [heatmap, locref_x, locref_y]: DeepLabCut's Gaussian and plateau maps
with pos_dist_thresh in pixels, locref offsets in units of locref_std."""

import numpy as np
import pytest
import torch

from openfields import encoder, headmeta

IMAGE = torch.zeros(3, 129, 161)  # field 17 x 21 cells at stride 8


def meta(**kwargs):
    return headmeta.Heatmap(name='heatmap', dataset='dlc', keypoints=['snout', 'ear', 'tail'], sigmas=[0.1] * 3,
                            upsample_stride=2, base_stride=16, **kwargs)


def animal(points):
    """One annotation; ``None`` is an unlabelled keypoint."""
    keypoints = np.array([[0.0, 0.0, 0.0] if p is None else [p[0], p[1], 2.0] for p in points], np.float32)
    return {'keypoints': keypoints, 'bbox': [0, 0, 10, 10], 'iscrowd': 0, 'category_id': 1}


def encode(head_meta, anns):
    return encoder.factory([head_meta], encoder.EncoderSettings())[0](IMAGE, anns, {}).numpy()


def test_the_gaussian_peaks_at_the_keypoint_with_sigma_two_thirds_of_pos_dist_thresh():
    targets = encode(meta(), [animal([(40, 56), (83.0, 20.5), None])])
    assert targets.shape == (3, 3, 17, 21)
    snout = targets[0, 0]
    assert np.unravel_index(snout.argmax(), snout.shape) == (7, 5) and snout[7, 5] == pytest.approx(1.0)
    sigma = 2 * 17 / 3
    assert snout[7, 6] == pytest.approx(np.exp(-8 ** 2 / (2 * sigma ** 2)), rel=1e-5)  # one cell = 8 px away
    assert snout[9, 5] == pytest.approx(np.exp(-16 ** 2 / (2 * sigma ** 2)), rel=1e-5)
    ear = targets[1, 0]  # (83, 20.5): between cells, nearest (x 80, y 24) is 4.6 px away
    assert np.unravel_index(ear.argmax(), ear.shape) == (3, 10)
    assert ear[3, 10] == pytest.approx(np.exp(-(3 ** 2 + 3.5 ** 2) / (2 * sigma ** 2)), rel=1e-5)
    assert np.all(targets[2, 0] == 0) and np.all(np.isnan(targets[2, 1:]))  # unlabelled: an empty map, no locref


def test_the_plateau_is_one_within_pos_dist_thresh_pixels():
    targets = encode(meta(target='plateau', pos_dist_thresh=17.0), [animal([(40, 56), None, None])])
    rows, columns = np.nonzero(targets[0, 0] == 1)
    distances = np.hypot(columns * 8 - 40, rows * 8 - 56)
    assert distances.max() <= 17 and set(np.unique(targets[0, 0])) == {0.0, 1.0}
    # every cell within 17 px is on the plateau: 2 cells (16 px) along the axes, 1 on the diagonal (11.3 px)
    assert len(rows) == 13 and targets[0, 0, 7, 7] == 1 and targets[0, 0, 9, 6] == 0  # (16, 8) px: 17.9


def test_locref_points_from_each_cell_near_a_keypoint_to_it_in_units_of_locref_std():
    targets = encode(meta(locref_std=7.2801), [animal([(43.0, 50.0), None, None])])
    # cell (row 6, column 5) sits on pixel (40, 48): the keypoint is (+3, +2) px away
    assert targets[0, 1, 6, 5] == pytest.approx(3 / 7.2801) and targets[0, 2, 6, 5] == pytest.approx(2 / 7.2801)
    assert targets[0, 1, 7, 4] == pytest.approx(11 / 7.2801) and targets[0, 2, 7, 4] == pytest.approx(-6 / 7.2801)
    has_target = np.isfinite(targets[0, 1])
    rows, columns = np.nonzero(has_target)
    assert np.hypot(columns * 8 - 43, rows * 8 - 50).max() <= 17  # only within pos_dist_thresh
    assert np.all(np.isfinite(targets[0, 2]) == has_target) and not has_target[0, 0]


def test_two_animals_keep_the_larger_map_and_the_nearest_keypoints_locref():
    targets = encode(meta(), [animal([(40, 56), None, None]), animal([(64, 56), None, None])])
    sigma = 2 * 17 / 3
    assert targets[0, 0, 7, 5] == pytest.approx(1.0) and targets[0, 0, 7, 8] == pytest.approx(1.0)
    assert targets[0, 0, 7, 6] == pytest.approx(np.exp(-8 ** 2 / (2 * sigma ** 2)), rel=1e-5)
    assert targets[0, 1, 7, 6] == pytest.approx(-8 / 7.2801)  # (48, 56): 8 px right of the first, 16 of the second
    assert targets[0, 1, 7, 7] == pytest.approx(8 / 7.2801)


def test_crowd_regions_are_ignored_and_no_locref_means_one_channel():
    crowd = {'keypoints': np.zeros((3, 3), np.float32), 'bbox': [100, 80, 30, 30], 'iscrowd': 1, 'category_id': 1}
    targets = encode(meta(locref=False), [animal([(40, 56), None, None]), crowd])
    assert targets.shape == (3, 1, 17, 21)
    assert np.isnan(targets[:, 0, 12, 14]).all() and targets[0, 0, 7, 5] == pytest.approx(1.0)
