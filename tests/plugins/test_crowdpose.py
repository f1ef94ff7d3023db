"""The crowdpose DataModule: CrowdPose's skeleton and sigmas, cocokp's flags, AP per crowd-index level."""

import argparse
import json
import pathlib

import numpy as np
import pytest
import torch

from openfields import eval as eval_cli
from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.datasets.coco import DatasetError
from openfields.decoder.annotation import Annotation
from openfields.network import factory as network_factory
from openfields.plugins.crowdpose import constants
from openfields.plugins.cocokp.datamodule import CocoKp
from openfields.plugins.crowdpose.datamodule import CrowdPose, head_metas
from openfields.plugins.crowdpose.metric import CrowdPoseCoco, split_of

CROWDPOSE_SAMPLE = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'crowdpose-sample'
needs_crowdpose_sample = pytest.mark.skipif(not (CROWDPOSE_SAMPLE / 'annotations.json').is_file(),
                                            reason=f'CrowdPose sample data not found at {CROWDPOSE_SAMPLE}')


def flags(annotations, image_dir) -> list[str]:
    return [f'--crowdpose-{split}-{what}={path}' for split in ('train', 'val')
            for what, path in (('annotations', annotations), ('image-dir', image_dir))]


def test_heads_carry_crowdpose_keypoints_skeleton_sigmas_and_flips():
    cif, caf = head_metas('crowdpose', upsample=2, base_stride=16)
    assert cif.keypoints[-2:] == ['head', 'neck'] and len(cif.keypoints) == 14
    assert cif.sigmas == caf.sigmas == [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
                                        0.089, 0.089, 0.079, 0.079]
    named = {frozenset((cif.keypoints[a - 1], cif.keypoints[b - 1])) for a, b in caf.skeleton}
    assert len(caf.skeleton) == 15 and {frozenset(('head', 'neck')), frozenset(('neck', 'left_shoulder')),
                                        frozenset(('left_knee', 'left_ankle'))} <= named
    assert cif.flip_permutation() == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13]
    assert cif.upsample_stride == 2 and len(cif.pose) == 14 and cif.pose[12][1] < cif.pose[13][1]  # head above neck


def test_flags_mirror_cocokp_with_the_crowdpose_prefix():
    def suffixes(datamodule):
        parser = argparse.ArgumentParser()
        datamodule.cli(parser)
        prefix = f'--{datamodule.name}-'
        return {option[len(prefix):] for action in parser._actions for option in action.option_strings
                if option.startswith(prefix)}

    # but --cocokp-eval-testdev2017: OpenPifPaf's spelling with COCO's test-dev 2017 paths
    assert suffixes(CrowdPose) == suffixes(CocoKp) - {'eval-testdev2017'}
    assert {'train-annotations', 'val-image-dir', 'square-edge', 'no-augmentation'} <= suffixes(CrowdPose)
    args = train.cli([])
    assert args.crowdpose_train_annotations == 'data-crowdpose/json/crowdpose_trainval.json'
    assert args.cocokp_train_annotations.endswith('person_keypoints_train2017.json')  # cocokp unchanged


@pytest.mark.parametrize('crowd_index, level', [(0.0, 'easy'), (0.099, 'easy'), (0.1, 'medium'), (0.79, 'medium'),
                                                (0.8, 'hard'), (1.0, 'hard')])
def test_crowd_index_levels(crowd_index, level):
    assert split_of(crowd_index) == level


@pytest.fixture()
def crowd_levels(tmp_path):
    """Three images, one per difficulty level, each with two people of CrowdPose's 14 keypoints."""
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i, crowd_index in enumerate((0.05, 0.5, 0.9)):
        images.append({'id': i + 1, 'file_name': f'{i}.jpg', 'width': 400, 'height': 300, 'crowdIndex': crowd_index})
        for p in range(2):
            xy = rng.uniform([40 + 180 * p, 40], [160 + 180 * p, 260], size=(14, 2))
            keypoints = np.concatenate([xy, np.full((14, 1), 2.0)], axis=1)
            x0, y0 = xy.min(axis=0)
            w, h = xy.max(axis=0) - (x0, y0)
            annotations.append({'id': len(annotations) + 1, 'image_id': i + 1, 'category_id': 1, 'iscrowd': 0,
                                'num_keypoints': 14, 'bbox': [x0, y0, w, h], 'keypoints': keypoints.ravel().tolist()})
    categories = [{'id': 1, 'name': 'person', 'keypoints': constants.CROWDPOSE_KEYPOINTS}]
    path = tmp_path / 'levels.json'
    path.write_text(json.dumps({'images': images, 'annotations': annotations, 'categories': categories}))
    return path


