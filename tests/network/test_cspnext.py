"""CSPNeXt basenets: sizes against RTMDet's published ImageNet models, DeepLabCut's weight names, SPPF,
BatchNorm freezing, an ONNX export."""

import pytest
import torch
from torch import nn

from openfields.datasets import coco_person
from openfields.datasets.coco import KeypointCategory
from openfields.datasets.keypoint_module import head_metas_for
from openfields.network import basenets, checkpoint, cspnext, factory

# measured. RTMDet's ImageNet CSPNeXt-s / m / x have 4.89M / 13.05M / 48.85M parameters (mmdetection's
# configs/rtmdet/cspnext_imagenet_pretrain table) with a 1000-class linear head on the last stage:
# 4_378_320 + 512 * 1001 = 4.89M, 12_279_432 + 768 * 1001 = 13.05M, 47_569_560 + 1280 * 1001 = 48.85M
PARAMETERS = {'cspnext_s': 4_378_320, 'cspnext_m': 12_279_432, 'cspnext_x': 47_569_560}
CHANNELS = {'cspnext_s': 512, 'cspnext_m': 768, 'cspnext_x': 1280}  # DeepLabCut's backbone_output_channels


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('name', sorted(PARAMETERS))
def test_sizes(name):
    net = basenets.build(name)
    assert (net.stride, net.out_features, n_parameters(net)) == (32, CHANNELS[name], PARAMETERS[name])
    classifier = CHANNELS[name] * 1000 + 1000
    assert round((PARAMETERS[name] + classifier) / 1e6, 2) == {'cspnext_s': 4.89, 'cspnext_m': 13.05,
                                                               'cspnext_x': 48.85}[name]


def test_blocks_per_stage_follow_the_deepen_factor():
    for name, blocks in (('cspnext_s', [1, 2, 2, 1]), ('cspnext_m', [2, 4, 4, 2]), ('cspnext_x', [4, 8, 8, 4])):
        net = basenets.build(name)
        assert [len(getattr(net, f'stage{i}')[-1].blocks) for i in range(1, 5)] == blocks


def test_output_size_at_any_input_size():
    net = basenets.build('cspnext_s')
    for height, width in ((65, 97), (33, 40), (256, 256)):
        assert net(torch.randn(1, 3, height, width)).shape == (1, 512, (height - 1) // 32 + 1, (width - 1) // 32 + 1)


def test_state_dict_has_deeplabcuts_names():
    keys = set(basenets.build('cspnext_m').state_dict())
    assert {'stem.0.conv.weight', 'stem.2.norm.running_var', 'stage1.0.conv.weight', 'stage1.1.main_conv.conv.weight',
            'stage1.1.short_conv.norm.bias', 'stage1.1.final_conv.conv.weight', 'stage1.1.attention.fc.bias',
            'stage1.1.blocks.1.conv1.conv.weight', 'stage1.1.blocks.1.conv2.depthwise_conv.conv.weight',
            'stage1.1.blocks.1.conv2.pointwise_conv.norm.weight', 'stage4.1.conv1.conv.weight',
            'stage4.1.conv2.conv.weight', 'stage4.2.blocks.1.conv1.conv.weight'} <= keys
    net = basenets.build('cspnext_m')
    assert net.stem[0].conv.weight.shape == (24, 3, 3, 3)  # int(64 * 0.75) // 2
    assert net.stage1[1].blocks[0].conv2.depthwise_conv.conv.weight.shape == (48, 1, 5, 5)
    assert net.stage4[1].conv2.conv.weight.shape == (768, 4 * 384, 1, 1)


def test_sppf_equals_parallel_5_9_13_pooling():
    """Three 5x5 max pools in a row give SPP's 5, 9 and 13 pools: one set of weights serves both."""
    torch.manual_seed(0)
    sppf = cspnext.SPPF(8).eval()
    x = torch.randn(2, 8, 11, 7)
    with torch.no_grad():
        half = sppf.conv1(x)
        spp = [half] + [nn.MaxPool2d(k, 1, k // 2)(half) for k in (5, 9, 13)]
        assert torch.equal(sppf(x), sppf.conv2(torch.cat(spp, 1)))


def test_freeze_bn_weights_leaves_them_out_of_the_gradient():
    net = basenets.build('cspnext_s', {'freeze_bn_weights': True})
    trained = {name for name, p in net.named_parameters() if p.requires_grad}
    assert trained and not any('.norm.' in name for name in trained)
    assert all(n.training for n in basenets.batchnorms(net.train()))  # statistics still update


@pytest.mark.slow  # 15-30 s end to end: make test-slow (CI runs it), make test stays near 10 minutes
def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip('onnxruntime')
    from model_files import export  # pylint: disable=import-outside-toplevel
    from openfields.export import onnx as onnx_export  # pylint: disable=import-outside-toplevel
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    path = tmp_path / 'cspnext.pkl'
    checkpoint.save(path, factory.build('cspnext_s', {}, head_metas_for(category, 'cocokp', 1, base_stride=32)),
                    epoch=1, meta={'decoders': {'cocokp': ['cifcaf']}})
    difference = export(onnx_export.EXPORTER, path, tmp_path / 'cspnext.onnx')  # two sizes, two batch sizes
    assert difference < 1e-4 and (tmp_path / 'cspnext.onnx').is_file()
