"""What a detector of top-down mode trains and is scored on: the images of a keypoint dataset with one box
per annotated individual (:mod:`openfields.topdown.boxes`: the annotation's bbox, or its keypoints plus
DeepLabCut's margin), and the COCO box AP (pycocotools, ``iou_type='bbox'``) of its detections.

Samples of the torchvision detectors (:class:`DetectionSamples`) are ``(image, target, meta)``: ``image``
``(3, H, W)`` in [0, 1] with its long edge at the detector's image size, ``target`` ``{'boxes': (N, 4) x0,
y0, x1, y1, 'labels': (N,) ones}`` in those pixels, ``meta`` with ``image_id``, ``file_name`` and ``scale``
(network pixels per original pixel). A batch keeps the images as a list (their sizes differ); torchvision's
detectors take lists. Samples of the cifdet detector (:class:`CifDetSamples`) are those of any
composite-field network: a normalised ``(3, S, S)`` square, ``[(1, 7, h, w) CifDet target]`` and the
transforms' ``meta``. Evaluation (:class:`DetectorTestSet`) is the same for both.

Training images are augmented as DeepLabCut's ``detector.data.train`` says (:class:`DetectorAugmentation`,
flags ``--detector-hflip``, ``--detector-affine...``, ``--detector-hist-eq``, ``--detector-motion-blur``,
``--detector-covering``, ``--detector-gaussian-noise``): the image-level transforms of the pose datasets'
augmentation (:class:`openfields.transforms.ExtraAugmentation`) run on the original image and its boxes
(:func:`box_annotations`), as DeepLabCut augments a detector's boxes: an affine maps a box's corners (a box
derived from keypoints keeps its margin, scaled with the image), a covering leaves the boxes as they are.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

import numpy as np
import PIL.Image
import torch

from .. import transforms
from ..decoder.annotation import AnnotationDet
from ..metric.coco import Coco
from ..show.progress import Progress
from .boxes import BoxSettings, instance_boxes, xyxy_from_xywh
from .detector_base import resized

LOG = logging.getLogger(__name__)

# DeepLabCut's names of the COCO box scores (pycocotools' summary, in its order), as its detector runs log them
SCORE_NAMES = {'AP': 'mAP@50:95', 'AP50': 'mAP@50', 'AP75': 'mAP@75', 'AR1': 'mAR@1', 'AR10': 'mAR@10',
               'AR100': 'mAR@100'}


def boxes_xyxy(anns: list[dict], width: int, height: int, settings: BoxSettings) -> np.ndarray:
    """``(N, 4)`` float32 corners of every annotated individual's box (pixel centres at integers)."""
    return xyxy_from_xywh([box for _, box in instance_boxes(anns, width, height, settings)]).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class DetectorAugmentation:
    """How the detector's training images are augmented: a horizontal flip with probability ``hflip`` (of
    the resized image: boxes are always flippable), and DeepLabCut's image-level augmentations with the
    pose datasets' meaning (:class:`~openfields.transforms.ExtraAugmentation`: ``affine`` probability with
    its rotation, scaling and translation, ``hist_eq``, ``motion_blur`` and ``covering`` probabilities,
    ``gaussian_noise`` standard deviation); all but the flip off by default."""

    hflip: float = 0.5
    affine: float = 0.0
    affine_rotation: float = 30.0
    affine_scaling: tuple[float, float] = (0.5, 1.25)
    affine_translation: float = 0.0
    hist_eq: float = 0.0
    motion_blur: float = 0.0
    covering: float = 0.0
    gaussian_noise: float = 0.0

    PROBABILITIES = ('hflip', 'affine', 'hist_eq', 'motion_blur', 'covering')

    def __post_init__(self):
        """One line naming the flag for a value that cannot run."""
        for name in self.PROBABILITIES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{_flag(name)} is a probability in [0, 1], got {getattr(self, name)}')
        low, high = self.affine_scaling
        for name, ok, requirement in (('affine_scaling', 0 < low <= high, 'must be 0 < MIN <= MAX'),
                                      ('affine_rotation', self.affine_rotation >= 0, 'must be >= 0'),
                                      ('affine_translation', self.affine_translation >= 0, 'must be >= 0'),
                                      ('gaussian_noise', self.gaussian_noise >= 0, 'must be >= 0')):
            if not ok:
                raise ValueError(f'{_flag(name)} {requirement}, got {getattr(self, name)}')

    @staticmethod
    def cli(group) -> None:
        defaults = DetectorAugmentation()
        group.add_argument('--detector-hflip', type=float, default=defaults.hflip,
                           help='probability of a horizontal flip of a detector training image')
        group.add_argument('--detector-affine', type=float, default=defaults.affine,
                           help='probability of an affine transform of a detector training image on a canvas of '
                                'the same size (boxes follow; DeepLabCut\'s detector.data.train.affine)')
        group.add_argument('--detector-affine-rotation', type=float, default=defaults.affine_rotation,
                           metavar='DEGREES', help='detector affine: rotation uniform in +-DEGREES')
        group.add_argument('--detector-affine-scaling', type=float, nargs=2, default=list(defaults.affine_scaling),
                           metavar=('MIN', 'MAX'), help='detector affine: scale factor uniform in [MIN, MAX]')
        group.add_argument('--detector-affine-translation', type=float, default=defaults.affine_translation,
                           metavar='PIXELS', help='detector affine: translation uniform in +-PIXELS per axis')
        group.add_argument('--detector-hist-eq', type=float, default=defaults.hist_eq,
                           help='probability of a histogram equalisation of a detector training image')
        group.add_argument('--detector-motion-blur', type=float, default=defaults.motion_blur,
                           help='probability of a motion blur of a detector training image')
        group.add_argument('--detector-covering', type=float, default=defaults.covering,
                           help='probability of covering 1 to 10 small rectangles of a detector training image')
        group.add_argument('--detector-gaussian-noise', type=float, default=defaults.gaussian_noise, metavar='STD',
                           help='with probability 0.5, add noise of a standard deviation up to STD (0-255 units) '
                                'to a detector training image')

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'DetectorAugmentation':
        values = {f.name: getattr(args, f'detector_{f.name}') for f in dataclasses.fields(cls)}
        return cls(**{**values, 'affine_scaling': tuple(values['affine_scaling'])})

    @property
    def extras(self) -> transforms.ExtraAugmentation:
        """The image-level part, as the pose datasets' augmentation has it."""
        return transforms.ExtraAugmentation(
            affine=self.affine, affine_rotation=self.affine_rotation, affine_scaling=self.affine_scaling,
            affine_translation=self.affine_translation, hist_eq=self.hist_eq, motion_blur=self.motion_blur,
            covering=self.covering, gaussian_noise=self.gaussian_noise)

    def image_steps(self) -> transforms.Compose | None:
        """The transforms of the original image and its annotations (None: none is on)."""
        extras = self.extras
        steps = [extras.affine_step(), *extras.image_steps(), extras.noise_step()]
        if not any(steps):
            return None
        return transforms.Compose([transforms.NormalizeAnnotations(), *steps])

    def record(self) -> dict:
        """What the detector run's log and checkpoints record: the settings and the transforms in effect."""
        steps = self.image_steps()
        return {**dataclasses.asdict(self), 'image_steps': [repr(t) for t in steps.transforms[1:]] if steps else [],
                'hflip_step': f'RandomApply(HFlip(), probability={self.hflip})' if self.hflip else None}


