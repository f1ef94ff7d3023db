"""Markers of the tests that need CUDA: they run where a GPU is (``make gpu-check``) and are skipped, with
the reason shown by ``pytest -rs``, everywhere else; they never pass without having run."""

import pytest
import torch

NO_GPU = 'needs a CUDA GPU and this machine has none (make gpu-check runs it where one is)'


def cuda_only(test):
    """``@cuda_only``: marked ``cuda`` (``pytest -m cuda`` selects them) and skipped without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)(test))


def two_gpus_only(test):
    """``@two_gpus_only``: like :func:`cuda_only`, and skipped with fewer than two GPUs (NCCL needs one
    device per process)."""
    reason = f'needs two CUDA GPUs for NCCL, this machine has {torch.cuda.device_count()}'
    return cuda_only(pytest.mark.skipif(torch.cuda.device_count() < 2, reason=reason)(test))
