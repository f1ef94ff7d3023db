"""Test helpers shared across folders (``distributed_runs``, ``slurm_cluster``, ...) live in ``tests/``:
make them importable from the tests of every sub-folder."""

import pathlib
import sys

TESTS = str(pathlib.Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

# session-wide tiny models and their ONNX/TorchScript exports (export, inference and video tests)
pytest_plugins = ['model_files']
