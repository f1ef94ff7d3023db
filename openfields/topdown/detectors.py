"""The detectors of top-down mode: torchvision's Faster R-CNN and SSDLite models, one class (the dataset's
individuals) plus background, and openfields' own CIFdet network (``--detector cifdet``,
:mod:`.cifdet_detector`), behind one interface (:class:`~.detector_base.DetectorBase`: ``detect``, ``boxes``,
``settings``, ``checkpoint_description``).

Weights come from local files only, never from the internet: ``--detector-pretrained auto`` takes the
COCO-trained weights from the torch hub cache (``<hub dir>/checkpoints/<file of torchvision's url>``) when
they are there, else the ImageNet weights of the backbone from the same cache, else starts from scratch;
each case is said in one log line naming the file that would have been used. A path loads a torchvision
COCO state dict (91 classes) from that file. The COCO classifier is replaced by one for our two classes.

Inputs are lists of ``(3, H, W)`` float tensors in [0, 1] (the models normalise them themselves). Faster
R-CNN resizes an image so that its long edge is ``--detector-image-size``; SSDLite320 always sees 320x320.
In training mode a model returns its losses (a dict), in eval mode one dict per image with ``boxes``
``(N, 4)`` x0, y0, x1, y1 in the input image's pixels, ``scores`` ``(N,)`` and ``labels`` ``(N,)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import pathlib

import torch
import torchvision
from torch import nn

from ..network import precision as network_precision
from ..network.pretrained import PretrainedWeightsMissing
from . import cifdet_detector
from .detector_base import DetectorBase, resized

__all__ = ['DETECTOR_NAMES', 'Detector', 'DetectorSettings', 'TORCHVISION_DETECTORS', 'build', 'cli',
           'from_checkpoint', 'resized']

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TorchvisionSpec:
    """A torchvision detection model: its builder in ``torchvision.models.detection``, the names of its
    COCO weights and of its backbone's ImageNet weights, and its family (``fasterrcnn`` or ``ssd``)."""
    coco_weights: str
    backbone_weights: str
    family: str


TORCHVISION_DETECTORS = {
    'ssdlite320_mobilenet_v3_large': TorchvisionSpec(
        'SSDLite320_MobileNet_V3_Large_Weights.COCO_V1', 'MobileNet_V3_Large_Weights.IMAGENET1K_V1', 'ssd'),
    'fasterrcnn_mobilenet_v3_large_fpn': TorchvisionSpec(
        'FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1', 'MobileNet_V3_Large_Weights.IMAGENET1K_V1',
        'fasterrcnn'),
    'fasterrcnn_resnet50_fpn': TorchvisionSpec(
        'FasterRCNN_ResNet50_FPN_Weights.COCO_V1', 'ResNet50_Weights.IMAGENET1K_V1', 'fasterrcnn'),
    'fasterrcnn_resnet50_fpn_v2': TorchvisionSpec(
        'FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1', 'ResNet50_Weights.IMAGENET1K_V1', 'fasterrcnn'),
}
LOSS_NAMES = {  # what each family's training forward returns, in this order
    'fasterrcnn': ('loss_classifier', 'loss_box_reg', 'loss_objectness', 'loss_rpn_box_reg'),
    'ssd': ('bbox_regression', 'classification'),
}
NUM_CLASSES = 2  # background and the individuals
DETECTOR_NAMES = (*TORCHVISION_DETECTORS, cifdet_detector.NAME)


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('detector (top-down mode)')
    group.add_argument('--detector', default='fasterrcnn_mobilenet_v3_large_fpn', metavar='NAME',
                       help='the detector of --method td: one of torchvision\'s (' + ', '.join(TORCHVISION_DETECTORS)
                            + f') or {cifdet_detector.NAME}: openfields\' own, --basenet with one CifDet head')
    group.add_argument('--detector-pretrained', default='auto', metavar='auto|none|PATH',
                       help='auto: COCO weights from the torch hub cache if there, else the backbone\'s ImageNet '
                            'weights from it, else from scratch (never downloaded); none: from scratch; PATH: a '
                            'torchvision COCO state dict of this detector. cifdet: auto takes --basenet-pretrained '
                            'as given, none ignores it, no PATH')
    group.add_argument('--detector-image-size', type=int, default=512, metavar='PIXELS',
                       help='long edge of the images Faster R-CNN and cifdet see (cifdet trains on squares of this '
                            'side; SSDLite320 always sees 320x320)')
    group.add_argument('--detector-score-threshold', type=float, default=0.3,
                       help='boxes below this score are not cropped for the pose model')
    group.add_argument('--detector-max-boxes', type=int, default=20,
                       help='at most this many boxes per image, best first, are cropped for the pose model')


