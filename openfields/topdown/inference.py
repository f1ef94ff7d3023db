"""What a trained top-down model records for inference: the pose checkpoint's crop settings and its detector
(``meta['topdown']``), so ``eval``, ``predict`` and ``video`` need only ``--checkpoint``.
``--detector-checkpoint`` replaces the recorded detector; a moved run still finds its detector beside the pose
checkpoint. The pipeline that runs them is :class:`openfields.inference.pipeline.TopDown`.
"""

from __future__ import annotations

import logging
import pathlib

import torch

from ..network import checkpoint, precision as network_precision
from . import detectors
from .boxes import BoxSettings
from .module import TopDownSettings

LOG = logging.getLogger(__name__)


def settings_of(topdown: dict) -> TopDownSettings:
    """The crop and box settings the pose model was trained with."""
    return TopDownSettings(crop_width=topdown['crop_width'], crop_height=topdown['crop_height'],
                           crop_padding=topdown['crop_padding'],
                           boxes=BoxSettings(margin=topdown['bbox_margin'], source=topdown['box_source']))


def detector_path(topdown: dict, checkpoint_path, override: str | None = None) -> pathlib.Path:
    """``override``, else the recorded detector, else a file of its name beside the pose checkpoint."""
    if override is not None:
        return pathlib.Path(override)
    path = pathlib.Path(topdown['detector'])
    beside = pathlib.Path(checkpoint_path).parent / path.name
    if not path.is_file() and beside.is_file():
        return beside
    if not path.is_file():
        raise checkpoint.CheckpointError(f'{checkpoint_path}: its detector {path} is missing (nor is it beside the '
                                         'checkpoint); pass --detector-checkpoint PATH')
    return path


def load_detector(path, device, precision: str = 'float32'):
    """The detector in ``path``: an exported ``.onnx`` detector (:func:`openfields.export.detector.load_detector_onnx`,
    onnxruntime on the CPU, float32 only), else a detector checkpoint, in eval mode on ``device``, to run in
    ``precision``; a clear error for another file. Both answer ``boxes(image, precision=...)`` and ``settings``."""
    if pathlib.Path(path).suffix.lower() == '.onnx':
        if precision != 'float32':
            raise ValueError(f'--precision {precision}: the detector {path} is an exported model, which runs in '
                             'float32 only; pass a detector checkpoint as --detector-checkpoint, or drop the flag')
        from ..export import detector as detector_export  # pylint: disable=import-outside-toplevel
        detector = detector_export.load_detector_onnx(path)
        LOG.info('detector %s from %s (onnxruntime)', detector.settings.name, path)
        return detector
    saved = checkpoint.load(path)
    if 'detector' not in saved['model']:
        raise checkpoint.CheckpointError(f'{path}: a pose model, not a detector')
    LOG.info('detector %s from %s', saved['model']['detector']['name'], path)
    network_precision.check(precision, torch.device(device), path)
    return detectors.from_checkpoint(saved['model']).to(device).eval()
