"""Loss of one composite head: confidence, regression and scale components."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ... import headmeta
from . import components

if TYPE_CHECKING:
    from .settings import LossSettings

# normaliser sigma = factor * instance size (OKS-like relative error)
SIGMA_FROM_SCALE = 0.5
SIGMA_FROM_WH = 0.1
HALF_DTYPES = (torch.float16, torch.bfloat16)


class CompositeLoss(torch.nn.Module):
    """Loss of one head, as a dict of components.

    Components (``<dataset>.<head>.<component>``): ``c`` (confidence), ``vec``
    (regression of all vectors) and, for heads with scales, ``scales``. Each
    is the sum of its elementwise losses divided by the batch size; cells
    whose target is NaN contribute exactly nothing (they are indexed away, so
    there are no NaN gradients either). ``meta.training_weights`` (one per
    field) multiply the elements of their field.

    Layouts: prediction ``x (B, F, C, H, W)`` with ``C = meta.n_components``:
    ``[log_b, conf, (vx, vy) * n_vectors, scale * n_scales]``; target
    ``t (B, F, 1 + 3 n_vectors + n_scales, H, W)``:
    ``[conf, (vx, vy) * n_vectors, b_min * n_vectors, scale * n_scales]``.
    CifDet's second vector is ``(w, h)`` and its normaliser is ``0.1 ||(w, h)||``
    of the target instead of ``0.5 * scale``. Half-precision predictions (``--amp``) are computed in
    float32; float32 and float64 ones in their own precision.
    """

    def __init__(self, head_meta: headmeta.Base, settings: 'LossSettings'):
        super().__init__()
        self.head_meta = head_meta
        self.settings = settings
        self.detection = isinstance(head_meta, headmeta.CifDet)
        self.n_vectors = head_meta.n_vectors
        self.n_scales = head_meta.n_scales
        weights = head_meta.training_weights
        field_weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)
        # a buffer follows the module to the device of the predictions
        self.register_buffer('field_weights', field_weights, persistent=False)

    @property
    def field_names(self) -> list[str]:
        """Component names in order: ``<dataset>.<head>.c``, ``.vec`` and ``.scales`` if any."""
        prefix = f'{self.head_meta.dataset}.{self.head_meta.name}'
        names = [f'{prefix}.c', f'{prefix}.vec']
        if self.n_scales:
            names.append(f'{prefix}.scales')
        return names

    @property
    def n_target_channels(self) -> int:
        return 1 + 3 * self.n_vectors + self.n_scales

    def forward(self, x: torch.Tensor | None,
                t: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
        """Component losses of one batch; every component is None when x or t is None."""
        if x is None or t is None:
            return {name: None for name in self.field_names}
        self._check_shapes(x, t)
        if x.dtype in HALF_DTYPES:
            # mixed precision (--amp): the Laplace term d / b and the focal-as-Gaussian step are differences
            # of nearby values that half precision rounds away; every component is computed in float32
            x = x.float()
        # channels last: masks index (B, F, H, W) cells, the last axis holds the channels
        x = x.permute(0, 1, 3, 4, 2)
        t = t.permute(0, 1, 3, 4, 2)
        weights = self._cell_weights(x)
        batch_size = x.shape[0]
        losses = [self._confidence(x, t, weights), self._regression(x, t, weights)]
        if self.n_scales:
            losses.append(self._scales(x, t, weights))
        return {name: loss / batch_size for name, loss in zip(self.field_names, losses)}

    def _check_shapes(self, x: torch.Tensor, t: torch.Tensor):
        meta = self.head_meta
        expected_x = (meta.n_fields, meta.n_components)
        expected_t = (meta.n_fields, self.n_target_channels)
        if x.dim() != 5 or tuple(x.shape[1:3]) != expected_x:
            raise ValueError(f'{meta.full_name}: prediction shape {tuple(x.shape)}, '
                             f'expected (B, {expected_x[0]}, {expected_x[1]}, H, W)')
        if t.dim() != 5 or tuple(t.shape[1:3]) != expected_t or t.shape[0] != x.shape[0] \
                or t.shape[3:] != x.shape[3:]:
            raise ValueError(f'{meta.full_name}: target shape {tuple(t.shape)}, expected '
                             f'({x.shape[0]}, {expected_t[0]}, {expected_t[1]}, '
                             f'{x.shape[3]}, {x.shape[4]})')

    def _cell_weights(self, x: torch.Tensor) -> torch.Tensor | None:
        """Per-field training weights broadcast to cells ``(B, F, H, W)``, or None."""
        if self.field_weights is None:
            return None
        weights = self.field_weights.to(device=x.device, dtype=x.dtype)
        return weights.view(1, -1, 1, 1).expand(x.shape[:4])

    @staticmethod
    def _weighted_sum(loss: torch.Tensor, weights: torch.Tensor | None,
                      mask: torch.Tensor) -> torch.Tensor:
        if weights is not None:
            loss = loss * weights[mask]
        return loss.sum()

    def _confidence(self, x, t, weights) -> torch.Tensor:
        target = t[..., 0]
        mask = torch.isfinite(target)
        settings = self.settings
        loss = components.confidence_loss(
            x[..., 1][mask], target[mask], x[..., 0][mask],
            focal_alpha=settings.focal_alpha, focal_gamma=settings.focal_gamma,
            soft_clamp_value=settings.bce_soft_clamp,
            background_clamp=settings.bce_background_clamp,
        )
        return self._weighted_sum(loss, weights, mask)

    def _regression(self, x, t, weights) -> torch.Tensor:
        total = x.new_zeros(())
        for v in range(self.n_vectors):
            target = t[..., 1 + 2 * v:3 + 2 * v]
            mask = torch.isfinite(target).all(dim=-1)
            x_cells, t_cells = x[mask], t[mask]
            loss = components.regression_loss(
                x_cells[:, 2 + 2 * v:4 + 2 * v], t_cells[:, 1 + 2 * v:3 + 2 * v],
                t_cells[:, 1 + 2 * self.n_vectors + v], self._sigma(x_cells, t_cells, v),
                x_cells[:, 0], soft_clamp_value=self.settings.regression_soft_clamp,
            )
            total = total + self._weighted_sum(loss, weights, mask)
        return total

    def _sigma(self, x_cells: torch.Tensor, t_cells: torch.Tensor, vector: int) -> torch.Tensor:
        """Regression normaliser per cell ``(N,)`` from the selected cells ``(N, C)``."""
        if self.detection:
            # CifDet: channels 4, 5 of x and 3, 4 of t are the box (w, h)
            return components.sigma_from_wh(t_cells[:, 3:5], x_cells[:, 4:6], SIGMA_FROM_WH)
        scale_channel = 2 + 2 * self.n_vectors + vector
        return components.sigma_from_scale(t_cells[:, 1 + 3 * self.n_vectors + vector],
                                           x_cells[:, scale_channel], SIGMA_FROM_SCALE)

    def _scales(self, x, t, weights) -> torch.Tensor:
        total = x.new_zeros(())
        for s in range(self.n_scales):
            target = t[..., 1 + 3 * self.n_vectors + s]
            mask = torch.isfinite(target)
            loss = components.scale_loss(
                x[..., 2 + 2 * self.n_vectors + s][mask], target[mask],
                b_scale=self.settings.b_scale, soft_clamp_value=self.settings.scale_soft_clamp,
            )
            total = total + self._weighted_sum(loss, weights, mask)
        return total
