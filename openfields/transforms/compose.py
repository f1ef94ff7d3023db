"""Combinators: run transforms in sequence, with a probability, or pick one of several.

Randomness comes from torch's global RNG (seeded per DataLoader worker), so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Transform = Callable  # t(image, anns, meta) -> (image, anns, meta)


class Compose:
    """Apply ``transforms`` in order; ``None`` entries are skipped (handy for switchable parts)."""

    def __init__(self, transforms: Sequence[Transform | None]):
        self.transforms = [t for t in transforms if t is not None]

    def __call__(self, image, anns, meta):
        for t in self.transforms:
            image, anns, meta = t(image, anns, meta)
        return image, anns, meta

    def __repr__(self):
        inner = ',\n  '.join(repr(t) for t in self.transforms)
        return f'Compose([\n  {inner}\n])'


class RandomApply:
    """Apply ``transform`` with ``probability``, otherwise pass the sample through unchanged."""

    def __init__(self, transform: Transform, probability: float):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f'probability must be in [0, 1], got {probability}')
        self.transform = transform
        self.probability = probability

    def __call__(self, image, anns, meta):
        # always draw, so the RNG stream does not depend on the probability value
        if float(torch.rand(())) >= self.probability:
            return image, anns, meta
        return self.transform(image, anns, meta)

    def __repr__(self):
        return f'RandomApply({self.transform!r}, probability={self.probability})'


class RandomChoice:
    """Apply at most one of ``transforms``: transform ``i`` with ``probabilities[i]``, none with the rest.

    ``None`` entries are allowed (they consume their probability and do nothing).
    """

    def __init__(self, transforms: Sequence[Transform | None], probabilities: Sequence[float]):
        if len(transforms) != len(probabilities):
            raise ValueError(f'{len(transforms)} transforms but {len(probabilities)} probabilities')
        if any(p < 0.0 for p in probabilities) or sum(probabilities) > 1.0 + 1e-6:
            raise ValueError(f'probabilities must be >= 0 and sum to at most 1, got {list(probabilities)}')
        self.transforms = list(transforms)
        self.probabilities = [float(p) for p in probabilities]

    def __call__(self, image, anns, meta):
        u = float(torch.rand(()))
        cumulative = 0.0
        for t, p in zip(self.transforms, self.probabilities):
            cumulative += p
            if u < cumulative:
                if t is None:
                    break
                return t(image, anns, meta)
        return image, anns, meta

    def __repr__(self):
        return f'RandomChoice({self.transforms!r}, {self.probabilities})'
