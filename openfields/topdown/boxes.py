"""Ground-truth boxes of the annotated individuals of an image: where top-down crops are taken.

A box is ``x, y, w, h`` in image pixels (pixel-centre convention of :mod:`openfields.transforms.geometry`:
an image of width ``W`` spans ``[-0.5, W - 0.5]``). Its source is the annotation's ``bbox`` when it has a
positive width and height (COCO), else the labelled keypoints' extent grown by a margin on every side
(DeepLabCut's ``bbox_margin``, 20 px: projects have no boxes of their own).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

BOX_SOURCES = ('auto', 'bbox', 'keypoints')


@dataclasses.dataclass(frozen=True)
class BoxSettings:
    """``margin``: pixels added on every side of a box derived from keypoints; ``source``: ``auto`` (the
    annotation's bbox when it has a positive size, else the keypoints), ``bbox`` or ``keypoints`` only."""

    margin: float = 20.0
    source: str = 'auto'

    def __post_init__(self):
        if not self.margin >= 0:
            raise ValueError(f'--topdown-bbox-margin must be >= 0, got {self.margin}')
        if self.source not in BOX_SOURCES:
            raise ValueError(f'--topdown-box-source must be one of {", ".join(BOX_SOURCES)}, got {self.source!r}')

    def for_dataset(self, drawn_boxes: bool) -> 'BoxSettings':
        """``auto`` on a dataset whose bbox fields are only its keypoints' extent (``drawn_boxes`` False,
        DeepLabCut projects) takes the keypoints plus the margin."""
        if self.source == 'auto' and not drawn_boxes:
            return dataclasses.replace(self, source='keypoints')
        return self

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'BoxSettings':
        return cls(margin=args.topdown_bbox_margin, source=args.topdown_box_source)


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('top-down boxes')
    defaults = BoxSettings()
    group.add_argument('--topdown-bbox-margin', type=float, default=defaults.margin, metavar='PIXELS',
                       help='pixels added around the labelled keypoints when a box is derived from them '
                            '(DeepLabCut\'s bbox_margin)')
    group.add_argument('--topdown-box-source', choices=BOX_SOURCES, default=defaults.source,
                       help='ground-truth boxes: the annotation\'s bbox (bbox), the labelled keypoints plus '
                            'the margin (keypoints), or the bbox when it has a positive size, else the '
                            'keypoints (auto)')


def labelled_keypoints(ann: dict) -> np.ndarray:
    """``(N, 2)`` positions of the annotation's keypoints with ``v > 0``."""
    keypoints = np.asarray(ann.get('keypoints', np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    return keypoints[keypoints[:, 2] > 0, :2]


def _bbox_of_annotation(ann: dict) -> np.ndarray | None:
    bbox = ann.get('bbox')
    if bbox is None:
        return None
    bbox = np.asarray(bbox, dtype=np.float64).reshape(4)
    return bbox if bbox[2] > 0 and bbox[3] > 0 else None


def _bbox_of_keypoints(ann: dict, margin: float) -> np.ndarray | None:
    xy = labelled_keypoints(ann)
    if not len(xy):
        return None
    (x0, y0), (x1, y1) = xy.min(axis=0) - margin, xy.max(axis=0) + margin
    return np.array([x0, y0, x1 - x0, y1 - y0])


def clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """``box`` clipped to the image ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; None when nothing is left."""
    x0, y0 = max(box[0], -0.5), max(box[1], -0.5)
    x1, y1 = min(box[0] + box[2], width - 0.5), min(box[1] + box[3], height - 0.5)
    if x1 <= x0 or y1 <= y0:
        return None
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)


def instance_box(ann: dict, width: int, height: int, settings: BoxSettings = BoxSettings()) -> np.ndarray | None:
    """``(4,)`` float32 ``x, y, w, h`` of one annotation in an image of ``width x height``, clipped to it;
    None when the chosen source gives no box or nothing of it lies in the image."""
    box = None
    if settings.source in ('auto', 'bbox'):
        box = _bbox_of_annotation(ann)
    if box is None and settings.source in ('auto', 'keypoints'):
        box = _bbox_of_keypoints(ann, settings.margin)
    return None if box is None else clip_box(box, width, height)


def is_annotated_individual(ann: dict) -> bool:
    """Not a crowd region and at least one labelled keypoint: an individual a crop is taken of."""
    return not ann.get('iscrowd', 0) and len(labelled_keypoints(ann)) > 0


def instance_boxes(anns: list[dict], width: int, height: int,
                   settings: BoxSettings = BoxSettings()) -> list[tuple[int, np.ndarray]]:
    """``(index into anns, box)`` of every annotated individual (:func:`is_annotated_individual`) that has
    a box in the image, in the order of ``anns``."""
    found = []
    for index, ann in enumerate(anns):
        if not is_annotated_individual(ann):
            continue
        box = instance_box(ann, width, height, settings)
        if box is not None:
            found.append((index, box))
    return found


def xyxy_from_xywh(boxes_xywh) -> np.ndarray:
    """``(N, 4)`` ``x, y, w, h`` -> ``(N, 4)`` ``x0, y0, x1, y1`` (float64; ``(0, 4)`` for no box)."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def xywh_from_xyxy(boxes_xyxy) -> np.ndarray:
    """``(N, 4)`` ``x0, y0, x1, y1`` -> ``(N, 4)`` ``x, y, w, h``."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
