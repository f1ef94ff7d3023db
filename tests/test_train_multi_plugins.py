"""The issue's own multi-dataset commands on the shared samples: ``cocokp-crowdpose`` weighted 1.0 : 0.5 and
``cocokp-cocodet`` (keypoints and boxes from the same COCO json)."""

import pathlib

import pytest

from openfields import train
from openfields.training.log import read

SHARED = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'
needs_shared = pytest.mark.skipif(not (SHARED / 'crowdpose-sample' / 'annotations.json').is_file(),
                                  reason=f'shared samples not found at {SHARED}')


def dataset_flags(name: str, folder: pathlib.Path) -> list[str]:
    return [f'--{name}-train-annotations', str(folder / 'annotations.json'),
            f'--{name}-val-annotations', str(folder / 'annotations.json'),
            f'--{name}-train-image-dir', str(folder / 'images'), f'--{name}-val-image-dir', str(folder / 'images'),
            f'--{name}-square-edge', '33', f'--{name}-no-augmentation']


def train_one_epoch(tmp_path, argv) -> list[dict]:
    out = tmp_path / 'multi.pkl'
    train.run(train.cli(argv + ['--basenet', 'resnet18', '--no-basenet-pretrained', '--resnet-remove-last-block',
                                '--batch-size', '1',
                                '--epochs', '1', '--val-batches', '1', '--loader-workers', '0', '--seed', '1',
                                '--output', str(out)]))
    return read(f'{out}.log')


@needs_shared
def test_cocokp_crowdpose_weighted_two_to_one(tmp_path):
    records = train_one_epoch(tmp_path, ['--dataset', 'cocokp-crowdpose', '--dataset-weights', '1.0', '0.5']
                              + dataset_flags('cocokp', SHARED / 'coco-val-sample')
                              + dataset_flags('crowdpose', SHARED / 'crowdpose-sample'))
    [epoch] = [r for r in records if r['type'] == 'train-epoch']
    served = epoch['batches_per_dataset']
    # 4 COCO images and 2 CrowdPose images, one per batch: two thirds from cocokp
    assert served == {'cocokp': 4, 'crowdpose': 2}
    assert {r['dataset'] for r in records if r['type'] == 'val-epoch'} == {'cocokp', 'crowdpose'}


@needs_shared
def test_cocokp_cocodet_from_the_same_json(tmp_path):
    coco = SHARED / 'coco-val-sample'
    records = train_one_epoch(tmp_path, ['--dataset', 'cocokp-cocodet'] + dataset_flags('cocokp', coco)
                              + dataset_flags('cocodet', coco))
    [epoch] = [r for r in records if r['type'] == 'train-epoch']
    assert epoch['batches_per_dataset'] == {'cocokp': 4, 'cocodet': 4}
    assert {'cocokp.cif.c', 'cocodet.cifdet.c'} <= {k for k, v in epoch['head_losses'].items() if v is not None}