@dataclasses.dataclass(frozen=True)
class DetectorSettings:
    name: str = 'fasterrcnn_mobilenet_v3_large_fpn'
    pretrained: str = 'auto'
    image_size: int = 512
    score_threshold: float = 0.3
    max_boxes: int = 20

    def __post_init__(self):
        if self.name not in DETECTOR_NAMES:
            raise ValueError(f'--detector {self.name}: unknown detector; known: ' + ', '.join(DETECTOR_NAMES))
        if self.name == cifdet_detector.NAME and self.pretrained not in ('auto', 'none'):
            raise ValueError(f'--detector-pretrained {self.pretrained}: --detector {self.name} takes auto or none '
                             '(its basenet\'s weights come from --basenet-pretrained)')
        if self.image_size < 32:
            raise ValueError(f'--detector-image-size must be >= 32, got {self.image_size}')
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f'--detector-score-threshold must be in [0, 1], got {self.score_threshold}')
        if self.max_boxes < 1:
            raise ValueError(f'--detector-max-boxes must be >= 1, got {self.max_boxes}')

    @property
    def family(self) -> str:
        """``fasterrcnn``, ``ssd`` or ``cifdet``."""
        spec = TORCHVISION_DETECTORS.get(self.name)
        return spec.family if spec is not None else self.name

    @classmethod
    def from_args(cls, args) -> 'DetectorSettings':
        return cls(name=args.detector, pretrained=args.detector_pretrained, image_size=args.detector_image_size,
                   score_threshold=args.detector_score_threshold, max_boxes=args.detector_max_boxes)

    @classmethod
    def from_dict(cls, saved: dict) -> 'DetectorSettings':
        return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})


class Detector(DetectorBase):
    """A torchvision detection model of :data:`NUM_CLASSES` classes with its settings; a checkpoint holds
    ``{'detector': settings, 'state_dict': ...}`` as its ``model`` entry. ``detect`` and ``boxes`` are
    :class:`~openfields.topdown.detector_base.DetectorBase`'s."""

    def __init__(self, model: nn.Module, settings: DetectorSettings):
        super().__init__()
        self.model = model
        self.settings = settings

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        return self.model(images, targets)

    def checkpoint_description(self) -> dict:
        return {'detector': dataclasses.asdict(self.settings),
                'state_dict': {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}}

    def detections(self, images: list[torch.Tensor], precision: str = 'float32') -> list[dict]:
        """torchvision's detections; in bfloat16 its backbone only (most of the work): the heads decode boxes as
        absolute pixel coordinates in their input's dtype, which bfloat16 would round to 2 px at 320 px."""
        if precision == 'float32':
            return self.model(images)
        backbone = self.model.backbone
        self.model.backbone = ReducedPrecisionBackbone(backbone, precision)
        try:
            return self.model(images)
        finally:
            self.model.backbone = backbone


class ReducedPrecisionBackbone(nn.Module):
    """A backbone run in ``precision`` whose features come out float32
    (:func:`openfields.network.precision.run_in`)."""

    def __init__(self, backbone: nn.Module, precision: str):
        super().__init__()
        self.backbone, self.precision = backbone, precision

    def forward(self, images: torch.Tensor):
        return network_precision.run_in(self.precision, self.backbone, images)


