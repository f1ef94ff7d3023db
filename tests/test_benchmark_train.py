"""tools/benchmark.py's FLOP ceiling and tools/peer_train_step.py: the figures `make bench` reports for the
training step (the timings themselves are benchmark figures, not tested)."""

import json
import pathlib
import subprocess
import sys

import pytest
import torch
from torch import nn

from openfields.network import factory as network_factory
from openfields.network.batchnorm import BatchNorm2d
from openfields.network.depthwise import DepthwiseConv2d
from tools import benchmark

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_flop_share_is_the_step_rate_over_the_rate_the_matmul_peak_allows():
    """10 GFLOP forward per image -> 30 per step; at 60 GFLOP/s that is 2 images/s; 1 image/s is half."""
    share = benchmark.flop_share(images_per_s=1.0, gflop_per_image=10.0, peak_gflops=60.0)
    assert share == {'forward_gflop_per_image': 10.0, 'step_gflop_per_image': 30.0, 'matmul_peak_gflops': 60.0,
                     'ceiling_images_per_s': 2.0, 'share_of_ceiling': 0.5}


def test_forward_flops_count_dense_and_depthwise_convolutions():
    """2 FLOPs per multiply-add: dense 3 -> 8 channels 3x3 on 16x16 (padding 1), then depthwise 5x5 stride 2."""
    network = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), DepthwiseConv2d(8, 5, stride=2, padding=2))
    dense = 2 * 8 * 3 * 9 * 16 * 16
    depthwise = 2 * 8 * 25 * 8 * 8
    gflop = benchmark.forward_gflop_per_image(network, torch.randn(2, 3, 16, 16))
    assert gflop == pytest.approx((dense + depthwise) / 1e9, abs=1e-3)
    assert benchmark.forward_gflop_per_image(network, torch.randn(1, 3, 160, 160)) == pytest.approx(
        100 * (dense + depthwise) / 1e9, abs=1e-3)


def test_shufflenetv2k16_forward_flops_at_385_pixels():
    """The figure docs/benchmarks.md divides by: 28.1 GFLOP per 385x385 image with CIF + CAF (upsample 2)."""
    metas = benchmark.coco_metas(2)
    network = network_factory.build('shufflenetv2k16', {}, metas).train()
    assert benchmark.forward_gflop_per_image(network, torch.randn(1, 3, 385, 385)) == pytest.approx(28.1, abs=0.05)


def test_matmul_peak_is_positive_and_finite():
    assert 0.1 < benchmark.matmul_peak_gflops(torch.device('cpu'), edge=256, repeats=2) < 1e5


@pytest.mark.parametrize('variant', ['torch_depthwise', 'torch_batchnorm', 'torch_depthwise+torch_batchnorm'])
def test_torch_kernel_variants_turn_the_compiled_kernels_off(variant):
    network = network_factory.build('shufflenetv2k16', {}, benchmark.coco_metas(2))
    depthwise = [m for m in network.modules() if isinstance(m, DepthwiseConv2d)]
    norms = [m for m in network.modules() if isinstance(m, BatchNorm2d)]
    assert len(depthwise) == 19 and all(m.compiled_weight_grad for m in depthwise)
    assert len(norms) == 56 and all(m.compiled for m in norms)
    parts = variant.split('+')
    benchmark.use_torch_kernels(network, depthwise='torch_depthwise' in parts, batchnorm='torch_batchnorm' in parts)
    assert [m.compiled_weight_grad for m in depthwise] == [('torch_depthwise' not in parts)] * 19
    assert [m.compiled for m in norms] == [('torch_batchnorm' not in parts)] * 56
    assert benchmark.variant_settings(variant + '+channels_last').channels_last


@pytest.mark.slow  # 15-30 s end to end: make test-slow (CI runs it), make test stays near 10 minutes
@pytest.mark.parametrize('framework', ['openfields', 'openfields-torch-kernels'])
def test_peer_train_step_reports_its_timed_steps(framework):
    """A small step in a fresh process (the peer tool applies the malloc tuning to its own process)."""
    output = subprocess.run(
        [sys.executable, '-m', 'tools.peer_train_step', '--framework', framework, '--batch-size', '2',
         '--square-edge', '65', '--steps', '2', '--warm-up', '1'],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert result['framework'] == framework
    assert result['field_shapes'] == [[9, 9], [9, 9]]  # stride 8 heads on 65 px
    assert len(result['seconds_per_step']) == 2 and all(s > 0 for s in result['seconds_per_step'])
    assert result['malloc_tuning'] is True
