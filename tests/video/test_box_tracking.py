"""``--detect-every``: the detector on every n-th frame, boxes around the last frame's poses in between."""

import numpy as np
import pytest

from openfields import headmeta
from openfields.decoder.annotation import Annotation
from openfields.transforms.geometry import default_meta
from openfields.video import box_tracking

META = headmeta.Cif(name='cif', dataset='test', keypoints=['a', 'b', 'c'], sigmas=[0.1] * 3)
IDENTITY = default_meta({}, 200, 100)  # frames as they are: the poses come back in the same pixels


def pose(points, confidence=(0.9, 0.8, 0.7)):
    data = np.array([[x, y, c] for (x, y), c in zip(points, confidence)], dtype=np.float32)
    return Annotation(META, data, np.ones(3, dtype=np.float32))


def test_the_box_of_a_pose_spans_its_found_keypoints_grown_about_their_centre():
    boxes = box_tracking.boxes_around([pose([(10, 20), (30, 60), (99, 99)], (0.5, 0.5, 0.0))], scale=1.5)
    # found: (10, 20) and (30, 60): centre (20, 40), size 20 x 40 -> 30 x 60
    np.testing.assert_allclose(boxes, [[5, 10, 35, 70]])
    one_keypoint = box_tracking.boxes_around([pose([(10, 20), (0, 0), (0, 0)], (0.5, 0, 0))], scale=1.25)
    np.testing.assert_array_equal(one_keypoint, [[0, 0, 0, 0]])  # empty: no crop


class TopDownOnAMovingPoint:
    """A top-down model's two stages on frames of one individual that moves 4 px right per frame: the
    detector finds its 20 x 20 box (score 0.5), the pose stage finds the keypoints inside a box that holds it,
    scoring the pose 0.8 times the box's score (as poses_on_boxes does)."""

    def __init__(self):
        self.prepare, self.seconds, self.head_metas, self.source = None, {}, [META], None
        self.detected_on, self.boxes_seen = [], []

    def describe(self):
        return 'moving point'

    def detected_boxes(self, frame):
        self.detected_on.append(frame)
        x = 4 * frame
        return np.array([[x, 0, x + 20, 20]], dtype=np.float32), np.array([0.5])

    def boxed_poses(self, frame, boxes, scores):
        self.boxes_seen.append(np.array(boxes))
        x = 4 * frame
        inside = [i for i, (x0, _, x1, _) in enumerate(boxes) if x0 <= x + 2 and x + 18 <= x1]
        found = []
        for i in inside:
            p = pose([(x + 2, 2), (x + 18, 18), (x + 10, 10)])
            p.fixed_score = 0.8 * scores[i]
            found.append((i, p))
        return found


def test_the_detector_runs_on_every_nth_frame_and_the_poses_give_the_boxes_in_between():
    model = TopDownOnAMovingPoint()
    tracked = box_tracking.DetectEvery(model, every=3, box_scale=2.0)
    poses = tracked.poses([(frame, IDENTITY) for frame in range(7)])
    assert model.detected_on == [0, 3, 6] and tracked.n_detected == 3
    assert [len(p) for p in poses] == [1] * 7  # the 4 px steps stay inside the grown boxes
    # frame 1's box: around frame 0's keypoints (2..18) grown 2x about their centre
    np.testing.assert_allclose(model.boxes_seen[1], [[-6, -6, 26, 26]])
    # the detector's box score goes along the track: every pose scores 0.8 * 0.5
    assert {round(p[0].score, 6) for p in poses} == {0.4}


def test_a_frame_without_a_pose_sends_the_next_frame_to_the_detector():
    model = TopDownOnAMovingPoint()
    tracked = box_tracking.DetectEvery(model, every=100, box_scale=1.0)
    # boxes scaled 1.0 hold the keypoints 2..18 of the last frame only: the 4 px step leaves the box
    poses = tracked.poses([(frame, IDENTITY) for frame in range(4)])
    assert [len(p) for p in poses] == [1, 0, 1, 0]
    assert model.detected_on == [0, 2]


@pytest.mark.parametrize('every, scale, message', [(0, 1.25, '--detect-every must be >= 1, got 0'),
                                                   (2, 0.5, '--tracked-box-scale must be >= 1, got 0.5')])
def test_bad_settings_are_refused_naming_the_flag(every, scale, message):
    with pytest.raises(ValueError, match=message):
        box_tracking.DetectEvery(TopDownOnAMovingPoint(), every, scale)
