"""Debug plots during training: ``python -m openfields.train --debug-indices cif:5 caf:5 --save-all``.

With ``--debug-images`` or ``--debug-indices`` the training loader is not shuffled (train.py), so the
plotted images are the first ones of the training set, and :class:`TrainingDebug` draws, for every image
of the first ``--debug-batches`` batches of the first and of the last epoch: the input as the network
sees it (augmented, de-normalised), each chosen field's target beside the network's prediction (the
model in eval mode at that step), and the ground truth beside the poses decoded from the targets and
from the prediction. Files are named ``epochNNN.<image file>.<plot>.png``.
"""

from __future__ import annotations

import argparse
import logging
import pathlib

import torch

from ..decoder import factory as decoder_factory
from . import canvas as canvas_module, debug

LOG = logging.getLogger(__name__)


def cli(parser: argparse.ArgumentParser) -> None:
    """Debug-plot and show flags of the training CLI."""
    group = debug.cli(parser)
    canvas_module.cli(parser)
    group.add_argument('--debug-batches', type=int, default=1,
                        help='with debug plots: draw the images of this many batches in the first and last epoch')


class TrainingDebug:
    """The trainer's batch hook: ``__call__(epoch, batch_index, images, targets, metas)`` before each
    training step, with ``targets`` one ``(B, F, C, h, w)`` tensor per head of the batch's dataset
    (``metas[b]['head_indices']`` places them)."""

    def __init__(self, plots: debug.DebugPlots, model: torch.nn.Module, n_batches: int, last_epoch: int):
        self.plots = plots
        self.model = model
        self.n_batches = n_batches
        self.last_epoch = last_epoch
        self.first_epoch: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, model: torch.nn.Module) -> 'TrainingDebug | None':
        """The hook for ``model``'s heads, or None without ``--debug-images`` / ``--debug-indices``."""
        settings = debug.DebugSettings.from_args(args)
        if not settings.enabled:
            return None
        if args.debug_batches < 1:
            raise ValueError(f'--debug-batches must be >= 1, got {args.debug_batches}')
        head_metas = model.head_metas
        selections = debug.select_fields(settings, head_metas)
        canvas = canvas_module.Canvas(canvas_module.CanvasSettings.from_args(args).with_default_output())
        decoder_settings = decoder_factory.DecoderSettings()
        try:
            decode = decoder_factory.factory(head_metas, decoder_settings)
        except ValueError as error:
            LOG.info('debug plots without decoded poses: %s', error)
            decode = None
        plots = debug.DebugPlots(canvas, head_metas, selections, decoder_settings, decode)
        return cls(plots, model, args.debug_batches, args.epochs)

    def __call__(self, epoch: int, batch_index: int, images, targets, metas) -> None:
        if self.first_epoch is None:
            self.first_epoch = epoch
        if epoch not in (self.first_epoch, self.last_epoch) or batch_index >= self.n_batches:
            return
        predictions = self._predict(images)
        n_heads = len(self.plots.head_metas)
        for b, meta in enumerate(metas):
            per_head = [None] * n_heads
            for head_index, target in zip(meta.get('head_indices', range(len(targets))), targets):
                per_head[head_index] = target[b]
            sources = [debug.Source.from_targets(self.plots.head_metas, per_head),
                       debug.Source.from_predictions([p[b] for p in predictions])]
            name = f'epoch{epoch:03d}.{pathlib.Path(meta.get("file_name", f"image{b}")).name}'
            self.plots.sample(name, images[b], meta, sources, annotations=meta.get('annotations', []))
        LOG.info('debug plots of epoch %d batch %d written (%d files so far)', epoch, batch_index,
                 len(self.plots.canvas.written))

    @torch.no_grad()
    def _predict(self, images) -> list:
        """Eval-mode head outputs (BatchNorm on running statistics, which this does not update)."""
        was_training = self.model.training
        device = next(self.model.parameters()).device
        self.model.eval()
        try:
            return [h.cpu() for h in self.model(images.to(device))]
        finally:
            self.model.train(was_training)
