"""CSPNeXt basenets ``cspnext_s``, ``cspnext_m``, ``cspnext_x``: the backbone of RTMDet (Lyu et al. 2022,
arXiv 2212.07784) and of RTMPose, DeepLabCut's ``rtmpose_*`` / ``cspnext_*`` net types.

A CSPDarkNet whose basic block has a 5x5 depthwise convolution, with channel attention in every CSP layer.
Every conv is conv (no bias) + BatchNorm + SiLU. With widen factor ``w`` and deepen factor ``d`` of the variant
(:data:`VARIANTS`), channels ``c(n) = int(n w)`` and blocks ``b(n) = max(round(n d), 1)``:

* stem: three 3x3 convs, the first of stride 2: ``3 -> c(64) // 2 -> c(64) // 2 -> c(64)``;
* stage ``k`` = 1..4, from ``c_in`` = c(64), c(128), c(256), c(512) to ``c_out`` = twice that: a 3x3
  stride-2 conv ``c_in -> c_out``, in stage 4 an SPPF (:class:`SPPF`), then a CSP layer
  (:class:`CSPLayer`) of b(3), b(6), b(6), b(3) blocks, with identity shortcuts in stages 1-3.

``(B, 3, H, W) -> (B, c(1024), h, w)`` with ``h = (H - 1) // 32 + 1`` (every downsampling is a stride-2
3x3 conv with padding 1). Module names are DeepLabCut's (``stem.0.conv``, ``stage1.1.main_conv.norm``, ...)
so that its ImageNet weights (``DeepLabCut/DeepLabCut-Backbones`` on the Hugging Face hub) load as they are.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from .basenet_parts import FREEZE_BATCHNORM, FreezableBatchNorm, freeze_config, register_basenet, resolve_config
from .batchnorm import BatchNorm2d
from .depthwise import DepthwiseConv2d

# variant -> (deepen factor, widen factor), RTMDet's s, m, x (DeepLabCut's backbones/cspnext_*.yaml)
VARIANTS = {'cspnext_s': (0.33, 0.5), 'cspnext_m': (0.67, 0.75), 'cspnext_x': (1.33, 1.25)}
# RTMDet's P5 architecture: per stage (input channels, output channels, blocks, identity shortcut, SPPF)
STAGES = ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False),
          (512, 1024, 3, False, True))
STEM_CHANNELS = 64
KERNEL = 5  # of the depthwise conv of a block and of the SPPF max pools
STRIDE = 32


class ConvModule(nn.Module):
    """``conv`` (no bias) -> ``norm`` (BatchNorm) -> SiLU; ``H -> (H - 1) // stride + 1`` (odd kernels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 depthwise: bool = False):
        super().__init__()
        padding = kernel_size // 2
        if depthwise:
            self.conv = DepthwiseConv2d(in_channels, kernel_size, stride, padding)  # faster weight gradient on CPU
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.norm = BatchNorm2d(out_channels)
        self.activate = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.norm(self.conv(x)))


class DepthwiseSeparable(nn.Module):
    """5x5 depthwise ConvModule then 1x1 ConvModule: the large spatial kernel at the cost of a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, kernel_size, depthwise=True)
        self.pointwise_conv = ConvModule(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class CSPNeXtBlock(nn.Module):
    """``(B, c, H, W) -> (B, c, H, W)``: 3x3 ConvModule, 5x5 depthwise separable conv, plus the input when
    ``identity``."""

    def __init__(self, channels: int, identity: bool):
        super().__init__()
        self.conv1 = ConvModule(channels, channels, 3)
        self.conv2 = DepthwiseSeparable(channels, channels, KERNEL)
        self.identity = identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.identity else out


class ChannelAttention(nn.Module):
    """``x * hardsigmoid(fc(mean over H, W of x))``, ``fc`` a 1x1 conv with bias: each channel scaled by a
    weight in [0, 1] computed from all channels' means, (B, C, 1, 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.act = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.act(self.fc(x.mean(dim=(2, 3), keepdim=True)))


class CSPLayer(nn.Module):
    """Cross stage partial layer ``(B, c, H, W) -> (B, c, H, W)``: ``main_conv`` and ``short_conv`` (1x1)
    each make c / 2 channels, only the main half runs through the blocks (half the cost of running them on
    all), the halves are concatenated (c), scaled by channel attention and mixed by ``final_conv`` (1x1)."""

    def __init__(self, channels: int, n_blocks: int, identity: bool):
        super().__init__()
        half = channels // 2
        self.main_conv = ConvModule(channels, half)
        self.short_conv = ConvModule(channels, half)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(half, identity) for _ in range(n_blocks)])
        self.attention = ChannelAttention(2 * half)
        self.final_conv = ConvModule(2 * half, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1)
        return self.final_conv(self.attention(both))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: ``conv1`` (1x1) to c / 2, three 5x5 stride-1 max pools in a row,
    the input of the first and the three outputs concatenated (2 c), ``conv2`` (1x1) to c.

    Max pools of 5 in a row take the maximum over windows of 5, 9 and 13: the same values as the parallel
    5, 9, 13 pools of SPP (DeepLabCut's and mmdetection's CSPNeXt), so their weights serve both."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv1 = ConvModule(channels, half)
        self.pool = nn.MaxPool2d(KERNEL, stride=1, padding=KERNEL // 2)
        self.conv2 = ConvModule(4 * half, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [self.conv1(x)]
        for _ in range(3):
            pooled.append(self.pool(pooled[-1]))
        return self.conv2(torch.cat(pooled, dim=1))


class CSPNeXt(FreezableBatchNorm):
    """See the module docstring; ``(B, 3, H, W) -> (B, out_features, (H - 1) // 32 + 1, (W - 1) // 32 + 1)``."""

    def __init__(self, name: str, config: dict):
        super().__init__()
        self.name = name
        self.config = resolve_config(name, config, dict(FREEZE_BATCHNORM))
        deepen, widen = VARIANTS[name]
        stem = int(STEM_CHANNELS * widen)
        self.stem = nn.Sequential(ConvModule(3, stem // 2, 3, stride=2), ConvModule(stem // 2, stem // 2, 3),
                                  ConvModule(stem // 2, stem, 3))
        for index, (in_channels, out_channels, blocks, identity, sppf) in enumerate(STAGES, start=1):
            in_channels, out_channels = int(in_channels * widen), int(out_channels * widen)
            layers = [ConvModule(in_channels, out_channels, 3, stride=2)]
            if sppf:
                layers.append(SPPF(out_channels))
            layers.append(CSPLayer(out_channels, max(round(blocks * deepen), 1), identity))
            self.add_module(f'stage{index}', nn.Sequential(*layers))
        self.out_features = out_channels
        self.stride = STRIDE
        self.freeze_batchnorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for index in range(1, len(STAGES) + 1):
            x = getattr(self, f'stage{index}')(x)
        return x


def _builder(name: str):
    return lambda config: CSPNeXt(name, config)


def _config(args: argparse.Namespace) -> dict:
    return freeze_config(args)


for _name in VARIANTS:
    register_basenet(_name, _builder(_name), _config)
del _name
