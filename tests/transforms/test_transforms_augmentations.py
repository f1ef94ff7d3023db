"""DeepLabCut's augmentations: keypoints stay on the image content, keypoints pushed out become unlabelled."""

import numpy as np
import PIL.Image
import pytest
import torch

import openfields.transforms as T
from transforms_samples import assert_spots_under_keypoints, marker_sample, spot_centre

POINTS = [(20, 15), (60, 45), (100, 80), (8, 70), (110, 10), (64, 30)]
BLACK = (0, 0, 0)


@pytest.mark.parametrize('seed', range(6))
def test_affine_keeps_every_labelled_keypoint_on_its_spot(seed):
    torch.manual_seed(seed)
    transform = T.Affine(rotation=40.0, scaling=(0.5, 1.5), translation=15.0, fill=BLACK)
    image, anns, meta = transform(*marker_sample(POINTS))
    assert image.size == (121, 91)  # same canvas
    assert_spots_under_keypoints(image, anns)


def test_affine_maps_back_to_the_original_image():
    image, anns, meta = T.affine(*marker_sample(POINTS), angle=25.0, scale=1.2, shift=(4.0, -6.0), fill=BLACK)
    original = T.keypoints_to_original(anns[0]['keypoints'], meta)
    np.testing.assert_allclose(original[:, :2], np.array(POINTS, dtype=np.float32), atol=1e-3)


def test_keypoints_pushed_out_of_the_image_become_unlabelled_not_clamped():
    _, anns, meta = T.affine(*marker_sample(POINTS), angle=0.0, scale=1.0, shift=(30.0, 0.0), fill=BLACK)
    keypoints = anns[0]['keypoints']
    np.testing.assert_allclose(keypoints[:, 0], np.array(POINTS)[:, 0] + 30.0)  # moved, not clamped
    assert keypoints[:, 2].tolist() == [2, 2, 0, 2, 0, 2]  # x = 130 and 140 are beyond the 121 px width
    assert meta['valid_area'].tolist() == [30.0, 0.0, 91.0, 91.0]  # the uncovered strip is padding


def test_affine_scaling_down_leaves_the_border_outside_the_valid_area():
    _, _, meta = T.affine(*marker_sample(POINTS), angle=0.0, scale=0.5, fill=BLACK)
    x, y, w, h = meta['valid_area']
    assert (x, y, w, h) == pytest.approx((30.0, 22.5, 61.0, 46.0), abs=0.5)


@pytest.mark.parametrize('method', T.CROP_SAMPLING_METHODS)
@pytest.mark.parametrize('seed', range(3))
def test_crop_sampling_keeps_keypoints_on_their_spots_and_unlabels_those_cut_off(method, seed):
    torch.manual_seed(seed)
    image, anns, meta = T.KeypointAwareCrop(48, method, max_shift=0.2)(*marker_sample(POINTS))
    assert image.size == (48, 48)
    x0, y0 = meta['offset']
    for (x, y), (cx, cy, v) in zip(POINTS, anns[0]['keypoints']):
        assert (cx, cy) == (x - x0, y - y0)
        assert (v > 0) == (0 <= cx < 48 and 0 <= cy < 48)
    assert_spots_under_keypoints(image, anns, tolerance=0.0)


def test_keypoint_crops_always_contain_a_keypoint_without_shift():
    torch.manual_seed(0)
    crop = T.KeypointAwareCrop(24, 'keypoints', max_shift=0.0)
    for _ in range(20):
        _, anns, _ = crop(*marker_sample(POINTS))
        assert anns[0]['keypoints'][:, 2].max() > 0


def test_density_crops_favour_crowded_keypoints():
    cluster = [(30 + 3 * i, 30) for i in range(5)]
    isolated = (100, 75)

    def times_isolated_is_kept(method):
        torch.manual_seed(0)
        crop = T.KeypointAwareCrop(16, method, max_shift=0.0)
        return sum(crop(*marker_sample(cluster + [isolated]))[1][0]['keypoints'][5, 2] > 0 for _ in range(120))
    # keypoints: 1 in 6 draws; density: weight 1 against 5 x 5 for the cluster, 1 in 26
    assert times_isolated_is_kept('density') < times_isolated_is_kept('keypoints') / 2


def test_crop_sampling_without_keypoints_falls_back_to_uniform():
    torch.manual_seed(0)
    image, anns, meta = T.NormalizeAnnotations()(PIL.Image.new('RGB', (90, 60)), [], {'image_id': 1})
    image, _, meta = T.KeypointAwareCrop(32, 'density')(image, anns, meta)
    assert image.size == (32, 32)


@pytest.mark.parametrize('seed', range(3))
def test_auto_padding_rounds_each_side_up_to_a_multiple_plus_one_and_keeps_keypoints_on_their_spots(seed):
    torch.manual_seed(seed)
    image, anns, meta = T.PadToMultiple(32, fill=BLACK)(*marker_sample(POINTS))
    assert image.size == (129, 97)  # 4 * 32 + 1, 3 * 32 + 1
    x, y, w, h = meta['valid_area']
    assert (w, h) == (121, 91) and 0 <= x <= 8 and 0 <= y <= 6
    assert_spots_under_keypoints(image, anns, tolerance=0.0)


