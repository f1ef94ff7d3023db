"""Composite field heads: basenet features -> ``(B, F, C, h, w)`` fields of one head meta; :func:`build` picks
the head module of a meta (DeepLabCut's heatmap head: :mod:`.heatmap_head`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import headmeta


def build(meta: headmeta.Base, in_features: int, dropout: float = 0.0) -> nn.Module:
    """The head module of ``meta``: a :class:`CompositeField`, or a heatmap head for a ``Heatmap`` meta."""
    if isinstance(meta, headmeta.Heatmap):
        from .heatmap_head import HeatmapHead  # pylint: disable=import-outside-toplevel  # it imports index_grid
        return HeatmapHead(meta, in_features, dropout=dropout)
    return CompositeField(meta, in_features, dropout=dropout)


class CompositeField(nn.Module):
    """One 1x1 conv predicting all fields of ``meta``, optionally sub-pixel upsampled.

    Input ``(B, in_features, h, w)``; output ``(B, F, C, H, W)`` with ``F = meta.n_fields``,
    ``C = meta.n_components`` and ``H = u * (h - 1) + 1`` for ``u = meta.upsample_stride``
    (``H = h`` for ``u = 1``), so that output cell ``(i, j)`` sits on input pixel
    ``(i * stride, j * stride)``.

    Channels along C: ``[log_b, confidences..., vectors (2 each)..., scales...]``.
    Training mode returns raw values; eval mode applies sigmoid to the confidences, adds the cell
    index grid to positional vectors (``meta.vector_offsets``; absolute field coordinates) and softplus
    to the scales; ``log_b`` stays raw.
    """

    def __init__(self, meta: headmeta.Base, in_features: int, dropout: float = 0.0):
        super().__init__()
        self.meta = meta
        self.in_features = in_features
        self.upsample_stride = meta.upsample_stride
        self.dropout = nn.Dropout2d(p=dropout) if dropout > 0.0 else None
        out_channels = meta.n_fields * meta.n_components * self.upsample_stride ** 2
        self.conv = nn.Conv2d(in_features, out_channels, kernel_size=1)
        self.upsample = nn.PixelShuffle(self.upsample_stride) if self.upsample_stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_features, h, w) -> (B, F, C, H, W)."""
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.conv(x)
        if self.upsample is not None:
            x = self._upsample(x)
        batch, _, height, width = x.shape
        x = x.reshape(batch, self.meta.n_fields, self.meta.n_components, height, width)
        if self.training:
            return x
        return self._activate(x)

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K u^2, h, w) -> (B, K, u (h - 1) + 1, u (w - 1) + 1).

        PixelShuffle places the sub-pixels of cell i at ``u i .. u i + u - 1``; the centre of that
        block sits on the basenet cell. Cropping ``(u - 1) // 2`` at the start and
        ``ceil((u - 1) / 2)`` at the end keeps the cell grid aligned with input pixels.
        """
        u = self.upsample_stride
        x = self.upsample(x)
        crop_start = (u - 1) // 2
        crop_end = u // 2  # == ceil((u - 1) / 2)
        height, width = x.shape[-2:]
        return x[:, :, crop_start:height - crop_end, crop_start:width - crop_end]

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode activations; builds a new tensor (no in-place ops) of the same shape."""
        meta = self.meta
        parts = [x[:, :, :1]]  # log_b stays raw
        first_conf, first_vec = 1, 1 + meta.n_confidences
        parts.append(torch.sigmoid(x[:, :, first_conf:first_vec]))

        grid = None
        for i, is_offset in enumerate(meta.vector_offsets):
            vector = x[:, :, first_vec + 2 * i:first_vec + 2 * i + 2]
            if is_offset:
                if grid is None:
                    grid = index_grid(x.shape[-2], x.shape[-1], x.dtype, x.device)
                vector = vector + grid
            parts.append(vector)

        if meta.n_scales:
            first_scale = first_vec + 2 * meta.n_vectors
            parts.append(F.softplus(x[:, :, first_scale:first_scale + meta.n_scales]))
        return torch.cat(parts, dim=2)


def index_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(2, H, W) grid of cell indices: channel 0 the column (x), channel 1 the row (y)."""
    rows = torch.arange(height, dtype=dtype, device=device)
    cols = torch.arange(width, dtype=dtype, device=device)
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing='ij')
    return torch.stack((grid_x, grid_y), dim=0)
