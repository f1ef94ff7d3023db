"""openfields: train bottom-up pose estimation models with composite fields (CIF, CAF, CIFdet)."""

import os as _os

# Idle OpenMP threads sleep instead of spinning: libgomp reads this once, when torch loads it, so it is set
# before any module of the package imports torch (why: openfields/network/cpu_threads.py).
_os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from .version import BASE_VERSION as __version__  # noqa: E402
