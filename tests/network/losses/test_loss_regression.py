"""Regression loss: Laplace with b_min inside the norm, scale normalisation and the shared b."""

import math

import pytest
import torch

from openfields import headmeta
from openfields.network.losses import CompositeLoss, LossSettings, components

# x0 with log b = ls2 / 2 + ln 2 = 0, i.e. b = 1
UNIT_B_X0 = 3.0 * math.atanh(-2.0 * math.log(2.0) / 3.0)


def regression(predicted, target, b_min, sigma, x0, soft_clamp_value=5.0):
    predicted = torch.tensor([predicted], dtype=torch.float64, requires_grad=True)
    x0 = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
    loss = components.regression_loss(
        predicted, torch.tensor([target], dtype=torch.float64),
        torch.tensor([b_min], dtype=torch.float64), torch.tensor([sigma], dtype=torch.float64),
        x0, soft_clamp_value=soft_clamp_value)
    loss.sum().backward()
    return loss.item(), predicted.grad[0].tolist(), x0.grad.item()


def test_laplace_value_and_gradients_hand_computed_at_b_equal_two():
    # error (3, 4), b_min 0, sigma 5: d = 5 / 5 = 1; x0 = 0: ls2 = 0, log b = ln 2, b = 2
    # loss = d / b + log b + 1.5 - ln 2 = 0.5 + 1.5 = 2.0
    # d loss / d pred = (1 / b)(1 / sigma)(error / |error|) = 0.5 * 0.2 * (0.6, 0.8) = (0.06, 0.08)
    # d loss / d x0 = (1 - d / b) * d log b / d x0 = 0.5 * 0.5 = 0.25
    value, grad_pred, grad_x0 = regression((3.0, 4.0), (0.0, 0.0), 0.0, 5.0, 0.0)
    assert value == pytest.approx(2.0, abs=1e-12)
    assert grad_pred == pytest.approx([0.06, 0.08], abs=1e-12)
    assert grad_x0 == pytest.approx(0.25, abs=1e-12)


def test_laplace_value_and_gradients_hand_computed_at_b_equal_one():
    # same error, b = 1: loss = 1 + 0 + 1.5 - ln 2 = 1.8068528; d loss / d pred = (0.12, 0.16)
    # d loss / d x0 = (1 - d) * ... = 0
    value, grad_pred, grad_x0 = regression((1.0, 2.0), (4.0, 6.0), 0.0, 5.0, UNIT_B_X0)
    assert value == pytest.approx(1.8068528, abs=1e-7)
    assert grad_pred == pytest.approx([-0.12, -0.16], abs=1e-12)
    assert grad_x0 == pytest.approx(0.0, abs=1e-12)


def test_b_min_bounds_the_loss_from_below_when_the_prediction_is_exact():
    # d = b_min / sigma = 0.3 / 1; x0 = 0: loss = 0.3 / 2 + 1.5 = 1.65, no gradient on the offset
    value, grad_pred, _ = regression((2.0, -1.0), (2.0, -1.0), 0.3, 1.0, 0.0)
    assert value == pytest.approx(1.65, abs=1e-12)
    assert grad_pred == [0.0, 0.0]


def test_nan_b_min_means_a_tenth():
    value, _, _ = regression((2.0, -1.0), (2.0, -1.0), float('nan'), 1.0, 0.0)
    assert value == pytest.approx(0.1 / 2 + 1.5, abs=1e-12)


def test_regression_soft_clamp_limits_the_normalised_distance():
    # d = 10: clamped at 5 to 5 + ln 6, at 20 not clamped; b = 1 isolates d
    clamped, _, _ = regression((10.0, 0.0), (0.0, 0.0), 0.0, 1.0, UNIT_B_X0, soft_clamp_value=5.0)
    unclamped, _, _ = regression((10.0, 0.0), (0.0, 0.0), 0.0, 1.0, UNIT_B_X0, soft_clamp_value=20.0)
    offset = 1.5 - math.log(2.0)
    assert clamped == pytest.approx(5.0 + math.log(6.0) + offset, abs=1e-9)
    assert unclamped == pytest.approx(10.0 + offset, abs=1e-9)


