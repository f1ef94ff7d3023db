"""Loss of one heatmap head: DeepLabCut's weighted heatmap and location-refinement criteria."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import headmeta

HALF_DTYPES = (torch.float16, torch.bfloat16)


class HeatmapLoss(torch.nn.Module):
    """Components ``<dataset>.<head>.heatmap`` and, with locref, ``<dataset>.<head>.locref``.

    * heatmap: ``heatmap_weight * mean((x - t)^2)`` (``mse``) or ``heatmap_weight * mean(BCE(sigmoid(x), t))``
      (``bce``, on the logits) over the cells whose target is finite (NaN: crowd regions);
    * locref: ``locref_weight * mean(huber(x - t))`` (Huber with delta 1, or squared error for ``mse``) over the
      x and y values of the cells with a locref target (those within ``pos_dist_thresh`` of a keypoint).

    ``meta.training_weights`` (one per keypoint) multiply the elements of their map. Prediction
    ``x (B, K, C, H, W)``, target ``t (B, K, C, H, W)`` with ``C = meta.n_components``. A component without any
    cell to learn from is 0 (a batch without labelled keypoints has no locref target).
    """

    def __init__(self, head_meta: headmeta.Heatmap):
        super().__init__()
        self.head_meta = head_meta
        weights = head_meta.training_weights
        field_weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)
        self.register_buffer('field_weights', field_weights, persistent=False)

    @property
    def field_names(self) -> list[str]:
        prefix = self.head_meta.full_name
        return [f'{prefix}.heatmap'] + ([f'{prefix}.locref'] if self.head_meta.locref else [])

    def forward(self, x: torch.Tensor | None, t: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
        """Component losses of one batch; every component is None when x or t is None."""
        if x is None or t is None:
            return {name: None for name in self.field_names}
        self._check_shapes(x, t)
        if x.dtype in HALF_DTYPES:
            x = x.float()
        t = t.to(x.dtype)
        losses = [self._heatmap(x[:, :, 0], t[:, :, 0])]
        if self.head_meta.locref:
            losses.append(self._locref(x[:, :, 1:3], t[:, :, 1:3]))
        return dict(zip(self.field_names, losses))

    def _check_shapes(self, x: torch.Tensor, t: torch.Tensor):
        meta = self.head_meta
        expected = (meta.n_fields, meta.n_components)
        if x.dim() != 5 or tuple(x.shape[1:3]) != expected:
            raise ValueError(f'{meta.full_name}: prediction shape {tuple(x.shape)}, '
                             f'expected (B, {expected[0]}, {expected[1]}, H, W)')
        if tuple(t.shape) != tuple(x.shape):
            raise ValueError(f'{meta.full_name}: target shape {tuple(t.shape)}, expected {tuple(x.shape)}')

    def _weights(self, like: torch.Tensor) -> torch.Tensor | None:
        """Per-keypoint training weights broadcast to ``like`` ``(B, K, ...)``, or None."""
        if self.field_weights is None:
            return None
        shape = (1, -1) + (1,) * (like.dim() - 2)
        return self.field_weights.to(device=like.device, dtype=like.dtype).view(shape).expand(like.shape)

    def _mean(self, loss: torch.Tensor, mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        weights = self._weights(like)
        if weights is not None:
            loss = loss * weights[mask]
        return loss.sum() / mask.sum().clamp(min=1).to(loss.dtype)  # no device synchronisation

    def _heatmap(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x, t (B, K, H, W)``."""
        mask = torch.isfinite(t)
        if self.head_meta.heatmap_loss == 'bce':
            loss = F.binary_cross_entropy_with_logits(x[mask], t[mask], reduction='none')
        else:
            loss = (x[mask] - t[mask]) ** 2
        return self.head_meta.heatmap_weight * self._mean(loss, mask, t)

    def _locref(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x, t (B, K, 2, H, W)``."""
        mask = torch.isfinite(t)
        if self.head_meta.locref_loss == 'huber':
            loss = F.huber_loss(x[mask], t[mask], reduction='none', delta=1.0)
        else:
            loss = (x[mask] - t[mask]) ** 2
        return self.head_meta.locref_weight * self._mean(loss, mask, t)
