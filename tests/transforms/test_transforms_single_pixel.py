"""A bright pixel must stay on its keypoint through every geometric transform."""

import numpy as np
import pytest
import torch

import openfields.transforms as T
from transforms_samples import HFLIP, KEYPOINTS, assert_pixel_on_keypoint, brightest, single_pixel_sample


@pytest.mark.parametrize('size', [(31, 22), (122, 86), (151, 43), (20, 80)])
def test_rescale_fixed_size(size):
    image, anns, meta = T.rescale(*single_pixel_sample(), size)
    assert image.size == size
    assert_pixel_on_keypoint(image, anns)


@pytest.mark.parametrize('long_edge', [33, 61, 97, 129, 385])
def test_rescale_absolute(long_edge):
    image, anns, meta = T.RescaleAbsolute(long_edge)(*single_pixel_sample())
    assert max(image.size) == long_edge
    assert_pixel_on_keypoint(image, anns)


@pytest.mark.parametrize('seed', range(6))
def test_rescale_relative(seed):
    torch.manual_seed(seed)
    sample = single_pixel_sample()
    image, anns, meta = T.RescaleRelative((0.25, 2.0))(*sample)
    factor = max(meta['scale'])
    assert_pixel_on_keypoint(image, anns, tolerance=factor + 1.0)
    # a resize maps pixel centres exactly, so the tolerance of 1 px holds as well
    assert_pixel_on_keypoint(image, anns, tolerance=1.0)


def test_rescale_relative_range_and_stretch():
    torch.manual_seed(0)
    t = T.RescaleRelative((0.5, 2.0), stretch_range=(0.75, 1.33))
    sample = single_pixel_sample(101, 101, 50, 50)
    ratios = []
    for _ in range(40):
        image, _, meta = t(*sample)
        assert 0.5 * 0.75 * 0.95 <= image.size[0] / 101 <= 2.0 * 1.33 * 1.05
        assert 0.5 * 0.95 <= image.size[1] / 101 <= 2.0 * 1.05
        ratios.append(meta['scale'][0] / meta['scale'][1])
    assert min(ratios) < 0.9 and max(ratios) > 1.1


@pytest.mark.parametrize('seed', range(5))
def test_crop(seed):
    torch.manual_seed(seed)
    image, anns, meta = T.Crop(25, use_area_of_interest=False)(*single_pixel_sample(61, 43, 30, 20))
    assert image.size == (25, 25)
    kp = anns[0]['keypoints'][0, :2]
    if 0 <= kp[0] < 25 and 0 <= kp[1] < 25:
        assert_pixel_on_keypoint(image, anns, tolerance=0.0)
    x, y, w, h = meta['valid_area']
    assert x >= 0 and y >= 0 and x + w <= 25 and y + h <= 25


@pytest.mark.parametrize('target', [(81, 81), (61, 50), (100, 43)])
def test_center_pad(target):
    image, anns, meta = T.CenterPad(target)(*single_pixel_sample())
    assert image.size == target
    assert_pixel_on_keypoint(image, anns, tolerance=0.0)


def test_hflip_pixel():
    image, anns, meta = single_pixel_sample()
    anns[0]['keypoints'] = np.repeat(anns[0]['keypoints'], len(KEYPOINTS), axis=0)
    image, anns, meta = T.HFlip(KEYPOINTS, HFLIP)(image, anns, meta)
    assert anns[0]['keypoints'][0, 0] == 61 - 1 - 17
    assert_pixel_on_keypoint(image, anns, tolerance=0.0)


@pytest.mark.parametrize('seed', range(8))
def test_rotate_by_90(seed):
    torch.manual_seed(seed)
    image, anns, meta = T.RotateBy90(fill=(0, 0, 0))(*single_pixel_sample())
    assert meta['rotation']['angle'] % 90 == 0
    assert_pixel_on_keypoint(image, anns, tolerance=0.0)


@pytest.mark.parametrize('angle', [90, 180, 270, -90])
def test_rotate_quarters_exact(angle):
    image, anns, meta = T.rotate(*single_pixel_sample(), angle, fill=(0, 0, 0))
    assert image.size == ((43, 61) if angle % 180 else (61, 43))
    assert_pixel_on_keypoint(image, anns, tolerance=0.0)


def test_rotate_90_is_counter_clockwise():
    # a pixel right of the centre moves above the centre
    image, anns, meta = T.rotate(*single_pixel_sample(61, 43, 50, 21), 90.0, fill=(0, 0, 0))
    assert tuple(brightest(image)) == (21, 60 - 50)


@pytest.mark.parametrize('angle', [1.0, 17.0, -30.0, 45.0, 123.0, 91.5])
def test_rotate_fixed_angle(angle):
    image, anns, meta = T.rotate(*single_pixel_sample(), angle, fill=(0, 0, 0))
    assert_pixel_on_keypoint(image, anns)


@pytest.mark.parametrize('seed', range(5))
def test_rotate_uniform(seed):
    torch.manual_seed(seed)
    image, anns, meta = T.RotateUniform(30.0, fill=(0, 0, 0))(*single_pixel_sample())
    assert -30.0 <= meta['rotation']['angle'] <= 30.0
    assert_pixel_on_keypoint(image, anns)


def test_rotate_by_90_with_perturbation():
    torch.manual_seed(3)
    for _ in range(5):
        image, anns, meta = T.RotateBy90(angle_perturbation=10.0, fill=(0, 0, 0))(*single_pixel_sample())
        assert_pixel_on_keypoint(image, anns)


def test_chain_without_color():
    torch.manual_seed(1)
    chain = T.Compose([
        T.RandomApply(T.HFlip(['a'], {}), 1.0),
        T.RescaleRelative((0.8, 1.5)),
        T.RotateUniform(30.0, fill=(0, 0, 0)),
        T.Crop(71, use_area_of_interest=True),
        T.CenterPad(81, fill=(0, 0, 0)),
    ])
    for _ in range(5):
        image, anns, meta = chain(*single_pixel_sample(61, 43, 30, 20))
        assert image.size == (81, 81)
        assert_pixel_on_keypoint(image, anns)
