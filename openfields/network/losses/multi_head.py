"""Weighted sum of the component losses of all heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .composite import CompositeLoss


class NonFiniteLossError(ValueError):
    """A loss component is NaN or infinite; the message names the component."""


class MultiHeadLoss(torch.nn.Module):
    """``total = sum_k lambda_k L_k`` over the components ``L_k`` of all heads that are not None.

    ``lambdas`` has one value per head and applies to every component of that
    head; ``component_lambdas`` has one value per component (in
    :attr:`field_names` order) and overrides ``lambdas``. Both default to 1.

    ``forward(head_outputs, targets)`` takes one prediction ``(B, F, C, H, W)``
    and one target (or None, e.g. a head of another dataset) per head and
    returns ``(total or None, {component name: loss or None})``. A non-finite
    component raises :class:`NonFiniteLossError`; what to do about it (save,
    skip, stop) is the trainer's decision.
    """

    def __init__(self, composite_losses: Sequence[CompositeLoss],
                 lambdas: Sequence[float] | None = None,
                 component_lambdas: Sequence[float] | None = None):
        super().__init__()
        self.composite_losses = torch.nn.ModuleList(composite_losses)
        self.lambdas = self._component_lambdas(lambdas, component_lambdas)

    def _component_lambdas(self, lambdas, component_lambdas) -> list[float]:
        """One lambda per component: per-component values, else the head's value, else 1."""
        if component_lambdas is not None:
            if len(component_lambdas) != len(self.field_names):
                raise ValueError(f'{len(component_lambdas)} component lambdas for '
                                 f'{len(self.field_names)} components {self.field_names}')
            return [float(lam) for lam in component_lambdas]
        if lambdas is None:
            return [1.0] * len(self.field_names)
        if len(lambdas) != len(self.composite_losses):
            raise ValueError(f'{len(lambdas)} lambdas for {len(self.composite_losses)} heads')
        return [float(lam) for lam, loss in zip(lambdas, self.composite_losses)
                for _ in loss.field_names]

    @property
    def field_names(self) -> list[str]:
        """Component names of all heads, in head order."""
        return [name for loss in self.composite_losses for name in loss.field_names]

    def forward(self, head_outputs: Sequence[torch.Tensor | None],
                targets: Sequence[torch.Tensor | None],
                ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor | None]]:
        if len(head_outputs) != len(self.composite_losses) or len(targets) != len(head_outputs):
            raise ValueError(f'{len(head_outputs)} head outputs and {len(targets)} targets '
                             f'for {len(self.composite_losses)} heads')
        values: dict[str, torch.Tensor | None] = {}
        for loss, x, t in zip(self.composite_losses, head_outputs, targets):
            values.update(loss(x, t))
        check_finite(values)
        weighted = [lam * values[name] for lam, name in zip(self.lambdas, self.field_names)
                    if values[name] is not None]
        total = torch.stack(weighted).sum() if weighted else None
        return total, values


def check_finite(values: dict[str, torch.Tensor | None]):
    """Raise :class:`NonFiniteLossError` naming the first non-finite component."""
    present = {name: value for name, value in values.items() if value is not None}
    if not present:
        return
    # one device synchronisation for all components instead of one per component
    finite = torch.isfinite(torch.stack([v.detach() for v in present.values()]))
    if bool(finite.all()):
        return
    for (name, value), ok in zip(present.items(), finite.tolist()):
        if not ok:
            raise NonFiniteLossError(f'loss {name} is not finite ({float(value.detach())})')
