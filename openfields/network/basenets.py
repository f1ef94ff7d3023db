"""Base networks (backbones): images ``(B, 3, H, W)`` -> features ``(B, out_features, h, w)``.

Every basenet has ``name``, ``stride`` (``h = (H - 1) // stride + 1``), ``out_features`` and a
plain-typed ``config`` dict. ``build(name, config)`` rebuilds the same architecture, so checkpoints
store ``name`` and ``config`` (plus a state dict) instead of pickled modules.

Families: ShuffleNetV2K and ResNet here (``resnet50_gn``: GroupNorm), HRNet (:mod:`.hrnet`, built by timm)
and CSPNeXt (:mod:`.cspnext`). Basenets with BatchNorm take ``freeze_bn_stats`` / ``freeze_bn_weights``
(:class:`FreezableBatchNorm`). Plugins add basenets with :func:`register_basenet`.
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch
import torchvision
from torch import nn

from .basenet_parts import (BASENETS, CONFIG_FROM_ARGS, FAMILY_FLAGS, FREEZE_BATCHNORM, PLAIN_TYPES,  # noqa: F401
                            BasenetBuilder, BasenetDependencyMissing, FreezableBatchNorm, batchnorms, freeze_config,
                            register_basenet, resolve_config)
from .batchnorm import BatchNorm2d
from .depthwise import DepthwiseConv2d

def build(name: str, config: dict | None = None) -> nn.Module:
    """Basenet ``name`` built from ``config`` (missing keys take their defaults)."""
    builder = BASENETS.get(name)
    if builder is None:
        raise ValueError(f'unknown --basenet {name!r}; choose from: {", ".join(sorted(BASENETS))}')
    return builder(dict(config or {}))


def config_from_args(name: str, args: argparse.Namespace) -> dict:
    """The config of basenet ``name`` as selected by the parsed CLI flags; a flag of :data:`FAMILY_FLAGS`
    given for a basenet that does not read it is refused (it would do nothing)."""
    if name not in BASENETS:
        raise ValueError(f'unknown --basenet {name!r}; choose from: {", ".join(sorted(BASENETS))}')
    config = CONFIG_FROM_ARGS[name](args)
    for dest, key in FAMILY_FLAGS.items():
        if getattr(args, dest, False) and key not in config:
            flag = '--' + dest.replace('_', '-')
            raise ValueError(f'{flag} (or {key} of a DeepLabCut file) does not apply to --basenet {name}')
    return config


def stride(name: str, config: dict | None = None) -> int:
    """The stride of basenet ``name`` with ``config``, without allocating its weights (built on the
    ``meta`` device)."""
    with torch.device('meta'):
        return build(name, config).stride


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('basenets')
    group.add_argument('--basenet-pretrained', nargs='?', const='auto', default=None, metavar='timm|PATH',
                       help='initialise the basenet with ImageNet weights, the default for basenets that have '
                            'them (ResNets, as in OpenPifPaf; HRNets and CSPNeXts, as in DeepLabCut): alone, '
                            'its published file (torchvision\'s for BatchNorm ResNets, timm\'s for resnet50_gn '
                            'and HRNets, DeepLabCut\'s for CSPNeXts) from the torch hub or Hugging Face cache, '
                            'downloaded there when missing; timm: timm\'s for BatchNorm ResNets too (as '
                            'DeepLabCut); PATH: that file')
    group.add_argument('--no-basenet-pretrained', dest='basenet_pretrained', action='store_const', const=False,
                       help='no ImageNet weights: the basenet trains from scratch (what a config file, such as a '
                            'DeepLabCut pytorch_config.yaml, asked for is dropped)')
    group.add_argument('--resnet-no-pretrain', dest='basenet_pretrained', action='store_const', const=False,
                       help='OpenPifPaf\'s name of --no-basenet-pretrained')
    group.add_argument('--basenet-freeze-bn-stats', action='store_true', default=False,
                       help='keep the basenet\'s BatchNorms in evaluation mode while training: their running '
                            'statistics stay those they were loaded with (DeepLabCut\'s freeze_bn_stats)')
    group.add_argument('--basenet-freeze-bn-weights', action='store_true', default=False,
                       help='do not train the scale and shift of the basenet\'s BatchNorms (DeepLabCut\'s '
                            'freeze_bn_weights)')
    group.add_argument('--shufflenetv2k-kernel', type=int, default=5,
                       help='depthwise kernel size of the ShuffleNetV2K blocks (odd)')
    group.add_argument('--resnet-pool0-stride', type=int, default=0,
                       help='stride of the max-pool after the input conv (0 removes it)')
    group.add_argument('--resnet-input-conv-stride', type=int, default=2,
                       help='stride of the 7x7 input conv')
    group.add_argument('--resnet-input-conv2-stride', type=int, default=0,
                       help='>0 adds a 3x3 conv + BN + ReLU with this stride after the input conv')
    group.add_argument('--resnet-block5-dilation', type=int, default=1,
                       help='dilation of the last block; >1 replaces its stride (halves the stride)')
    group.add_argument('--resnet-remove-last-block', action='store_true', default=False,
                       help='drop the last block (layer4); halves the stride and the features')
    group.add_argument('--hrnet-interpolate-branches', action='store_true', default=False,
                       help='HRNet: the four branches upsampled to stride 4 and concatenated (DeepLabCut\'s DEKR '
                            'backbone) instead of the stride-4 branch alone')
    group.add_argument('--hrnet-increased-channel-count', action='store_true', default=False,
                       help='HRNet: each branch through timm\'s wider "incre" block first (128 channels at '
                            'stride 4)')


# --------------------------------------------------------------------------------------------------
# ShuffleNetV2K


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W) with channels interleaved across ``groups``."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(batch, channels, height, width)


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
             groups: int = 1, relu: bool = True, norm: Callable[[int], nn.Module] = BatchNorm2d) -> nn.Sequential:
    """Conv (no bias: a norm follows) + BN (or ``norm``) (+ ReLU); ``H -> (H - 1) // stride + 1`` for odd
    kernels."""
    padding = (kernel_size - 1) // 2
    if groups > 1 and groups == in_channels == out_channels:
        conv = DepthwiseConv2d(in_channels, kernel_size, stride, padding)  # faster weight gradient on CPU
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
    layers = [conv, norm(out_channels)]  # BatchNorm2d: a faster training-mode forward on CPU
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidualK(nn.Module):
    """ShuffleNetV2 unit with a ``kernel_size`` depthwise conv.

    ``(B, in_channels, H, W) -> (B, out_channels, (H - 1) // stride + 1, (W - 1) // stride + 1)``.
    Stride 1: half of the channels pass through, the other half goes through the branch.
    Stride 2: both branches see all input channels and downsample.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_size: int):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f'out_channels must be even, got {out_channels}')
        branch_channels = out_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError('a stride-1 block needs in_channels == out_channels')
        self.stride = stride

        self.branch1 = None
        if stride > 1:
            self.branch1 = nn.Sequential(
                _conv_bn(in_channels, in_channels, kernel_size, stride, groups=in_channels, relu=False),
                _conv_bn(in_channels, branch_channels),
            )
        branch2_in = in_channels if stride > 1 else branch_channels
        self.branch2 = nn.Sequential(
            _conv_bn(branch2_in, branch_channels),
            _conv_bn(branch_channels, branch_channels, kernel_size, stride, groups=branch_channels,
                     relu=False),
            _conv_bn(branch_channels, branch_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            passthrough, x2 = x.chunk(2, dim=1)
            out = torch.cat((passthrough, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2K(nn.Module):
    """ShuffleNetV2 with large depthwise kernels and no max-pool; stride 16.

    ``(B, 3, H, W) -> (B, stage_out_channels[-1], (H - 1) // 16 + 1, (W - 1) // 16 + 1)``.
    """

    def __init__(self, name: str, stage_repeats: list[int], stage_out_channels: list[int],
                 config: dict):
        super().__init__()
        self.name = name
        self.config = resolve_config(name, config, {'kernel_size': 5})
        kernel_size = self.config['kernel_size']
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'{name}: kernel_size must be odd and positive, got {kernel_size}')
        if len(stage_repeats) != 3 or len(stage_out_channels) != 5:
            raise ValueError(f'{name}: need 3 stage repeats and 5 channel counts')

        input_channels = stage_out_channels[0]
        self.input_block = _conv_bn(3, input_channels, 3, stride=2)
        stages = []
        for repeats, out_channels in zip(stage_repeats, stage_out_channels[1:4]):
            blocks = [InvertedResidualK(input_channels, out_channels, 2, kernel_size)]
            blocks += [InvertedResidualK(out_channels, out_channels, 1, kernel_size)
                       for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*blocks))
            input_channels = out_channels
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = _conv_bn(input_channels, stage_out_channels[4])

        self.stride = 16
        self.out_features = stage_out_channels[4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_block(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        return self.conv5(x)


SHUFFLENETV2K_SPECS = {
    'shufflenetv2k16': ([4, 8, 4], [24, 348, 696, 1392, 1392]),
    'shufflenetv2k30': ([8, 16, 6], [32, 512, 1024, 2048, 2048]),
}


def _shufflenetv2k_builder(name: str) -> BasenetBuilder:
    repeats, channels = SHUFFLENETV2K_SPECS[name]
    return lambda config: ShuffleNetV2K(name, repeats, channels, config)


def _shufflenetv2k_config(args: argparse.Namespace) -> dict:
    return {'kernel_size': args.shufflenetv2k_kernel}


# --------------------------------------------------------------------------------------------------
# ResNet

RESNET_DEFAULTS = {
    'pool0_stride': 0,
    'input_conv_stride': 2,
    'input_conv2_stride': 0,
    'block5_dilation': 1,
    'remove_last_block': False,
}


def group_norm(channels: int) -> nn.GroupNorm:
    """timm's ``resnet50_gn`` norm (DeepLabCut's ``resnet_50``): 32 groups of channels, each normalised
    over (C / 32, H, W) per image, so that training does not depend on the batch size; eps 1e-5, affine."""
    return nn.GroupNorm(32, channels)


# ResNet basenet -> (torchvision architecture, norm replacing every BatchNorm; None: BatchNorm)
RESNETS = {'resnet18': ('resnet18', None), 'resnet50': ('resnet50', None), 'resnet50_gn': ('resnet50', group_norm),
           'resnet101': ('resnet101', None), 'resnet152': ('resnet152', None)}


class ResNet(FreezableBatchNorm):
    """torchvision ResNet without avgpool/fc; stride 16 by default (max-pool removed).

    ``(B, 3, H, W) -> (B, out_features, (H - 1) // stride + 1, (W - 1) // stride + 1)``.
    Submodule names match torchvision's (``conv1``, ``bn1``, ``layer1``..``layer4``) so that
    ImageNet state dicts load directly (timm's ResNets use the same names); ``input_conv2`` is the only
    addition. ``resnet50_gn`` has GroupNorm (:func:`group_norm`) in place of every BatchNorm, and thus
    nothing for ``freeze_bn_*`` to freeze.
    """

    def __init__(self, name: str, config: dict):
        super().__init__()
        self.name = name
        self.config = resolve_config(name, config, {**RESNET_DEFAULTS, **FREEZE_BATCHNORM})
        cfg = self.config
        for key in ('pool0_stride', 'input_conv2_stride'):
            if cfg[key] < 0:
                raise ValueError(f'{name}: {key} must be >= 0, got {cfg[key]}')
        for key in ('input_conv_stride', 'block5_dilation'):
            if cfg[key] < 1:
                raise ValueError(f'{name}: {key} must be >= 1, got {cfg[key]}')
        architecture, norm = RESNETS[name]
        for key in FREEZE_BATCHNORM:
            if norm is not None and cfg[key]:
                raise ValueError(f'{name}: {key}: {name} has GroupNorm, no BatchNorm to freeze')

        tv_resnet = getattr(torchvision.models, architecture)(weights=None, norm_layer=norm)
        self.conv1 = tv_resnet.conv1
        self.conv1.stride = (cfg['input_conv_stride'],) * 2
        self.bn1 = tv_resnet.bn1
        self.relu = tv_resnet.relu
        self.input_conv2 = (_conv_bn(64, 64, 3, cfg['input_conv2_stride'], norm=norm or BatchNorm2d)
                            if cfg['input_conv2_stride'] else None)
        self.maxpool = (nn.MaxPool2d(3, cfg['pool0_stride'], padding=1)
                        if cfg['pool0_stride'] else None)
        self.layer1, self.layer2, self.layer3 = tv_resnet.layer1, tv_resnet.layer2, tv_resnet.layer3
        self.layer4 = None
        layer3_features = self.layer3[-1].conv1.in_channels  # 256 (r18) / 1024 (bottleneck)
        self.out_features = layer3_features
        if not cfg['remove_last_block']:
            self.layer4 = tv_resnet.layer4
            self.out_features = tv_resnet.fc.in_features
            if cfg['block5_dilation'] > 1:
                _dilate(self.layer4, cfg['block5_dilation'])

        self.stride = self._compute_stride()
        self.freeze_batchnorm()

    def _compute_stride(self) -> int:
        cfg = self.config
        stride = cfg['input_conv_stride'] * (cfg['input_conv2_stride'] or 1) * (cfg['pool0_stride'] or 1)
        stride *= 2 * 2  # layer2, layer3
        if self.layer4 is not None and cfg['block5_dilation'] == 1:
            stride *= 2
        return stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.input_conv2 is not None:
            x = self.input_conv2(x)
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.layer4 is not None:
            x = self.layer4(x)
        return x


def _dilate(layer: nn.Module, dilation: int) -> None:
    """Replace the stride-2 convs of ``layer`` by stride 1 and dilate its 3x3 convs, keeping the
    receptive field growth without downsampling. Parameter shapes are unchanged."""
    for module in layer.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        module.stride = (1, 1)
        if module.kernel_size == (3, 3):
            module.dilation = (dilation, dilation)
            module.padding = (dilation, dilation)


def _resnet_builder(name: str) -> BasenetBuilder:
    return lambda config: ResNet(name, config)


def _resnet_config(args: argparse.Namespace) -> dict:
    return {
        'pool0_stride': args.resnet_pool0_stride,
        'input_conv_stride': args.resnet_input_conv_stride,
        'input_conv2_stride': args.resnet_input_conv2_stride,
        'block5_dilation': args.resnet_block5_dilation,
        'remove_last_block': args.resnet_remove_last_block,
        **freeze_config(args),
    }


for _name in SHUFFLENETV2K_SPECS:
    register_basenet(_name, _shufflenetv2k_builder(_name), _shufflenetv2k_config)
for _name in RESNETS:
    register_basenet(_name, _resnet_builder(_name), _resnet_config)
del _name

# the other families register their basenets on import (they build on the definitions above)
from . import cspnext, hrnet  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import,cyclic-import
