"""openfields: train bottom-up pose estimation models with composite fields (CIF, CAF, CIFdet)."""

from .network import cpu_threads as _cpu_threads

# on a busy machine idle OpenMP threads sleep instead of spinning: libgomp reads this once, when torch loads
# it, so it is decided before any module of the package imports torch (openfields/network/cpu_threads.py)
_cpu_threads.choose_wait_policy_on_import()

from .version import BASE_VERSION as __version__  # noqa: E402
