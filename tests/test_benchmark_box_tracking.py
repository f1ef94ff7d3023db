"""tools/benchmark_box_tracking.py: the pan's speed, its ground truth moving with the frame, the pixel error."""

import math

import numpy as np
import PIL.Image

from openfields.plugins.dlc import project
from tools import benchmark_box_tracking as tracking


def test_the_pan_moves_a_few_pixels_a_frame():
    steps = [math.dist(tracking.shift(t), tracking.shift(t + 1)) for t in range(tracking.FRAMES_PER_PAN)]
    assert max(steps) < 9.7 and tracking.shift(0) == (0.0, 0.0)


def test_the_labels_move_with_the_panned_frame(tmp_path):
    image = np.zeros((150, 200, 3), dtype=np.uint8)
    image[10, 20] = 255  # a bright pixel where the keypoint is
    PIL.Image.fromarray(image).save(tmp_path / 'f.png')
    keypoints = np.array([[[20, 10, 2], [0, 0, 0]]], dtype=np.float32)
    frame = project.Frame(path='f.png', width=200, height=150, keypoints=keypoints, individuals=['a'], source='x')
    (tmp_path / 'video').mkdir()
    labels = tracking.panned_video([frame], tmp_path, tmp_path / 'video')
    assert len(labels) == tracking.FRAMES_PER_PAN
    t = 7
    dx, dy = tracking.shift(t)
    np.testing.assert_allclose(labels[t][0, :2], [20 + dx, 10 + dy])
    assert labels[t][1, 2] == 0  # unlabelled stays unlabelled
    moved = np.asarray(PIL.Image.open(tmp_path / 'video' / f'{t:05d}.png'))[..., 0]
    y, x = np.unravel_index(moved.argmax(), moved.shape)
    assert abs(x - (20 + dx)) <= 1 and abs(y - (10 + dy)) <= 1


def test_the_pixel_error_is_the_best_pose_s_distance_on_body_parts_both_have():
    truth = [np.array([[0, 0, 2], [10, 0, 2], [5, 5, 0]], dtype=np.float32)] * 2
    poses = [{'annotations': [{'score': 0.2, 'keypoints': [50, 50, 1] * 3},
                              {'score': 0.9, 'keypoints': [3, 4, 1, 10, 0, 0, 99, 99, 1]}]},
             {'annotations': []}]
    assert tracking.pixel_errors(poses, truth) == {0: 5.0}  # (3, 4) is 5 px off; the second part is not found
