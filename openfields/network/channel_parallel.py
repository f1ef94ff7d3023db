"""What the compiled per-channel CPU kernels share: the inputs they take, and running them on torch's threads.

:func:`compiled_kernels_apply`: eager-mode float32 CPU tensors (N, C, H, W) in the default layout, outside
autocast; elsewhere (CUDA, bfloat16 or float16, channels_last, unbatched inputs, tracing, scripting,
``torch.compile``) the modules fall back to torch's own code.

The kernels of :mod:`.depthwise` and :mod:`.batchnorm` take a channel range ``[first, end)`` and release the
GIL (numba ``nogil``). :func:`over_channels` splits the channels into as many contiguous chunks as torch uses
threads, runs the first chunk in the calling thread and the others on helper threads. Python threads rather
than numba's own parallel loops: those run on a second OpenMP runtime next to torch's, and both spin for the
same cores between kernels. Each channel is computed by one thread in a fixed order, so results do not
depend on the thread count.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Callable

import torch

_POOLS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}  # helper threads by count, made on first use
# a forked child (a DataLoader worker, a multiprocessing fork) inherits the pools but not their threads: it
# makes its own when it needs them
os.register_at_fork(after_in_child=_POOLS.clear)


def _helper_pool(n_threads: int) -> concurrent.futures.ThreadPoolExecutor:
    if n_threads not in _POOLS:
        _POOLS[n_threads] = concurrent.futures.ThreadPoolExecutor(n_threads, 'openfields-channels')
    return _POOLS[n_threads]


def compiled_kernels_apply(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x`` and ``weight`` are what the compiled kernels take, in a context that runs them."""
    return (x.device.type == 'cpu' and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.dim() == 4 and x.is_contiguous() and not torch.is_autocast_enabled('cpu')
            and not torch.jit.is_scripting() and not torch.jit.is_tracing() and not torch.compiler.is_compiling())


def over_channels(kernel: Callable, n_channels: int, *args) -> None:
    """``kernel(*args, first, end)`` for contiguous channel chunks covering ``range(n_channels)``, in
    parallel on ``torch.get_num_threads()`` threads (fewer when there are fewer channels)."""
    n_chunks = max(1, min(torch.get_num_threads(), n_channels))
    bounds = [n_channels * i // n_chunks for i in range(n_chunks + 1)]
    helpers = [_helper_pool(n_chunks - 1).submit(kernel, *args, bounds[i], bounds[i + 1])
               for i in range(1, n_chunks)]
    kernel(*args, bounds[0], bounds[1])
    for helper in helpers:
        helper.result()
