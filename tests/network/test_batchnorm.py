"""BatchNorm2d with the compiled training-mode forward: torch's BatchNorm up to float32 rounding (outputs,
gradients, running statistics), deterministic, torch's own code wherever the compiled loop does not apply."""

import pytest
import torch
from torch import nn

from openfields.network import basenets, syncbn
from openfields.network.batchnorm import BatchNorm2d


def pair(channels=5, momentum=0.1, seed=0):
    """Ours and torch's with the same random affine parameters."""
    torch.manual_seed(seed)
    ours = BatchNorm2d(channels, momentum=momentum)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.normal_()
    reference = nn.BatchNorm2d(channels, momentum=momentum)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def relative_error(result, expected):
    result, expected = result.detach(), expected.detach()
    return float((result - expected).abs().max() / expected.abs().max()) if expected.numel() else 0.0


@pytest.mark.parametrize('shape, offset, spread', [
    ((2, 5, 7, 9), 0.0, 1.0), ((8, 5, 13, 13), 3.0, 2.0), ((1, 5, 3, 1), 0.0, 1.0)])
def test_training_step_matches_torch(shape, offset, spread):
    ours, reference = pair()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * spread + offset
    x_ours, x_reference = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_reference = ours(x_ours), reference(x_reference)
    assert type(out_ours.grad_fn).__name__ == '_BatchNormFunctionBackward'
    grad = torch.randn(out_ours.shape, generator=torch.Generator().manual_seed(2))
    out_ours.backward(grad)
    out_reference.backward(grad)

    assert relative_error(out_ours, out_reference) < 1e-4
    assert relative_error(x_ours.grad, x_reference.grad) < 1e-4
    assert relative_error(ours.weight.grad, reference.weight.grad) < 1e-4
    assert relative_error(ours.bias.grad, reference.bias.grad) < 1e-5
    assert relative_error(ours.running_mean, reference.running_mean) < 1e-5
    assert relative_error(ours.running_var, reference.running_var) < 1e-4
    assert int(ours.num_batches_tracked) == int(reference.num_batches_tracked) == 1


def test_channels_far_from_zero_keep_their_precision():
    """Mean 1000, std 0.01 (float32 spacing at 1000: 6e-5): the shifted sums and ``(x - mean) scale`` stay
    as close to the float64 result as torch's float32 BatchNorm."""
    ours, reference = pair()
    x = torch.randn(3, 5, 6, 6, generator=torch.Generator().manual_seed(1)) * 0.01 + 1000
    with torch.no_grad():
        truth = nn.functional.batch_norm(x.double(), None, None, ours.weight.double(), ours.bias.double(),
                                         training=True)
        error_ours = float((ours(x).double() - truth).abs().max())
        error_torch = float((reference(x).double() - truth).abs().max())
    assert error_ours <= error_torch * 1.01 and error_ours < 0.01
    expected_var = x.double().var(dim=(0, 2, 3), unbiased=True)
    running_var = (ours.running_var.double() - 0.9) / 0.1  # one batch, momentum 0.1, from 1
    assert float(((running_var - expected_var) / expected_var).abs().max()) < 0.01


@pytest.mark.parametrize('momentum', [0.1, None])
def test_running_statistics_follow_torch_over_several_batches(momentum):
    """momentum None: the cumulative average (BatchNorm recalibration sets it), here without gradients."""
    ours, reference = pair(momentum=momentum)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(4, 5, 8, 8, generator=generator) * 3 + 2
            ours(x)
            reference(x)
    assert relative_error(ours.running_mean, reference.running_mean) < 1e-5
    assert relative_error(ours.running_var, reference.running_var) < 1e-5
    assert int(ours.num_batches_tracked) == 3


def test_results_are_the_same_on_any_number_of_threads():
    ours, _ = pair(channels=7)
    x = torch.randn(3, 7, 11, 11, generator=torch.Generator().manual_seed(4))
    threads = torch.get_num_threads()
    try:
        outputs = []
        for n_threads in (1, 2, 3):
            torch.set_num_threads(n_threads)
            outputs.append(ours(x))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


@pytest.mark.parametrize('case', ['eval', 'channels_last', 'float64', 'autocast', 'switched_off'])
def test_torch_batchnorm_where_the_compiled_forward_does_not_apply(case):
    ours, reference = pair()
    x = torch.randn(4, 5, 6, 6, requires_grad=True)
    if case == 'eval':
        ours.eval()
        reference.eval()
    elif case == 'channels_last':
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    elif case == 'float64':
        ours, reference, x = ours.double(), reference.double(), x.detach().double().requires_grad_()
    elif case == 'switched_off':
        ours.compiled = False
    with torch.autocast('cpu', torch.bfloat16, enabled=case == 'autocast'):
        out, expected = ours(x), reference(x)
    assert torch.equal(out, expected)
    assert type(out.grad_fn).__name__ == type(expected.grad_fn).__name__ != '_BatchNormFunctionBackward'
    assert torch.equal(ours.running_var, reference.running_var)


def test_one_value_per_channel_is_refused_as_torch_refuses_it():
    ours, _ = pair()
    with pytest.raises(ValueError, match='Expected more than 1 value per channel'):
        ours(torch.randn(1, 5, 1, 1))


def test_state_dict_is_a_batchnorm2d_state_dict():
    ours, reference = pair()
    assert list(ours.state_dict()) == list(reference.state_dict()) == [
        'weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']


def test_synchronised_batchnorm_replaces_it_in_distributed_training():
    """syncbn converts every nn.BatchNorm2d, ours included, sharing parameters and buffers."""
    net = basenets.build('shufflenetv2k16', {})
    ours = [m for m in net.modules() if isinstance(m, BatchNorm2d)]
    assert len(ours) == len([m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]) > 50
    weight = ours[0].weight
    syncbn.synchronize_batchnorm(net, torch.device('cpu'))
    assert not any(isinstance(m, BatchNorm2d) for m in net.modules())
    synchronised = [m for m in net.modules() if isinstance(m, syncbn.SynchronizedBatchNorm2d)]
    assert len(synchronised) == len(ours) and synchronised[0].weight is weight
