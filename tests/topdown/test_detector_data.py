"""Detector samples (images with their individuals' boxes) and the box AP of a detector run."""

import json

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
import torch

from openfields.datasets.coco import CocoKeypoints, keypoint_category
from openfields.topdown import detector_data
from openfields.topdown.boxes import BoxSettings

BOXES = {1: [[20, 10, 30, 50]], 2: [[5, 5, 20, 20], [60, 30, 25, 35]]}  # image id -> x, y, w, h


def tiny_dataset(tmp_path) -> CocoKeypoints:
    """Two 120x90 images, each individual a white rectangle filling its bbox, two keypoints at its corners."""
    images, annotations = [], []
    for image_id, boxes in BOXES.items():
        image = PIL.Image.new('RGB', (120, 90))
        draw = PIL.ImageDraw.Draw(image)
        for x, y, w, h in boxes:
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=(255, 255, 255))
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id, 'category_id': 1,
                                'bbox': [x, y, w, h], 'iscrowd': 0,
                                'keypoints': [x + 2, y + 2, 2, x + w - 3, y + h - 3, 2]})
        image.save(tmp_path / f'{image_id}.png')
        images.append({'id': image_id, 'file_name': f'{image_id}.png'})
    data = {'images': images, 'annotations': annotations,
            'categories': [{'id': 1, 'name': 'box', 'keypoints': ['a', 'b'], 'skeleton': [[1, 2]]}]}
    (tmp_path / 'anns.json').write_text(json.dumps(data))
    return CocoKeypoints(data, tmp_path / 'anns.json', tmp_path, keypoint_category(data, 'anns.json', None),
                         lambda *sample: sample, dataset_name='tiny', min_kp_anns=0)


def white_inside(image: torch.Tensor, box) -> float:
    x0, y0, x1, y1 = [int(round(float(v))) for v in box]
    return float(image[:, y0 + 1:y1, x0 + 1:x1].mean())


@pytest.mark.parametrize('hflip', [0.0, 1.0])
def test_boxes_follow_the_resized_and_flipped_image(tmp_path, hflip):
    samples = detector_data.DetectionSamples(tiny_dataset(tmp_path), BoxSettings(), image_size=240, hflip=hflip)
    image, target, meta = samples[1]
    assert image.shape == (3, 180, 240) and meta['scale'] == 2.0
    assert target['boxes'].shape == (2, 4) and target['labels'].tolist() == [1, 1]
    for box in target['boxes']:
        assert white_inside(image, box) > 0.97  # the rectangle lies inside its box
    (x0, _, x1, _), _ = target['boxes']
    assert (x1 < 120) == (hflip == 0.0)  # the left rectangle moves to the right when flipped


def test_ground_truth_detections_score_an_ap_of_one_and_no_detections_zero(tmp_path):
    raw = tiny_dataset(tmp_path)

    class Oracle:
        def __init__(self, keep: bool):
            self.keep = keep

        def detect(self, images):
            boxes = torch.tensor(self.boxes.pop(0), dtype=torch.float32) if self.keep else torch.zeros((0, 4))
            return [{'boxes': boxes, 'scores': torch.ones(len(boxes)), 'labels': torch.ones(len(boxes))}]

    for keep, expected in ((True, 1.0), (False, 0.0)):
        oracle = Oracle(keep)
        oracle.boxes = [[[2 * x, 2 * y, 2 * (x + w), 2 * (y + h)] for x, y, w, h in BOXES[i]] for i in raw.ids]
        test_set = detector_data.DetectorTestSet(raw, BoxSettings(), image_size=240)
        scores = test_set.score(oracle, torch.device('cpu'))
        assert list(scores) == list(detector_data.SCORE_NAMES.values())
        assert scores['mAP@50:95'] == pytest.approx(expected, abs=1e-6)


def test_boxes_from_keypoints_get_the_margin_and_are_clipped_to_the_image(tmp_path):
    raw = tiny_dataset(tmp_path)
    image, anns, _ = raw[1]
    boxes = detector_data.boxes_xyxy(anns, *image.size, BoxSettings(source='keypoints', margin=20.0))
    # keypoints (7, 7) .. (22, 22) plus 20 px, clipped at the image's edge (pixel centres: -0.5)
    np.testing.assert_allclose(boxes[0], [-0.5, -0.5, 42, 42])
    np.testing.assert_allclose(boxes[1], [62 - 20, 32 - 20, 82 + 20, 62 + 20])
