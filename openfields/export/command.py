"""What ``export_onnx`` and ``export_torchscript`` share: flags, loading the checkpoint, verifying the
exported bytes against torch before anything is written.

The file appears only once the exported model has given every field within ``--tolerance`` of torch's on
two inputs (the traced size, and a batch of two at another size, which exercises the dynamic dimensions):
a failed export leaves no file behind.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch

from .. import cli_setup, config, outputs
from ..inference import pipeline as inference_pipeline
from ..network import checkpoint
from ..version import version
from . import fields, metadata
from .exporter import ExportMismatch, Exporter, MissingDependency  # noqa: F401  (the formats' names, here too)

LOG = logging.getLogger(__name__)

TOLERANCE = 1e-4


def parser(prog: str, description: str, suffix: str) -> argparse.ArgumentParser:
    p = config.ArgumentParser(prog=prog, description=description)
    p.add_argument('--version', action='version', version=f'openfields {version()}')
    p.add_argument('--checkpoint', required=True, help='trained checkpoint (a path or a named model)')
    p.add_argument('--output', required=True, help=f'the exported model (e.g. model{suffix})')
    p.add_argument('--input-size', default='129x97', type=parse_size, metavar='WxH',
                   help='size of the example input the graph is traced with (any size runs afterwards)')
    p.add_argument('--tolerance', type=float, default=TOLERANCE,
                   help='largest difference to torch allowed in any field value (relative to values above 1, '
                        'and to a hundredth of the largest value of its channel), checked before writing')
    p.add_argument('--detector-checkpoint', default=None, metavar='PATH',
                   help='top-down models: the detector checkpoint to export beside the pose model (default: the '
                        'one the pose checkpoint records, or a file of its name beside it)')
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


# an element is compared with at least this share of the largest value of its channel (see largest_difference)
CHANNEL_SCALE_SHARE = 1e-2


def largest_difference(reference: list[np.ndarray], exported: list[np.ndarray], names: list[str]) -> float:
    """Max over every head of ``|reference - exported| / max(|reference|, 1, 0.01 * channel max)``, with
    ``channel max`` the largest ``|reference|`` of the element's channel (``(B, F, C, h, w)``: over all but C).

    Absolute for the values of a trained head (mostly within +-10), relative for large ones (an untrained or
    saturated head's logits reach 1e16, where float32 rounding alone differs by 1e9); and relative to the
    channel's scale for small values amid huge ones: there a value of 1e8 is the difference of two 1e16
    numbers and carries their rounding (OpenPifPaf's saturated checkpoints differ by 4% there, 2e-9 of the
    channel's scale; a trained head's channels stay below 100, where this changes nothing). Shapes must match
    exactly."""
    if len(exported) != len(reference):
        raise ExportMismatch(f'exported model gives {len(exported)} outputs for {len(reference)} heads')
    worst = 0.0
    for name, ref, out in zip(names, reference, exported):
        if ref.shape != out.shape:
            raise ExportMismatch(f'{name}: exported shape {out.shape}, torch {ref.shape}')
        if not ref.size:
            continue
        channel_scale = np.abs(ref).max(axis=tuple(i for i in range(ref.ndim) if i != 2), keepdims=True)
        scale = np.maximum(np.maximum(np.abs(ref), 1.0), CHANNEL_SCALE_SHARE * channel_scale)
        worst = max(worst, float(np.nanmax(np.abs(ref - out) / scale)))
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
    """Export ``--checkpoint`` to ``--output``; returns the largest difference to torch. A top-down pose
    checkpoint also writes its detector beside it (:func:`detector_part`); both are verified before either is
    written. What the model is, the inference owner says (:func:`openfields.inference.pipeline.open_model`)."""
    outputs.check_output_path(args.output, '--output')
    model = inference_pipeline.open_model(
        args.checkpoint, inference_pipeline.PipelineSettings(detector_checkpoint=args.detector_checkpoint))
    saved = getattr(model.runner, 'saved', None)
    if saved is None:
        raise ValueError(f'--checkpoint {args.checkpoint}: already an exported model; export its checkpoint')
    if model.method == 'td' and exporter.name != 'ONNX':
        raise ValueError(f'--checkpoint {args.checkpoint}: a top-down model; {exporter.name} export of top-down models '
                         'is not supported: export it with python -m openfields.export_onnx (detector and pose model)')
    detector_file, detector_data = detector_part(args.output, model) if model.method == 'td' else (None, None)
    # the runner keeps CPU weights channels_last for speed; the exported graph takes the default layout
    network = model.runner.model.to(memory_format=torch.contiguous_format)
    module = fields.FieldsModule(network)
    names = fields.output_names(network)
    described = metadata.from_checkpoint(saved, args.checkpoint)
    if detector_file is not None:
        described['topdown'] = exported_topdown(model.runner.topdown, detector_file)
    sample = fields.sample_input(*args.input_size)
    data = exporter.export(module, sample, names, metadata.to_json(described))
    worst = verify(exporter, data, module, names, args.input_size, args.tolerance)
    with outputs.atomic_write(args.output, 'wb') as f:
        f.write(data)
        if detector_file is not None:  # renamed into place first: a pose file never names a missing detector
            with outputs.atomic_write(detector_file, 'wb') as g:
                g.write(detector_data)
    LOG.info('wrote %s (%s, %d heads: %s); largest difference to torch %.2g', args.output, exporter.name,
             len(names), ', '.join(names), worst)
    return worst


def exported_topdown(topdown: dict, detector_file) -> dict:
    """The pose model's ``topdown`` metadata: the checkpoint's crop geometry, and the detector as the name of
    its file beside the pose model."""
    keys = ('crop_width', 'crop_height', 'crop_padding', 'bbox_margin', 'box_source')
    return {**{key: topdown[key] for key in keys}, 'detector': detector_file.name}


def detector_part(output, model):
    """The detector of a top-down pipeline ``model``, exported and verified against torch: its file (beside
    ``output``, the pose model's) and bytes. An exported detector cannot be verified: a one-line error naming the file."""
    # imported here: the detector module imports this one
    from ..topdown.detector_base import DetectorBase  # pylint: disable=import-outside-toplevel
    from . import detector as detector_export  # pylint: disable=import-outside-toplevel
    detector_file = detector_export.detector_output(output)
    outputs.check_output_path(detector_file, '--output')
    detector, path = model.detector, model.detector_path
    if not isinstance(detector, DetectorBase):
        raise ValueError(f'--detector-checkpoint {path}: an exported detector; export needs the detector '
                         'checkpoint (<run>.detector.pkl) to verify against torch')
    data, worst = detector_export.export_verified(detector, path)
    LOG.info('detector %s from %s: largest difference to torch %.2g pixels (boxes), %.2g (scores), %d detections '
             'compared', detector.settings.name, path, worst['boxes'], worst['scores'], worst['detections'])
    return detector_file, data


def main(exporter: Exporter, prog: str, description: str, argv=None) -> None:
    def export(args):
        run(args, exporter)  # the largest difference to torch

    cli_setup.run_cli(prog.split()[-1], parser(prog, description, exporter.suffix), export,
                      (ValueError, checkpoint.CheckpointError, outputs.OutputPathError), argv=argv)
