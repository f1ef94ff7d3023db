"""A model in use: whatever a user names, opened once, and the one path from images to poses.

:func:`open_model` takes a run's checkpoint, a named model, or an exported ONNX / TorchScript file, and
returns a :class:`BottomUp` or a :class:`TopDown` pipeline. Both answer the same questions: ``method``
(``'bu'`` / ``'td'``), ``head_metas`` (the heads decoded), ``source``, ``describe()``, ``seconds`` (time
per stage), and the same two calls:

* ``prepare(image, meta) -> sample``: per image, what loader workers can do (picklable; no network):
  bottom-up, the evaluation transforms to a normalised ``(3, H, W)`` tensor (rescaled to ``long_edge`` and
  padded); top-down, the PIL image itself (rescaled to ``long_edge`` when given).
* ``poses(samples) -> [[Annotation, ...], ...]``: per sample, its poses in the pixels of the image that
  ``meta`` describes as the original (``meta`` may already carry a reduction of a large file: see
  :func:`openfields.predict.open_image`).

:func:`predict` is both in one call, from PIL images to their poses.

Bottom-up: one network call per batch, the decoder per image, the inverse transform. Top-down: per image the
detector's boxes (a torch checkpoint or an exported ``.onnx`` detector), crops of the boxes through the pose
network as one batch, ``cifmax`` per crop, poses back in the image's pixels
(:mod:`openfields.topdown.pose_on_crops`). ``predict``, ``video``, ``eval`` and the exports ask this module
what a model is; none reads a checkpoint's method itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable

import numpy as np
import PIL.Image
import torch

from .. import transforms
from ..decoder import factory as decoder_factory
from ..decoder.annotation import Annotation, inverse_transform
from ..network.device import resolve_device
from ..topdown import inference as topdown_inference
from ..topdown.crops import CropSettings
from ..topdown.pose_on_crops import CROP_HEADS, boxed_poses, crop_decoder, crop_decoder_name
from . import runners

LOG = logging.getLogger(__name__)

# the network's input sides are k * 16 + 1 pixels (every basenet's stride divides 16)
INPUT_MULTIPLE = 16


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """How a model is run: where, which heads and decoder, at which size, with which detector."""

    device: str = 'cpu'
    dataset: str | None = None             # decode the heads of this dataset only (None: every head)
    decoder: decoder_factory.DecoderSettings = dataclasses.field(default_factory=decoder_factory.DecoderSettings)
    decoder_names: tuple[str, ...] | None = None  # None: the training dataset's, else the best for the heads
    long_edge: int | None = None          # rescale every image to this long edge (None: keep its size)
    pad: str = 'tight'                    # bottom-up padding: 'tight' (per image) or 'center' (batches)
    detector_checkpoint: str | None = None  # top-down: this detector instead of the recorded one
    detector_score_threshold: float | None = None  # top-down: instead of the detector's own
    precision: str = 'float32'            # the arithmetic of a checkpoint's network and detector (--precision)

    def __post_init__(self):
        if self.long_edge is not None and self.long_edge < INPUT_MULTIPLE + 1:
            raise ValueError(f'--long-edge must be at least {INPUT_MULTIPLE + 1}, got {self.long_edge}')
        if self.detector_score_threshold is not None and not 0.0 <= self.detector_score_threshold <= 1.0:
            raise ValueError(f'--detector-score-threshold must be in [0, 1], got {self.detector_score_threshold}')

    @classmethod
    def from_args(cls, args, *, pad: str = 'tight') -> 'PipelineSettings':
        """From the flags of :func:`cli`, ``--device``, ``--dataset``, ``--long-edge`` and the decoder's."""
        return cls(device=str(resolve_device(args.device)), dataset=args.dataset,
                   decoder=decoder_factory.DecoderSettings.from_args(args),
                   decoder_names=tuple(args.decoder) if args.decoder else None, long_edge=args.long_edge, pad=pad,
                   detector_checkpoint=args.detector_checkpoint,
                   detector_score_threshold=args.detector_score_threshold, precision=args.precision)


def cli(parser) -> None:
    """The flags of top-down models at inference (bottom-up models refuse them)."""
    group = parser.add_argument_group('top-down models')
    group.add_argument('--detector-checkpoint', default=None, metavar='PATH',
                       help='this detector (a checkpoint or an exported .onnx) instead of the one the model records')
    group.add_argument('--detector-score-threshold', type=float, default=None, metavar='S',
                       help='crop the boxes of at least this score (default: the detector\'s own, set in training)')


