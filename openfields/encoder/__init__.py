"""Encoders: annotations -> dense target fields (see docs/architecture.md, "Targets")."""

from .annrescaler import AnnRescaler, mask_valid_area
from .caf import Caf
from .cif import Cif
from .cifdet import CifDet
from .factory import EncoderSettings, cli, factory
from .heatmap import Heatmap

__all__ = ['AnnRescaler', 'Caf', 'Cif', 'CifDet', 'EncoderSettings', 'Heatmap', 'cli', 'factory', 'mask_valid_area']
