"""Depthwise convolution whose weight gradient is a compiled loop (numba) on the CPU.

Why: in a ShuffleNetV2K training step on the CPU, torch's (oneDNN's) weight gradient of the depthwise
5x5 convolutions ran at 3-5 GFLOP/s on 2 cores, a third of the whole step, while their forward and input
gradient run at 16-42 GFLOP/s. The loop here runs at 13-34 GFLOP/s on the same layers (``make bench``,
docs/benchmarks.md). Forward and input gradient stay torch's.

For input ``x`` (N, C, H, W), upstream gradient ``g`` (N, C, H_out, W_out), stride ``s``, padding ``p``
and a k x k kernel per channel, the weight gradient (C, 1, k, k) is

    dW[c, 0, i, j] = sum_n sum_{y, x} g[n, c, y, x] * x_pad[n, c, s y + i, s x + j]

with ``x_pad`` the input zero-padded by ``p``. Per channel and image, the padded plane is first split into
its ``s`` column phases, ``phase[f][r, q] = x_pad[r, s q + f]``, so that every one of the k x k sums reads
two contiguous rows (``x_pad[s y + i, s x + j] = phase[j mod s][s y + i, x + j div s]``) and vectorises.
Both planes stay in the core's cache for the k x k passes. Channels run in parallel (as many threads as
torch uses, :mod:`.channel_parallel`); each channel's sum runs in a fixed order, so the result does not
depend on the thread count and training stays deterministic (exact resume). It differs from torch's by float32
rounding (relative 1e-6, tests/network/test_depthwise.py).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import nn

from .channel_parallel import compiled_kernels_apply, over_channels

jit = numba.njit(cache=True, nogil=True, fastmath=True)


@jit
def _column_phases(plane, stride, padding, phases):
    """``phases[f, r, q] = plane_padded[r, stride q + f]`` with zeros outside ``plane`` (H, W);
    ``phases``: (stride, H_pad, Q)."""
    height, width = plane.shape
    _, padded_height, n_columns = phases.shape
    for f in range(stride):
        first = max(0, (padding - f + stride - 1) // stride)  # first q with stride q + f - padding >= 0
        end = min(n_columns, (width - 1 + padding - f) // stride + 1)
        for r in range(padded_height):
            y = r - padding
            row = phases[f, r]
            if y < 0 or y >= height:
                row[:] = 0.0
                continue
            source = plane[y]
            for q in range(first):
                row[q] = 0.0
            for q in range(first, end):
                row[q] = source[stride * q + f - padding]
            for q in range(end, n_columns):
                row[q] = 0.0


@jit
def _add_plane_weight_grad(grad_plane, phases, kernel_size, stride, sums):
    """``sums[i, j] += sum_{y, x} grad_plane[y, x] * x_pad[s y + i, s x + j]`` (float32 per row, float64
    across rows). Indexed in full on purpose: with row views (``grad_plane[y]``) numba did not vectorise
    the inner loop (4.7x slower)."""
    out_height, out_width = grad_plane.shape
    for y in range(out_height):
        for i in range(kernel_size):
            r = stride * y + i
            for j in range(kernel_size):
                f = j % stride
                offset = j // stride
                row_sum = np.float32(0.0)
                for x in range(out_width):
                    row_sum += grad_plane[y, x] * phases[f, r, x + offset]
                sums[i, j] += row_sum


@jit
def _channels_weight_grad(inputs, grad_output, kernel_size, stride, padding, weight_grad, first, end):
    """``weight_grad[c]`` (k, k) for channels ``first <= c < end`` of ``inputs`` (N, C, H, W) and
    ``grad_output`` (N, C, H_out, W_out), float32 C-contiguous."""
    n_images, _, height, width = inputs.shape
    out_height, out_width = grad_output.shape[2], grad_output.shape[3]
    padded_height = max(height + 2 * padding, (out_height - 1) * stride + kernel_size)
    padded_width = max(width + 2 * padding, (out_width - 1) * stride + kernel_size)
    phases = np.empty((stride, padded_height, (padded_width + stride - 1) // stride + 1), dtype=np.float32)
    sums = np.empty((kernel_size, kernel_size), dtype=np.float64)
    for c in range(first, end):
        sums[:] = 0.0
        for n in range(n_images):
            _column_phases(inputs[n, c], stride, padding, phases)
            _add_plane_weight_grad(grad_output[n, c], phases, kernel_size, stride, sums)
        for i in range(kernel_size):
            for j in range(kernel_size):
                weight_grad[c, i, j] = sums[i, j]


def depthwise_weight_grad(inputs: torch.Tensor, grad_output: torch.Tensor, kernel_size: int, stride: int,
                          padding: int) -> torch.Tensor:
    """Weight gradient (C, 1, k, k) of a square depthwise convolution without dilation (CPU, float32), on
    torch's number of threads (:func:`.channel_parallel.over_channels`)."""
    x = inputs.detach().contiguous().numpy()
    g = grad_output.detach().contiguous().numpy()
    weight_grad = np.empty((x.shape[1], kernel_size, kernel_size), dtype=np.float32)
    over_channels(_channels_weight_grad, x.shape[1], x, g, kernel_size, stride, padding, weight_grad)
    return torch.from_numpy(weight_grad).unsqueeze(1)


class _DepthwiseConvFunction(torch.autograd.Function):
    """``conv2d(x, weight, groups=C)`` with torch's forward and input gradient and the compiled weight
    gradient."""

    @staticmethod
    def forward(ctx, inputs, weight, stride: int, padding: int):
        ctx.save_for_backward(inputs, weight)
        ctx.stride, ctx.padding = stride, padding
        return nn.functional.conv2d(inputs, weight, None, stride, padding, 1, inputs.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        inputs, weight = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        grad_input = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_input = torch.ops.aten.convolution_backward(
                grad_output, inputs, weight, None, [ctx.stride] * 2, [ctx.padding] * 2, [1, 1], False, [0, 0],
                inputs.shape[1], [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_weight = depthwise_weight_grad(inputs, grad_output, weight.shape[-1], ctx.stride, ctx.padding)
        return grad_input, grad_weight, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(channels, channels, kernel_size, stride, padding, groups=channels, bias=False)`` (same
    parameters and state dict) that trains with the compiled weight gradient where it applies: CPU,
    float32, contiguous (NCHW) input, square kernel and stride, no dilation. Elsewhere (CUDA, autocast,
    channels_last, eval mode, tracing, scripting, ``torch.compile``, export) it is torch's convolution.
    ``compiled_weight_grad=False`` keeps torch's everywhere (benchmarks compare both)."""

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 compiled_weight_grad: bool = True):
        super().__init__(channels, channels, kernel_size, stride, padding, groups=channels, bias=False)
        self.compiled_weight_grad = compiled_weight_grad

    def _compiled_applies(self, x: torch.Tensor) -> bool:
        return (self.compiled_weight_grad and self.training and torch.is_grad_enabled() and self.weight.requires_grad
                and compiled_kernels_apply(x, self.weight)
                and self.stride[0] == self.stride[1] and self.padding[0] == self.padding[1]
                and self.dilation == (1, 1) and self.padding_mode == 'zeros')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled_applies(x):
            return _DepthwiseConvFunction.apply(x, self.weight, self.stride[0], self.padding[0])
        return super().forward(x)