def in_precision(precision: str) -> str:
    """What a model's description says of its arithmetic: nothing for float32."""
    return '' if precision == 'float32' else f' in {precision}'


class Prepare:
    """``(image, meta) -> (sample, meta)`` through ``transforms`` (a :class:`transforms.Compose`)."""

    def __init__(self, steps: transforms.Compose):
        self.steps = steps

    def __call__(self, image: PIL.Image.Image, meta: dict) -> tuple:
        prepared, _, meta = self.steps(image, [], meta)
        return prepared, meta


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


FieldsSeen = Callable[[int, tuple, list], None]  # (index in batch, sample, fields per head) -> None


class BottomUp:
    """Whole images through the network and a multi-pose decoder (CIF + CAF, cifdet, ...)."""

    method = 'bu'
    plots_fields = True  # whole-image fields that the debug plots can draw

    def __init__(self, runner, settings: PipelineSettings):
        self.runner, self.source, self.precision = runner, runner.source, settings.precision
        self.head_indices = dataset_head_indices(runner.head_metas, settings.dataset, runner.source)
        self.head_metas = [runner.head_metas[i] for i in self.head_indices]
        names = list(settings.decoder_names or ()) or runner.decoders.get(self.head_metas[0].dataset)
        self.decode = decoder_factory.factory(self.head_metas, settings.decoder, names=names)
        if settings.pad == 'center' and settings.long_edge is None:
            raise ValueError('--batch-size > 1 needs --long-edge (images of a batch are padded to one size)')
        self.prepare = Prepare(transforms.eval_pipeline(settings.long_edge, pad=settings.pad, multiple=INPUT_MULTIPLE,
                                                        image_resize=runner.image_resize))
        self.seconds = {'network': 0.0, 'decoder': 0.0}

    def describe(self) -> str:
        return f'{self.source}: bottom-up{in_precision(self.precision)}, decoding with {", ".join(self.decode.names)}'

    def fields(self, images: torch.Tensor) -> list[list[np.ndarray]]:
        """``(B, 3, H, W)`` -> per image, one ``(F, C, h, w)`` array per decoded head."""
        per_image, seconds = runners.timed_fields(self.runner, self.head_indices)(images)
        self.seconds['network'] += seconds
        return per_image

    def poses(self, samples: list[tuple], fields_seen: FieldsSeen | None = None) -> list[list]:
        """Per ``(tensor, meta)`` sample, its poses in original pixels; ``fields_seen`` gets each image's
        fields (debug plots)."""
        return self.decoded(samples, self.network_fields(samples), fields_seen)

    def network_fields(self, samples: list[tuple]) -> list[list[np.ndarray]]:
        """The fields of each ``(tensor, meta)`` sample; consecutive samples of one size share a network call."""
        per_image = []
        for _, group in itertools.groupby(samples, key=lambda sample: tuple(sample[0].shape)):
            per_image += self.fields(torch.stack([tensor for tensor, _ in group]))
        return per_image

    def decoded(self, samples: list[tuple], per_image: list[list[np.ndarray]],
                fields_seen: FieldsSeen | None = None) -> list[list]:
        """The poses of each sample from its fields (:meth:`network_fields`), in original pixels."""
        results = []
        for b, (sample, fields) in enumerate(zip(samples, per_image)):
            if fields_seen is not None:
                fields_seen(b, sample, fields)
            start = time.perf_counter()
            results.append([inverse_transform(a, sample[1]) for a in self.decode(fields)])
            self.seconds['decoder'] += time.perf_counter() - start
        return results


