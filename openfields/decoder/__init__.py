"""Decoders: eval-mode head fields of one image -> instances (see docs/architecture.md).

* :class:`CifCaf`: poses from CIF + CAF (+ dense CAF) fields, stages in ``cifhr``, ``seeds``,
  ``caf_scored``, ``occupancy``, ``nms``;
* :class:`CifDet`: boxes from CifDet fields;
* :class:`CifMax`: one pose per image from each keypoint's CIF map peak (single individual);
* :class:`HeatmapMax`: one pose per image from a heatmap head (DeepLabCut's heatmap + locref read-out);
* module ``factory``: ``factory.cli``, ``factory.factory`` and :class:`DecoderSettings`, the flags and
  the choice of decoders (the module, not its function, is this package's ``factory`` attribute);
* :func:`fields_from_targets`: encoder targets as "perfect network" fields (``eval --oracle``, tests).
"""

from .annotation import Annotation, AnnotationDet
from .cifcaf import CifCaf
from .cifdet import CifDet
from .cifmax import CifMax
from .heatmap import HeatmapMax
from . import factory
from .factory import Decoder, DecoderSettings
from .oracle import fields_from_targets

__all__ = ['Annotation', 'AnnotationDet', 'CifCaf', 'CifDet', 'CifMax', 'Decoder', 'HeatmapMax', 'DecoderSettings', 'factory',
           'fields_from_targets']
