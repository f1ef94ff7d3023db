"""The detector of a top-down model as an ONNX file that runs without torch (onnxruntime, numpy and PIL).

``python -m openfields.export_onnx --checkpoint POSE.pkl --output model.onnx`` of a top-down pose checkpoint
writes ``model.onnx`` (the pose network; its metadata's ``topdown`` holds the crop geometry and the name of
the detector file) and ``model.detector.onnx`` (:func:`detector_output`), whose openfields metadata is::

    {'format': 'openfields.exported', 'format_version': 1, 'kind': 'detector',
     'detector': {'name', 'pretrained', 'image_size', 'score_threshold', 'max_boxes'},  # DetectorSettings
     'family': 'ssd' | 'fasterrcnn' | 'cifdet',
     'input': 'image', 'outputs': [name, ...],
     'head_metas': [dict], 'basenet': str,      # cifdet only: its CifDet head and basenet
     'source': str, 'version': str}

What the graph is, by family:

* torchvision's (``ssd``, ``fasterrcnn``): the whole model, its own resizing and normalisation and its
  postprocessing (box decoding, NMS) included: input ``image`` ``(3, H, W)`` float32 RGB in [0, 1] (any
  ``H``, ``W``), outputs ``boxes`` ``(N, 4)`` x0, y0, x1, y1 in the input's pixels and ``scores`` ``(N,)``.
  torch's dynamo exporter cannot export them (NMS keeps a data-dependent number of boxes, which
  ``torch.export`` cannot guard on), so they go through the TorchScript-based exporter (``dynamo=False``,
  opset :data:`LEGACY_OPSET`), which torchvision supports for these models.
* ``cifdet``: the fields network (as a bottom-up export): input ``image`` ``(B, 3, H, W)`` normalised with
  the ImageNet statistics and padded to ``k * stride + 1`` pixels, output the CifDet fields, decoded by
  openfields' numpy CifDet decoder.

Either way :class:`OnnxDetector` answers ``boxes(image)`` as a torch detector does
(:meth:`~openfields.topdown.detector_base.DetectorBase.boxes`): the image resized so that its long edge is
``image_size``, the detections best first, the first ``max_boxes``, those at least ``score_threshold``, in
the image's pixels. Before anything is written the exported detector's detections are compared with the
torch detector's on :func:`verification_images` (:func:`verify`): every one of the best ``max_boxes``
detections of either must have a counterpart in the other within :data:`SCORE_TOLERANCE` in score and
:data:`BOX_TOLERANCE` pixels in every coordinate.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch

from . import fields, metadata, onnx as onnx_export
from .exporter import ExportMismatch
from ..decoder.cifdet import CifDet
from ..errors import first_line
from ..topdown import cifdet_detector
from ..topdown.detector_base import resized_array, selected
from ..topdown.detectors import DetectorSettings
from ..version import version

LEGACY_OPSET = 17  # the TorchScript-based exporter's; torchvision's detection models need >= 11
TORCHVISION_OUTPUTS = ['boxes', 'scores']
BOX_TOLERANCE = 0.05  # pixels of the detector's input image (measured: up to 0.002)
SCORE_TOLERANCE = 1e-4


class DetectorExportError(ValueError):
    """A detector that cannot be exported so that it runs as in torch."""


def detector_output(output: str | pathlib.Path) -> pathlib.Path:
    """The detector's file beside the pose model's: ``model.onnx`` -> ``model.detector.onnx``."""
    output = pathlib.Path(output)
    stem = output.name[:-len('.onnx')] if output.name.lower().endswith('.onnx') else output.name
    return output.with_name(stem + metadata.DETECTOR_SUFFIX)


def describe(detector, source: str | pathlib.Path) -> dict:
    """The metadata of the exported ``detector`` (a torch detector: ``Detector`` or ``CifDetDetector``)."""
    settings = detector.settings
    described = {'format': metadata.FORMAT, 'format_version': metadata.FORMAT_VERSION, 'kind': metadata.DETECTOR,
                 'detector': dataclasses.asdict(settings), 'family': settings.family, 'input': 'image',
                 'source': pathlib.Path(source).name, 'version': version()}
    if settings.family == cifdet_detector.NAME:
        described.update(outputs=fields.output_names(detector.network),
                         head_metas=[meta.to_dict() for meta in detector.network.head_metas],
                         basenet=detector.network.basenet.name)
    else:
        described['outputs'] = list(TORCHVISION_OUTPUTS)
    return described


def export(detector, source: str | pathlib.Path) -> bytes:
    """The serialised ONNX detector of a torch ``detector`` with its metadata (not verified: :func:`verify`)."""
    onnx, _ = onnx_export.require_onnx()
    detector = detector.cpu().eval()
    described = metadata.to_json(describe(detector, source))
    settings = detector.settings
    long_edge, short_edge = settings.image_size, max(32, round(0.75 * settings.image_size))
    sample = torch.rand(3, short_edge, long_edge, generator=torch.Generator().manual_seed(0))
    if settings.family == cifdet_detector.NAME:
        stride = detector.network.head_metas[0].stride
        batch = torch.from_numpy(cifdet_detector.normalised_array(sample.numpy(), stride))
        return onnx_export.export(fields.FieldsModule(detector.network), batch, fields.output_names(detector.network),
                                  described)
    graph = TorchvisionGraph(detector.model).eval()
    buffer = io.BytesIO()
    try:
        with onnx_export.quiet_exporter(), torch.no_grad():
            torch.onnx.export(graph, (sample,), buffer, dynamo=False, opset_version=LEGACY_OPSET,
                              input_names=['image'], output_names=TORCHVISION_OUTPUTS,
                              dynamic_axes={'image': {1: 'height', 2: 'width'}, 'boxes': {0: 'detections'},
                                            'scores': {0: 'detections'}})
    except Exception as error:  # pylint: disable=broad-except  # the exporter raises many types
        raise DetectorExportError(f'detector {settings.name}: torch.onnx.export failed ({first_line(error)}); predict '
                                  'with the checkpoints instead') from None
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {metadata.KEY: described})
    return proto.SerializeToString()


class TorchvisionGraph(torch.nn.Module):
    """One ``(3, H, W)`` image in [0, 1] -> the eval-mode ``boxes`` and ``scores`` of a torchvision detection
    model (its labels are all the one class)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        found = self.model([image])[0]
        return found['boxes'], found['scores']


