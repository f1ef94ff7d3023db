"""The cocodet DataModule: COCO-format boxes -> one CifDet head, ignore regions, box AP, the guide's command."""

import argparse
import hashlib
import json
import pathlib
import shlex

import numpy as np
import PIL.Image
import pytest
import torch

from openfields import eval as eval_cli
from openfields import train, transforms
from openfields.datasets import factory as datasets_factory
from openfields.datasets.coco import DatasetError
from openfields.decoder.annotation import AnnotationDet
from openfields.network import factory as network_factory
from openfields.plugins.cocodet.datamodule import CocoDet
from openfields.plugins.cocodet.metric import CocoBoxes
from openfields.plugins.cocokp.datamodule import CocoKp
from openfields.transforms import IgnoreCroppedBoxes, IgnoreTinyBoxes
from openfields.training.log import read

COCO_SAMPLE = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'coco-val-sample'
needs_coco_sample = pytest.mark.skipif(not (COCO_SAMPLE / 'annotations.json').is_file(),
                                       reason=f'COCO sample data not found at {COCO_SAMPLE}')


def flags(annotations, image_dir) -> list[str]:
    return [f'--cocodet-{split}-{what}={path}' for split in ('train', 'val')
            for what, path in (('annotations', annotations), ('image-dir', image_dir))]


@pytest.fixture()
def pets(tmp_path):
    """Four 160x120 images with boxes of two categories whose json ids are 3 and 7."""
    images, annotations = [], []
    for i in range(4):
        PIL.Image.fromarray(np.full((120, 160, 3), 50 * i, np.uint8)).save(tmp_path / f'{i}.png')
        images.append({'id': 10 + i, 'file_name': f'{i}.png', 'width': 160, 'height': 120})
        annotations += [{'id': 2 * i + 1, 'image_id': 10 + i, 'category_id': 3, 'iscrowd': 0, 'bbox': [20, 20, 40, 60]},
                        {'id': 2 * i + 2, 'image_id': 10 + i, 'category_id': 7, 'iscrowd': 0, 'bbox': [90, 30, 50, 40]}]
    categories = [{'id': 3, 'name': 'cat'}, {'id': 7, 'name': 'dog'}]
    path = tmp_path / 'pets.json'
    path.write_text(json.dumps({'images': images, 'annotations': annotations, 'categories': categories}))
    return path


def datamodule_and_loader_settings(argv):
    args = train.cli(['--dataset', 'cocodet', '--basenet', 'resnet18', '--no-basenet-pretrained',
                      '--loader-workers', '0', '--seed', '0', *argv])
    datamodule = datasets_factory.datamodule_from_args(args, base_stride=16)
    network_factory.factory(args, datamodule.head_metas)  # sets the head strides
    return datamodule, datasets_factory.loader_settings_from_args(args, pin_memory=False, shuffle=False)


def test_one_field_per_json_category_and_boxes_numbered_by_field(pets):
    datamodule, loader = datamodule_and_loader_settings(
        flags(pets, pets.parent) + ['--cocodet-no-augmentation', '--cocodet-square-edge=161', '--batch-size=2'])
    (meta,) = datamodule.head_metas
    assert meta.categories == ['cat', 'dog'] and meta.stride == 16 and datamodule.category_ids == [3, 7]
    images, targets, metas = next(iter(datamodule.train_loader(loader)))
    assert images.shape == (2, 3, 161, 161) and targets[0].shape == (2, 2, 7, 11, 11)
    assert [a['category_id'] for a in metas[0]['annotations']] == [1, 2]
    # without augmentation 160 x 120 becomes 161 x 121 (x * 160 / 159); at stride 16 the cat's centre
    # (x = 40 px) is in column 2.52 and its width 40 px is 2.52 cells, the dog's (115 px, 50 px) 7.23 and 3.14
    scale = 160 / 159 / 16
    for field, centre_x, width in ((0, 40, 40), (1, 115, 50)):
        target = targets[0][0, field]
        positives = target[0] == 1
        _, cols = torch.nonzero(positives, as_tuple=True)
        assert positives.sum() >= 9
        np.testing.assert_allclose((target[1][positives] + cols).numpy(), centre_x * scale, atol=1e-4)
        np.testing.assert_allclose(target[3][positives].numpy(), width * scale, atol=1e-4)


