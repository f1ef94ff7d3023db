"""DeepLabCut's heatmap head: basenet features -> ``(B, K, 3, H, W)`` heatmaps with location refinement."""

from __future__ import annotations

import torch
from torch import nn

from .. import headmeta
from .heads import index_grid

INIT_STD = 0.001  # standard deviation of the initial weights: maps start near 0


def deconvolution_stack(in_features: int, hidden: list[int], out_channels: int, kernels: list[int],
                        strides: list[int], final_conv_kernel: int) -> nn.Sequential:
    """Transposed convolutions (ReLU between layers) and an optional final convolution; the last layer gives
    ``out_channels``. A transposed convolution of odd kernel ``k`` and stride ``s`` pads ``(k - 1) / 2``: an
    input of ``h`` cells becomes ``s (h - 1) + 1`` cells and input cell ``i`` lands on output cell ``s i``."""
    channels = [in_features] + list(hidden) + ([] if final_conv_kernel else [out_channels])
    layers: list[nn.Module] = []
    for i, (kernel, stride) in enumerate(zip(kernels, strides)):
        if i:
            layers.append(nn.ReLU(inplace=False))
        layers.append(nn.ConvTranspose2d(channels[i], channels[i + 1], kernel_size=kernel, stride=stride,
                                         padding=(kernel - 1) // 2))
    if final_conv_kernel:
        if kernels:
            layers.append(nn.ReLU(inplace=False))
        layers.append(nn.Conv2d(channels[-1], out_channels, kernel_size=final_conv_kernel,
                                padding=(final_conv_kernel - 1) // 2))
    return nn.Sequential(*layers)


class HeatmapHead(nn.Module):
    """A heatmap branch (K maps) and, with ``meta.locref``, a locref branch (2K maps, x and y per keypoint),
    each a :func:`deconvolution_stack` of the meta's layout.

    Input ``(B, in_features, h, w)``; output ``(B, K, C, H, W)`` with ``C = meta.n_components`` (3, or 1 without
    locref) and ``H = u (h - 1) + 1`` for ``u = meta.upsample_stride``. Training mode: ``[heatmap, locref_x,
    locref_y]`` raw. Eval mode: ``[score, x, y]``: the heatmap through a sigmoid when ``meta.apply_sigmoid``,
    and absolute field coordinates ``cell + locref * locref_std / stride`` (the cell itself without locref:
    then C = 1 and only the score is returned).
    """

    def __init__(self, meta: headmeta.Heatmap, in_features: int, dropout: float = 0.0):
        super().__init__()
        self.meta = meta
        self.in_features = in_features
        self.dropout = nn.Dropout2d(p=dropout) if dropout > 0.0 else None
        n = meta.n_fields
        layout = dict(hidden=meta.deconv_channels, kernels=meta.deconv_kernels, strides=meta.deconv_strides,
                      final_conv_kernel=meta.final_conv_kernel)
        self.heatmap = deconvolution_stack(in_features, out_channels=n, **layout)
        self.locref = deconvolution_stack(in_features, out_channels=2 * n, **layout) if meta.locref else None
        for module in self.modules():  # small initial maps (DeepLabCut's weight_init: normal)
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, std=INIT_STD)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_features, h, w) -> (B, K, C, H, W)."""
        if self.dropout is not None:
            x = self.dropout(x)
        heatmap = self.heatmap(x)
        batch, n, height, width = heatmap.shape
        parts = [heatmap.reshape(batch, n, 1, height, width)]
        if self.locref is not None:
            parts.append(self.locref(x).reshape(batch, n, 2, height, width))
        out = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        if self.training:
            return out
        return self._activate(out)

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode values; a new tensor (no in-place ops) of the same shape."""
        meta = self.meta
        score = torch.sigmoid(x[:, :, :1]) if meta.apply_sigmoid else x[:, :, :1]
        if not meta.locref:
            return score
        grid = index_grid(x.shape[-2], x.shape[-1], x.dtype, x.device)
        position = grid + x[:, :, 1:3] * (meta.locref_std / meta.stride)
        return torch.cat([score, position], dim=2)