def _flag(name: str) -> str:
    return f'--detector-{name.replace("_", "-")}'


def box_annotations(image, anns: list[dict], meta: dict, box_settings: BoxSettings,
                    steps: transforms.Compose | None = None):
    """``(image, boxes, meta)``: one annotation ``{'bbox': x, y, w, h, 'category_id': 1, 'iscrowd': 0}`` per
    annotated individual with a box, then the image and these boxes through ``steps`` (as DeepLabCut augments
    a detector's boxes: an affine maps their corners, a covering leaves them); boxes pushed out of the image
    are dropped."""
    boxes = [{'bbox': box, 'category_id': 1, 'iscrowd': 0}
             for _, box in instance_boxes(anns, image.size[0], image.size[1], box_settings)]
    if steps is None:
        return image, boxes, meta
    image, boxes, meta = steps(image, boxes, meta)
    return image, [box for box in boxes if box['bbox'][2] > 0 and box['bbox'][3] > 0], meta


class DetectionSamples(torch.utils.data.Dataset):
    """The images of ``raw`` (a :class:`~openfields.datasets.coco.CocoKeypoints` returning ``(image, anns,
    meta)`` unchanged) with their individuals' boxes, augmented by ``augmentation`` (None: as they are;
    ``hflip`` without it: the probability of a horizontal flip)."""

    def __init__(self, raw, box_settings: BoxSettings, image_size: int, hflip: float = 0.0,
                 augmentation: DetectorAugmentation | None = None):
        self.raw = raw
        self.box_settings = box_settings
        self.image_size = image_size
        self.hflip = augmentation.hflip if augmentation is not None else hflip
        self.steps = augmentation.image_steps() if augmentation is not None else None

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, index):
        sample = self.raw[index]
        if sample is None:  # unreadable image: dropped by the collate function
            return None
        image, boxes, meta = box_annotations(*sample, self.box_settings, self.steps)
        boxes = xyxy_from_xywh([box['bbox'] for box in boxes]).astype(np.float32)
        tensor, scale = resized(image, self.image_size)
        boxes = boxes * scale
        if self.hflip and float(torch.rand(())) < self.hflip:
            tensor = tensor.flip(-1)
            # pixel centres at integers: x -> (W - 1) - x, and the corners swap
            width = tensor.shape[-1]
            boxes = np.stack([width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0], boxes[:, 3]], axis=1)
        target = {'boxes': torch.from_numpy(boxes.astype(np.float32)).reshape(-1, 4),
                  'labels': torch.ones(len(boxes), dtype=torch.int64)}
        meta = {'dataset': meta.get('dataset'), 'image_id': meta['image_id'], 'file_name': meta.get('file_name'),
                'scale': scale, 'width_height': image.size}
        return tensor, target, meta


