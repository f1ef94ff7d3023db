"""The depthwise convolution with the compiled weight gradient: the same convolution as torch's, the same
gradients up to float32 rounding, deterministic, used by ShuffleNetV2K only where it applies."""

import pytest
import torch
from torch import nn

from openfields.network import basenets
from openfields.network.depthwise import DepthwiseConv2d, depthwise_weight_grad


def torch_weight_grad(x, grad_output, weight, stride, padding):
    return torch.ops.aten.convolution_backward(
        grad_output, x, weight, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], x.shape[1],
        [False, True, False])[1]


@pytest.mark.parametrize('kernel_size, stride, padding', [
    (5, 1, 2), (5, 2, 2), (3, 1, 1), (3, 2, 1), (7, 1, 3), (3, 3, 1), (5, 1, 0), (5, 2, 0), (1, 1, 0), (3, 2, 3)])
@pytest.mark.parametrize('n_images, n_channels, height, width', [(2, 5, 17, 13), (1, 3, 8, 9), (3, 2, 6, 6)])
def test_weight_grad_matches_torch(kernel_size, stride, padding, n_images, n_channels, height, width):
    generator = torch.Generator().manual_seed(kernel_size * 100 + stride * 10 + padding)
    x = torch.randn(n_images, n_channels, height, width, generator=generator)
    weight = torch.randn(n_channels, 1, kernel_size, kernel_size, generator=generator)
    out = nn.functional.conv2d(x, weight, None, stride, padding, 1, n_channels)
    grad_output = torch.randn(out.shape, generator=generator)

    expected = torch_weight_grad(x, grad_output, weight, stride, padding)
    result = depthwise_weight_grad(x, grad_output, kernel_size, stride, padding)

    assert result.shape == expected.shape == (n_channels, 1, kernel_size, kernel_size)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_weight_grad_of_a_network_sized_layer_matches_torch():
    """A stage-3 layer of shufflenetv2k16 at 385 px, stride 2 (float32 sums over 2 x 49 x 49 products)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 97, 97, generator=generator)
    weight = torch.randn(16, 1, 5, 5, generator=generator)
    grad_output = torch.randn(2, 16, 49, 49, generator=generator)
    expected = torch_weight_grad(x, grad_output, weight, 2, 2)
    result = depthwise_weight_grad(x, grad_output, 5, 2, 2)
    assert float((result - expected).abs().max() / expected.abs().max()) < 1e-5


def test_weight_grad_is_the_same_on_any_number_of_threads():
    """Each channel is summed in one fixed order, so results are bit-identical (exact resume)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 21, 21, generator=generator)
    grad_output = torch.randn(2, 9, 11, 11, generator=generator)
    threads = torch.get_num_threads()
    try:
        results = []
        for n_threads in (1, 2, 3):
            torch.set_num_threads(n_threads)
            results.append(depthwise_weight_grad(x, grad_output, 5, 2, 2))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def pair(stride=2, channels=6, kernel_size=5):
    """A DepthwiseConv2d and an nn.Conv2d with the same weights."""
    torch.manual_seed(2)
    ours = DepthwiseConv2d(channels, kernel_size, stride, kernel_size // 2)
    reference = nn.Conv2d(channels, channels, kernel_size, stride, kernel_size // 2, groups=channels, bias=False)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


@pytest.mark.parametrize('stride', [1, 2])
def test_module_trains_like_torch_conv(stride):
    """Same output and input gradient bit for bit (torch computes both), weight gradient within rounding."""
    ours, reference = pair(stride)
    x = torch.randn(3, 6, 15, 15)
    x_ours, x_reference = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_reference = ours(x_ours), reference(x_reference)
    assert type(out_ours.grad_fn).__name__ == '_DepthwiseConvFunctionBackward'
    assert torch.equal(out_ours, out_reference)

    grad = torch.randn(out_ours.shape)
    out_ours.backward(grad)
    out_reference.backward(grad)
    assert torch.equal(x_ours.grad, x_reference.grad)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)


def test_module_state_dict_is_a_conv2d_state_dict():
    ours, reference = pair()
    assert list(ours.state_dict()) == list(reference.state_dict()) == ['weight']
    assert ours.weight.shape == reference.weight.shape == (6, 1, 5, 5)


@pytest.mark.parametrize('case', ['eval', 'no_grad', 'channels_last', 'float64', 'frozen_weight', 'switched_off',
                                  'autocast', 'unbatched'])
def test_module_is_torch_conv_where_the_compiled_gradient_does_not_apply(case):
    ours, reference = pair()
    x = torch.randn(2, 6, 12, 12)
    if case == 'eval':
        ours.eval()
    elif case == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    elif case == 'float64':
        ours, reference, x = ours.double(), reference.double(), x.double()
    elif case == 'frozen_weight':
        ours.weight.requires_grad_(False)
        x.requires_grad_()
    elif case == 'switched_off':
        ours.compiled_weight_grad = False
    elif case == 'unbatched':
        x = x[0]  # (C, H, W), which nn.Conv2d also takes
    with torch.set_grad_enabled(case != 'no_grad'), torch.autocast('cpu', torch.bfloat16, enabled=case == 'autocast'):
        out = ours(x)
        expected = reference(x)
    assert torch.equal(out, expected)
    assert type(out.grad_fn).__name__ == type(expected.grad_fn).__name__ != '_DepthwiseConvFunctionBackward'


def test_double_backward_is_refused():
    ours, _ = pair()
    x = torch.randn(1, 6, 9, 9, requires_grad=True)
    (gradient,) = torch.autograd.grad(ours(x).square().sum(), ours.weight, create_graph=True)
    with pytest.raises(RuntimeError, match='once_differentiable|marked with @once_differentiable'):
        gradient.sum().backward()


def test_shufflenetv2k_uses_it_for_every_depthwise_conv():
    """shufflenetv2k16: 3 downsampling units with two depthwise convs, 13 units with one."""
    net = basenets.build('shufflenetv2k16', {})
    depthwise = [m for m in net.modules() if isinstance(m, DepthwiseConv2d)]
    grouped = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == len(grouped) == 19
    assert {m.kernel_size for m in depthwise} == {(5, 5)}
