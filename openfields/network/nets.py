"""The full network: one basenet shared by a list of composite field heads."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from .. import headmeta
from . import precision as network_precision
from .heads import CompositeField

# Training defaults for every BatchNorm: a larger eps than PyTorch's 1e-5 keeps training stable
# with small batches; a small momentum averages the running statistics over more batches.
BATCHNORM_EPS = 1e-3
BATCHNORM_MOMENTUM = 0.01


class Shell(nn.Module):
    """Basenet plus heads; a head's index is its position in ``heads``. Each head's meta must have the
    basenet's stride (one created without a stride gets a variant with it: the dataset's meta is never changed).

    ``forward(images (B, 3, H, W), head_mask)`` returns one entry per head: the head output
    ``(B, F, C, h, w)`` (see :class:`CompositeField`), or None where ``head_mask`` is False.
    """

    def __init__(self, basenet: nn.Module, heads: Sequence[CompositeField]):
        super().__init__()
        self.basenet = basenet
        self.heads = nn.ModuleList()
        self.set_heads(heads)

    def set_heads(self, heads: Sequence[CompositeField]) -> None:
        """Replace the heads; their metas must have this basenet's stride (or none yet)."""
        for head in heads:
            if head.in_features != self.basenet.out_features:
                raise ValueError(f'head {head.meta.full_name} expects {head.in_features} features, '
                                 f'basenet {self.basenet.name} gives {self.basenet.out_features}')
            if head.meta.base_stride == 0:
                head.meta = dataclasses.replace(head.meta, base_stride=self.basenet.stride)
            elif head.meta.base_stride != self.basenet.stride:
                raise ValueError(f'head {head.meta.full_name} was made for base stride {head.meta.base_stride}, '
                                 f'basenet {self.basenet.name} has stride {self.basenet.stride}')
        self.heads = nn.ModuleList(heads)

    @property
    def head_metas(self) -> list[headmeta.Base]:
        return [head.meta for head in self.heads]

    def forward(self, images: torch.Tensor, head_mask: Sequence[bool] | None = None,
                precision: str = 'float32') -> list[torch.Tensor | None]:
        """(B, 3, H, W) -> list with one ``(B, F, C, h, w)`` tensor (or None if masked) per head. ``precision``
        (inference's ``--precision``): the basenet's arithmetic; the heads run in float32 whatever it is (they
        are a small part of the work, and a field rounded to bfloat16 would tie nearby confidences)."""
        if head_mask is None:
            head_mask = [True] * len(self.heads)
        if len(head_mask) != len(self.heads):
            raise ValueError(f'head_mask has {len(head_mask)} entries for {len(self.heads)} heads')
        if not any(head_mask):  # e.g. a batch of a dataset without heads here: skip the basenet too
            return [None] * len(self.heads)
        features = network_precision.run_in(precision, self.basenet, images)
        return [head(features) if active else None for head, active in zip(self.heads, head_mask)]


def set_batchnorm(module: nn.Module, eps: float = BATCHNORM_EPS,
                  momentum: float = BATCHNORM_MOMENTUM) -> int:
    """Set ``eps`` and ``momentum`` of every BatchNorm in ``module``; returns how many were set."""
    count = 0
    for submodule in module.modules():
        if isinstance(submodule, nn.modules.batchnorm._BatchNorm):  # pylint: disable=protected-access
            submodule.eps = eps
            submodule.momentum = momentum
            count += 1
    return count