def test_flags_mirror_cocokp_with_the_cocodet_prefix():
    def suffixes(datamodule):
        parser = argparse.ArgumentParser()
        datamodule.cli(parser)
        prefix = f'--{datamodule.name}-'
        return {option[len(prefix):] for action in parser._actions for option in action.option_strings
                if option.startswith(prefix)}

    # test-dev: keypoint sets only (eval-testdev2017: OpenPifPaf's spelling, COCO keypoints' own paths)
    keypoint_only = {'category-id', 'min-kp-anns', 'keypoints-key', 'eval-testdev', 'eval-testdev2017'}
    # the keypoint heads' choices: a dense Caf head, DeepLabCut's heatmap head and its settings
    keypoint_heads = {'with-dense', 'heads'} | {s for s in suffixes(CocoKp) if s.startswith('heatmap-')}
    assert len(keypoint_heads) > 5
    assert suffixes(CocoDet) == suffixes(CocoKp) - keypoint_only - keypoint_heads | {'min-anns'}
    args = train.cli([])
    assert args.cocodet_train_annotations.endswith('instances_train2017.json') and args.cocodet_square_edge == 513
    assert args.cocodet_bmin == 1.0


def test_boxes_with_a_side_of_at_most_four_pixels_become_ignore_regions():
    anns = [{'bbox': np.array([0, 0, 4.0, 50.0]), 'iscrowd': 0}, {'bbox': np.array([0, 0, 4.5, 4.5]), 'iscrowd': 0}]
    _, anns, _ = IgnoreTinyBoxes()(None, anns, {})
    assert [a['iscrowd'] for a in anns] == [1, 0]


def test_boxes_the_crop_cut_to_less_than_three_quarters_become_ignore_regions():
    image = PIL.Image.new('RGB', (200, 100))
    anns = [{'bbox': np.array([0.0, 10.0, 100.0, 50.0]), 'iscrowd': 0},   # keeps 50 %
            {'bbox': np.array([40.0, 10.0, 80.0, 50.0]), 'iscrowd': 0},   # keeps 87.5 %
            {'bbox': np.array([60.0, 10.0, 20.0, 20.0]), 'iscrowd': 1}]   # crowds stay crowds

    def crop_from_50(image, anns, meta):
        return transforms.crop(image, anns, meta, 50, 0, 150, 100)

    _, anns, _ = IgnoreCroppedBoxes(crop_from_50)(image, anns, transforms.NormalizeAnnotations()(image, [], {})[2])
    assert [a['iscrowd'] for a in anns] == [1, 0, 1]
    np.testing.assert_allclose(anns[1]['bbox'], [-0.5, 10.0, 70.5, 50.0])


def test_augmented_training_batches_keep_targets_inside_the_crop(pets):
    datamodule, loader = datamodule_and_loader_settings(flags(pets, pets.parent) + ['--cocodet-square-edge=97',
                                                                                     '--batch-size=4'])
    torch.manual_seed(0)
    images, targets, metas = next(iter(datamodule.train_loader(loader)))
    assert images.shape == (4, 3, 97, 97) and targets[0].shape == (4, 2, 7, 7, 7)
    for target, meta in zip(targets[0], metas):
        kept = [a for a in meta['annotations'] if not a['iscrowd']]
        assert all(min(a['bbox'][2:]) > 4 for a in kept)
        assert int((target[:, 0] == 1).sum()) > 0 or not kept


def test_validation_json_with_other_categories_is_an_error(pets, tmp_path):
    other = json.loads(pets.read_text())
    other['categories'] = [{'id': 3, 'name': 'cat'}]
    other['annotations'] = [a for a in other['annotations'] if a['category_id'] == 3]
    (tmp_path / 'cats.json').write_text(json.dumps(other))
    datamodule, loader = datamodule_and_loader_settings(flags(pets, pets.parent) + [
        f'--cocodet-val-annotations={tmp_path / "cats.json"}'])
    with pytest.raises(ValueError, match=r'--cocodet-val-annotations .*cats.json: category ids \[3\] differ'):
        datamodule.val_loader(loader)


def test_annotation_of_an_undeclared_category_is_an_error_naming_it(pets):
    data = json.loads(pets.read_text())
    data['annotations'][3]['category_id'] = 5
    pets.write_text(json.dumps(data))
    datamodule, loader = datamodule_and_loader_settings(flags(pets, pets.parent))
    with pytest.raises(DatasetError, match=r'pets.json: annotation id 4: "category_id" 5 is not in "categories"'):
        datamodule.train_loader(loader)


