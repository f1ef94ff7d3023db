"""Test helpers shared across folders (``distributed_runs``, ``slurm_cluster``, ...) live in ``tests/``:
make them importable from the tests of every sub-folder."""

import os
import pathlib
import sys

TESTS = str(pathlib.Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

# the tests run the commands' main() in this process: tune it as `python -m` tunes a command, before anything loads
# torch (on a busy machine idle OpenMP threads sleep: openfields/cli_setup.py)
from openfields import cli_setup  # noqa: E402
from openfields.network import cpu_threads  # noqa: E402

cli_setup.prepare_process()
# the commands run here keep the thread count chosen at start-up rather than following the machine's load
# (openfields/network/cpu_threads.py): the tests compare runs bit for bit, and float sums depend on the count,
# so the results must not depend on what else the machine does; tests/network/test_cpu_threads.py follows it
os.environ.setdefault(cpu_threads.FOLLOW_LOAD, '0')

# session-wide tiny models and their ONNX/TorchScript exports (export, inference and video tests)
pytest_plugins = ['model_files']
