"""Poses in given boxes; ground-truth boxes with ground-truth fields recover the COCO sample."""

import numpy as np
import PIL.Image
import pytest

from openfields.decoder.oracle import fields_from_targets
from openfields.metric.coco import Coco
from openfields.topdown.crop_data import annotation_in_crop
from openfields.topdown.crops import CropSettings
from openfields.topdown.evaluation import TopDownTestSet
from openfields.topdown.pose_on_crops import poses_on_boxes

from conftest import cif_encoders


def never_called(images):
    raise AssertionError('the network must not run without boxes')


def test_no_boxes_no_poses(coco_sample):
    _, metas, _ = coco_sample
    image = PIL.Image.new('RGB', (64, 48))
    assert poses_on_boxes(image, np.zeros((0, 4)), np.zeros(0), never_called, metas) == []


def oracle_fields(metas, crop: CropSettings):
    """``fields_for_image`` of the oracle: each crop's CIF field encoded from its own individual."""
    (cif_encoder,) = cif_encoders(metas)

    def fields_for_image(individuals, boxes):
        def fields_of_batch(images):
            assert images.shape == (len(individuals), 3, crop.height, crop.width)
            geometries = [crop.around(box) for box in boxes]
            return [[fields_from_targets(metas[0], cif_encoder(image, [annotation_in_crop(ann, g)], {}))]
                    for image, ann, g in zip(images, individuals, geometries)]
        return fields_of_batch
    return fields_for_image


def test_pose_scores_are_the_decoders_times_the_box_score(coco_sample):
    dataset, metas, _ = coco_sample
    image, anns, _ = dataset[0]
    ann = next(a for a in anns if not a['iscrowd'] and (a['keypoints'][:, 2] > 0).sum() >= 3)
    x, y, w, h = ann['bbox']
    fields = oracle_fields(metas, CropSettings())([ann], np.array([[x, y, w, h]]))
    (pose,) = poses_on_boxes(image, [[x, y, x + w, y + h]], [0.5], fields, metas)
    assert pose.score == pytest.approx(0.5)  # oracle confidences are 1
    labelled = ann['keypoints'][:, 2] > 0
    assert np.abs(pose.data[labelled, :2] - ann['keypoints'][labelled, :2]).max() < 2.0  # image pixels


def test_ground_truth_boxes_and_fields_recover_the_coco_sample(coco_sample):
    dataset, metas, data = coco_sample
    cif = metas[0]
    test_set = TopDownTestSet(
        dataset, head_indices=[0], head_metas=metas[:1], names=['AP'],
        new_metrics=lambda: [Coco(data, iou_type='keypoints', category_id=1, sigmas=cif.sigmas,
                                  keypoint_names=cif.keypoints)])
    scores = test_set.score_fields(oracle_fields(metas, test_set.crop))
    assert scores['AP'] >= 0.98
