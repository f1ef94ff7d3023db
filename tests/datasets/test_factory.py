"""``--dataset``: a DataModule's head metas carry the basenet's stride before any network exists."""

import json

import pytest

from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.network import checkpoint, factory as network_factory


@pytest.fixture()
def one_category_json(tmp_path):
    categories = [{'id': 1, 'name': 'animal', 'keypoints': ['nose', 'left_paw', 'right_paw'],
                   'skeleton': [[1, 2], [1, 3]]}]
    path = tmp_path / 'animals.json'
    path.write_text(json.dumps({'images': [], 'annotations': [], 'categories': categories}))
    return path


def cocokp_args(path, *extra):
    return train.cli(['--dataset', 'cocokp', '--cocokp-train-annotations', str(path),
                      '--cocokp-val-annotations', str(path), '--cocokp-upsample', '2', *extra])


def test_head_metas_have_the_basenets_stride_from_its_name_and_flags(one_category_json):
    args = cocokp_args(one_category_json, '--basenet', 'resnet18', '--no-basenet-pretrained',
                       '--resnet-block5-dilation', '2')
    assert network_factory.base_stride(args) == 8
    datamodule = datasets_factory.datamodule_from_args(args, network_factory.base_stride(args))
    assert [(m.name, m.base_stride, m.stride) for m in datamodule.head_metas] == [('cif', 8, 4), ('caf', 8, 4)]
    assert network_factory.base_stride(cocokp_args(one_category_json)) == 16  # the default shufflenetv2k16


def test_head_metas_have_the_stride_of_the_checkpoints_basenet(one_category_json, tmp_path):
    args = cocokp_args(one_category_json, '--basenet', 'resnet18', '--no-basenet-pretrained',
                       '--resnet-input-conv2-stride', '2')
    metas = datasets_factory.datamodule_from_args(args, 32).head_metas
    checkpoint.save(tmp_path / 'model.pkl', network_factory.factory(args, metas), epoch=0, meta={})
    args = cocokp_args(one_category_json, '--checkpoint', str(tmp_path / 'model.pkl'))
    assert network_factory.base_stride(args) == 32
    assert network_factory.base_stride(args, checkpoint.load(tmp_path / 'model.pkl')) == 32


def test_the_network_keeps_the_datasets_metas_unchanged(one_category_json):
    args = cocokp_args(one_category_json, '--basenet', 'resnet18', '--no-basenet-pretrained')
    datamodule = datasets_factory.datamodule_from_args(args, network_factory.base_stride(args))
    before = [m.to_dict() for m in datamodule.head_metas]
    network = network_factory.factory(args, datamodule.head_metas)
    assert [m.to_dict() for m in datamodule.head_metas] == before
    assert all(a is b for a, b in zip(network.head_metas, datamodule.head_metas))
