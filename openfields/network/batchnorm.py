"""BatchNorm2d whose training-mode forward is a compiled loop (numba) on the CPU.

Why: in a ShuffleNetV2K training step on a 2-core CPU, torch's training-mode BatchNorm took about 0.75 s of
a 6 s step (56 layers), its forward 0.5 s: three passes over tensors of 20-200 MB where one pass for the
statistics and one for the output do, 1.7-3.4x faster (docs/benchmarks.md). The backward is torch's, given the
statistics computed here (a compiled backward measured no faster: it is memory-bound either way). In eval
mode, on CUDA, under autocast, for other dtypes or layouts, while tracing, scripting or compiling, it is
torch's BatchNorm2d; the parameters, buffers and state dict are the same.

Per channel ``c``, over the ``M = N H W`` values of ``x`` (N, C, H, W):

    mean_c = sum x / M,   var_c = sum (x - mean_c)^2 / M,   xhat = (x - mean_c) / sqrt(var_c + eps)
    y = xhat * weight_c + bias_c

The statistics come from one pass of shifted sums, ``s1 = sum (x - K)``, ``s2 = sum (x - K)^2`` with ``K``
the channel's first value (so that a channel far from zero, mean >> std, loses no precision):
``mean = K + s1 / M``, ``var = s2 / M - (s1 / M)^2``; float32 within a row, float64 across rows. The running
statistics are updated as torch does (``momentum``, or the cumulative average when it is None; unbiased
variance ``var M / (M - 1)``).

Each channel is computed by one thread in a fixed order (:mod:`.channel_parallel`): deterministic on any
thread count. Results differ from torch's by float32 rounding (tests/network/test_batchnorm.py).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import nn

from .channel_parallel import compiled_kernels_apply, over_channels

jit = numba.njit(cache=True, nogil=True, fastmath=True)


@jit
def _forward_channels(x, weight, bias, eps, out, mean, invstd, first, end):
    """Normalise channels ``first <= c < end`` of ``x`` (N, C, H, W) into ``out``; their batch mean and
    1 / sqrt(var + eps) into ``mean``, ``invstd`` (float64)."""
    n_images, _, height, width = x.shape
    count = n_images * height * width
    for c in range(first, end):
        shift = x[0, c, 0, 0]
        sum1 = 0.0
        sum2 = 0.0
        for n in range(n_images):
            for y in range(height):
                row1 = np.float32(0.0)
                row2 = np.float32(0.0)
                for i in range(width):
                    d = x[n, c, y, i] - shift
                    row1 += d
                    row2 += d * d
                sum1 += row1
                sum2 += row2
        offset = sum1 / count
        channel_mean = shift + offset
        channel_invstd = 1.0 / np.sqrt(max(sum2 / count - offset * offset, 0.0) + eps)
        mean[c] = channel_mean
        invstd[c] = channel_invstd
        # (x - mean) first, not x scale + (bias - mean scale): exact for x near a large mean
        centre = np.float32(channel_mean)
        scale = np.float32(channel_invstd * weight[c])
        channel_bias = np.float32(bias[c])
        for n in range(n_images):
            for y in range(height):
                for i in range(width):
                    out[n, c, y, i] = (x[n, c, y, i] - centre) * scale + channel_bias


class _BatchNormFunction(torch.autograd.Function):
    """Training-mode batch normalisation with the compiled forward and torch's backward; also returns the
    batch mean and 1 / sqrt(var + eps) (not differentiable) for the running statistics."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float):
        x_array = x.detach().numpy()
        n_channels = x.shape[1]
        out = np.empty_like(x_array)
        mean, invstd = np.empty(n_channels), np.empty(n_channels)
        over_channels(_forward_channels, n_channels, x_array, weight.detach().numpy(), bias.detach().numpy(),
                      eps, out, mean, invstd)
        mean_t, invstd_t = torch.from_numpy(mean), torch.from_numpy(invstd)
        ctx.save_for_backward(x, weight, mean_t, invstd_t)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean_t, invstd_t)
        return torch.from_numpy(out), mean_t, invstd_t

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, _grad_mean, _grad_invstd):
        x, weight, mean, invstd = ctx.saved_tensors
        grad_in, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad_out.contiguous(), x, weight, None, None, mean.float(), invstd.float(), True, ctx.eps,
            list(ctx.needs_input_grad[:3]))
        return grad_in, grad_weight, grad_bias, None


class BatchNorm2d(nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` (same arguments, parameters and state dict) that trains with the
    compiled forward where it applies: training mode with running statistics and affine parameters, CPU,
    float32, contiguous (NCHW) input with more than one value per channel. ``compiled=False`` keeps
    torch's everywhere (benchmarks compare both)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 compiled: bool = True):
        super().__init__(num_features, eps, momentum)
        self.compiled = compiled

    def _compiled_applies(self, x: torch.Tensor) -> bool:
        return (self.compiled and self.training and self.track_running_stats and self.affine
                and compiled_kernels_apply(x, self.weight) and x.numel() > x.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._compiled_applies(x):
            return super().forward(x)
        out, mean, invstd = _BatchNormFunction.apply(x, self.weight, self.bias, self.eps)
        self._update_running_stats(mean, invstd, x.numel() // x.shape[1])
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, invstd: torch.Tensor, count: int) -> None:
        """As torch's BatchNorm: exponential average with ``momentum`` (cumulative when None) of the batch
        mean and the unbiased batch variance."""
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        var = invstd.pow(-2) - self.eps
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_((var * (count / (count - 1))).to(self.running_var.dtype), momentum)