class CifDetSamples(torch.utils.data.Dataset):
    """The images of ``raw`` (as :class:`DetectionSamples`, augmented by ``image_steps``:
    :meth:`DetectorAugmentation.image_steps`) with one box annotation (``bbox`` x, y, w, h, category 1) per
    annotated individual, through ``preprocess`` (:func:`cifdet_pipeline`)."""

    def __init__(self, raw, box_settings: BoxSettings, preprocess, image_steps: transforms.Compose | None = None):
        self.raw = raw
        self.box_settings = box_settings
        self.preprocess = preprocess
        self.steps = image_steps

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, index):
        sample = self.raw[index]
        if sample is None:  # unreadable image: dropped by the collate function
            return None
        image, boxes, meta = box_annotations(*sample, self.box_settings, self.steps)
        meta = {'dataset': meta.get('dataset'), 'image_id': meta['image_id'], 'file_name': meta.get('file_name')}
        return self.preprocess(image, boxes, meta)


def cifdet_pipeline(image_size: int, encoders, hflip: float = 0.0) -> transforms.Compose:
    """Whole images for the cifdet detector: the long edge to ``image_size``, a horizontal flip with
    probability ``hflip``, centred on an ``image_size`` square (the ImageNet mean colour around it), boxes
    with a side of at most 4 pixels as ignore regions, then tensor, ImageNet normalisation and ``encoders``."""
    return transforms.Compose([
        transforms.NormalizeAnnotations(),
        transforms.RescaleAbsolute(image_size),
        transforms.RandomApply(transforms.HFlip([], {}), hflip) if hflip > 0.0 else None,
        transforms.CenterPad(image_size),
        transforms.IgnoreTinyBoxes(),
        transforms.ImageToTensor(),
        transforms.Normalize(),
        transforms.Encoders(encoders),
    ])


