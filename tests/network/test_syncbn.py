"""Synchronised BatchNorm on the CPU: W processes of batch B compute BatchNorm over the W x B images."""

import datetime
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from openfields.network import nets
from openfields.network.syncbn import SynchronizedBatchNorm2d, synchronize_batchnorm

from gpu import cuda_only, two_gpus_only

WORLD_SIZE = 2
BATCH, CHANNELS, HEIGHT, WIDTH = 3, 4, 5, 6


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Input (W B, C, H, W) with a channel offset (tests the centring) and an output weighting."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(WORLD_SIZE * BATCH, CHANNELS, HEIGHT, WIDTH, generator=generator, dtype=torch.float64)
    x = x * 3.0 + torch.arange(CHANNELS, dtype=torch.float64).view(1, -1, 1, 1) * 10.0
    weights = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return x, weights


def batchnorm(module_type) -> nn.Module:
    bn = module_type(CHANNELS, eps=1e-3, momentum=0.1).double()
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2.0, CHANNELS))
        bn.bias.copy_(torch.linspace(-1.0, 1.0, CHANNELS))
    return bn


def forward_backward(bn: nn.Module, x: torch.Tensor, weights: torch.Tensor) -> dict:
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * weights).sum().backward()
    return {'y': y.detach(), 'dx': x.grad, 'dweight': bn.weight.grad, 'dbias': bn.bias.grad,
            'running_mean': bn.running_mean.clone(), 'running_var': bn.running_var.clone()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def one_rank(rank: int, port: int, queue, backend: str = 'gloo', device_type: str = 'cpu'):
    """Rank ``rank``'s share of the global batch through the BatchNorm that ``synchronize_batchnorm`` picks
    for ``backend`` on ``device_type`` (NCCL: a GPU per rank; gloo on CUDA: both ranks on cuda:0)."""
    torch.set_num_threads(1)
    device = torch.device('cuda', rank if backend == 'nccl' else 0) if device_type == 'cuda' else torch.device('cpu')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=60))
    try:
        x, weights = global_batch()
        mine = slice(rank * BATCH, (rank + 1) * BATCH)
        bn = synchronize_batchnorm(nn.Sequential(batchnorm(nn.BatchNorm2d)), device)[0].to(device)
        queue.put(('type', type(bn).__name__))
        result = forward_backward(bn, x[mine].to(device), weights[mine].to(device))
        # parameter gradients are per-rank partial sums (DDP averages them): sum them here
        for name in ('dweight', 'dbias'):
            dist.all_reduce(result[name])
        queue.put((rank, {k: v.cpu().numpy() for k, v in result.items()}))  # by value, not shared memory
    finally:
        dist.destroy_process_group()


def run_ranks(backend: str = 'gloo', device_type: str = 'cpu') -> tuple[dict, set]:
    """Each rank's results ({rank: {name: tensor}}) and the BatchNorm types the ranks used."""
    context = mp.get_context('spawn')
    queue = context.Queue()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    port = free_port()
    processes = [context.Process(target=one_rank, args=(rank, port, queue, backend, device_type))
                 for rank in range(WORLD_SIZE)]
    for p in processes:
        p.start()
    messages = [queue.get(timeout=120) for _ in range(2 * len(processes))]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    types = {value for key, value in messages if key == 'type'}
    results = {key: {k: torch.from_numpy(v) for k, v in value.items()} for key, value in messages if key != 'type'}
    return results, types


@pytest.fixture(scope='module')
def per_rank_results():
    results, types = run_ranks()
    assert types == {'SynchronizedBatchNorm2d'}
    return results


def check_global_batch_statistics_and_gradients(per_rank_results):
    x, weights = global_batch()
    expected = forward_backward(batchnorm(nn.BatchNorm2d), x, weights)
    for rank in range(WORLD_SIZE):
        mine = slice(rank * BATCH, (rank + 1) * BATCH)
        got = per_rank_results[rank]
        for name in ('running_mean', 'running_var', 'dweight', 'dbias'):
            assert torch.allclose(got[name], expected[name], rtol=1e-9, atol=1e-12), name
        for name in ('y', 'dx'):
            assert torch.allclose(got[name], expected[name][mine], rtol=1e-9, atol=1e-12), name


def test_two_ranks_normalise_with_the_statistics_of_the_global_batch(per_rank_results):
    x, weights = global_batch()
    expected = forward_backward(batchnorm(nn.BatchNorm2d), x, weights)
    for rank in range(WORLD_SIZE):
        mine = slice(rank * BATCH, (rank + 1) * BATCH)
        got = per_rank_results[rank]
        assert torch.allclose(got['y'], expected['y'][mine], rtol=1e-10, atol=1e-10)
        assert torch.allclose(got['running_mean'], expected['running_mean'], rtol=1e-10, atol=1e-12)
        assert torch.allclose(got['running_var'], expected['running_var'], rtol=1e-10, atol=1e-12)


def test_gradients_flow_through_the_all_reduce_like_through_one_big_batch(per_rank_results):
    x, weights = global_batch()
    expected = forward_backward(batchnorm(nn.BatchNorm2d), x, weights)
    for rank in range(WORLD_SIZE):
        mine = slice(rank * BATCH, (rank + 1) * BATCH)
        got = per_rank_results[rank]
        # dx depends on the other rank's images only through the all-reduced statistics
        assert torch.allclose(got['dx'], expected['dx'][mine], rtol=1e-9, atol=1e-12)
        assert torch.allclose(got['dweight'], expected['dweight'], rtol=1e-10)
        assert torch.allclose(got['dbias'], expected['dbias'], rtol=1e-10)


def test_without_a_process_group_it_is_plain_batchnorm():
    x, weights = global_batch()
    expected = forward_backward(batchnorm(nn.BatchNorm2d), x, weights)
    got = forward_backward(batchnorm(SynchronizedBatchNorm2d), x, weights)
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-12, atol=1e-12), name


def test_conversion_keeps_parameters_buffers_and_state_dict_names():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)))
    nets.set_batchnorm(model, eps=1e-4, momentum=0.01)
    with torch.no_grad():
        model[1].running_mean.fill_(0.25)
    names = list(model.state_dict())
    weight = model[1].weight
    converted = synchronize_batchnorm(model, torch.device('cpu'))
    assert list(converted.state_dict()) == names
    bns = [m for m in converted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert [type(m) for m in bns] == [SynchronizedBatchNorm2d, SynchronizedBatchNorm2d]
    assert converted[1].weight is weight and float(converted[1].running_mean[0]) == 0.25
    assert (converted[1].eps, converted[1].momentum) == (1e-4, 0.01)


@two_gpus_only
def test_cuda_with_nccl_uses_torchs_syncbatchnorm_over_the_global_batch():
    results, types = run_ranks('nccl', 'cuda')
    assert types == {'SyncBatchNorm'}
    check_global_batch_statistics_and_gradients(results)


@cuda_only
def test_cuda_with_gloo_on_one_gpu_uses_ours_over_the_global_batch():
    results, types = run_ranks('gloo', 'cuda')
    assert types == {'SynchronizedBatchNorm2d'}  # torch's all-gathers, which gloo cannot on CUDA tensors
    check_global_batch_statistics_and_gradients(results)


@cuda_only
def test_cuda_without_a_process_group_converts_to_torchs_syncbatchnorm():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).cuda()
    converted = synchronize_batchnorm(model, torch.device('cuda'))
    assert type(converted[1]) is nn.SyncBatchNorm
    assert converted(torch.randn(2, 3, 8, 8, device='cuda')).shape == (2, 4, 6, 6)
