"""The graph that is exported: the network in eval mode, fields only."""

from __future__ import annotations

import torch

from ..network import nets


class FieldsModule(torch.nn.Module):
    """``(B, 3, H, W)`` normalised images -> a tuple with one ``(B, F, C, h, w)`` tensor per head, eval-mode
    activations (confidences through a sigmoid, absolute vectors, softplus scales), as ``Shell`` gives them."""

    def __init__(self, model: nets.Shell):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(image))


def output_names(model: nets.Shell) -> list[str]:
    """One name per head, ``<dataset>.<head>`` (e.g. ``cocokp.cif``), in the network's order."""
    return [meta.full_name for meta in model.head_metas]


def sample_input(width: int, height: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A reproducible normalised-looking input: exporting traces it, verifying compares on it."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, height, width, generator=generator)
