"""What ``export_onnx`` and ``export_torchscript`` share: flags, loading the checkpoint, verifying the
exported bytes against torch before anything is written.

The file appears only once the exported model has given every field within ``--tolerance`` of torch's on
two inputs (the traced size, and a batch of two at another size, which exercises the dynamic dimensions):
a failed export leaves no file behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import torch

from .. import cli_setup, config, outputs
from ..network import checkpoint, factory as network_factory
from ..version import version
from . import fields, metadata

LOG = logging.getLogger(__name__)

TOLERANCE = 1e-4


class ExportMismatch(ValueError):
    """The exported model's fields differ from torch's by more than the tolerance."""


class MissingDependency(ValueError):
    """An optional package is not installed; the message is the install hint."""


@dataclasses.dataclass(frozen=True)
class Exporter:
    """One export format: ``export(module, sample, names, metadata_json) -> bytes`` and
    ``run(bytes, images) -> list of arrays``, one per head."""
    name: str
    suffix: str
    export: Callable[..., bytes]
    run: Callable[[bytes, np.ndarray], list[np.ndarray]]


def parser(prog: str, description: str, suffix: str) -> argparse.ArgumentParser:
    p = config.ArgumentParser(prog=prog, description=description)
    p.add_argument('--version', action='version', version=f'openfields {version()}')
    p.add_argument('--checkpoint', required=True, help='trained checkpoint (a path or a named model)')
    p.add_argument('--output', required=True, help=f'the exported model (e.g. model{suffix})')
    p.add_argument('--input-size', default='129x97', type=parse_size, metavar='WxH',
                   help='size of the example input the graph is traced with (any size runs afterwards)')
    p.add_argument('--tolerance', type=float, default=TOLERANCE,
                   help='largest difference to torch allowed in any field value, checked before writing')
    p.add_argument('-q', '--quiet', action='store_true')
    return p


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: expected WIDTHxHEIGHT, e.g. 129x97') from None
    if min(width, height) < 17:
        raise argparse.ArgumentTypeError(f'{text!r}: width and height must be at least 17 pixels')
    return width, height


def verification_inputs(width: int, height: int) -> list[np.ndarray]:
    """The traced size, and a batch of two at a different size (dynamic batch, height and width)."""
    return [fields.sample_input(width, height, seed=1).numpy(),
            fields.sample_input(width + 32, height - 16, batch=2, seed=2).numpy()]


def largest_difference(reference: list[np.ndarray], exported: list[np.ndarray], names: list[str]) -> float:
    """Max over every head of ``|reference - exported|``; shapes must match exactly."""
    if len(exported) != len(reference):
        raise ExportMismatch(f'exported model gives {len(exported)} outputs for {len(reference)} heads')
    worst = 0.0
    for name, ref, out in zip(names, reference, exported):
        if ref.shape != out.shape:
            raise ExportMismatch(f'{name}: exported shape {out.shape}, torch {ref.shape}')
        worst = max(worst, float(np.nanmax(np.abs(ref - out))) if ref.size else 0.0)
    return worst


def verify(exporter: Exporter, data: bytes, module: fields.FieldsModule, names, size, tolerance) -> float:
    """The largest difference to torch over :func:`verification_inputs`; :class:`ExportMismatch` above
    ``tolerance``."""
    worst = 0.0
    for images in verification_inputs(*size):
        with torch.inference_mode():
            reference = [t.numpy() for t in module(torch.from_numpy(images))]
        worst = max(worst, largest_difference(reference, exporter.run(data, images), names))
    if not worst <= tolerance:
        raise ExportMismatch(f'{exporter.name} fields differ from torch by up to {worst:.3g} '
                             f'(--tolerance {tolerance:g}); nothing written')
    return worst


def run(args, exporter: Exporter) -> float:
    """Export ``--checkpoint`` to ``--output``; returns the largest difference to torch."""
    outputs.check_output_path(args.output, '--output')
    saved = checkpoint.load(args.checkpoint)
    if 'detector' in saved['model'] or (saved.get('meta') or {}).get('topdown'):
        # the exported file would be read as a bottom-up model: its poses would be wrong, not missing
        raise ValueError(f'--checkpoint {args.checkpoint}: a top-down model (or its detector); exporting '
                         'top-down models is not supported yet: predict with the checkpoint itself')
    model = network_factory.from_checkpoint(saved)
    module = fields.FieldsModule(model)
    names = fields.output_names(model)
    described = metadata.to_json(metadata.from_checkpoint(saved, args.checkpoint))
    sample = fields.sample_input(*args.input_size)
    data = exporter.export(module, sample, names, described)
    worst = verify(exporter, data, module, names, args.input_size, args.tolerance)
    with outputs.atomic_write(args.output, 'wb') as f:
        f.write(data)
    LOG.info('wrote %s (%s, %d heads: %s); largest difference to torch %.2g', args.output, exporter.name,
             len(names), ', '.join(names), worst)
    return worst


def main(exporter: Exporter, prog: str, description: str, argv=None) -> None:
    def export(args):
        run(args, exporter)  # the largest difference to torch

    cli_setup.run_cli(prog.split()[-1], parser(prog, description, exporter.suffix), export,
                      (ValueError, checkpoint.CheckpointError, outputs.OutputPathError), argv=argv)