def collate_detections(batch):
    """``(images, targets, metas)`` lists; unreadable samples (None) are dropped, None when none is left."""
    batch = [sample for sample in batch if sample is not None]
    if not batch:
        return None
    images, targets, metas = zip(*batch)
    return list(images), list(targets), list(metas)


def ground_truth(raw, box_settings: BoxSettings, category_name: str = 'individual') -> dict:
    """A COCO box dataset of ``raw``'s images (sizes read from the file headers) and boxes."""
    images, annotations = [], []
    for image_id in raw.ids:
        info = raw.images[image_id]
        with PIL.Image.open(raw.image_dir / info['file_name']) as image:
            width, height = image.size
        images.append({'id': image_id, 'file_name': info['file_name'], 'width': width, 'height': height})
        for _, box in instance_boxes(raw.anns_per_image[image_id], width, height, box_settings):
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id, 'category_id': 1,
                                'bbox': [float(v) for v in box], 'area': float(box[2] * box[3]), 'iscrowd': 0})
    return {'images': images, 'annotations': annotations,
            'categories': [{'id': 1, 'name': category_name}]}


class BoxAP:
    """COCO box AP of detections against :func:`ground_truth`, with DeepLabCut's score names."""

    names = tuple(SCORE_NAMES.values())

    def __init__(self, gt: dict):
        self.coco = Coco(gt, iou_type='bbox', category_id=1)

    def accumulate(self, predictions, image_meta: dict):
        self.coco.accumulate(predictions, image_meta)

    def stats(self, **kwargs) -> dict:
        stats = self.coco.stats(**kwargs)
        return {name: stats[coco_name] for coco_name, name in SCORE_NAMES.items()}

    def write_predictions(self, path_prefix):
        return self.coco.write_predictions(path_prefix)


def detections_in_original(detection: dict, scale: float) -> list[AnnotationDet]:
    """torchvision's detections of one resized image as boxes ``x, y, w, h`` in original pixels."""
    boxes = detection['boxes'].cpu().numpy() / scale
    scores = detection['scores'].cpu().numpy()
    return [AnnotationDet(meta=None, category_id=1, score=float(score),
                          bbox=np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32))
            for (x0, y0, x1, y1), score in zip(boxes, scores)]


@dataclasses.dataclass
class DetectorTestSet:
    """The ``--eval-interval`` evaluation of a detector run: box AP on ``raw``'s images (first ``max_images``)."""

    __test__ = False  # not a pytest class

    raw: object
    box_settings: BoxSettings
    image_size: int
    max_images: int | None = None
    progress_interval: float = 10.0
    names: tuple = BoxAP.names

    def __post_init__(self):
        self._gt = None

    def score(self, detector, device) -> dict[str, float]:
        if self._gt is None:
            self._gt = ground_truth(self.raw, self.box_settings)
        metric = BoxAP(self._gt)
        samples = DetectionSamples(self.raw, self.box_settings, self.image_size)
        n_images = len(samples) if self.max_images is None else min(len(samples), self.max_images)
        progress = Progress('evaluating the detector', n_images, interval_s=self.progress_interval)
        start = time.perf_counter()
        for index in range(n_images):
            sample = samples[index]
            if sample is None:
                continue
            image, _, meta = sample
            detection = detector.detect([image.to(device)])[0]
            metric.accumulate(detections_in_original(detection, meta['scale']), meta)
            progress.update(1)
        LOG.info('detector scored on %d images (%.1f ms per image)', n_images,
                 1000 * (time.perf_counter() - start) / max(n_images, 1))
        stats = metric.stats()
        return {name: float(stats[name]) for name in self.names}
