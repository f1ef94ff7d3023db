"""``--<dataset>-with-dense``: a dense Caf head beside CIF and CAF (OpenPifPaf's ``caf25`` for COCO persons, a
json category's ``dense_skeleton`` otherwise), its targets, and the refusals when there is none to train."""

import json
import pathlib

import numpy as np
import PIL.Image
import pytest
import torch

from openfields import headmeta, train
from openfields.datasets import coco_person
from openfields.datasets import factory as datasets_factory
from openfields.datasets.coco import DatasetError
from openfields.topdown.module import TopDownModule

COCO_SAMPLE = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'coco-val-sample'
CROWDPOSE_SAMPLE = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'crowdpose-sample'


def module(dataset: str, annotations, image_dir, *flags):
    args = train.cli(['--dataset', dataset, f'--{dataset}-train-annotations', str(annotations),
                      f'--{dataset}-val-annotations', str(annotations), f'--{dataset}-train-image-dir', str(image_dir),
                      f'--{dataset}-val-image-dir', str(image_dir), '--basenet', 'resnet18', *flags])
    return datasets_factory.datamodule_from_args(args, base_stride=16), args


@pytest.mark.skipif(not COCO_SAMPLE.is_dir(), reason=f'COCO sample not found at {COCO_SAMPLE}')
def test_cocokp_with_dense_has_openpifpafs_caf25_head_and_encodes_its_targets():
    datamodule, args = module('cocokp', COCO_SAMPLE / 'annotations.json', COCO_SAMPLE / 'images',
                              '--cocokp-with-dense', '--cocokp-square-edge', '193', '--batch-size', '2',
                              '--cocokp-no-augmentation', '--loader-workers', '0')
    cif, caf, dense = datamodule.head_metas
    assert [m.name for m in datamodule.head_metas] == ['cif', 'caf', 'caf25']
    assert isinstance(dense, headmeta.Caf) and dense.n_fields == 25
    assert dense.skeleton == coco_person.DENSE_COCO_PERSON_CONNECTIONS
    assert dense.sparse_skeleton == caf.skeleton == coco_person.COCO_PERSON_SKELETON
    assert dense.only_in_field_of_view and not caf.only_in_field_of_view
    assert dense.sigmas == caf.sigmas and dense.upsample_stride == caf.upsample_stride
    images, targets, _ = next(iter(datamodule.train_loader(
        datasets_factory.loader_settings_from_args(args, pin_memory=False))))
    assert len(targets) == 3 and targets[2].shape == (2, 25, 9, 13, 13)
    positive = torch.nansum(targets[2][:, :, 0] == 1, dim=(0, 2, 3))  # positive cells per dense edge
    assert positive.sum() > 0
    nose_ear = coco_person.DENSE_COCO_PERSON_CONNECTIONS.index((1, 4))
    assert positive[nose_ear] > 0  # a connection the sparse skeleton lacks is learned


def test_without_dense_flag_the_heads_are_cif_and_caf():
    args = train.cli(['--dataset', 'synthetic', '--basenet', 'resnet18'])
    assert args.synthetic_with_dense is False and args.cocokp_with_dense is False


@pytest.fixture()
def animal_json(tmp_path):
    """Two images of a 4-keypoint animal; ``write(**category_fields)`` writes its json."""
    for i in range(2):
        PIL.Image.fromarray(np.full((90, 120, 3), 60 * i, np.uint8)).save(tmp_path / f'{i}.jpg')

    def write(**fields):
        category = {'id': 1, 'name': 'mouse', 'keypoints': ['snout', 'left_ear', 'right_ear', 'tail'],
                    'skeleton': [[1, 2], [1, 3], [1, 4]], **fields}
        data = {'images': [{'id': i, 'file_name': f'{i}.jpg', 'width': 120, 'height': 90} for i in range(2)],
                'annotations': [{'id': i, 'image_id': i, 'category_id': 1, 'iscrowd': 0, 'bbox': [20, 20, 60, 40],
                                 'keypoints': [30, 30, 2, 50, 25, 2, 50, 40, 2, 70, 50, 2]} for i in range(2)],
                'categories': [category]}
        path = tmp_path / 'animals.json'
        path.write_text(json.dumps(data))
        return path
    return write


def test_a_categorys_dense_skeleton_trains_its_pairs_not_already_sparse(animal_json):
    path = animal_json(dense_skeleton=[[2, 3], [1, 2], [2, 4], [3, 4]])
    datamodule, _ = module('cocokp', path, path.parent, '--cocokp-with-dense')
    dense = datamodule.head_metas[2]
    assert dense.name == 'caf3' and dense.skeleton == [(2, 3), (2, 4), (3, 4)]  # (1, 2) is sparse already
    assert dense.sparse_skeleton == [(1, 2), (1, 3), (1, 4)]


def test_with_dense_without_dense_connections_is_one_error_naming_the_flag(animal_json):
    path = animal_json()
    with pytest.raises(ValueError, match=r"^--cocokp-with-dense: category 'mouse' declares no dense connections"):
        module('cocokp', path, path.parent, '--cocokp-with-dense')
    assert len(module('cocokp', path, path.parent)[0].head_metas) == 2  # fine without the flag
    path = animal_json(dense_skeleton=[[1, 2]])
    with pytest.raises(ValueError, match='--cocokp-with-dense: every dense connection is already in the skeleton'):
        module('cocokp', path, path.parent, '--cocokp-with-dense')


@pytest.mark.parametrize('bad', [[[1, 5]], [[1]], 'all', [], [[1, True]]])
def test_a_bad_dense_skeleton_names_the_file_and_the_field(animal_json, bad):
    path = animal_json(dense_skeleton=bad)
    with pytest.raises(DatasetError, match=f'{path}: category 1 "dense_skeleton" must be a non-empty list'):
        module('cocokp', path, path.parent)


@pytest.mark.skipif(not CROWDPOSE_SAMPLE.is_dir(), reason=f'CrowdPose sample not found at {CROWDPOSE_SAMPLE}')
def test_crowdpose_has_no_dense_connections_and_says_so():
    with pytest.raises(ValueError, match="^--crowdpose-with-dense: category 'person' declares no dense"):
        module('crowdpose', CROWDPOSE_SAMPLE / 'annotations.json', CROWDPOSE_SAMPLE / 'images',
               '--crowdpose-with-dense')


@pytest.mark.skipif(not COCO_SAMPLE.is_dir(), reason=f'COCO sample not found at {COCO_SAMPLE}')
def test_top_down_refuses_a_dense_head_instead_of_dropping_it():
    datamodule, _ = module('cocokp', COCO_SAMPLE / 'annotations.json', COCO_SAMPLE / 'images', '--cocokp-with-dense')
    with pytest.raises(ValueError, match='^--cocokp-with-dense: a dense Caf head is for bottom-up decoding'):
        TopDownModule(datamodule)
