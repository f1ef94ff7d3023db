"""Session-wide tiny models for the export, inference and video tests: a resnet18 checkpoint with COCO
person heads (random weights) and its ONNX and TorchScript exports, each made once.

A pytest plugin of tests/conftest.py (``pytest_plugins``): its fixtures serve every test folder.
"""

import pytest

from openfields.datasets import coco_person
from openfields.datasets.coco import KeypointCategory
from openfields.datasets.keypoint_module import head_metas_for
from openfields.export import onnx as onnx_export, torchscript
from openfields.export import command
from openfields.network import checkpoint, factory


def head_metas(dataset='cocokp'):
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    return head_metas_for(category, dataset, 1, base_stride=16)


def export(exporter, source, output):
    args = command.parser('test', 'test', exporter.suffix).parse_args(
        ['--checkpoint', str(source), '--output', str(output), '--input-size', '81x65'])
    return command.run(args, exporter)


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('models') / 'tiny.pkl'
    checkpoint.save(path, factory.build('resnet18', {}, head_metas()), epoch=3,
                    meta={'decoders': {'cocokp': ['cifcaf']}})
    return path


@pytest.fixture(scope='session')
def tiny_onnx(tiny_checkpoint):
    path = tiny_checkpoint.with_suffix('.onnx')
    export(onnx_export.EXPORTER, tiny_checkpoint, path)
    return path


@pytest.fixture(scope='session')
def tiny_torchscript(tiny_checkpoint):
    path = tiny_checkpoint.with_suffix('.pt')
    export(torchscript.EXPORTER, tiny_checkpoint, path)
    return path


@pytest.fixture(scope='session')
def imagenet_resnet18_hub(tmp_path_factory):
    """A torch hub folder holding ``checkpoints/resnet18-f37072fd.pth`` under torchvision's name: a resnet18
    state dict of random weights (seed 0) standing in for the ImageNet file, made once."""
    import torch  # pylint: disable=import-outside-toplevel
    import torchvision  # pylint: disable=import-outside-toplevel
    from openfields.network import pretrained  # pylint: disable=import-outside-toplevel
    home = tmp_path_factory.mktemp('torch-home')
    path = home / 'hub' / 'checkpoints' / pretrained.hub_cache_path('resnet18').name
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return home


@pytest.fixture(name='imagenet_cache')
def fixture_imagenet_cache(imagenet_resnet18_hub, monkeypatch):
    """TORCH_HOME (this process and its children) at :func:`imagenet_resnet18_hub`; the cached file's path."""
    monkeypatch.setenv('TORCH_HOME', str(imagenet_resnet18_hub))
    return next((imagenet_resnet18_hub / 'hub' / 'checkpoints').iterdir())