class TopDown:
    """A detector on the whole image, the pose network on each box's crop (``cifmax``, one pose a box)."""

    method = 'td'
    plots_fields = False  # fields of crops, not of the image

    def __init__(self, runner, detector, crop: CropSettings, settings: PipelineSettings, detector_path=None):
        if settings.dataset is not None:
            dataset_head_indices(runner.head_metas, settings.dataset, runner.source)  # an unknown one: error
        head = next((i for i, meta in enumerate(runner.head_metas) if meta.name in CROP_HEADS), None)
        if head is None:
            raise ValueError(f'{runner.source}: a top-down model without a {" or ".join(CROP_HEADS)} head '
                             f'(heads: {", ".join(m.full_name for m in runner.head_metas)})')
        self.decoder_name = crop_decoder_name(runner.head_metas[head])
        if settings.decoder_names and list(settings.decoder_names) != [self.decoder_name]:
            raise ValueError(f'--decoder {" ".join(settings.decoder_names)}: {runner.source} is a top-down model, '
                             f'decoded per crop by {self.decoder_name}')
        self.runner, self.source, self.detector, self.crop = runner, runner.source, detector, crop
        self.detector_path = detector_path  # the file the detector came from
        self.precision = settings.precision  # of the pose network (the runner's) and the detector
        self.head_indices, self.head_metas = [head], [runner.head_metas[head]]
        self.decode = crop_decoder(self.head_metas[0], settings.decoder)
        steps = [transforms.NormalizeAnnotations()]
        if settings.long_edge is not None:
            steps.append(transforms.RescaleAbsolute(settings.long_edge, image_resize=runner.image_resize))
        self.prepare = Prepare(transforms.Compose(steps))
        self.seconds = {'detector': 0.0, 'network': 0.0, 'decoder': 0.0}

    def describe(self) -> str:
        return (f'{self.source}: top-down{in_precision(self.precision)}, crops of {self.crop.width}x'
                f'{self.crop.height} around the boxes of detector {self.detector.settings.name}, decoded by '
                f'{self.decoder_name}')

    def crop_fields(self, crops: torch.Tensor) -> list[list[np.ndarray]]:
        """``(N, 3, h, w)`` crops -> per crop, one ``(F, C, h', w')`` array per decoded head."""
        per_crop, seconds = runners.timed_fields(self.runner, self.head_indices)(crops)
        self.seconds['network'] += seconds
        return per_crop

    def poses(self, samples: list[tuple], fields_seen: FieldsSeen | None = None) -> list[list]:
        """Per ``(PIL image, meta)`` sample, at most one pose per detected box, in original pixels."""
        if fields_seen is not None:
            raise ValueError('debug plots of the fields (--debug-indices) are for bottom-up models')
        return [self.image_poses(image, meta) for image, meta in samples]

    def image_poses(self, image: PIL.Image.Image, meta: dict) -> list:
        boxes, scores = self.detected_boxes(image)
        return [inverse_transform(pose, meta) for _, pose in self.boxed_poses(image, boxes, scores)]

    def detected_boxes(self, image: PIL.Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """The detector's ``(N, 4)`` x0, y0, x1, y1 boxes in ``image``'s pixels and their ``(N,)`` scores."""
        start = time.perf_counter()
        boxes, scores = self.detector.boxes(image, precision=self.precision)
        self.seconds['detector'] += time.perf_counter() - start
        return boxes, scores

    def boxed_poses(self, image: PIL.Image.Image, boxes, scores) -> list[tuple[int, Annotation]]:
        """At most one pose per box, in ``image``'s pixels, with the index of its box."""
        start, network_before = time.perf_counter(), self.seconds['network']
        poses = boxed_poses(image, boxes, scores, self.crop_fields, self.head_metas, self.crop, self.decode)
        self.seconds['decoder'] += time.perf_counter() - start - (self.seconds['network'] - network_before)
        return poses


Pipeline = BottomUp | TopDown


def predict(model: Pipeline, images: list[PIL.Image.Image]) -> list[list]:
    """One call from images (RGB, e.g. the frames of a video) to each one's poses in its own pixels."""
    return model.poses([model.prepare(image, {}) for image in images])


def open_model(name_or_path: str, settings: PipelineSettings = PipelineSettings()) -> Pipeline:
    """The pipeline of a checkpoint, an exported ``.onnx`` / TorchScript file, or a named model: bottom-up,
    or top-down with the detector it records (``settings.detector_checkpoint`` replaces it)."""
    runner = runners.load(name_or_path, settings.device, settings.precision)
    if runner.topdown is None:
        for flag, value in (('--detector-checkpoint', settings.detector_checkpoint),
                            ('--detector-score-threshold', settings.detector_score_threshold)):
            if value is not None:
                raise ValueError(f'{flag} is for top-down models; {runner.source} is bottom-up')
        return BottomUp(runner, settings)
    path = topdown_inference.detector_path(runner.topdown, runner.source, settings.detector_checkpoint)
    detector = topdown_inference.load_detector(path, runner.device, settings.precision)
    if settings.detector_score_threshold is not None:
        detector.settings = dataclasses.replace(detector.settings, score_threshold=settings.detector_score_threshold)
    crop = topdown_inference.settings_of(runner.topdown).crop
    LOG.info('top-down: %s on the crops of the boxes of %s', runner.source, path)
    return TopDown(runner, detector, crop, settings, path)

