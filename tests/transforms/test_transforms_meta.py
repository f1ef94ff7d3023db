"""meta (offset, scale, rotation, hflip, valid_area) maps current coordinates back to the original image."""

import numpy as np
import pytest
import torch

import openfields.transforms as T
from transforms_samples import HFLIP, KEYPOINTS, coco_sample, normalized_coco, single_pixel_sample


def test_normalize_fills_meta():
    image, anns, meta = normalized_coco()
    np.testing.assert_array_equal(meta['offset'], [0, 0])
    np.testing.assert_array_equal(meta['scale'], [1, 1])
    assert meta['rotation']['angle'] == 0.0
    assert meta['hflip'] is False
    np.testing.assert_array_equal(meta['valid_area'], [0, 0, 640, 427])
    np.testing.assert_array_equal(meta['width_height'], [640, 427])
    assert anns[0]['keypoints'].shape == (5, 3) and anns[0]['keypoints'].dtype == np.float32
    assert anns[0]['bbox'].dtype == np.float32


def test_map_back_after_rescale_absolute_and_center_pad():
    image, anns, meta = coco_sample()
    original = np.array(anns[0]['keypoints'], dtype=np.float64).reshape(-1, 3)
    _, out, meta = T.Compose([T.NormalizeAnnotations(), T.RescaleAbsolute(385), T.CenterPad(385)])(
        image, anns, meta)
    back = T.keypoints_to_original(out[0]['keypoints'], meta)
    assert np.abs(back[:, :2] - original[:, :2]).max() < 1.0
    # and the predicted pixel of a bright pixel maps back within 1 px (pixel-centre convention)
    img, anns1, meta1 = single_pixel_sample(640, 427, 333, 111)
    img, anns1, meta1 = T.Compose([T.RescaleAbsolute(385), T.CenterPad(385, fill=(0, 0, 0))])(img, anns1, meta1)
    found = np.asarray(img).sum(axis=2)
    j, i = np.unravel_index(found.argmax(), found.shape)
    assert np.abs(T.to_original(np.array([[i, j]]), meta1)[0] - (333, 111)).max() <= 1.0


CHAINS = {
    'flip-scale-rotate-crop-pad': [T.HFlip(KEYPOINTS, HFLIP), T.RescaleRelative((0.5, 1.5)), T.RotateUniform(30.0),
                                   T.Crop(300), T.CenterPad(320, fill=None)],
    'scale-rotate90-crop-pad': [T.RescaleRelative((0.5, 1.5)), T.RotateBy90(5.0), T.Crop(300), T.SquarePad()],
    'rotate-flip-crop-tight': [T.RotateUniform(30.0), T.HFlip(KEYPOINTS, HFLIP), T.Crop(250),
                               T.CenterPadTight(16)],
    'pad-rotate-flip-rotate': [T.CenterPad(700), T.Rotate(20.0), T.HFlip(KEYPOINTS, HFLIP), T.Rotate(-75.0)],
    'rotate-isotropic-rescale': [T.Rotate(33.0), T.RescaleRelative((0.5, 0.5), stretch_range=None), T.Crop(200)],
}


@pytest.mark.parametrize('name', sorted(CHAINS))
@pytest.mark.parametrize('seed', range(3))
def test_round_trip(name, seed):
    torch.manual_seed(seed)
    image, anns, meta = T.NormalizeAnnotations()(*coco_sample())
    original = anns[0]['keypoints'].copy()
    image, out, meta = T.Compose(CHAINS[name])(image, anns, meta)
    perm = [KEYPOINTS.index(HFLIP.get(n, n)) for n in KEYPOINTS]
    back = T.keypoints_to_original(out[0]['keypoints'], meta, perm)
    # exact up to float32 storage, except the slight non-uniformity of a resize after a rotation
    tolerance = 0.6 if 'isotropic' in name else 1e-2
    np.testing.assert_allclose(back, original, atol=tolerance)
    kp = original if not meta['hflip'] else original[perm]
    np.testing.assert_allclose(T.to_current(kp[:, :2], meta), out[0]['keypoints'][:, :2], atol=tolerance)


def test_valid_area_center_pad_exact():
    image, anns, meta = T.NormalizeAnnotations()(*coco_sample(100, 60))
    image, anns, meta = T.CenterPad((121, 91))(image, anns, meta)
    np.testing.assert_array_equal(meta['valid_area'], [10, 15, 100, 60])
    array = np.asarray(image)
    inside = np.zeros(array.shape[:2], dtype=bool)
    inside[15:75, 10:110] = True
    assert (array[~inside] == T.EVAL_FILL).all()
    np.testing.assert_array_equal(array[inside].reshape(60, 100, 3), np.asarray(coco_sample(100, 60)[0]))


def test_valid_area_center_pad_tight_and_square():
    image, _, meta = T.CenterPadTight(16)(*single_pixel_sample(50, 20))
    assert image.size == (65, 33)
    np.testing.assert_array_equal(meta['valid_area'], [7, 6, 50, 20])
    image, _, meta = T.SquarePad()(*single_pixel_sample(50, 20))
    assert image.size == (50, 50)
    np.testing.assert_array_equal(meta['valid_area'], [0, 15, 50, 20])


@pytest.mark.parametrize('seed', range(5))
def test_valid_area_after_crop_inside_image(seed):
    torch.manual_seed(seed)
    sample = T.NormalizeAnnotations()(*coco_sample())
    sample = T.CenterPad(700)(*sample)
    image, anns, meta = T.Crop(300)(*sample)
    x, y, w, h = meta['valid_area']
    assert 0 <= x and 0 <= y and x + w <= image.size[0] and y + h <= image.size[1] and w > 0 and h > 0


def test_valid_area_rotation_90():
    sample = T.CenterPad((80, 60))(*single_pixel_sample(50, 20))
    np.testing.assert_array_equal(sample[2]['valid_area'], [15, 20, 50, 20])
    _, _, meta = T.rotate(*sample, 90.0)
    # pixel columns 15..64 become rows 79-64..79-15, rows 20..39 become columns 20..39
    np.testing.assert_allclose(meta['valid_area'], [20, 15, 20, 50])


def test_valid_area_rotation_uniform_inside_canvas():
    image, _, meta = T.rotate(*single_pixel_sample(50, 20), 30.0)
    x, y, w, h = meta['valid_area']
    assert x >= 0 and y >= 0 and x + w <= image.size[0] + 1e-6 and y + h <= image.size[1] + 1e-6
    assert w > 50 * 0.86 and h > 50 * 0.5
