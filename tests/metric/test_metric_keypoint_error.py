"""Keypoint pixel error (DeepLabCut's "RMSE"), its pcutoff variant and PCK, against hand-computed numbers."""

import math

import numpy as np
import pytest

from openfields import headmeta
from openfields.decoder.annotation import Annotation
from openfields.metric import KeypointError
from openfields.metric.keypoint_error import oks

NAMES = ['a', 'b', 'c']
META = headmeta.Cif(name='cif', dataset='dlc', keypoints=NAMES, sigmas=[0.05] * 3)


def prediction(xyc, score: float) -> Annotation:
    data = np.asarray(xyc, dtype=np.float32).reshape(-1, 3)
    return Annotation(meta=META, data=data, joint_scales=np.zeros(len(data), np.float32), fixed_score=score)


def individual(*xy_or_none) -> list:
    """Ground-truth rows x, y, v: None is an unlabelled keypoint."""
    return [[0.0, 0.0, 0.0] if p is None else [p[0], p[1], 2.0] for p in xy_or_none]


@pytest.fixture()
def single_animal():
    ground_truth = {1: [individual((10, 10), (20, 10), None)],
                    2: [individual((0, 0), (100, 100), (50, 50))]}
    metric = KeypointError(ground_truth, {'test': [1, 2]}, keypoint_names=NAMES, pcutoff=0.6, pck_radius=5.0)
    # image 1: the best-scoring pose is off by (3, 4) = 5 px at a, exact at b; c is not labelled
    metric.accumulate([prediction([[13, 14, 0.9], [20, 10, 0.3], [0, 0, 0.8]], score=0.9),
                       prediction([[10, 10, 1.0], [20, 10, 1.0], [0, 0, 1.0]], score=0.5)], {'image_id': 1})
    # image 2: a off by (6, 8) = 10 px, b not found, c off by 3 px
    metric.accumulate([prediction([[6, 8, 0.7], [0, 0, 0.0], [50, 53, 0.5]], score=0.8)], {'image_id': 2})
    return metric


def test_pixel_error_is_the_mean_distance_of_found_keypoints_of_the_best_scoring_pose(single_animal):
    stats = single_animal.stats()
    assert stats['test_pixel_error'] == pytest.approx((5 + 0 + 10 + 3) / 4)
    assert stats['test_labelled_keypoints'] == 5 and stats['test_found_keypoints'] == 4
    assert stats['test_pixel_error_per_keypoint'] == pytest.approx({'a': 7.5, 'b': 0.0, 'c': 3.0})


def test_pixel_error_pcutoff_keeps_only_confident_predictions(single_animal):
    stats = single_animal.stats()
    assert stats['test_pixel_error_pcutoff'] == pytest.approx((5 + 10) / 2)  # confidences 0.9 and 0.7
    assert stats['test_keypoints_above_pcutoff'] == 2 and stats['pcutoff'] == 0.6


def test_pck_counts_found_keypoints_within_the_radius_over_all_labelled_ones(single_animal):
    stats = single_animal.stats()
    assert stats['test_pck'] == pytest.approx(3 / 5)  # 5 px (on the radius), 0 px, 3 px; b of image 2 missed
    assert stats['pck_radius'] == 5.0


def test_images_never_predicted_count_as_missed():
    metric = KeypointError({1: [individual((1, 1), (2, 2), (3, 3))], 2: [individual((1, 1), None, None)]},
                           {'test': [1], 'train': [2]}, keypoint_names=NAMES)
    metric.accumulate([prediction([[1, 1, 1.0], [2, 2, 1.0], [3, 3, 1.0]], score=1.0)], {'image_id': 1})
    stats = metric.stats()
    assert stats['test_pixel_error'] == 0.0 and stats['test_pck'] == 1.0
    assert stats['train_pixel_error'] is None and stats['train_pck'] == 0.0
    assert stats['train_images'] == 1 and stats['train_labelled_keypoints'] == 1


def test_several_animals_are_matched_by_optimal_oks_assignment_not_by_order():
    p, q = individual((0, 0), (10, 0), (20, 0)), individual((100, 100), (110, 100), (120, 100))
    metric = KeypointError({1: [p, q]}, {'test': [1]}, keypoint_names=NAMES, multi_animal=True, pck_radius=1.5)
    metric.accumulate([prediction([[101, 100, 1], [110, 100, 1], [120, 100, 1]], score=0.9),  # near q
                       prediction([[0, 2, 1], [10, 0, 1], [20, 0, 1]], score=0.8)],  # near p
                      {'image_id': 1})
    stats = metric.stats()
    assert stats['test_pixel_error'] == pytest.approx((1 + 2) / 6)
    assert stats['test_pck'] == pytest.approx(5 / 6)  # the 2 px error is beyond 1.5 px


def test_an_animal_without_a_prediction_is_missed():
    p, q = individual((0, 0), (10, 0), (20, 0)), individual((100, 100), (110, 100), (120, 100))
    metric = KeypointError({1: [p, q]}, {'test': [1]}, keypoint_names=NAMES, multi_animal=True)
    metric.accumulate([prediction([[0, 0, 1], [10, 0, 1], [20, 0, 1]], score=0.9)], {'image_id': 1})
    stats = metric.stats()
    assert stats['test_pixel_error'] == 0.0 and stats['test_found_keypoints'] == 3
    assert stats['test_pck'] == pytest.approx(0.5)


def test_oks_is_the_mean_gaussian_similarity_over_labelled_keypoints_scaled_by_their_box():
    gt = np.array(individual((0, 0), (30, 40), None), dtype=np.float64)  # box 30 x 40: s^2 = 1200
    # 2 s^2 (2 sigma)^2 = 2 * 1200 * 0.04 = 96: a squared error of 96 gives exp(-1)
    pred = np.array([[math.sqrt(96), 0, 1], [30, 40, 1], [500, 500, 1]])
    assert oks(pred, gt, sigma=0.1) == pytest.approx((math.exp(-1) + 1) / 2)
    pred[1, 2] = 0.0  # not found: contributes 0
    assert oks(pred, gt, sigma=0.1) == pytest.approx(math.exp(-1) / 2)


def test_single_animal_ground_truth_with_two_individuals_is_refused():
    with pytest.raises(ValueError, match='image 4 has 2 labelled individuals'):
        KeypointError({4: [individual((0, 0), (1, 1), (2, 2))] * 2}, {'test': [4]}, keypoint_names=NAMES)


def test_names_are_the_scores_per_group_in_order(single_animal):
    assert single_animal.names == ('test_pixel_error', 'test_pixel_error_pcutoff', 'test_pck')
    stats = single_animal.stats()
    assert set(single_animal.names) <= set(stats)
    two_groups = KeypointError({1: [individual((1, 1), None, None)]}, {'test': [1], 'train': [1]},
                               keypoint_names=NAMES)
    assert two_groups.names[3:] == ('train_pixel_error', 'train_pixel_error_pcutoff', 'train_pck')


def test_limited_to_the_predicted_images_the_others_do_not_count():
    metric = KeypointError({1: [individual((1, 1), (2, 2), (3, 3))], 2: [individual((1, 1), None, None)]},
                           {'test': [1], 'train': [2]}, keypoint_names=NAMES)
    metric.accumulate([prediction([[1, 1, 1.0], [2, 2, 1.0], [3, 3, 1.0]], score=1.0)], {'image_id': 1})
    metric.limit_to([1])  # --eval-n-images 1: image 2 was never tried
    stats = metric.stats()
    assert stats['test_pck'] == 1.0 and stats['test_images'] == 1
    assert stats['train_images'] == 0 and stats['train_pck'] is None
