"""HRNet basenets ``hrnet_w18``, ``hrnet_w32``, ``hrnet_w48``: timm's HRNet, built as DeepLabCut builds its
HRNet backbone (timm's feature extractor of branches 1-4), so that timm's ImageNet weights load.

HRNet keeps a stride-4 branch of W channels (18, 32, 48) from its stem to its end and adds branches of
2W, 4W, 8W channels at strides 8, 16, 32, all of them exchanging features after every stage. The features:

* default: the stride-4 branch, ``(B, W, h, w)`` with ``h = (H - 1) // 4 + 1``;
* ``increased_channel_count``: each branch first goes through timm's "incre" bottleneck (part of its
  classification head), 128 channels at stride 4 (256, 512, 1024 at the others);
* ``interpolate_branches``: the stride-4 branch and the three others upsampled bilinearly to its size,
  concatenated: 15 W channels (480 for w32; 1920 with ``increased_channel_count``), DeepLabCut's DEKR
  backbone.

Without ``interpolate_branches`` the last fusion computes the stride-4 output only (HRNet's pose design):
the fusion into the coarser branches would be computed for nothing, and their parameters would get no
gradient, which distributed training refuses.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from .basenet_parts import (FREEZE_BATCHNORM, BasenetDependencyMissing, FreezableBatchNorm, freeze_config,
                            register_basenet, resolve_config)

HRNET_DEFAULTS = {'interpolate_branches': False, 'increased_channel_count': False, **FREEZE_BATCHNORM}
NAMES = ('hrnet_w18', 'hrnet_w32', 'hrnet_w48')
STRIDE = 4  # of the first branch, the output
ALIGNMENT = 32  # of the coarsest branch: the input sides it needs (see :meth:`HRNet.forward`)


def require_timm(basenet: str):
    """The ``timm`` module, or a :class:`BasenetDependencyMissing` naming ``basenet`` and the install command."""
    try:
        import timm  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise BasenetDependencyMissing(f'basenet {basenet} is built by timm, which is not installed: '
                                       'pip install openfields[timm]') from None
    return timm


class HRNet(FreezableBatchNorm):
    """``(B, 3, H, W) -> (B, out_features, (H - 1) // 4 + 1, (W - 1) // 4 + 1)``; the timm model is
    ``self.hrnet`` (its state dict keys are timm's below ``hrnet.``)."""

    def __init__(self, name: str, config: dict):
        super().__init__()
        self.name = name
        self.config = resolve_config(name, config, HRNET_DEFAULTS)
        timm = require_timm(name)
        self.hrnet = timm.create_model(
            name, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4),
            feature_location='incre' if self.config['increased_channel_count'] else '')
        channels = self.hrnet.feature_info.channels()  # one per branch
        if self.config['interpolate_branches']:
            self.out_features = sum(channels)
        else:
            _only_first_branch(self.hrnet)
            self.out_features = channels[0]
        self.stride = STRIDE
        self.freeze_batchnorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fusions upsample a branch by exactly 2, 4, 8 and add it to a finer one, so every side must
        halve exactly down to stride 32: the image is zero-padded on the bottom and right to a multiple
        of 32 (as DeepLabCut pads its images), and the output cropped back to ``(H - 1) // 4 + 1`` rows:
        padding there moves no pixel, output cell ``i`` stays at pixel ``4 i``."""
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % ALIGNMENT, 0, -height % ALIGNMENT))
        branches = self.hrnet(x)
        features = branches[0]
        if self.config['interpolate_branches']:
            size = features.shape[-2:]
            features = torch.cat([features] + [F.interpolate(branch, size=size, mode='bilinear')
                                               for branch in branches[1:]], dim=1)
        return features[:, :, :(height - 1) // STRIDE + 1, :(width - 1) // STRIDE + 1]


def _only_first_branch(hrnet: torch.nn.Module) -> None:
    """The last module of timm's stage 4 fuses into all four branches (``fuse_layers[i]`` makes branch
    ``i``) and each branch may have an incre block; keep those of the first branch only."""
    last = hrnet.stage4[-1]
    last.fuse_layers = last.fuse_layers[:1]
    if hrnet.incre_modules is not None:
        hrnet.incre_modules = hrnet.incre_modules[:1]


def _builder(name: str):
    return lambda config: HRNet(name, config)


def _config(args: argparse.Namespace) -> dict:
    return {'interpolate_branches': args.hrnet_interpolate_branches,
            'increased_channel_count': args.hrnet_increased_channel_count, **freeze_config(args)}


for _name in NAMES:
    register_basenet(_name, _builder(_name), _config)
del _name
