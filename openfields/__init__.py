"""openfields: train bottom-up pose estimation models with composite fields (CIF, CAF, CIFdet)."""

from .version import BASE_VERSION as __version__
