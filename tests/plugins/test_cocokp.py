"""The cocokp DataModule: head metas from any COCO-format keypoint json, loaders through the pipeline."""

import json
import logging
import re

import numpy as np
import PIL.Image
import pytest
import torch

from openfields import train, transforms
from openfields.datasets import factory as datasets_factory
from openfields.datasets.coco import KeypointCategory
from openfields.network import factory as network_factory
from openfields.datasets import coco_person
from openfields.datasets import keypoint_module
from openfields.datasets.keypoint_module import head_metas_for


def category(keypoints, skeleton=(), sigmas=None):
    return KeypointCategory(id=1, name='thing', keypoints=keypoints, skeleton=list(skeleton), sigmas=sigmas)


def test_coco_person_gets_published_sigmas_pose_and_score_weights():
    cif, caf = head_metas_for(category(coco_person.COCO_KEYPOINTS, coco_person.COCO_PERSON_SKELETON), 'cocokp', 2,
                              base_stride=16)
    assert cif.sigmas == coco_person.COCO_PERSON_SIGMAS and cif.pose == coco_person.COCO_UPRIGHT_POSE
    assert cif.score_weights[:4] == [3.0, 3.0, 3.0, 1.0]
    assert caf.skeleton == coco_person.COCO_PERSON_SKELETON and cif.upsample_stride == caf.upsample_stride == 2
    assert cif.hflip['left_knee'] == 'right_knee'


def test_custom_category_uses_its_sigmas_or_a_default_and_a_chain_skeleton(caplog):
    with caplog.at_level(logging.INFO):
        cif, caf = head_metas_for(category(['snout', 'ear', 'tail']), 'mice', 1, base_stride=16)
    assert cif.sigmas == [keypoint_module.DEFAULT_SIGMA] * 3 and cif.pose is None
    assert caf.skeleton == [(1, 2), (2, 3)]
    assert cif.hflip is None
    assert 'horizontal flips are off' in caplog.text and 'no skeleton' in caplog.text
    cif, _ = head_metas_for(category(['a', 'b'], [(1, 2)], sigmas=[0.1, 0.2]), 'x', 1, base_stride=16)
    assert cif.sigmas == [0.1, 0.2]


def cocokp_module(args):
    """The DataModule of the flags, for the default basenet (stride 16)."""
    return datasets_factory.datamodule_from_args(args, base_stride=16)


@pytest.fixture()
def animal_set(tmp_path):
    """Four 120x90 images of a 3-keypoint animal in a custom category with its own sigmas."""
    images, annotations = [], []
    for i in range(4):
        PIL.Image.fromarray(np.full((90, 120, 3), 40 * i, np.uint8)).save(tmp_path / f'{i}.jpg')
        images.append({'id': i, 'file_name': f'{i}.jpg', 'width': 120, 'height': 90})
        annotations.append({'id': i, 'image_id': i, 'category_id': 7, 'iscrowd': 0, 'bbox': [20, 20, 60, 40],
                            'keypoints': [30, 30, 2, 50, 40, 2, 70, 50, 1]})
    categories = [{'id': 7, 'name': 'animal', 'keypoints': ['nose', 'left_paw', 'right_paw'],
                   'skeleton': [[1, 2], [1, 3]], 'sigmas': [0.05, 0.08, 0.08]}]
    path = tmp_path / 'animals.json'
    path.write_text(json.dumps({'images': images, 'annotations': annotations, 'categories': categories}))
    return path


def test_any_coco_format_keypoint_json_trains_without_code(animal_set):
    args = train.cli(['--dataset', 'cocokp', '--cocokp-train-annotations', str(animal_set),
                      '--cocokp-val-annotations', str(animal_set),
                      '--cocokp-train-image-dir', str(animal_set.parent),
                      '--cocokp-val-image-dir', str(animal_set.parent),
                      '--cocokp-square-edge', '97', '--batch-size', '2', '--loader-workers', '0',
                      '--basenet', 'resnet18', '--no-basenet-pretrained', '--seed', '0'])
    datamodule = cocokp_module(args)
    model = network_factory.factory(args, datamodule.head_metas)
    assert [m.n_fields for m in model.head_metas] == [3, 2]
    assert model.head_metas[0].hflip == {'left_paw': 'right_paw', 'right_paw': 'left_paw'}
    loader = datamodule.train_loader(datasets_factory.loader_settings_from_args(args, pin_memory=False))
    images, targets, metas = next(iter(loader))
    assert images.shape == (2, 3, 97, 97)
    assert targets[0].shape == (2, 3, 5, 7, 7) and targets[1].shape == (2, 2, 9, 7, 7)
    assert torch.nansum(targets[0][:, :, 0]) > 0  # positive CIF cells
    assert [m['dataset'] for m in metas] == ['cocokp', 'cocokp']
    assert metas[0]['head_indices'] == [0, 1]


def test_fewer_usable_images_than_the_batch_size_is_an_error(animal_set):
    args = train.cli(['--dataset', 'cocokp', '--cocokp-train-annotations', str(animal_set),
                      '--cocokp-train-image-dir', str(animal_set.parent), '--batch-size', '8',
                      '--basenet', 'resnet18', '--no-basenet-pretrained'])
    datamodule = cocokp_module(args)
    network_factory.factory(args, datamodule.head_metas)
    with pytest.raises(ValueError, match='4 usable images, fewer than --batch-size 8'):
        datamodule.train_loader(datasets_factory.loader_settings_from_args(args, pin_memory=False))


