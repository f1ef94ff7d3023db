"""CompositeLoss: component names, masking, reduction, training weights and the shared b."""

import pytest
import torch

from openfields import headmeta
from openfields.network.losses import CompositeLoss, LossSettings

NAN = float('nan')


def cif_meta(training_weights=None):
    return headmeta.Cif(name='cif', dataset='cocokp', keypoints=['a', 'b', 'c'], sigmas=[0.1] * 3,
                        training_weights=training_weights)


def caf_meta():
    return headmeta.Caf(name='caf', dataset='cocokp', keypoints=['a', 'b', 'c'], sigmas=[0.1] * 3,
                        skeleton=[(1, 2), (2, 3)])


def cifdet_meta():
    return headmeta.CifDet(name='cifdet', dataset='cocodet', categories=['cat', 'dog'])


def random_batch(meta, batch=2, height=5, width=6, seed=0):
    """Random prediction and a target with positives, negatives and NaN (ignored) cells."""
    generator = torch.Generator().manual_seed(seed)
    n_target = 1 + 3 * meta.n_vectors + meta.n_scales
    shape = (batch, meta.n_fields)
    x = torch.randn(*shape, meta.n_components, height, width, generator=generator, dtype=torch.float64)
    t = torch.full((*shape, n_target, height, width), NAN, dtype=torch.float64)
    draw = torch.rand(*shape, height, width, generator=generator)
    positive = draw > 0.7
    t[:, :, 0] = torch.where(draw < 0.1, NAN, positive.double())
    values = torch.randn(*shape, n_target - 1, height, width, generator=generator, dtype=torch.float64)
    values[:, :, 2 * meta.n_vectors:] = 0.05 + values[:, :, 2 * meta.n_vectors:].abs()  # b_min, scales
    t[:, :, 1:] = torch.where(positive.unsqueeze(2), values, NAN)
    return x, t


def total(losses):
    return sum(value for value in losses.values())


@pytest.mark.parametrize('meta_factory, names', [
    (cif_meta, ['cocokp.cif.c', 'cocokp.cif.vec', 'cocokp.cif.scales']),
    (caf_meta, ['cocokp.caf.c', 'cocokp.caf.vec', 'cocokp.caf.scales']),
    (cifdet_meta, ['cocodet.cifdet.c', 'cocodet.cifdet.vec']),
])
def test_component_names_follow_dataset_head_component(meta_factory, names):
    loss = CompositeLoss(meta_factory(), LossSettings())
    assert loss.field_names == names
    x, t = random_batch(meta_factory())
    assert list(loss(x, t)) == names


def test_missing_prediction_or_target_gives_none_for_every_component():
    loss = CompositeLoss(cif_meta(), LossSettings())
    x, t = random_batch(cif_meta())
    for pair in ((x, None), (None, t), (None, None)):
        assert loss(*pair) == {name: None for name in loss.field_names}


@pytest.mark.parametrize('meta_factory', [cif_meta, caf_meta, cifdet_meta])
def test_losses_are_non_negative_and_finite_for_random_inputs(meta_factory):
    meta = meta_factory()
    loss = CompositeLoss(meta, LossSettings())
    for seed in range(3):
        x, t = random_batch(meta, seed=seed)
        x = (10.0 * x).requires_grad_(True)
        losses = loss(x, t)
        assert all(torch.isfinite(v) and v.item() >= 0.0 for v in losses.values())
        total(losses).backward()
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize('meta_factory', [cif_meta, caf_meta, cifdet_meta])
def test_extra_nan_cells_change_neither_losses_nor_gradients(meta_factory):
    meta = meta_factory()
    x, t = random_batch(meta)
    # widen the field by three columns: predictions there are extreme, targets all NaN
    x_wide = torch.cat([x, torch.full_like(x[..., :3], 1e4)], dim=-1)
    x_wide[..., -1] = NAN  # even a NaN prediction in an ignored cell must not leak
    t_wide = torch.cat([t, torch.full_like(t[..., :3], NAN)], dim=-1)
    x.requires_grad_(True)
    x_wide.requires_grad_(True)
    loss = CompositeLoss(meta, LossSettings())
    narrow, wide = loss(x, t), loss(x_wide, t_wide)
    for name in narrow:
        assert wide[name].item() == pytest.approx(narrow[name].item(), rel=1e-12)
    total(narrow).backward()
    total(wide).backward()
    assert torch.equal(x_wide.grad[..., :-3], x.grad)
    assert torch.equal(x_wide.grad[..., -3:], torch.zeros_like(x_wide.grad[..., -3:]))


