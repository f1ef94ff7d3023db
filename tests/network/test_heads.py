import math

import pytest
import torch

from openfields import headmeta
from openfields.network.heads import CompositeField, index_grid
from openfields.datasets import coco_person


def cif_meta(upsample_stride=1):
    return headmeta.Cif(name='cif', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, upsample_stride=upsample_stride)


def caf_meta(upsample_stride=1):
    return headmeta.Caf(name='caf', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, skeleton=coco_person.COCO_PERSON_SKELETON,
                        upsample_stride=upsample_stride)


def cifdet_meta():
    return headmeta.CifDet(name='cifdet', dataset='det', categories=['a', 'b', 'c'])


@pytest.mark.parametrize('upsample_stride', [1, 2, 3, 4])
@pytest.mark.parametrize('make_meta', [cif_meta, caf_meta])
def test_training_shape(make_meta, upsample_stride):
    meta = make_meta(upsample_stride)
    head = CompositeField(meta, in_features=8).train()
    out = head(torch.randn(2, 8, 5, 7))
    expected_h, expected_w = upsample_stride * 4 + 1, upsample_stride * 6 + 1
    assert out.shape == (2, meta.n_fields, meta.n_components, expected_h, expected_w)


@pytest.mark.parametrize('upsample_stride', [2, 3, 4])
def test_upsample_keeps_cells_aligned(upsample_stride):
    """Every output channel copies the input (weight 1, bias 0), whose value is the row index of the
    basenet cell; output row ``u * i`` must come from basenet row ``i``."""
    meta = cif_meta(upsample_stride)
    head = CompositeField(meta, in_features=1).train()
    with torch.no_grad():
        head.conv.weight.fill_(1.0)
        head.conv.bias.zero_()
    rows = torch.arange(5, dtype=torch.float32).view(1, 1, 5, 1).expand(1, 1, 5, 3)
    out = head(rows)
    assert out.shape[-2:] == (upsample_stride * 4 + 1, upsample_stride * 2 + 1)
    for i in range(5):
        assert torch.all(out[0, :, :, upsample_stride * i] == i)


def test_crop_matches_ceil_formula():
    for u in range(1, 7):
        assert u // 2 == math.ceil((u - 1) / 2)


def eval_pair(meta, shape=(2, 8, 4, 6)):
    """Raw (training) and activated (eval) outputs of the same head on the same input."""
    torch.manual_seed(0)
    head = CompositeField(meta, in_features=shape[1])
    features = torch.randn(*shape) * 3.0
    raw = head.train()(features)
    activated = head.eval()(features)
    return raw, activated


def test_eval_cif():
    raw, out = eval_pair(cif_meta())
    assert out.shape == raw.shape == (2, 17, 5, 4, 6)
    assert torch.equal(out[:, :, 0], raw[:, :, 0])  # log_b raw
    assert torch.all((out[:, :, 1] > 0) & (out[:, :, 1] < 1))
    assert torch.all(out[:, :, 4] > 0)
    assert torch.allclose(out[:, :, 1], torch.sigmoid(raw[:, :, 1]))
    assert torch.allclose(out[:, :, 4], torch.nn.functional.softplus(raw[:, :, 4]))
    # one cell by hand: batch 1, field 3, row 2, column 5 -> x + 5, y + 2
    assert out[1, 3, 2, 2, 5].item() == pytest.approx(raw[1, 3, 2, 2, 5].item() + 5.0)
    assert out[1, 3, 3, 2, 5].item() == pytest.approx(raw[1, 3, 3, 2, 5].item() + 2.0)


def test_eval_caf_both_vectors_are_positions():
    raw, out = eval_pair(caf_meta())
    assert out.shape == (2, 19, 8, 4, 6)
    grid = index_grid(4, 6, torch.float32, torch.device('cpu'))
    assert torch.allclose(out[:, :, 2:4], raw[:, :, 2:4] + grid)
    assert torch.allclose(out[:, :, 4:6], raw[:, :, 4:6] + grid)
    assert torch.all(out[:, :, 6:8] > 0)


def test_eval_cifdet_sizes_are_not_offset():
    raw, out = eval_pair(cifdet_meta())
    assert out.shape == (2, 3, 6, 4, 6)
    grid = index_grid(4, 6, torch.float32, torch.device('cpu'))
    assert torch.allclose(out[:, :, 2:4], raw[:, :, 2:4] + grid)
    assert torch.equal(out[:, :, 4:6], raw[:, :, 4:6])  # w, h: no grid, no activation


def test_eval_with_upsample_uses_output_grid():
    raw, out = eval_pair(cif_meta(upsample_stride=2))
    assert out.shape == (2, 17, 5, 7, 11)
    assert out[0, 0, 2, 6, 10].item() == pytest.approx(raw[0, 0, 2, 6, 10].item() + 10.0)
    assert out[0, 0, 3, 6, 10].item() == pytest.approx(raw[0, 0, 3, 6, 10].item() + 6.0)


def test_eval_output_is_differentiable():
    head = CompositeField(caf_meta(), in_features=4).eval()
    features = torch.randn(1, 4, 3, 3, requires_grad=True)
    head(features).sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_index_grid():
    grid = index_grid(2, 3, torch.float32, torch.device('cpu'))
    assert grid[0].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert grid[1].tolist() == [[0, 0, 0], [1, 1, 1]]


def test_dropout():
    head = CompositeField(cif_meta(), in_features=8, dropout=0.5)
    assert isinstance(head.dropout, torch.nn.Dropout2d) and head.dropout.p == 0.5
    assert CompositeField(cif_meta(), in_features=8).dropout is None
    head.eval()
    features = torch.randn(1, 8, 3, 3)
    assert torch.equal(head(features), head(features))  # no dropout in eval


def test_conv_size():
    head = CompositeField(caf_meta(upsample_stride=2), in_features=16)
    assert head.conv.out_channels == 19 * 8 * 4
    assert head.conv.kernel_size == (1, 1)