class OnnxDetector:
    """An exported detector in onnxruntime: ``settings`` (a :class:`DetectorSettings`), ``source`` and
    ``boxes(image)`` as :meth:`~openfields.topdown.detector_base.DetectorBase.boxes` (``device`` is accepted
    and ignored: onnxruntime runs on the CPU)."""

    def __init__(self, session, described: dict, source: pathlib.Path):
        self.session, self.source, self.described = session, source, described
        self.settings = DetectorSettings.from_dict(described['detector'])
        self.decode = None
        if self.settings.family == cifdet_detector.NAME:
            self.head_meta = metadata.head_metas(described)[0]
            self.decode = CifDet(self.head_meta, cifdet_detector.DECODER_SETTINGS)
        self._check_signature()

    def _check_signature(self):
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != ['image'] or outputs != list(self.described.get('outputs', [])):
            raise metadata.ExportedModelError(
                f'{self.source}: its graph (inputs {inputs}, outputs {outputs}) is not the one its metadata '
                f'describes (input image, outputs {self.described.get("outputs")})')

    def detections(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All detections of one ``(3, H, W)`` float32 image in [0, 1]: boxes ``(N, 4)`` in its pixels, scores."""
        if self.decode is None:
            boxes, scores = self.session.run(TORCHVISION_OUTPUTS, {'image': np.ascontiguousarray(image, np.float32)})
            return boxes.reshape(-1, 4), scores.reshape(-1)
        batch = cifdet_detector.normalised_array(image, self.head_meta.stride)
        fields = self.session.run(None, {'image': batch})[0]
        return cifdet_detector.decoded_boxes(self.decode, fields[0], image.shape[-1], image.shape[-2])

    def boxes(self, image: PIL.Image.Image, device=None, precision: str = 'float32') -> tuple[np.ndarray, np.ndarray]:
        del device, precision  # onnxruntime on the CPU in float32 (load_detector refuses other precisions)
        array, scale = resized_array(image, self.settings.image_size)
        boxes, scores = self.detections(array)
        return selected(boxes, scores, scale, self.settings)


def load_detector_onnx(path: str | pathlib.Path, threads: int | None = None) -> OnnxDetector:
    """The exported detector in ``path``; :class:`~.metadata.ExportedModelError` naming the file for a file
    that is not one (not ONNX, no openfields metadata, a pose model)."""
    path = pathlib.Path(path)
    try:
        session = onnx_export.session(str(path), threads)
    except onnx_export.MissingDependency:
        raise
    except Exception as error:  # pylint: disable=broad-except  # onnxruntime's own types, from Exception
        raise metadata.ExportedModelError(f'{path}: not a loadable ONNX model ({first_line(error)})') from None
    described = metadata.from_json(session.get_modelmeta().custom_metadata_map.get(metadata.KEY), path,
                                   kind=metadata.DETECTOR)
    try:
        return OnnxDetector(session, described, path)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, metadata.ExportedModelError):
            raise
        raise metadata.ExportedModelError(f'{path}: its detector metadata is incomplete ({error!r})') from None


def verification_images(size: int = 384, count: int = 2, seed: int = 0) -> list[PIL.Image.Image]:
    """Reproducible images with something to find: a textured background and a few figures (head, body and
    limbs of random colours and sizes), landscape and portrait in turn (both of the graph's sizes vary)."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        width, height = (size, size * 3 // 4) if index % 2 == 0 else (size * 2 // 3, size)
        yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
        colour_a, colour_b = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
        mix = (0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * xx + rng.uniform(0.5, 2) * yy)))[..., None]
        pixels = colour_a * mix + colour_b * (1 - mix) + rng.normal(0, 12, (height, width, 3))
        image = PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        draw = PIL.ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 5))):
            tall = rng.uniform(0.35, 0.8) * height
            cx, top = rng.uniform(0.1, 0.9) * width, rng.uniform(0, height - tall)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            head = tall / 8
            draw.ellipse([cx - head, top, cx + head, top + 2 * head], fill=colour)
            draw.rectangle([cx - tall / 8, top + 2 * head, cx + tall / 8, top + tall * 0.6], fill=colour)
            for side in (-1, 1):
                draw.line([cx, top + tall * 0.6, cx + side * tall / 6, top + tall], fill=colour,
                          width=max(2, int(tall / 20)))
                draw.line([cx, top + tall * 0.3, cx + side * tall / 4, top + tall * 0.5], fill=colour,
                          width=max(2, int(tall / 25)))
        images.append(image)
    return images


