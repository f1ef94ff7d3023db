"""Annotation handling: normalisation, left/right swap, boxes and crowd regions, no mutation of inputs."""

import copy

import numpy as np
import PIL.Image
import pytest
import torch

import openfields.transforms as T
from transforms_samples import HFLIP, KEYPOINTS, coco_sample, normalized_coco


def test_normalize_converts_and_fills():
    image = PIL.Image.new('L', (30, 20))
    anns = [{'keypoints': [1, 2, 2, 5, 9, 1, 0, 0, 0]}, {'bbox': [1, 1, 3, 3], 'iscrowd': 1}]
    image, out, meta = T.NormalizeAnnotations()(image, anns, {})
    assert image.mode == 'RGB'
    assert out[0]['keypoints'].shape == (3, 3)
    np.testing.assert_array_equal(out[0]['bbox'], [1, 2, 4, 7])  # from labelled keypoints only
    assert out[0]['iscrowd'] == 0 and out[0]['category_id'] == 1
    assert out[1]['keypoints'].shape == (0, 3) and out[1]['iscrowd'] == 1
    assert anns[0]['keypoints'] == [1, 2, 2, 5, 9, 1, 0, 0, 0] and 'bbox' not in anns[0]


def test_hflip_swaps_and_mirrors():
    image, anns, meta = normalized_coco()
    _, out, meta2 = T.HFlip(KEYPOINTS, HFLIP)(image, anns, meta)
    left_eye, right_eye = KEYPOINTS.index('left_eye'), KEYPOINTS.index('right_eye')
    # the left_eye row of the output is the mirrored right_eye of the input
    np.testing.assert_allclose(out[0]['keypoints'][left_eye], [639 - 110, 45, 1])
    np.testing.assert_allclose(out[0]['keypoints'][right_eye], [639 - 90, 45, 2])
    np.testing.assert_allclose(out[0]['keypoints'][0], [639 - 100, 50, 2])
    np.testing.assert_allclose(out[0]['bbox'], [639 - 120, 30, 40, 180])
    np.testing.assert_allclose(out[2]['bbox'], [639 - 600, 300, 100, 100])  # crowd box moves too
    assert meta2['hflip'] is True and meta['hflip'] is False


def test_hflip_twice_is_identity():
    flip = T.HFlip(KEYPOINTS, HFLIP)
    image, anns, meta = normalized_coco()
    image2, out, meta2 = flip(*flip(image, anns, meta))
    for a, b in zip(anns, out):
        np.testing.assert_array_equal(a['keypoints'], b['keypoints'])
        np.testing.assert_array_equal(a['bbox'], b['bbox'])
    np.testing.assert_array_equal(np.asarray(image2), np.asarray(image))
    assert meta2['hflip'] is False
    np.testing.assert_allclose(meta2['offset'], [0, 0], atol=1e-9)


TRANSFORMS = [
    T.HFlip(KEYPOINTS, HFLIP),
    T.RescaleRelative(),
    T.RescaleAbsolute(200),
    T.Crop(300),
    T.CenterPad(700, fill=None),
    T.CenterPadTight(32),
    T.SquarePad(),
    T.RotateUniform(30.0),
    T.RotateBy90(10.0),
    T.Blur(),
    T.ColorJitter(),
    T.RandomJpeg(p=1.0),
    T.RandomGrayscale(p=1.0),
]


@pytest.mark.parametrize('transform', TRANSFORMS, ids=repr)
def test_inputs_not_mutated(transform):
    torch.manual_seed(0)
    image, anns, meta = normalized_coco()
    anns_before, meta_before = copy.deepcopy(anns), copy.deepcopy(meta)
    pixels_before = np.asarray(image).copy()
    _, out, meta_out = transform(image, anns, meta)
    for a, b in zip(anns, anns_before):
        np.testing.assert_array_equal(a['keypoints'], b['keypoints'])
        np.testing.assert_array_equal(a['bbox'], b['bbox'])
    for key in ('offset', 'scale', 'valid_area'):
        np.testing.assert_array_equal(meta[key], meta_before[key])
    assert meta['rotation'] == meta_before['rotation'] and meta['hflip'] == meta_before['hflip']
    np.testing.assert_array_equal(np.asarray(image), pixels_before)
    if out is anns:  # photometric transforms pass annotations through untouched
        return
    # geometric transforms return copies: modifying the output does not reach the input either
    out[0]['keypoints'][:] = -1
    meta_out['offset'][:] = -1
    assert (anns[0]['keypoints'] != -1).any() and (meta['offset'] != -1).all()


def test_boxes_follow_rotation_90():
    image, anns, meta = normalized_coco()
    image2, out, _ = T.rotate(image, anns, meta, 90.0)
    assert image2.size == (427, 640)
    # (x, y) -> (y, (W - 1) - x) for a counter-clockwise quarter turn
    x, y, w, h = anns[2]['bbox']
    np.testing.assert_allclose(out[2]['bbox'], [y, 639 - (x + w), h, w])
    kp = anns[0]['keypoints']
    np.testing.assert_allclose(out[0]['keypoints'][:, 0], kp[:, 1])
    np.testing.assert_allclose(out[0]['keypoints'][:, 1], 639 - kp[:, 0])


def test_boxes_follow_uniform_rotation():
    image, anns, meta = normalized_coco()
    _, out, _ = T.rotate(image, anns, meta, 30.0)
    for before, after in zip(anns, out):
        x, y, w, h = after['bbox']
        c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
        bw, bh = before['bbox'][2:]
        np.testing.assert_allclose([w, h], [bw * c + bh * s, bw * s + bh * c], rtol=1e-5)
        labelled = after['keypoints'][after['keypoints'][:, 2] > 0]
        if len(labelled):  # keypoints stay inside their box
            assert (labelled[:, 0] >= x - 1e-3).all() and (labelled[:, 0] <= x + w + 1e-3).all()
            assert (labelled[:, 1] >= y - 1e-3).all() and (labelled[:, 1] <= y + h + 1e-3).all()


def test_boxes_follow_scale_and_crop():
    image, anns, meta = normalized_coco()
    _, out, meta2 = T.rescale(image, anns, meta, (1279, 853))  # factor exactly 2 in pixel-centre terms
    np.testing.assert_allclose(out[2]['bbox'], [1000, 600, 200, 200])
    _, out, _ = T.crop(image, anns, meta, 450, 250, 100, 100)
    np.testing.assert_allclose(out[2]['bbox'], [50, 50, 49.5, 49.5])  # clipped at the pixel extent
    np.testing.assert_allclose(out[0]['keypoints'][0, :2], [100 - 450, 50 - 250])


def test_crop_prefers_area_of_interest():
    torch.manual_seed(0)
    image, anns, meta = T.NormalizeAnnotations()(*coco_sample(1200, 900))
    anns = [anns[1]]  # one person around (380..420, 130..210)
    for _ in range(20):
        _, out, meta2 = T.Crop(300)(image, anns, meta)
        x, y, w, h = out[0]['bbox']
        assert x >= 0 and y >= 0 and x + w <= 300 and y + h <= 300
    assert T.area_of_interest(anns, 1200, 900).tolist() == [330, 80, 470, 260]
