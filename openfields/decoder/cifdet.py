"""CifDet decoder: detection fields of one image -> boxes (:class:`AnnotationDet`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from .. import headmeta
from .annotation import AnnotationDet
from .cifcaf import as_array
from .cifhr import CifHr
from .nms import box_nms
from .occupancy import Occupancy
from .seeds import cifdet_seeds

if TYPE_CHECKING:
    from .settings import DecoderSettings

# boxes emitted before NMS, at most
MAX_BOXES_BEFORE_NMS = 120
NMS_IOU = 0.5
NMS_SUPPRESSION = 0.1


class CifDet:
    """Box decoder for one CifDet head: ``__call__([fields (N, 6, h, w)])`` with eval-mode
    ``[log_b, conf, x, y, w, h]`` (field units) -> boxes in pixels, best first.

    1. accumulation: :class:`CifHr` with ``sigma = max(1, 0.1 * min(w, h) * stride)``;
    2. seeds: cells with ``conf >= seed_threshold``, rescored ``0.9 * hr + 0.1 * conf``, sorted;
    3. in seed order, a seed whose place (category map, ``x, y``) is unoccupied emits the box
       ``(x - w/2, y - h/2, w, h)`` scored by the seed and occupies a square of ``0.1 * min(w, h)``
       (at least the occupancy minimum) around its centre; at most 120 boxes;
    4. :func:`box_nms`: per category, boxes overlapping a better one (IoU > 0.5) keep a tenth of their
       score; boxes scoring ``<= instance_threshold`` are dropped; at most ``max_instances``.
    """

    def __init__(self, meta: headmeta.CifDet, settings: 'DecoderSettings'):
        self.meta = meta
        self.settings = settings
        self.cifhr = CifHr()
        self.stats: dict[str, float] = {}

    def __call__(self, fields: list) -> list[AnnotationDet]:
        start = time.perf_counter()
        settings = self.settings
        det = as_array(fields[0])
        stride = self.meta.stride
        self.cifhr.fill_cifdet(det, stride, settings.cif_th)
        seeds, width, height = cifdet_seeds(det, stride, self.cifhr, settings.seed_threshold)
        occupancy = Occupancy(self.cifhr.shape)
        annotations = []
        remaining = np.arange(len(seeds))
        while len(remaining) and len(annotations) < MAX_BOXES_BEFORE_NMS:
            i, remaining = int(remaining[0]), remaining[1:]
            field, x, y = int(seeds.field[i]), float(seeds.x[i]), float(seeds.y[i])
            occupancy.set(field, x, y, float(seeds.scale[i]))
            w, h = float(width[i]), float(height[i])
            annotations.append(AnnotationDet(meta=self.meta, category_id=field + 1, score=float(seeds.score[i]),
                                             bbox=np.array([x - 0.5 * w, y - 0.5 * h, w, h], dtype=np.float32)))
            # the next seed is the first one not occupied yet (one vectorised lookup per box)
            remaining = remaining[~occupancy.get_many(seeds.field[remaining], seeds.x[remaining], seeds.y[remaining])]
        annotations = box_nms(annotations, NMS_IOU, NMS_SUPPRESSION, settings.instance_threshold)
        self.stats = {'total': 1000.0 * (time.perf_counter() - start)}
        return annotations[:settings.max_instances]