def test_all_ignored_batch_gives_zero_and_zero_gradients():
    x, t = random_batch(caf_meta())
    t = torch.full_like(t, NAN)
    x.requires_grad_(True)
    losses = CompositeLoss(caf_meta(), LossSettings())(x, t)
    assert all(v.item() == 0.0 for v in losses.values())
    total(losses).backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_losses_are_summed_and_divided_by_the_batch_size():
    x, t = random_batch(cif_meta(), batch=1)
    loss = CompositeLoss(cif_meta(), LossSettings())
    single = loss(x, t)
    tripled = loss(x.repeat(3, 1, 1, 1, 1), t.repeat(3, 1, 1, 1, 1))
    # doubling the field area doubles the loss: no normalisation by cell count
    doubled_area = loss(torch.cat([x, x], dim=-1), torch.cat([t, t], dim=-1))
    for name in single:
        assert tripled[name].item() == pytest.approx(single[name].item(), rel=1e-12)
        assert doubled_area[name].item() == pytest.approx(2.0 * single[name].item(), rel=1e-12)


def test_training_weights_scale_the_losses_of_their_field():
    x, t = random_batch(cif_meta())
    unweighted = CompositeLoss(cif_meta(), LossSettings())
    per_field = []
    for field in range(3):
        t_field = torch.full_like(t, NAN)
        t_field[:, field] = t[:, field]
        per_field.append(unweighted(x, t_field))
    weights = [2.0, 0.0, 0.5]
    weighted = CompositeLoss(cif_meta(training_weights=weights), LossSettings())(x, t)
    for name, value in weighted.items():
        expected = sum(w * losses[name].item() for w, losses in zip(weights, per_field))
        assert value.item() == pytest.approx(expected, rel=1e-12)
        assert per_field[1][name].item() > 0.0  # the zero weight really removed something


def shared_b_gradient(keep_confidence, keep_regression):
    """Gradient on channel 0 of the one positive cell, with the chosen targets kept."""
    x = torch.zeros(1, 1, 5, 1, 1, dtype=torch.float64)
    x[0, 0, :, 0, 0] = torch.tensor([0.3, -0.5, 1.0, 2.0, 0.5], dtype=torch.float64)
    t = torch.full((1, 1, 5, 1, 1), NAN, dtype=torch.float64)
    if keep_confidence:
        t[0, 0, 0] = 1.0
    if keep_regression:
        t[0, 0, 1:4, 0, 0] = torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64)
    meta = headmeta.Cif(name='cif', dataset='test', keypoints=['a'], sigmas=[0.1])
    x.requires_grad_(True)
    total(CompositeLoss(meta, LossSettings())(x, t)).backward()
    return x.grad[0, 0, 0, 0, 0].item()


def test_shared_b_channel_receives_gradient_from_confidence_and_regression():
    from_confidence = shared_b_gradient(True, False)
    from_regression = shared_b_gradient(False, True)
    both = shared_b_gradient(True, True)
    assert from_confidence != 0.0 and from_regression != 0.0
    assert both == pytest.approx(from_confidence + from_regression, rel=1e-12)
    assert both != pytest.approx(from_confidence) and both != pytest.approx(from_regression)


def test_background_cells_do_not_train_the_shared_b_channel():
    meta = headmeta.Cif(name='cif', dataset='test', keypoints=['a'], sigmas=[0.1])
    x = torch.randn(1, 1, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    t = torch.full((1, 1, 5, 3, 3), NAN, dtype=torch.float64)
    t[:, :, 0] = 0.0
    total(CompositeLoss(meta, LossSettings())(x, t)).backward()
    assert torch.equal(x.grad[:, :, 0], torch.zeros_like(x.grad[:, :, 0]))
    assert torch.count_nonzero(x.grad[:, :, 1]).item() == 9


def test_wrong_shapes_are_rejected_with_the_head_name():
    loss = CompositeLoss(cif_meta(), LossSettings())
    x, t = random_batch(cif_meta())
    with pytest.raises(ValueError, match='cocokp.cif'):
        loss(x[:, :2], t)
    with pytest.raises(ValueError, match='cocokp.cif'):
        loss(x, t[:, :, :4])
