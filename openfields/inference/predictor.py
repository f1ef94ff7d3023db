"""From a batch of preprocessed images to poses in original pixels: runner -> decoder -> inverse transform."""

from __future__ import annotations

import numpy as np
import torch

from ..decoder import factory as decoder_factory
from ..decoder.annotation import inverse_transform
from .runners import Runner


def dataset_head_indices(head_metas, dataset: str | None, source) -> list[int]:
    """Indices of the heads trained on ``dataset`` (all heads for None); error listing the datasets."""
    if dataset is None:
        return list(range(len(head_metas)))
    indices = [i for i, meta in enumerate(head_metas) if meta.dataset == dataset]
    if not indices:
        available = sorted({meta.dataset for meta in head_metas})
        raise ValueError(f'--dataset {dataset}: {source} has no heads of it; its datasets: '
                         f'{", ".join(available)}')
    return indices


class Predictor:
    """The heads of one dataset (``dataset``; None: every head) of ``runner`` and their decoder: by name
    (``decoder_names``), else the one the training dataset asked for, else the best for the heads."""

    def __init__(self, runner: Runner, decoder_settings: decoder_factory.DecoderSettings,
                 dataset: str | None = None, decoder_names: list[str] | None = None):
        self.runner = runner
        self.head_indices = dataset_head_indices(runner.head_metas, dataset, runner.source)
        self.head_metas = [runner.head_metas[i] for i in self.head_indices]
        names = decoder_names or runner.decoders.get(self.head_metas[0].dataset)
        self.decode = decoder_factory.factory(self.head_metas, decoder_settings, names=names)

    def fields(self, images: torch.Tensor) -> list[list[np.ndarray]]:
        """``(B, 3, H, W)`` -> per image, one ``(F, C, h, w)`` array per head."""
        heads = self.runner.fields(images, self.head_indices)
        return [[h[b] for h in heads] for b in range(images.shape[0])]

    def poses(self, fields: list[np.ndarray], meta: dict) -> list:
        """The decoded annotations of one image, mapped back to its original pixels through ``meta``."""
        return [inverse_transform(a, meta) for a in self.decode(fields)]
