"""Evaluation of a top-down pose network on ground-truth ("oracle") boxes.

For every validation image in its original size, the boxes of its annotated individuals
(:func:`~openfields.topdown.boxes.instance_boxes`, score 1) are cropped, the network predicts one pose per
crop (:func:`~openfields.topdown.pose_on_crops.poses_on_boxes`) and the poses, already in original image
pixels, go to the dataset's own metrics. This measures the pose network alone; with a detector's boxes
instead the score also carries the detector's misses and false alarms.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from ..datasets.coco import CocoKeypoints
from ..decoder.settings import DecoderSettings
from ..metric import scoring
from ..show.progress import Progress
from .boxes import BoxSettings, instance_boxes, xywh_from_xyxy, xyxy_from_xywh
from .crops import CropSettings
from .pose_on_crops import FieldsOfBatch, crop_decoder, poses_on_boxes

LOG = logging.getLogger(__name__)

# (annotations of the image's individuals, their boxes (N, 4) x, y, w, h) -> the fields of their crops;
# the network ignores both, an oracle encodes the annotations
FieldsForImage = Callable[[list[dict], np.ndarray], FieldsOfBatch]


@dataclasses.dataclass
class TopDownTestSet:
    """One dataset's top-down evaluation: the validation images (``dataset``, read without preprocessing),
    the network positions of its heads (CIF first), fresh ``metrics`` and the score ``names`` they report."""

    __test__ = False  # not a pytest class

    dataset: CocoKeypoints
    head_indices: list[int]
    head_metas: list
    new_metrics: Callable[[], list]
    names: list[str]
    crop: CropSettings = CropSettings()
    boxes: BoxSettings = BoxSettings()
    decoder_settings: DecoderSettings = dataclasses.field(default_factory=DecoderSettings)
    settings: scoring.ScoringSettings = scoring.ScoringSettings()
    detector: object = None  # a trained detector (topdown.detector_base.DetectorBase); None: ground-truth boxes
    detector_precision: str = 'float32'  # the detector's arithmetic (--precision)
    # seconds spent per stage over the last accumulate(): detector, network (the crops), decoder (and cropping)
    seconds: dict = dataclasses.field(default_factory=dict)

    def score(self, network: torch.nn.Module, device) -> dict[str, float]:
        """``{score name: value}`` of ``network`` (in the mode it is in) on every validation image."""
        network_fields = scoring.network_fields(network, self.head_indices, device)

        def fields_of_batch(images):
            return network_fields(images, None, None)[0]
        return self.score_fields(lambda individuals, boxes: fields_of_batch)

    def score_fields(self, fields_for_image: FieldsForImage) -> dict[str, float]:
        """The scores of the poses decoded from ``fields_for_image`` (the network's, or an oracle's)."""
        metrics = self.new_metrics()
        n_images = self.accumulate(metrics, fields_for_image)
        if n_images == 0:
            raise ValueError('no evaluation images')
        return scoring.scores(scoring.merged_stats(metrics), self.names)

    def accumulate(self, metrics: list, fields_for_image: FieldsForImage) -> int:
        """Predict every validation image (the first ``settings.max_images``) on its ground-truth boxes and
        hand the poses to ``metrics``; returns the number of images scored."""
        n_images = len(self.dataset) if self.settings.max_images is None \
            else min(len(self.dataset), self.settings.max_images)
        what = 'ground-truth boxes' if self.detector is None else 'detected boxes'
        progress = Progress(f'evaluating on {what}', n_images, interval_s=self.settings.progress_interval)
        decode = crop_decoder(self.head_metas[0], self.decoder_settings)
        image_ids = []
        self.seconds = {'detector': 0.0, 'network': 0.0, 'decoder': 0.0}
        for index in range(n_images):
            loaded = self.dataset[index]
            if loaded is None:  # unreadable image: logged by the dataset
                continue
            image, anns, meta = loaded
            start = time.perf_counter()
            individuals, boxes_xyxy, box_scores = self._boxes(image, anns)
            boxes_found = time.perf_counter()
            fields_of_batch = self._timed(fields_for_image(individuals, xywh_from_xyxy(boxes_xyxy)))
            poses = poses_on_boxes(image, boxes_xyxy, box_scores, fields_of_batch, self.head_metas, self.crop, decode)
            self.seconds['detector'] += boxes_found - start
            self.seconds['decoder'] += time.perf_counter() - boxes_found
            for metric in metrics:
                metric.accumulate(poses, meta)
            image_ids.append(meta['image_id'])
            progress.update(1)
        if self.settings.max_images is not None:
            for metric in metrics:  # metrics of a fixed image list score the predicted images only
                if hasattr(metric, 'limit_to'):
                    metric.limit_to(image_ids)
        self.seconds['decoder'] -= self.seconds['network']  # was measured around the network's calls
        return len(image_ids)

    def _boxes(self, image, anns) -> tuple[list[dict], np.ndarray, np.ndarray]:
        """The individuals' annotations (ground truth; none for detected boxes), boxes ``(N, 4)`` x0, y0, x1,
        y1 and scores ``(N,)`` of an image."""
        if self.detector is not None:
            boxes_xyxy, scores = self.detector.boxes(image, precision=self.detector_precision)
            return [], boxes_xyxy, scores
        found = instance_boxes(anns, *image.size, self.boxes)
        return [anns[i] for i, _ in found], xyxy_from_xywh([box for _, box in found]), np.ones(len(found))

    def _timed(self, fields_of_batch: FieldsOfBatch) -> FieldsOfBatch:
        def timed(images):
            start = time.perf_counter()
            try:
                return fields_of_batch(images)
            finally:
                self.seconds['network'] += time.perf_counter() - start
        return timed