def test_ap_is_reported_per_difficulty_level(crowd_levels):
    cif, _ = head_metas('crowdpose', 1, base_stride=16)
    data = json.loads(crowd_levels.read_text())
    metric = CrowdPoseCoco(str(crowd_levels), category_id=1, sigmas=cif.sigmas, keypoint_names=cif.keypoints)
    for image_id in (1, 2, 3):
        truth = [np.asarray(a['keypoints'], np.float32).reshape(14, 3) for a in data['annotations']
                 if a['image_id'] == image_id]
        if image_id == 3:  # the hard image: poses far off
            truth = [t + np.array([60.0, 0.0, 0.0], np.float32) for t in truth]
        predictions = [Annotation(meta=cif, data=np.concatenate([t[:, :2], np.ones((14, 1), np.float32)], axis=1),
                                  joint_scales=np.full(14, 4.0, np.float32)) for t in truth]
        metric.accumulate(predictions, {'image_id': image_id})
    stats = metric.stats()
    assert stats['AP_easy'] == stats['AP_medium'] == 1.0 and stats['AP_hard'] == 0.0
    assert 0.0 < stats['AP'] < 1.0
    assert stats['n_images_easy'] == stats['n_images_medium'] == stats['n_images_hard'] == 1


def test_levels_without_evaluated_images_are_undefined(crowd_levels):
    cif, _ = head_metas('crowdpose', 1, base_stride=16)
    metric = CrowdPoseCoco(str(crowd_levels), category_id=1, sigmas=cif.sigmas, keypoint_names=cif.keypoints)
    metric.accumulate([], {'image_id': 2})
    stats = metric.stats()
    assert stats['AP_easy'] == stats['AP_hard'] == -1.0 and stats['AP_medium'] == 0.0
    assert stats['n_images_easy'] == 0


def test_a_negative_crowd_index_is_an_error_naming_the_image(crowd_levels):
    data = json.loads(crowd_levels.read_text())
    data['images'][1]['crowdIndex'] = -0.2
    crowd_levels.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r'levels.json: image id 2: "crowdIndex" must be a number >= 0'):
        CrowdPoseCoco(str(crowd_levels), category_id=1, sigmas=[0.05] * 14, keypoint_names=None)


def test_another_keypoint_set_is_an_error_pointing_to_cocokp(crowd_levels):
    data = json.loads(crowd_levels.read_text())
    data['categories'][0]['keypoints'] = constants.CROWDPOSE_KEYPOINTS[::-1]
    crowd_levels.write_text(json.dumps(data))
    args = train.cli(['--dataset', 'crowdpose', *flags(crowd_levels, crowd_levels.parent)])
    with pytest.raises(DatasetError, match=r'levels.json: category 1 has the keypoints .* not CrowdPose.* cocokp'):
        datasets_factory.datamodule_from_args(args, base_stride=16)


@needs_crowdpose_sample
def test_the_sample_trains_with_crowdpose_skeleton_not_the_json_one():
    sample = flags(CROWDPOSE_SAMPLE / 'annotations.json', CROWDPOSE_SAMPLE / 'images')
    args = train.cli(['--dataset', 'crowdpose', *sample,
                      '--crowdpose-no-augmentation', '--crowdpose-square-edge=129', '--batch-size=2',
                      '--basenet=resnet18', '--no-basenet-pretrained', '--loader-workers=0'])
    datamodule = datasets_factory.datamodule_from_args(args, base_stride=16)
    network_factory.factory(args, datamodule.head_metas)
    assert datamodule.head_metas[1].skeleton == constants.CROWDPOSE_SKELETON
    loader = datamodule.train_loader(datasets_factory.loader_settings_from_args(args, pin_memory=False))
    _, targets, _ = next(iter(loader))
    assert targets[0].shape == (2, 14, 5, 9, 9) and targets[1].shape == (2, 15, 9, 9, 9)
    assert torch.nansum(targets[1][:, 0, 0]) > 0  # head-neck associations are trained


@needs_crowdpose_sample
def test_oracle_recovers_the_crowdpose_sample(tmp_path):
    eval_cli.run(eval_cli.parser().parse_args(
        ['--dataset', 'crowdpose', *flags(CROWDPOSE_SAMPLE / 'annotations.json', CROWDPOSE_SAMPLE / 'images'),
         '--oracle', 'cif', 'caf', '--oracle-stride', '16', '--crowdpose-upsample', '2', '--loader-workers', '0',
         '--device', 'cpu', '--output', str(tmp_path / 'oracle')]))
    stats = json.loads((tmp_path / 'oracle.stats.json').read_text())
    assert stats['AP'] >= 0.99 and stats['n_images'] == 2
    # both sample images have a crowd index of medium difficulty (0.33, 0.39)
    assert stats['AP_medium'] == stats['AP'] and stats['n_images_medium'] == 2
    assert stats['AP_easy'] == stats['AP_hard'] == -1.0


def test_names_add_the_difficulty_levels_to_cocos_scores(crowd_levels):
    cif, _ = head_metas('crowdpose', 1, base_stride=16)
    metric = CrowdPoseCoco(str(crowd_levels), category_id=1, sigmas=cif.sigmas, keypoint_names=cif.keypoints)
    assert metric.names[:2] == ('AP', 'AP50') and metric.names[-3:] == ('AP_easy', 'AP_medium', 'AP_hard')
    metric.accumulate([], {'image_id': 2})
    assert set(metric.names) <= set(metric.stats())
