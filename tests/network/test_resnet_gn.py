"""``resnet50_gn``: DeepLabCut's ``resnet_50``, timm's ResNet-50 with GroupNorm in place of every BatchNorm."""

import argparse

import pytest
import torch
from torch import nn

from openfields.network import basenets, pretrained


def parse(argv):
    parser = argparse.ArgumentParser()
    basenets.cli(parser)
    return parser.parse_args(argv)


def test_every_norm_is_groupnorm_of_32_groups():
    net = basenets.build('resnet50_gn', {'input_conv2_stride': 2})
    norms = [m for m in net.modules() if isinstance(m, (nn.GroupNorm, nn.modules.batchnorm._BatchNorm))]
    assert len(norms) == 54 and all(isinstance(m, nn.GroupNorm) and m.num_groups == 32 for m in norms)
    assert basenets.batchnorms(net) == []
    resnet50 = basenets.build('resnet50')
    assert sum(p.numel() for p in basenets.build('resnet50_gn').parameters()) == \
        sum(p.numel() for p in resnet50.parameters())  # a GroupNorm has a BatchNorm's scale and shift


def test_training_does_not_depend_on_the_batch():
    net = basenets.build('resnet50_gn').train()
    images = torch.randn(2, 3, 65, 65)
    with torch.no_grad():
        assert torch.allclose(net(images)[:1], net(images[:1]), atol=1e-4)


def test_no_batchnorm_to_freeze():
    with pytest.raises(ValueError, match='resnet50_gn: freeze_bn_stats: resnet50_gn has GroupNorm, no BatchNorm'):
        basenets.build('resnet50_gn', basenets.config_from_args('resnet50_gn', parse(['--basenet-freeze-bn-stats'])))


def test_equals_timms_resnet50_gn_at_output_stride_32():
    """With the max-pool (DeepLabCut's output_stride 32) the basenet computes timm's features from timm's
    weights; at 16 both dilate the last block (openfields its first block too) and keep stride 16."""
    timm = pytest.importorskip('timm')
    torch.manual_seed(0)
    reference = timm.create_model('resnet50_gn').eval()
    net = basenets.build('resnet50_gn', {'pool0_stride': 2}).eval()
    report = pretrained.load_state_dict(net, 'resnet50_gn', reference.state_dict(), 'timm')
    assert report['skipped'] == ['fc.bias', 'fc.weight'] and net.stride == 32
    image = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        assert torch.allclose(net(image), reference.forward_features(image), atol=1e-5)
        dilated = basenets.build('resnet50_gn', {'pool0_stride': 2, 'block5_dilation': 2})
        timm16 = timm.create_model('resnet50_gn', output_stride=16)
        assert dilated(image).shape == timm16.forward_features(image).shape and dilated.stride == 16
