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


def marker_sample(points, width=121, height=91, sigma=1.5):
    """Black image with a Gaussian spot (peak 255, ``sigma`` px) on each point and one annotation whose
    keypoints are the points (all visible), normalized. Spots survive resizing and sub-pixel warps."""
    yy, xx = np.mgrid[:height, :width]
    gray = np.zeros((height, width))
    for x, y in points:
        gray = np.maximum(gray, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)))
    array = np.repeat(np.rint(255 * gray).astype(np.uint8)[:, :, None], 3, axis=2)
    keypoints = [[x, y, 2] for x, y in points]
    anns = [{'keypoints': keypoints, 'bbox': [0, 0, width, height], 'iscrowd': 0, 'category_id': 1}]
    return T.NormalizeAnnotations()(PIL.Image.fromarray(array), anns, {'image_id': 1})


def spot_centre(image, near, radius=4):
    """Brightness-weighted centre ``(x, y)`` of the image within ``radius`` px of the pixel ``near``."""
    gray = np.asarray(image).astype(np.float64).sum(axis=2)
    i, j = (int(round(v)) for v in near)
    x0, x1 = max(i - radius, 0), min(i + radius + 1, gray.shape[1])
    y0, y1 = max(j - radius, 0), min(j + radius + 1, gray.shape[0])
    window = gray[y0:y1, x0:x1]
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return np.array([(window * xx).sum(), (window * yy).sum()]) / window.sum()


def assert_spots_under_keypoints(image, anns, tolerance=0.5):
    """Every labelled keypoint lies inside the image and, unless the border cuts its spot, on the spot's
    centre."""
    width, height = image.size
    for x, y, v in anns[0]['keypoints']:
        inside = -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5
        if v > 0:
            assert inside, f'labelled keypoint ({x:.1f}, {y:.1f}) outside the {width}x{height} image'
            if min(x, y, width - 1 - x, height - 1 - y) < 4:
                continue
            found = spot_centre(image, (x, y))
            assert np.all(np.abs(found - (x, y)) <= tolerance), f'spot at {found} vs keypoint ({x}, {y})'
