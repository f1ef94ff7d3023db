"""BatchNorm whose training statistics cover the global batch of all processes.

With data parallel training each process sees ``B`` images; plain BatchNorm normalises with the
statistics of those ``B``. Synchronised BatchNorm normalises with the statistics of all ``W x B`` images,
so that ``W`` processes with batch ``B`` compute what one process with batch ``W x B`` computes.

torch's :class:`torch.nn.SyncBatchNorm` only runs on CUDA. :class:`SynchronizedBatchNorm2d` runs on any
device (gloo on the CPU): per channel ``c``, over the images ``n`` and pixels ``(h, w)`` of every rank,

    N = sum_ranks B H W,   mean_c = sum x / N,   var_c = sum (x - mean_c)^2 / N      (two all-reduces)
    y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c

The sums are all-reduced with autograd (:class:`AllReduceSum`: the gradient of a sum over ranks is the
sum over ranks of the gradients), so the backward pass is that of the global batch. The running
statistics use the unbiased ``var_c N / (N - 1)``. In eval mode, or outside a process group, it is plain
BatchNorm.
"""

import torch
import torch.distributed as dist
from torch import nn


class AllReduceSum(torch.autograd.Function):
    """``y = sum over ranks of x``; backward: ``dx = sum over ranks of dy``."""

    @staticmethod
    def forward(ctx, tensor, group):  # pylint: disable=arguments-differ
        ctx.group = group
        tensor = tensor.clone()
        dist.all_reduce(tensor, group=group)
        return tensor

    @staticmethod
    def backward(ctx, grad_output):  # pylint: disable=arguments-differ
        grad = grad_output.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class SynchronizedBatchNorm2d(nn.modules.batchnorm._BatchNorm):  # pylint: disable=protected-access
    """BatchNorm2d over the batches of every process in ``group`` (default: the whole world)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input):  # pylint: disable=redefined-builtin
        if input.dim() != 4:
            raise ValueError(f'expected a (B, C, H, W) input, got {input.dim()} dimensions')

    def _synchronised(self) -> bool:
        return self.training and dist.is_available() and dist.is_initialized() \
            and dist.get_world_size(self.process_group) > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self._synchronised():
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)
        dist.all_reduce(count, group=self.process_group)
        n = count.item()
        mean = AllReduceSum.apply(x.sum(dim=dims), self.process_group) / n
        centred = x - mean.view(1, -1, 1, 1)
        var = AllReduceSum.apply((centred * centred).sum(dim=dims), self.process_group) / n
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), n)
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y

    @torch.no_grad()
    def _update_running_stats(self, mean, var, n):
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        unbiased = var * (n / max(n - 1.0, 1.0))
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def _convert(module: nn.Module, make) -> nn.Module:
    """``module`` with every BatchNorm2d replaced by ``make(bn)`` (parameters and buffers shared)."""
    if isinstance(module, nn.BatchNorm2d):
        return make(module)
    for name, child in module.named_children():
        converted = _convert(child, make)
        if converted is not child:
            setattr(module, name, converted)
    return module


def _synchronized_copy(bn: nn.BatchNorm2d, process_group) -> SynchronizedBatchNorm2d:
    sync = SynchronizedBatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                                   process_group=process_group)
    if bn.affine:
        sync.weight, sync.bias = bn.weight, bn.bias
    if bn.track_running_stats:
        sync.running_mean, sync.running_var = bn.running_mean, bn.running_var
        sync.num_batches_tracked = bn.num_batches_tracked
    sync.train(bn.training)
    return sync


def synchronize_batchnorm(model: nn.Module, device: torch.device, process_group=None) -> nn.Module:
    """Replace every BatchNorm2d of ``model``: torch's SyncBatchNorm on CUDA with NCCL, ours elsewhere (ours
    only all-reduces, which gloo also does on CUDA tensors; torch's all-gathers, which gloo does not).

    Parameter and buffer names are unchanged, so state dicts and checkpoints stay interchangeable.
    """
    nccl = not dist.is_initialized() or dist.get_backend(process_group) == 'nccl'
    if device.type == 'cuda' and nccl:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group)
    return _convert(model, lambda bn: _synchronized_copy(bn, process_group))