def best(boxes: np.ndarray, scores: np.ndarray, max_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``max_boxes`` detections (stable order), at any score."""
    order = np.argsort(-np.asarray(scores).reshape(-1), kind='stable')[:max_boxes]
    return np.asarray(boxes).reshape(-1, 4)[order], np.asarray(scores).reshape(-1)[order]


def unmatched_difference(these, those) -> tuple[float, float]:
    """For each of ``these`` detections ``(boxes, scores)``, the closest of ``those`` with a score within
    :data:`SCORE_TOLERANCE` (ties may come in another order): the largest box difference (pixels) and score
    difference over them; ``inf`` when one has no such counterpart."""
    worst_box, worst_score = 0.0, 0.0
    for box, score in zip(*these):
        near = np.abs(those[1] - score) <= SCORE_TOLERANCE
        if not near.any():
            return float('inf'), float(np.min(np.abs(those[1] - score), initial=np.inf))
        differences = np.abs(those[0][near] - box).max(axis=1)
        closest = int(np.argmin(differences))
        worst_box = max(worst_box, float(differences[closest]))
        worst_score = max(worst_score, float(np.abs(those[1][near][closest] - score)))
    return worst_box, worst_score


def compare(reference: tuple[np.ndarray, np.ndarray], exported: tuple[np.ndarray, np.ndarray],
            max_boxes: int) -> tuple[float, float]:
    """The largest box (pixels) and score differences between two detectors' detections of one image: each
    of either's best ``max_boxes`` against all of the other's (so that ties at the cut do not count)."""
    forward = unmatched_difference(best(*reference, max_boxes), exported)
    backward = unmatched_difference(best(*exported, max_boxes), reference)
    return max(forward[0], backward[0]), max(forward[1], backward[1])


def verify(detector, exported: OnnxDetector, images: list[PIL.Image.Image]) -> dict:
    """Compare the ONNX detector with the torch ``detector`` on ``images`` (each resized as ``boxes`` does):
    ``{'boxes': largest box difference (pixels), 'scores': ..., 'detections': how many were compared}``;
    :class:`ExportMismatch` beyond :data:`BOX_TOLERANCE` or :data:`SCORE_TOLERANCE`."""
    settings = detector.settings
    worst = {'boxes': 0.0, 'scores': 0.0, 'detections': 0}
    for image in images:
        array, _ = resized_array(image, settings.image_size)
        found = detector.detect([torch.from_numpy(array)])[0]
        reference = (found['boxes'].cpu().numpy().reshape(-1, 4), found['scores'].cpu().numpy().reshape(-1))
        ours = exported.detections(array)
        box, score = compare(reference, ours, settings.max_boxes)
        worst['boxes'], worst['scores'] = max(worst['boxes'], box), max(worst['scores'], score)
        worst['detections'] += min(settings.max_boxes, len(reference[1]))
    if not (worst['boxes'] <= BOX_TOLERANCE and worst['scores'] <= SCORE_TOLERANCE):
        raise ExportMismatch(f'detector {settings.name}: the ONNX detector\'s boxes differ from torch\'s by up to '
                             f'{worst["boxes"]:.3g} pixels (tolerance {BOX_TOLERANCE:g}) and its scores by up to '
                             f'{worst["scores"]:.3g} (tolerance {SCORE_TOLERANCE:g}); nothing written')
    return worst


def export_verified(detector, source: str | pathlib.Path,
                    images: list[PIL.Image.Image] | None = None) -> tuple[bytes, dict]:
    """The exported detector (bytes) and its differences to torch (:func:`verify`) on ``images`` (default
    :func:`verification_images`)."""
    data = export(detector, source)
    session = onnx_export.session(data)
    described = metadata.from_json(session.get_modelmeta().custom_metadata_map.get(metadata.KEY), 'the export',
                                   kind=metadata.DETECTOR)
    exported = OnnxDetector(session, described, pathlib.Path('<exported>'))
    return data, verify(detector, exported, images if images is not None else verification_images())


__all__ = ['OnnxDetector', 'detector_output', 'export', 'export_verified', 'load_detector_onnx', 'verify',
           'verification_images']
