"""MultiHeadLoss (lambdas, None heads, non-finite losses) and the loss flags and factory."""

import argparse
import dataclasses

import pytest
import torch

from openfields import headmeta
from openfields.network import losses
from openfields.network.losses import CompositeLoss, LossSettings, MultiHeadLoss, NonFiniteLossError

NAN = float('nan')


def metas():
    keypoints, sigmas = ['a', 'b', 'c', 'd'], [0.1] * 4
    return [headmeta.Cif(name='cif', dataset='cocokp', keypoints=keypoints, sigmas=sigmas),
            headmeta.Caf(name='caf', dataset='cocokp', keypoints=keypoints, sigmas=sigmas,
                         skeleton=[(1, 2), (2, 3), (3, 4)])]


def batch(meta, seed):
    generator = torch.Generator().manual_seed(seed)
    n_target = 1 + 3 * meta.n_vectors + meta.n_scales
    x = torch.randn(2, meta.n_fields, meta.n_components, 4, 4, generator=generator)
    t = 0.1 + torch.rand(2, meta.n_fields, n_target, 4, 4, generator=generator)
    t[:, :, 0] = (t[:, :, 0] > 0.6).float()
    return x, t


def head_batches():
    pairs = [batch(meta, seed) for seed, meta in enumerate(metas())]
    return [x for x, _ in pairs], [t for _, t in pairs]


def multi_head(lambdas=None, component_lambdas=None):
    return MultiHeadLoss([CompositeLoss(m, LossSettings()) for m in metas()], lambdas, component_lambdas)


NAMES = ['cocokp.cif.c', 'cocokp.cif.vec', 'cocokp.cif.scales',
         'cocokp.caf.c', 'cocokp.caf.vec', 'cocokp.caf.scales']


def test_field_names_list_all_components_in_head_order():
    assert multi_head().field_names == NAMES


def test_total_is_the_plain_sum_without_lambdas():
    total, components = multi_head()(*head_batches())
    assert list(components) == NAMES
    assert total.item() == pytest.approx(sum(v.item() for v in components.values()), rel=1e-6)


def test_head_lambdas_apply_to_every_component_of_their_head():
    total, components = multi_head(lambdas=[2.0, 0.5])(*head_batches())
    expected = sum((2.0 if name.startswith('cocokp.cif') else 0.5) * v.item()
                   for name, v in components.items())
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_component_lambdas_override_head_lambdas():
    component_lambdas = [1.0, 0.0, 3.0, 0.5, 2.0, 0.0]
    total, components = multi_head([10.0, 10.0], component_lambdas)(*head_batches())
    expected = sum(lam * v.item() for lam, v in zip(component_lambdas, components.values()))
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_wrong_number_of_lambdas_is_rejected():
    with pytest.raises(ValueError):
        multi_head(lambdas=[1.0])
    with pytest.raises(ValueError):
        multi_head(component_lambdas=[1.0] * 5)


def test_heads_without_target_give_none_components_and_are_left_out_of_the_total():
    xs, ts = head_batches()
    total, components = multi_head()(xs, [ts[0], None])
    assert [components[name] is None for name in NAMES] == [False] * 3 + [True] * 3
    assert total.item() == pytest.approx(sum(components[name].item() for name in NAMES[:3]), rel=1e-6)
    total, components = multi_head()(xs, [None, None])
    assert total is None and all(v is None for v in components.values())


def test_non_finite_component_raises_an_error_naming_it():
    xs, ts = head_batches()
    ts[0][0, 0, 0, 0, 0] = 1.0
    xs[0][0, 0, 2, 0, 0] = NAN  # the dx prediction of a positive cell
    with pytest.raises(NonFiniteLossError, match=r'loss cocokp\.cif\.vec is not finite \(nan\)'):
        multi_head()(xs, ts)
    assert issubclass(NonFiniteLossError, ValueError)


def test_infinite_component_is_reported_as_inf():
    xs, ts = head_batches()
    ts[1][0, 0, 7, 0, 0] = 1.0
    xs[1][0, 0, 6, 0, 0] = float('inf')  # softplus(inf) = inf: the scale loss overflows
    with pytest.raises(NonFiniteLossError, match=r'cocokp\.caf\.scales is not finite \(inf\)'):
        multi_head()(xs, ts)


def parse(argv):
    parser = argparse.ArgumentParser()
    losses.cli(parser)
    return parser.parse_args(argv)


def test_flag_defaults_equal_the_settings_defaults():
    assert LossSettings.from_args(parse([])) == LossSettings()
    assert LossSettings() == LossSettings(
        lambdas=None, component_lambdas=None, focal_alpha=0.5, focal_gamma=1.0, bce_soft_clamp=5.0,
        bce_background_clamp=-15.0, regression_soft_clamp=5.0, b_scale=1.0, scale_soft_clamp=5.0)


def test_flags_reach_the_settings():
    args = parse(['--lambdas', '1', '2', '--component-lambdas', '1', '2', '3', '--focal-alpha', '0.25',
                  '--focal-gamma', '2', '--bce-soft-clamp', '4', '--bce-background-clamp', '-10',
                  '--regression-soft-clamp', '3', '--b-scale', '5', '--scale-soft-clamp', '2'])
    assert LossSettings.from_args(args) == LossSettings(
        lambdas=(1.0, 2.0), component_lambdas=(1.0, 2.0, 3.0), focal_alpha=0.25, focal_gamma=2.0,
        bce_soft_clamp=4.0, bce_background_clamp=-10.0, regression_soft_clamp=3.0, b_scale=5.0,
        scale_soft_clamp=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossSettings().b_scale = 2.0


def test_factory_rejects_a_wrong_number_of_lambdas():
    with pytest.raises(ValueError, match='--lambdas.*expected 2'):
        losses.factory(parse(['--lambdas', '1', '2', '3']), metas())
    with pytest.raises(ValueError, match='--component-lambdas.*expected 6'):
        losses.factory(parse(['--component-lambdas', '1', '2']), metas())


def test_factory_builds_a_loss_with_the_flag_lambdas():
    loss = losses.factory(parse(['--lambdas', '2', '0']), metas())
    assert loss.field_names == NAMES
    total, components = loss(*head_batches())
    cif_sum = sum(components[name].item() for name in NAMES[:3])
    assert total.item() == pytest.approx(2.0 * cif_sum, rel=1e-6)


def test_regression_soft_clamp_flag_is_used_by_the_regression_only():
    xs, ts = head_batches()
    xs[0][:, :, 2:4] *= 100.0  # large offset errors: the regression clamp is active
    xs[0][:, :, 4] = 50.0  # far too large scales: the scale clamp is active
    default = losses.factory(parse([]), metas()[:1])([xs[0]], [ts[0]])[1]
    loose = losses.factory(parse(['--regression-soft-clamp', '1000']), metas()[:1])([xs[0]], [ts[0]])[1]
    assert loose['cocokp.cif.vec'].item() > 2.0 * default['cocokp.cif.vec'].item()
    assert loose['cocokp.cif.scales'].item() == default['cocokp.cif.scales'].item()
    assert loose['cocokp.cif.c'].item() == default['cocokp.cif.c'].item()
