"""Poses in given boxes: crop each box, run the network on all crops at once, one pose per crop.

Every box gives a crop of :class:`~openfields.topdown.crops.CropSettings` (no jitter), the crops go through
the network as one batch, each crop's fields are decoded by a single-pose decoder (:func:`crop_decoder`:
``cifmax`` for a CIF head, ``heatmap`` for a heatmap head), and the pose is mapped back to the image with
:meth:`CropGeometry.to_image`. A pose's score is the decoder's score times the box's score: a confident
pose in an unlikely box ranks below the same pose in a certain box, so COCO's ranking of detections (AP)
sees both the detector's and the pose network's confidence (ground-truth boxes have score 1 and leave the
decoder's score).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import PIL.Image
import torch

from .. import headmeta
from ..decoder.annotation import Annotation
from ..decoder.cifmax import CifMax
from ..decoder.heatmap import HeatmapMax
from ..decoder.settings import DecoderSettings
from ..transforms.image import ImageToTensor, Normalize
from .boxes import xywh_from_xyxy
from .crops import CROP_FILL, CropGeometry, CropSettings

# images (N, 3, H, W) -> per crop, per head: eval-mode fields (F, C, h, w) (scoring.network_fields' layout)
FieldsOfBatch = Callable[[torch.Tensor], list[list[np.ndarray]]]


# the head a top-down model decodes each crop with, by name
CROP_HEADS = ('cif', 'heatmap')


def crop_decoder_name(meta: headmeta.Base) -> str:
    """``heatmap`` for a heatmap head, ``cifmax`` for CIF: the name ``--decoder`` and the stats use."""
    return 'heatmap' if isinstance(meta, headmeta.Heatmap) else 'cifmax'


def crop_decoder(meta: headmeta.Base, settings: DecoderSettings) -> CifMax | HeatmapMax:
    """The single-pose decoder of a crop's first head: ``cifmax`` for CIF, ``heatmap`` for a heatmap head."""
    if isinstance(meta, headmeta.Heatmap):
        return HeatmapMax(meta, settings)
    return CifMax(meta, settings)


def crop_tensors(image: PIL.Image.Image, geometries: Sequence[CropGeometry], fill=CROP_FILL) -> torch.Tensor:
    """``(N, 3, H, W)`` normalised crops of ``image`` (as the network saw them in training)."""
    to_tensor, normalize = ImageToTensor(), Normalize()
    crops = [normalize(*to_tensor(g.crop(image.convert('RGB'), fill), None, None))[0] for g in geometries]
    return torch.stack(crops)


def pose_in_image(pose: Annotation, geometry: CropGeometry, box_score: float = 1.0) -> Annotation:
    """A copy of ``pose`` (crop pixels) in image pixels, scored ``pose.score * box_score``; keypoints not
    found (confidence 0) stay at ``(0, 0)``."""
    data = pose.data.copy()
    found = data[:, 2] > 0
    data[:, :2] = np.where(found[:, None], geometry.to_image(data[:, :2]), 0.0)
    return dataclasses.replace(pose, data=data, joint_scales=pose.joint_scales / geometry.scale,
                               fixed_score=float(pose.score * box_score))


def poses_on_boxes(image: PIL.Image.Image, boxes_xyxy, box_scores, fields_of_batch: FieldsOfBatch,
                   head_metas: Sequence[headmeta.Base], crop: CropSettings = CropSettings(),
                   decode: Callable[[list], list[Annotation]] | None = None) -> list[Annotation]:
    """At most one pose per box, in the pixels of ``image``.

    ``boxes_xyxy``: ``(N, 4)`` image pixels; ``box_scores``: ``(N,)``; boxes without a positive width and
    height are skipped (``fields_of_batch`` sees the crops of the others, in order). ``head_metas``: the
    metas of the heads ``fields_of_batch`` returns, CIF (or heatmap) first; ``decode`` (default:
    :func:`crop_decoder` of the first head with the default decoder settings) turns one crop's fields into
    poses, of which the best is kept.
    No box: no pose (the network is not called).
    """
    return [pose for _, pose in boxed_poses(image, boxes_xyxy, box_scores, fields_of_batch, head_metas, crop, decode)]


def boxed_poses(image: PIL.Image.Image, boxes_xyxy, box_scores, fields_of_batch: FieldsOfBatch,
                head_metas: Sequence[headmeta.Base], crop: CropSettings = CropSettings(),
                decode: Callable[[list], list[Annotation]] | None = None) -> list[tuple[int, Annotation]]:
    """:func:`poses_on_boxes` with the index of the box each pose came from (in ``boxes_xyxy``)."""
    boxes = xywh_from_xyxy(boxes_xyxy)
    scores = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f'{len(boxes)} boxes but {len(scores)} box scores')
    usable = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    indices, boxes, scores = np.flatnonzero(usable), boxes[usable], scores[usable]
    if not len(boxes):
        return []
    if decode is None:
        decode = crop_decoder(head_metas[0], DecoderSettings())
    geometries = [crop.around(box) for box in boxes]
    per_crop = fields_of_batch(crop_tensors(image, geometries))
    poses = []
    for index, geometry, fields, box_score in zip(indices, geometries, per_crop, scores):
        found = sorted(decode(fields), key=lambda pose: -pose.score)[:1]
        poses += [(int(index), pose_in_image(pose, geometry, box_score)) for pose in found]
    return poses
