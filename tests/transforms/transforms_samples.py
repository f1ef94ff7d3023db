"""Shared sample builders for the transform tests (no tests here; imported by the test_transforms_* modules)."""

import numpy as np
import PIL.Image

import openfields.transforms as T

KEYPOINTS = ['nose', 'left_eye', 'right_eye', 'left_ankle', 'right_ankle']
HFLIP = {'left_eye': 'right_eye', 'right_eye': 'left_eye', 'left_ankle': 'right_ankle',
         'right_ankle': 'left_ankle'}


def single_pixel_sample(width=61, height=43, x=17, y=9, value=255):
    """Black image with one bright pixel at (x, y) and a one-keypoint annotation on it, normalized."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[y, x] = value
    anns = [{'keypoints': [x, y, 2], 'bbox': [x - 2, y - 2, 4, 4], 'iscrowd': 0, 'category_id': 1}]
    return T.NormalizeAnnotations()(PIL.Image.fromarray(array), anns, {'image_id': 1})


def brightest(image):
    """(x, y) of the brightest pixel of a PIL image."""
    gray = np.asarray(image).astype(np.int64).sum(axis=2)
    j, i = np.unravel_index(gray.argmax(), gray.shape)
    return np.array([i, j], dtype=np.float64)


def assert_pixel_on_keypoint(image, anns, tolerance=1.0):
    kp = anns[0]['keypoints'][0, :2]
    found = brightest(image)
    assert np.all(np.abs(found - kp) <= tolerance), f'brightest pixel {found} vs keypoint {kp}'


def coco_sample(width=640, height=427, seed=0):
    """Random-texture image with two people (5 keypoints each), a crowd box and a keypoint-less box, as raw
    COCO json dicts."""
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    anns = [
        {'keypoints': [100, 50, 2, 90, 45, 2, 110, 45, 1, 92, 200, 2, 108, 200, 2], 'bbox': [80, 30, 40, 180],
         'iscrowd': 0, 'category_id': 1, 'id': 1},
        {'keypoints': [400, 150, 2, 390, 145, 2, 410, 145, 2, 0, 0, 0, 0, 0, 0], 'bbox': [380, 130, 40, 80],
         'iscrowd': 0, 'category_id': 1, 'id': 2},
        {'keypoints': [0] * 15, 'bbox': [500, 300, 100, 100], 'iscrowd': 1, 'category_id': 1, 'id': 3},
        {'keypoints': [0] * 15, 'bbox': [200, 250, 30, 60], 'iscrowd': 0, 'category_id': 1, 'id': 4},
    ]
    meta = {'image_id': 7, 'file_name': 'x.jpg', 'dataset': 'test'}
    return PIL.Image.fromarray(array), anns, meta


def normalized_coco():
    """``coco_sample()`` after NormalizeAnnotations."""
    return T.NormalizeAnnotations()(*coco_sample())
