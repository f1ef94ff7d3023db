"""Scoring a network on evaluation images: fields -> decoder -> original image coordinates -> metrics.

Shared by ``openfields.eval`` (a checkpoint, or oracle fields) and by training with ``--eval-interval``
(the averaged weights of the run, :class:`TestSet`). Every batch of an evaluation loader is
``(images (B, 3, H, W), annotations, metas)``; ``fields(images, annotations, metas)`` gives per image the
fields of the decoded heads, ``[image][head] -> (F, C, h, w)`` arrays; the decoder turns them into
annotations in network-input coordinates, which ``inverse_transform`` maps back to the original image
(``meta``) before every metric accumulates them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import time
from typing import Callable

import numpy as np
import torch

from ..decoder import factory as decoder_factory
from ..decoder.annotation import inverse_transform
from ..network import cpu_threads
from ..show.progress import Progress, cli as progress_cli

LOG = logging.getLogger(__name__)

Fields = Callable[..., tuple[list[list[np.ndarray]], float]]  # (per-image fields, network seconds)


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('scoring')
    group.add_argument('--eval-n-images', type=int, default=None, metavar='N',
                       help='score only the first N evaluation images (a quick look at a checkpoint; the '
                            'metrics then describe those N)')
    progress_cli(group)


@dataclasses.dataclass(frozen=True)
class ScoringSettings:
    max_images: int | None = None
    progress_interval: float = 10.0

    @classmethod
    def from_args(cls, args) -> 'ScoringSettings':
        if args.eval_n_images is not None and args.eval_n_images < 1:
            raise ValueError(f'--eval-n-images must be >= 1, got {args.eval_n_images}')
        return cls(max_images=args.eval_n_images, progress_interval=args.progress_interval)


def n_images_of(loader, max_images: int | None) -> int | None:
    """The images a pass over ``loader`` scores (None: unknown)."""
    try:
        total = len(loader.dataset)
    except (AttributeError, TypeError):
        return max_images
    return total if max_images is None else min(total, max_images)


@dataclasses.dataclass
class Scored:
    """What a scoring pass saw: images and the seconds spent in the network and in decoding + metrics."""

    n_images: int = 0
    nn_seconds: float = 0.0
    decoder_seconds: float = 0.0
    detector_seconds: float = 0.0  # top-down models: finding the boxes
    detector: str | None = None  # top-down models: the detector checkpoint (None: ground-truth boxes)


def accumulate(loader, fields: Fields, decode, metrics: list,
               settings: ScoringSettings = ScoringSettings(), label: str = 'scoring') -> Scored:
    """Predict the images of ``loader`` (the first ``settings.max_images``) and hand the predictions, in
    original image coordinates, to every metric (``metric.accumulate``); ``None`` batches (unreadable
    images) are skipped. Progress is logged every ``settings.progress_interval`` seconds."""
    scored = Scored()
    progress = Progress(label, n_images_of(loader, settings.max_images), interval_s=settings.progress_interval)
    image_ids = []
    for batch in loader:
        if batch is None:
            continue
        images, anns, metas = batch
        if settings.max_images is not None:
            keep = settings.max_images - scored.n_images
            if keep <= 0:
                break
            images, anns, metas = images[:keep], anns[:keep], metas[:keep]
        image_ids += [meta['image_id'] for meta in metas]
        per_image, seconds = fields(images, anns, metas)
        scored.nn_seconds += seconds
        start = time.perf_counter()
        for image_fields, meta in zip(per_image, metas):
            predictions = [inverse_transform(a, meta) for a in decode(image_fields)]
            for metric in metrics:
                metric.accumulate(predictions, meta)
        scored.decoder_seconds += time.perf_counter() - start
        scored.n_images += images.shape[0]
        progress.update(images.shape[0])
    if settings.max_images is not None:
        _limit_metrics(metrics, image_ids)
    return scored


def _limit_metrics(metrics: list, image_ids: list) -> None:
    """After a capped pass: metrics that score a fixed image list (``limit_to``) score the predicted ones."""
    for metric in metrics:
        if hasattr(metric, 'limit_to'):
            metric.limit_to(image_ids)


def network_fields(model: torch.nn.Module, head_indices: list[int], device) -> Fields:
    """``fields`` of the heads ``head_indices`` of ``model`` (the other heads are skipped), in the mode the
    model is in; returns the per-image fields and the seconds the network took."""
    head_mask = [i in head_indices for i in range(len(model.heads))]

    def fields(images, anns, metas):
        cpu_threads.follow_load()
        start = time.perf_counter()
        with torch.inference_mode():
            heads = model(images.to(device, non_blocking=True), head_mask=head_mask)
        outputs = [heads[i].cpu().numpy() for i in head_indices]
        per_image = [[output[b] for output in outputs] for b in range(images.shape[0])]
        return per_image, time.perf_counter() - start
    return fields


def merged_stats(metrics: list) -> dict:
    """Every metric's ``stats()`` in one dict (a later metric's key wins)."""
    stats = {}
    for metric in metrics:
        stats.update(metric.stats())
    return stats


def write_files(metrics: list, path_prefix) -> dict:
    """The files of every metric that writes some besides its scores (``write_files(prefix)``: a test-set
    submission, DeepLabCut's table); what they return, merged, for the stats file."""
    written = {}
    for metric in metrics:
        if hasattr(metric, 'write_files'):
            written.update(metric.write_files(path_prefix))
    return written


def scores(stats: dict, names) -> dict[str, float]:
    """The declared score ``names`` of ``stats`` as floats: NaN for a missing or undefined (None) one."""
    def value(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
    return {name: value(stats.get(name)) for name in names}


@dataclasses.dataclass
class TestSet:
    """One dataset's evaluation during training: its evaluation ``loader``, the network positions of its
    heads, a factory of fresh ``metrics`` and the score ``names`` they report."""

    __test__ = False  # not a pytest class

    loader: object
    head_indices: list[int]
    new_metrics: Callable[[], list]
    names: list[str]
    decoder_settings: decoder_factory.DecoderSettings = dataclasses.field(
        default_factory=decoder_factory.DecoderSettings)
    decoder_names: list[str] | None = None  # None: the best decoder for the heads
    settings: ScoringSettings = ScoringSettings()

    def score(self, network: torch.nn.Module, device) -> dict[str, float]:
        """``{score name: value}`` of ``network`` (in the mode it is in) on every image of the loader."""
        metas = [network.head_metas[i] for i in self.head_indices]
        decode = decoder_factory.factory(metas, self.decoder_settings, names=self.decoder_names)
        metrics = self.new_metrics()
        scored = accumulate(self.loader, network_fields(network, self.head_indices, device), decode, metrics,
                            self.settings, label='evaluating')
        if scored.n_images == 0:
            raise ValueError('no evaluation images')
        LOG.info('scored %d images (network %.1f ms, decoder %.1f ms per image)', scored.n_images,
                 1000 * scored.nn_seconds / scored.n_images, 1000 * scored.decoder_seconds / scored.n_images)
        return scores(merged_stats(metrics), self.names)