def cocokp_args(annotations, *flags):
    return train.cli(['--dataset', 'cocokp', '--cocokp-train-annotations', str(annotations),
                      '--cocokp-val-annotations', str(annotations), '--cocokp-train-image-dir', str(annotations.parent),
                      '--cocokp-val-image-dir', str(annotations.parent), '--basenet', 'resnet18',
                      '--no-basenet-pretrained', *flags])


@pytest.fixture()
def unpaired_set(animal_set):
    """The animal set with keypoints that have no left/right partner (no flip map)."""
    data = json.loads(animal_set.read_text())
    data['categories'][0]['keypoints'] = ['snout', 'ear', 'tail']
    path = animal_set.with_name('unpaired.json')
    path.write_text(json.dumps(data))
    return path


def flip_of(datamodule):
    """``(probability, permutation)`` of the training pipeline's flip; None without one."""
    for step in datamodule._preprocess().transforms:
        if isinstance(step, transforms.RandomApply) and isinstance(step.transform, transforms.HFlip):
            return step.probability, step.transform.permutation
    return None


def test_hflip_is_refused_with_an_explanation_for_keypoints_without_a_flip_map(unpaired_set):
    with pytest.raises(ValueError, match=r'--cocokp-hflip 0.5: the keypoints \[.snout.*no left/right pairs.*'
                                         r'mirrored labels.*--cocokp-hflip 0'):
        cocokp_module(cocokp_args(unpaired_set, '--cocokp-hflip', '0.5'))


def test_hflip_defaults_to_half_with_a_flip_map_and_off_without(animal_set, unpaired_set):
    assert flip_of(cocokp_module(cocokp_args(animal_set))) == (0.5, [0, 2, 1])
    assert flip_of(cocokp_module(cocokp_args(animal_set, '--cocokp-hflip', '0.2'))) == \
        (0.2, [0, 2, 1])  # nose stays, the paws swap
    assert flip_of(cocokp_module(cocokp_args(unpaired_set))) is None
    assert flip_of(cocokp_module(cocokp_args(unpaired_set, '--cocokp-hflip', '0'))) is None


def test_augmentation_flags_reach_the_pipeline(animal_set):
    args = cocokp_args(animal_set, '--cocokp-affine', '0.7', '--cocokp-affine-scaling', '0.8', '1.1',
                       '--cocokp-crop-sampling', 'density', '--cocokp-gaussian-noise', '10', '--cocokp-resize', '200', '100')
    extras = cocokp_module(args).augmentation.extras
    assert extras == transforms.ExtraAugmentation(affine=0.7, affine_scaling=(0.8, 1.1), crop_sampling='density',
                                                  gaussian_noise=10.0, resize=(200, 100))
    defaults = cocokp_module(cocokp_args(animal_set)).augmentation.extras
    assert defaults == transforms.ExtraAugmentation()  # every extra off


@pytest.mark.parametrize('flags, message', [
    (['--cocokp-affine', '1.5'], '--cocokp-affine is a probability'),
    (['--cocokp-affine-scaling', '1.2', '0.8'], '--cocokp-affine-scaling must be 0 < MIN <= MAX'),
    (['--cocokp-crop-max-shift', '0.5'], '--cocokp-crop-max-shift must be in [0, 0.4]'),
])
def test_bad_augmentation_values_name_their_flag(animal_set, flags, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cocokp_module(cocokp_args(animal_set, *flags))


def test_collate_flags_give_variable_size_training_batches_and_fixed_size_validation(animal_set):
    args = cocokp_args(animal_set, '--cocokp-collate-scale', '0.5', '1.0', '--cocokp-collate-short-side', '32', '96',
                       '--batch-size', '2', '--loader-workers', '0', '--cocokp-square-edge', '65')
    datamodule = cocokp_module(args)
    network_factory.factory(args, datamodule.head_metas)  # strides
    settings = datasets_factory.loader_settings_from_args(args, pin_memory=False)
    torch.manual_seed(0)
    sizes = set()
    for _ in range(3):
        for images, targets, _ in datamodule.train_loader(settings):
            height, width = images.shape[-2:]
            assert 32 <= min(height, width) <= 96 and (height - 1) % 16 == 0 and (width - 1) % 16 == 0
            assert targets[0].shape[-2:] == ((height - 1) // 16 + 1, (width - 1) // 16 + 1)
            sizes.add((width, height))
    assert len(sizes) >= 2
    images, _, _ = next(iter(datamodule.val_loader(settings)))
    assert images.shape[-2:] == (65, 65)


@pytest.mark.parametrize('flags', [['--cocokp-crop-sampling', 'density'], ['--cocokp-auto-padding', '32']])
def test_collate_excludes_crop_sampling_and_auto_padding(animal_set, flags):
    with pytest.raises(ValueError, match=f'{flags[0]} .*--cocokp-collate-scale.*choose one'):
        cocokp_module(cocokp_args(animal_set, '--cocokp-collate-scale', '0.5', '1', *flags))