def test_box_ap_maps_head_fields_back_to_json_category_ids(pets):
    metric = CocoBoxes(str(pets), category_ids=[3, 7])
    data = json.loads(pets.read_text())
    for image in data['images']:
        predictions = [AnnotationDet(meta=None, category_id=[3, 7].index(a['category_id']) + 1, score=0.9,
                                     bbox=np.array(a['bbox'], np.float32))
                       for a in data['annotations'] if a['image_id'] == image['id']]
        metric.accumulate(predictions, {'image_id': image['id']})
    stats = metric.stats()
    assert stats['AP'] == 1.0 and stats['n_images'] == 4
    swapped = CocoBoxes(str(pets), category_ids=[7, 3])  # wrong mapping: every box in the other category
    for image in data['images']:
        cat_box = AnnotationDet(meta=None, category_id=1, score=0.9, bbox=np.array([20, 20, 40, 60], np.float32))
        swapped.accumulate([cat_box], {'image_id': image['id']})
    assert swapped.stats()['AP'] == 0.0


@needs_coco_sample
def test_oracle_finds_every_box_of_the_coco_sample(tmp_path):
    results = eval_cli.run(eval_cli.parser().parse_args(
        ['--dataset', 'cocodet', *flags(COCO_SAMPLE / 'annotations.json', COCO_SAMPLE / 'images'),
         '--oracle', 'cifdet', '--oracle-stride', '16', '--loader-workers', '0', '--device', 'cpu',
         '--output', str(tmp_path / 'oracle')]))
    stats = json.loads((tmp_path / 'oracle.stats.json').read_text())
    assert stats['AP'] >= 0.99 and stats['AP50'] == 1.0 and stats['n_images'] == 4
    assert {'AP75', 'APS', 'APM', 'APL', 'AR100'} <= set(stats) and results[0]['AP'] == stats['AP']


GUIDE_DETECTION = ('--lr=0.0003 --momentum=0.95 --clip-grad-value=10 --batch-size=2 --dataset=cocodet '
                   '--basenet=resnet18 --resnet-input-conv2-stride=2 --resnet-block5-dilation=2')


@needs_coco_sample
def test_guide_detection_command_trains_on_the_coco_sample(tmp_path, imagenet_cache):
    out = tmp_path / 'det.pkl'
    short = ['--epochs=1', '--train-batches=1', '--val-batches=1', '--cocodet-square-edge=65',
             '--cocodet-no-augmentation', '--loader-workers=0', '--seed=0', f'--output={out}']
    train.run(train.cli(shlex.split(GUIDE_DETECTION) + flags(COCO_SAMPLE / 'annotations.json',
                                                             COCO_SAMPLE / 'images') + short))
    records = read(f'{out}.log')
    train_epoch = next(r for r in records if r['type'] == 'train-epoch')
    assert train_epoch['n_batches'] == 1 and train_epoch['loss'] > 0
    assert set(train_epoch['head_losses']) == {'cocodet.cifdet.c', 'cocodet.cifdet.vec'}
    assert all(v > 0 for v in train_epoch['head_losses'].values())
    assert records[0]['args']['resnet_block5_dilation'] == 2 and out.is_file()
    # OpenPifPaf's ResNets start from ImageNet weights: the file in the torch hub cache, recorded with its hash
    assert records[0]['args']['basenet_pretrained'] == 'auto'
    assert records[0]['basenet_weights']['path'] == str(imagenet_cache)
    assert records[0]['basenet_weights']['sha256'] == hashlib.sha256(imagenet_cache.read_bytes()).hexdigest()


def test_variable_size_batches_resize_boxes_then_encode(pets):
    datamodule, loader = datamodule_and_loader_settings(flags(pets, pets.parent) + [
        '--cocodet-collate-scale', '0.6', '1.0', '--cocodet-collate-short-side', '48', '128', '--batch-size=2'])
    torch.manual_seed(0)
    for images, targets, metas in datamodule.train_loader(loader):
        height, width = images.shape[-2:]
        assert 48 <= min(height, width) <= 128 and (height - 1) % 16 == 0 and (width - 1) % 16 == 0
        assert targets[0].shape[-2:] == ((height - 1) // 16 + 1, (width - 1) // 16 + 1)
        for meta in metas:
            for ann in meta['annotations']:
                x, y, w, h = ann['bbox']
                assert -0.5 <= x and x + w <= width - 0.5 and -0.5 <= y and y + h <= height - 0.5
                assert ann['iscrowd'] or min(w, h) > 4  # tiny boxes are ignored after the resize


def test_metric_names_are_the_box_scores_declared_without_evaluating(pets):
    args = train.cli(['--dataset', 'cocodet', '--basenet', 'resnet18', '--no-basenet-pretrained',
                      *flags(pets, pets.parent)])
    datamodule = datasets_factory.datamodule_from_args(args, base_stride=16)
    assert datamodule.metric_names() == list(CocoBoxes(str(pets), category_ids=[3, 7]).names)
    assert datamodule.metric_names()[:3] == ['AP', 'AP50', 'AP75'] and 'AR100' in datamodule.metric_names()
    assert datamodule.dataset_modules() == {'cocodet': datamodule}
