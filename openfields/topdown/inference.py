"""A trained top-down model at inference: the pose checkpoint records its crop settings and its detector
(``meta['topdown']``), so ``eval`` and ``predict`` need only ``--checkpoint``.

Per image: the detector's boxes (:meth:`~openfields.topdown.detector_base.DetectorBase.boxes`: a torchvision
detector or cifdet), one crop per box, the pose network on the crops as one batch, ``cifmax`` per crop, poses
mapped back to the image's pixels (:func:`~openfields.topdown.pose_on_crops.poses_on_boxes`). ``--detector-checkpoint`` replaces the recorded
detector; a moved run still finds its detector beside the pose checkpoint.
"""

from __future__ import annotations

import logging
import pathlib
import time

import PIL.Image

from ..decoder.cifmax import CifMax
from ..decoder.settings import DecoderSettings
from ..network import checkpoint
from . import detectors
from .boxes import BoxSettings
from .crops import CropSettings
from .detector_base import DetectorBase
from .module import TopDownSettings
from .pose_on_crops import poses_on_boxes

LOG = logging.getLogger(__name__)


def recorded(saved: dict) -> dict | None:
    """What a pose checkpoint records of its top-down training (None: a bottom-up model)."""
    return (saved.get('meta') or {}).get('topdown')


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


def load_detector(path, device):
    """The detector in ``path``: an exported ``.onnx`` detector (:func:`openfields.export.detector.load_detector_onnx`,
    onnxruntime on the CPU), else a detector checkpoint, in eval mode on ``device``; a clear error for
    another file. Both answer ``boxes(image)`` and ``settings``."""
    if pathlib.Path(path).suffix.lower() == '.onnx':
        from ..export import detector as detector_export  # pylint: disable=import-outside-toplevel
        detector = detector_export.load_detector_onnx(path)
        LOG.info('detector %s from %s (onnxruntime)', detector.settings.name, path)
        return detector
    saved = checkpoint.load(path)
    if 'detector' not in saved['model']:
        raise checkpoint.CheckpointError(f'{path}: a pose model, not a detector')
    LOG.info('detector %s from %s', saved['model']['detector']['name'], path)
    return detectors.from_checkpoint(saved['model']).to(device).eval()


class TopDownPredictor:
    """Poses of whole images with a top-down model: its ``runner`` (:mod:`openfields.inference.runners`;
    the CIF head is read), the ``detector`` and the crop settings; ``seconds`` adds up each stage's time."""

    def __init__(self, runner, crop: CropSettings, detector: DetectorBase, decoder_settings: DecoderSettings):
        cif = next(i for i, meta in enumerate(runner.head_metas) if meta.name == 'cif')
        self.head_metas = [runner.head_metas[cif]]
        self.runner, self.head_indices = runner, [cif]
        self.crop = crop
        self.detector = detector
        self.decode = CifMax(self.head_metas[0], decoder_settings)
        self.seconds = {'detector': 0.0, 'network': 0.0, 'decoder': 0.0}

    def network_fields(self, images):
        """Per crop, per head: the fields; and the seconds the network took."""
        start = time.perf_counter()
        heads = self.runner.fields(images, self.head_indices)
        return [[h[b] for h in heads] for b in range(images.shape[0])], time.perf_counter() - start

    def poses(self, image: PIL.Image.Image) -> list:
        """Poses in ``image``'s pixels, at most one per detected box (no box: no pose)."""
        start = time.perf_counter()
        boxes, scores = self.detector.boxes(image)
        detected = time.perf_counter()
        network_seconds = 0.0

        def fields_of_batch(images):
            nonlocal network_seconds
            fields, network_seconds = self.network_fields(images)
            return fields
        poses = poses_on_boxes(image, boxes, scores, fields_of_batch, self.head_metas, self.crop, self.decode)
        self.seconds['detector'] += detected - start
        self.seconds['network'] += network_seconds
        self.seconds['decoder'] += time.perf_counter() - detected - network_seconds
        return poses
