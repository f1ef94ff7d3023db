"""``--precision``: bfloat16 runs a network's convolutions in bfloat16; what cannot run as asked is refused."""

import logging

import pytest
import torch

from openfields.network import precision


def test_bfloat16_runs_convolutions_in_bfloat16_and_float32_leaves_them_alone():
    conv = torch.nn.Conv2d(3, 4, 3)
    image = torch.randn(1, 3, 9, 9)
    with precision.arithmetic(torch.device('cpu'), 'float32'):
        assert conv(image).dtype == torch.float32
    with precision.arithmetic(torch.device('cpu'), 'bfloat16'):
        reduced = conv(image)
    assert reduced.dtype == torch.bfloat16
    exact = conv(image)
    # bfloat16 keeps 8 bits of mantissa: within a few 2^-8 of the largest value, and not exact
    error = (reduced.float() - exact).abs().max().item()
    assert 0 < error < 4 * 2 ** -8 * exact.abs().max().item()


@pytest.mark.parametrize('name, device, message', [
    ('float16', 'cpu', r'--precision float16: one of float32, bfloat16'),
    ('bfloat16', 'meta', r'--precision bfloat16: runs on the CPU or CUDA, not on meta; drop the flag'),
])
def test_what_cannot_run_as_asked_is_refused_naming_the_flag(name, device, message):
    with pytest.raises(ValueError, match=message):
        precision.check(name, torch.device(device), 'model.pkl')


def test_a_cpu_without_bfloat16_instructions_gets_one_warning_line_and_one_with_them_none(caplog):
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # pylint: disable=protected-access
    with caplog.at_level(logging.WARNING, logger='openfields.network.precision'):
        precision.check('bfloat16', torch.device('cpu'), 'model.pkl')
        precision.check('float32', torch.device('cpu'), 'model.pkl')
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ([] if native else [
        '--precision bfloat16: cpu has no bfloat16 instructions (AVX512-BF16 or AMX; CUDA: Ampere or later); '
        'model.pkl runs emulated, likely slower than float32'])
