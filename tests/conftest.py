"""Test helpers shared across folders (``distributed_runs``, ``slurm_cluster``, ...) live in ``tests/``:
make them importable from the tests of every sub-folder."""

import pathlib
import sys

TESTS = str(pathlib.Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

# the tests run the commands' main() in this process: tune it as `python -m` tunes a command, before anything loads
# torch (on a busy machine idle OpenMP threads sleep: openfields/cli_setup.py)
from openfields import cli_setup  # noqa: E402

cli_setup.prepare_process()

# session-wide tiny models and their ONNX/TorchScript exports (export, inference and video tests)
pytest_plugins = ['model_files']