def test_values_are_non_negative_for_random_inputs():
    generator = torch.Generator().manual_seed(1)
    n = 10000
    loss = components.regression_loss(
        10.0 * torch.randn(n, 2, generator=generator), 10.0 * torch.randn(n, 2, generator=generator),
        torch.rand(n, generator=generator), 0.01 + 10.0 * torch.rand(n, generator=generator),
        30.0 * torch.randn(n, generator=generator))
    assert torch.isfinite(loss).all() and (loss >= 0.0).all()


def cif_meta():
    return headmeta.Cif(name='cif', dataset='test', keypoints=['a', 'b'], sigmas=[0.1, 0.1])


def one_cell_cif(x_cell, t_cell):
    """Prediction and target (1, 2, C, 1, 1): field 0 holds the cell, field 1 is ignored."""
    x = torch.zeros(1, 2, 5, 1, 1, dtype=torch.float64)
    x[0, 0, :, 0, 0] = torch.tensor(x_cell, dtype=torch.float64)
    t = torch.full((1, 2, 5, 1, 1), float('nan'), dtype=torch.float64)
    t[0, 0, :, 0, 0] = torch.tensor(t_cell, dtype=torch.float64)
    return x.requires_grad_(True), t


def test_nan_scale_target_uses_the_detached_predicted_scale():
    # softplus(x_scale) = 10 -> sigma = 5, error (3, 4), b_min 0 -> d = 1 and loss 2.0 as above
    raw_scale = math.log(math.exp(10.0) - 1.0)
    x, t = one_cell_cif([0.0, 0.0, 3.0, 4.0, raw_scale], [float('nan'), 0.0, 0.0, 0.0, float('nan')])
    losses = CompositeLoss(cif_meta(), LossSettings())(x, t)
    losses['test.cif.vec'].backward()
    assert losses['test.cif.vec'].item() == pytest.approx(2.0, abs=1e-9)
    assert x.grad[0, 0, 4, 0, 0].item() == 0.0  # the regression does not train the scale
    assert x.grad[0, 0, 2:4, 0, 0].tolist() == pytest.approx([0.06, 0.08], abs=1e-9)


def test_scale_target_sets_the_normaliser_to_half_the_scale():
    x, t = one_cell_cif([0.0, 0.0, 3.0, 4.0, 0.0], [float('nan'), 0.0, 0.0, 0.0, 10.0])
    losses = CompositeLoss(cif_meta(), LossSettings())(x, t)
    assert losses['test.cif.vec'].item() == pytest.approx(2.0, abs=1e-9)


def test_cifdet_normalises_by_a_tenth_of_the_box_diagonal_and_regresses_width_height():
    meta = headmeta.CifDet(name='cifdet', dataset='test', categories=['thing'])
    x = torch.zeros(1, 1, 6, 1, 1, dtype=torch.float64)
    # offset error (0.3, 0.4), (w, h) error (0, 0.5); target box 3 x 4 -> sigma = 0.1 * 5 = 0.5
    x[0, 0, :, 0, 0] = torch.tensor([0.0, 0.0, 1.3, 2.4, 3.0, 4.5], dtype=torch.float64)
    t = torch.tensor([1.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0], dtype=torch.float64).view(1, 1, 7, 1, 1)
    losses = CompositeLoss(meta, LossSettings())(x, t)
    # both vectors: d = 0.5 / 0.5 = 1, x0 = 0 (b = 2): 0.5 + 1.5 each
    assert set(losses) == {'test.cifdet.c', 'test.cifdet.vec'}
    assert losses['test.cifdet.vec'].item() == pytest.approx(4.0, abs=1e-9)