def build(settings: DetectorSettings) -> Detector:
    """A new torchvision detector with the weights ``settings.pretrained`` asks for (see the module's
    docstring); the cifdet detector is built from the run's flags (:func:`.cifdet_detector.build`)."""
    if settings.name not in TORCHVISION_DETECTORS:
        raise ValueError(f'--detector {settings.name}: not a torchvision detector')
    spec = TORCHVISION_DETECTORS[settings.name]
    builder = getattr(torchvision.models.detection, settings.name)
    size = {} if spec.family == 'ssd' else {'min_size': settings.image_size, 'max_size': settings.image_size}
    if settings.pretrained == 'none':
        return Detector(builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES, **size), settings)
    if settings.pretrained != 'auto':
        return Detector(_from_coco_file(builder, spec, pathlib.Path(settings.pretrained), size), settings)
    coco, backbone = _hub_cache_path(spec.coco_weights), _hub_cache_path(spec.backbone_weights)
    if coco.is_file():
        LOG.info('detector %s: COCO weights from %s', settings.name, coco)
        model = builder(weights=torchvision.models.get_weight(spec.coco_weights), weights_backbone=None, **size)
        return Detector(_with_two_classes(model, spec.family), settings)
    if backbone.is_file():
        LOG.info('detector %s: no COCO weights at %s; ImageNet backbone weights from %s', settings.name, coco,
                 backbone)
        return Detector(builder(weights=None, num_classes=NUM_CLASSES, **size,
                                weights_backbone=torchvision.models.get_weight(spec.backbone_weights)), settings)
    LOG.warning('detector %s: no COCO weights (%s) nor ImageNet backbone weights (%s) on this machine, and '
                'openfields never downloads: training from scratch (copy %s there to start from COCO)',
                settings.name, coco, backbone, torchvision.models.get_weight(spec.coco_weights).url)
    return Detector(builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES, **size), settings)


def from_checkpoint(saved: dict) -> DetectorBase:
    """The detector of a checkpoint's ``model`` entry (:meth:`Detector.checkpoint_description`, or
    :meth:`~.cifdet_detector.CifDetDetector.checkpoint_description` for cifdet)."""
    settings = DetectorSettings.from_dict(saved['detector'])
    if settings.name == cifdet_detector.NAME:
        return cifdet_detector.from_description(saved, settings)
    detector = build(dataclasses.replace(settings, pretrained='none'))
    detector.load_state_dict(saved['state_dict'])
    return detector


def _hub_cache_path(weights_name: str) -> pathlib.Path:
    url = torchvision.models.get_weight(weights_name).url
    return pathlib.Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(url)


def _from_coco_file(builder, spec: TorchvisionSpec, path: pathlib.Path, size: dict) -> nn.Module:
    if not path.is_file():
        raise PretrainedWeightsMissing(f'--detector-pretrained {path}: no such file (download '
                                       f'{torchvision.models.get_weight(spec.coco_weights).url} to it)')
    state_dict = torch.load(path, map_location='cpu', weights_only=True)
    model = builder(weights=None, weights_backbone=None, num_classes=91, **size)
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()[0]
        raise ValueError(f'--detector-pretrained {path}: not the COCO state dict of this detector ({first})') \
            from None
    LOG.info('detector: COCO weights from %s', path)
    return _with_two_classes(model, spec.family)


def _with_two_classes(model: nn.Module, family: str) -> nn.Module:
    """The COCO model with a new classifier for background and the individuals (the rest is kept)."""
    if family == 'fasterrcnn':
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = torchvision.models.detection.faster_rcnn.FastRCNNPredictor(
            in_features, NUM_CLASSES)
        return model
    from torchvision.models.detection import ssdlite, _utils  # pylint: disable=import-outside-toplevel
    channels = _utils.retrieve_out_channels(model.backbone, (320, 320))
    anchors = model.anchor_generator.num_anchors_per_location()
    norm = next(m for m in model.head.classification_head.modules() if isinstance(m, nn.BatchNorm2d))
    model.head.classification_head = ssdlite.SSDLiteClassificationHead(
        channels, anchors, NUM_CLASSES, lambda c: nn.BatchNorm2d(c, eps=norm.eps, momentum=norm.momentum))
    return model
