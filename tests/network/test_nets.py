import dataclasses

import pytest
import torch

from openfields import headmeta
from openfields.network import basenets
from openfields.network.heads import CompositeField
from openfields.network.nets import Shell, set_batchnorm
from openfields.datasets import coco_person


def coco_metas(upsample_stride=1):
    cif = headmeta.Cif(name='cif', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                       sigmas=coco_person.COCO_PERSON_SIGMAS, upsample_stride=upsample_stride)
    caf = headmeta.Caf(name='caf', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                       sigmas=coco_person.COCO_PERSON_SIGMAS, skeleton=coco_person.COCO_PERSON_SKELETON,
                       upsample_stride=upsample_stride)
    return [cif, caf]


def resnet18_shell(upsample_stride=1):
    basenet = basenets.build('resnet18')
    heads = [CompositeField(meta, basenet.out_features) for meta in coco_metas(upsample_stride)]
    return Shell(basenet, heads)


@pytest.fixture(scope='module')
def images():
    torch.manual_seed(1)
    return torch.randn(1, 3, 241, 321)


@pytest.mark.parametrize('upsample_stride, field_hw', [(1, (16, 21)), (2, (31, 41))])
def test_resnet18_coco_shapes(images, upsample_stride, field_hw):
    shell = resnet18_shell(upsample_stride).train()
    with torch.no_grad():
        cif, caf = shell(images)
    assert cif.shape == (1, 17, 5, *field_hw)
    assert caf.shape == (1, 19, 8, *field_hw)
    assert [m.stride for m in shell.head_metas] == [16 // upsample_stride] * 2


def test_resnet18_coco_eval(images):
    shell = resnet18_shell().eval()
    with torch.no_grad():
        cif, caf = shell(images)
        features = shell.basenet(images)
        raw_cif = shell.heads[0].train()(features)
    assert torch.all((cif[:, :, 1] > 0) & (cif[:, :, 1] < 1))
    assert torch.all((caf[:, :, 1] > 0) & (caf[:, :, 1] < 1))
    assert torch.all(cif[:, :, 4] > 0) and torch.all(caf[:, :, 6:8] > 0)
    # keypoint 5, cell row 7 column 12: positions are the raw offsets plus the cell index
    assert cif[0, 5, 2, 7, 12].item() == pytest.approx(raw_cif[0, 5, 2, 7, 12].item() + 12.0, abs=1e-5)
    assert cif[0, 5, 3, 7, 12].item() == pytest.approx(raw_cif[0, 5, 3, 7, 12].item() + 7.0, abs=1e-5)


def test_heads_keep_metas_made_for_the_basenets_stride():
    metas = [dataclasses.replace(m, base_stride=8) for m in coco_metas(upsample_stride=2)]
    basenet = basenets.build('resnet18', {'block5_dilation': 2})
    shell = Shell(basenet, [CompositeField(m, basenet.out_features) for m in metas])
    assert all(a is b for a, b in zip(shell.head_metas, metas))
    assert [m.stride for m in shell.head_metas] == [4, 4]


def test_a_meta_without_stride_gets_a_variant_with_the_basenets_and_stays_unchanged():
    metas = coco_metas(upsample_stride=2)
    basenet = basenets.build('resnet18', {'block5_dilation': 2})
    shell = Shell(basenet, [CompositeField(m, basenet.out_features) for m in metas])
    assert [(m.base_stride, m.stride) for m in shell.head_metas] == [(8, 4), (8, 4)]
    assert [m.base_stride for m in metas] == [0, 0]


def test_a_meta_made_for_another_stride_is_refused():
    metas = [dataclasses.replace(m, base_stride=16) for m in coco_metas()]
    basenet = basenets.build('resnet18', {'block5_dilation': 2})
    with pytest.raises(ValueError, match='made for base stride 16, basenet resnet18 has stride 8'):
        Shell(basenet, [CompositeField(m, basenet.out_features) for m in metas])


def test_head_mask_skips_heads():
    shell = resnet18_shell().eval()
    calls = []
    shell.heads[0].register_forward_hook(lambda *_: calls.append('cif'))
    images = torch.randn(2, 3, 33, 49)
    with torch.no_grad():
        outputs = shell(images, head_mask=[False, True])
    assert outputs[0] is None and outputs[1].shape == (2, 19, 8, 3, 4)
    assert not calls
    with torch.no_grad():
        assert shell(images, head_mask=[False, False]) == [None, None]
    with pytest.raises(ValueError, match='head_mask'):
        shell(images, head_mask=[True])


def test_head_features_must_match_basenet():
    basenet = basenets.build('resnet18')
    with pytest.raises(ValueError, match='features'):
        Shell(basenet, [CompositeField(coco_metas()[0], 2048)])


def test_set_batchnorm():
    shell = resnet18_shell()
    n_batchnorms = set_batchnorm(shell, eps=1e-3, momentum=0.01)
    batchnorms = [m for m in shell.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert n_batchnorms == len(batchnorms) == 20
    assert all(m.eps == 1e-3 and m.momentum == 0.01 for m in batchnorms)


def test_shell_gradients_reach_basenet():
    shell = resnet18_shell().train()
    outputs = shell(torch.randn(2, 3, 33, 33))
    sum(o.sum() for o in outputs).backward()
    assert shell.basenet.conv1.weight.grad is not None
    assert all(h.conv.weight.grad is not None for h in shell.heads)
