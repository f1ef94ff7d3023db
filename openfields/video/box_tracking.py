"""Top-down on consecutive frames with the detector on every n-th frame only (``openfields.video --detect-every``).

A top-down model runs two networks per frame: the detector on the whole frame, the pose network on each box's
crop. On a CPU the detector is most of the time (docs/topdown.md: 321 of 346 ms a frame for the openfield
mouse). Between two frames of a video an animal moves a few pixels, so pose trackers take the boxes of a frame
from the poses of the frame before: here, around the keypoints each pose found (confidence > 0), grown
``box_scale`` times about their centre (1.25: MMPose's and RTMPose's trackers use the same factor), keeping
the score of the detector's box the track started from (a pose's score is its crop score times that: it does
not decay along the track). The detector runs on every ``every``-th frame, and on any frame after one where
no pose was found; an individual that enters between two detections is found at the next one.
docs/benchmarks.md measures what it costs in accuracy and gains in speed.
"""

from __future__ import annotations

import numpy as np
import PIL.Image

from ..decoder.annotation import Annotation, inverse_transform

# MMPose's and RTMPose's pose trackers grow the keypoints' box by this factor for the next frame
DEFAULT_BOX_SCALE = 1.25


def boxes_around(poses: list[Annotation], scale: float) -> np.ndarray:
    """``(N, 4)`` x0, y0, x1, y1 boxes around each pose's found keypoints, grown ``scale`` times about their
    centre; a pose with fewer than two found keypoints gives an empty box (skipped by the crops)."""
    boxes = np.zeros((len(poses), 4), dtype=np.float32)
    for i, pose in enumerate(poses):
        found = pose.data[pose.data[:, 2] > 0, :2]
        if len(found) < 2:
            continue
        low, high = found.min(axis=0), found.max(axis=0)
        centre, half = (low + high) / 2, (high - low) * scale / 2
        boxes[i] = [*(centre - half), *(centre + half)]
    return boxes


class DetectEvery:
    """A :class:`~openfields.inference.pipeline.TopDown` model for the frames of one video, in order: its
    detector on every ``every``-th frame, boxes around the last frame's poses in between (module docstring).
    ``poses``, ``prepare``, ``seconds`` and ``describe`` as the model's; ``n_detected``: frames the detector saw."""

    method = 'td'
    plots_fields = False

    def __init__(self, model, every: int, box_scale: float = DEFAULT_BOX_SCALE):
        if every < 1:
            raise ValueError(f'--detect-every must be >= 1, got {every}')
        if box_scale < 1:
            raise ValueError(f'--tracked-box-scale must be >= 1, got {box_scale}')
        self.model, self.every, self.box_scale = model, every, box_scale
        self.prepare, self.seconds = model.prepare, model.seconds
        self.head_metas, self.source = model.head_metas, model.source
        self.tracked: tuple[np.ndarray, np.ndarray] | None = None  # boxes and scores for the next frame
        self.since_detection = 0
        self.n_detected = 0

    def describe(self) -> str:
        return (f'{self.model.describe()}; the detector on one frame in {self.every}, boxes grown '
                f'{self.box_scale}x around the last frame\'s poses in between')

    def poses(self, samples: list[tuple], fields_seen=None) -> list[list]:
        if fields_seen is not None:
            raise ValueError('debug plots of the fields (--debug-indices) are for bottom-up models')
        return [self.frame_poses(image, meta) for image, meta in samples]

    def frame_poses(self, image: PIL.Image.Image, meta: dict) -> list[Annotation]:
        """The next frame's poses in its original pixels."""
        if self.tracked is None or self.since_detection + 1 >= self.every:
            boxes, scores = self.model.detected_boxes(image)
            self.since_detection, self.n_detected = 0, self.n_detected + 1
        else:
            boxes, scores = self.tracked
            self.since_detection += 1
        found = self.model.boxed_poses(image, boxes, scores)
        poses = [pose for _, pose in found]
        self.tracked = (boxes_around(poses, self.box_scale),
                        np.asarray([scores[index] for index, _ in found], dtype=np.float64)) if found else None
        return [inverse_transform(pose, meta) for pose in poses]