@pytest.mark.parametrize('size', [(200, 200), (60, 90), (241, 100)])
def test_resize_keeping_the_aspect_ratio_pads_to_the_exact_size(size):
    image, anns, meta = T.ResizeKeepRatio(*size, fill=BLACK)(*marker_sample(POINTS))
    assert image.size == size
    assert meta['scale'][0] == pytest.approx(meta['scale'][1], rel=0.02)  # aspect ratio kept
    x, y, w, h = meta['valid_area']
    assert (x, y) == (0, 0) and (w == size[0] or h == size[1])  # padded at the bottom or right only
    assert_spots_under_keypoints(image, anns, tolerance=0.5)


@pytest.mark.parametrize('seed', range(4))
def test_motion_blur_smears_symmetrically_so_spots_stay_centred_on_keypoints(seed):
    torch.manual_seed(seed)
    sample = marker_sample(POINTS)
    image, anns, _ = T.MotionBlur()(*sample)
    assert not np.array_equal(np.asarray(image), np.asarray(sample[0]))
    assert_spots_under_keypoints(image, anns, tolerance=0.25)


def test_histogram_equalisation_changes_the_image_and_keeps_the_spots():
    image, anns, _ = marker_sample(POINTS)
    equalised, anns2, _ = T.HistogramEqualization()(image, anns, {})
    assert np.asarray(equalised).mean() > 2 * np.asarray(image).mean()  # dark image brightened
    assert_spots_under_keypoints(equalised, anns2, tolerance=0.5)


def test_gaussian_noise_has_a_standard_deviation_up_to_std():
    torch.manual_seed(0)
    gray = PIL.Image.new('RGB', (100, 100), (128, 128, 128))
    deviations = []
    for _ in range(20):
        noisy, _, _ = T.GaussianNoise(std=12.75, p=1.0)(gray, [], {})
        deviations.append((np.asarray(noisy).astype(float) - 128).std())
    assert max(deviations) <= 12.75 * 1.05 and max(deviations) > 6 and min(deviations) < max(deviations) / 2
    image, anns, _ = T.GaussianNoise(std=12.75, p=1.0)(*marker_sample(POINTS))
    assert_spots_under_keypoints(image, anns, tolerance=0.5)


def test_covering_unlabels_exactly_the_keypoints_under_a_rectangle():
    torch.manual_seed(0)
    points = [(x, y) for x in range(5, 120, 12) for y in range(5, 90, 12)]
    white = PIL.Image.new('RGB', (121, 91), (255, 255, 255))
    sample = T.NormalizeAnnotations()(white, [{'keypoints': [[x, y, 2] for x, y in points]}], {'image_id': 1})
    n_covered = 0
    for _ in range(10):
        image, anns, _ = T.Covering(max_holes=10, size_range=(0.05, 0.2), fill=BLACK)(*sample)
        pixels = np.asarray(image)
        for x, y, v in anns[0]['keypoints']:
            covered = pixels[int(y), int(x)].sum() == 0
            assert (v == 0) == covered
            n_covered += covered
    assert n_covered > 0


def test_the_full_pipeline_with_every_extra_keeps_keypoints_on_their_spots():
    extras = T.ExtraAugmentation(affine=1.0, affine_rotation=20.0, affine_scaling=(0.8, 1.2), crop_sampling='hybrid',
                                 auto_padding=16, motion_blur=1.0, resize=(150, 110))
    pipeline = T.train_pipeline(60, color_jitter=False, jpeg=0.0, grayscale=0.0, upright_rotation=0.0,
                                stretch_range=None, extras=extras)
    pipeline = T.Compose(pipeline.transforms[:-2])  # up to the tensor conversion
    for transform in pipeline.transforms:  # black fills, so spots are the only bright content
        inner = getattr(transform, 'transform', transform)
        if hasattr(inner, 'fill'):
            inner.fill = BLACK
    torch.manual_seed(1)
    for _ in range(4):
        image, anns, meta = pipeline(*marker_sample(POINTS))
        assert image.size == (65, 65)  # the 60 px crop padded to 4 * 16 + 1
        assert_spots_under_keypoints(image, anns, tolerance=0.6)


def test_defaults_add_no_extra_augmentation():
    default = T.train_pipeline(385)
    names = {type(getattr(t, 'transform', t)).__name__ for t in default.transforms}
    assert names.isdisjoint({'Affine', 'KeypointAwareCrop', 'PadToMultiple', 'ResizeKeepRatio', 'MotionBlur',
                             'HistogramEqualization', 'Covering', 'GaussianNoise'})
    assert repr(default) == repr(T.train_pipeline(385, extras=T.ExtraAugmentation()))
