"""DeepLabCut's heatmap head in openfields: the deconvolution stacks, eval-mode read-out, its loss beside CIF and
CAF in one MultiHeadLoss, checkpoints rebuilt from saved metas, and an ONNX export."""

import numpy as np
import pytest
import torch

from model_files import export, head_metas
from openfields import encoder, headmeta
from openfields.export import onnx as onnx_export
from openfields.network import checkpoint, factory, heads, losses
from openfields.network.heatmap_head import HeatmapHead


def meta(**kwargs):
    kwargs.setdefault('upsample_stride', 2)
    return headmeta.Heatmap(name='heatmap', dataset='dlc', keypoints=['snout', 'ear', 'tail'], sigmas=[0.1] * 3,
                            base_stride=16, **kwargs)


@pytest.mark.parametrize('layout, size', [
    (dict(), (9, 11)),  # DeepLabCut's resnet_50 head: one deconvolution, kernel 3, stride 2
    (dict(deconv_channels=[8], deconv_kernels=[3, 3], deconv_strides=[2, 2], upsample_stride=4), (17, 21)),
    (dict(deconv_kernels=[], deconv_strides=[], final_conv_kernel=1, upsample_stride=1), (5, 6)),  # HRNet's
])
def test_the_stacks_keep_field_cells_on_input_pixels(layout, size):
    head = heads.build(meta(**layout), in_features=16)
    assert isinstance(head, HeatmapHead)
    head.train()
    features = torch.randn(2, 16, 5, 6)  # input 65 x 81 pixels at stride 16
    out = head(features)
    assert out.shape == (2, 3, 3) + size and meta(**layout).stride * (size[0] - 1) == 64


def test_eval_mode_gives_scores_and_absolute_positions():
    head = HeatmapHead(meta(apply_sigmoid=True), in_features=4)
    features = torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        raw = head.train()(features)
        evaluated = head.eval()(features)
    assert torch.allclose(evaluated[:, :, 0], torch.sigmoid(raw[:, :, 0]))
    # x of cell (row 2, column 3) = 3 + locref_x * 7.2801 / 8
    assert evaluated[0, 1, 1, 2, 3] == pytest.approx(3 + float(raw[0, 1, 1, 2, 3]) * 7.2801 / 8, rel=1e-5)
    assert evaluated[0, 1, 2, 2, 3] == pytest.approx(2 + float(raw[0, 1, 2, 2, 3]) * 7.2801 / 8, rel=1e-5)


def test_a_layout_the_head_cannot_have_is_refused_naming_it():
    with pytest.raises(ValueError, match='kernel size 4: .* odd kernel sizes'):
        meta(deconv_kernels=[4])
    with pytest.raises(ValueError, match='upsample_stride 1 is not the product of the deconvolution strides'):
        meta(upsample_stride=1)
    with pytest.raises(ValueError, match="target 'disc' is not one of gaussian, plateau"):
        meta(target='disc')


def batch(head_meta, n=2):
    keypoints = np.array([[20.0, 30.0, 2.0], [50.0, 34.0, 2.0], [0.0, 0.0, 0.0]], np.float32)
    ann = {'keypoints': keypoints, 'bbox': [20, 30, 30, 4], 'iscrowd': 0, 'category_id': 1}
    target = encoder.factory([head_meta], encoder.EncoderSettings())[0](torch.zeros(3, 65, 81), [ann], {})
    return torch.stack([target] * n)


@pytest.mark.parametrize('loss_kind, factor', [('mse', 0.5), ('bce', 0.8)])  # BCE's floor: the targets' entropy
def test_the_loss_is_positive_and_decreases_as_the_head_learns(loss_kind, factor):
    torch.manual_seed(0)
    head_meta = meta(heatmap_loss=loss_kind, apply_sigmoid=loss_kind == 'bce')
    head = HeatmapHead(head_meta, in_features=8).train()
    loss = losses.build(losses.LossSettings(), [head_meta])
    features, target = torch.randn(2, 8, 5, 6), batch(head_meta)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    totals = []
    for _ in range(20):
        total, components = loss([head(features)], [target])
        assert set(components) == {'dlc.heatmap.heatmap', 'dlc.heatmap.locref'}
        assert all(float(v.detach()) > 0 for v in components.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(float(total.detach()))
    assert totals[-1] < factor * totals[0] and all(b < a for a, b in zip(totals[:5], totals[1:6]))


def test_the_weights_scale_the_components_and_cif_caf_losses_are_unchanged():
    head_meta = meta()
    target = batch(head_meta)
    x = torch.randn(target.shape)
    plain = losses.build(losses.LossSettings(), [head_meta])([x], [target])[1]
    weighted_meta = meta(heatmap_weight=2.0, locref_weight=0.5)
    weighted = losses.build(losses.LossSettings(), [weighted_meta])([x], [target])[1]
    assert float(weighted['dlc.heatmap.heatmap']) == pytest.approx(2 * float(plain['dlc.heatmap.heatmap']))
    assert float(weighted['dlc.heatmap.locref']) == pytest.approx(10 * float(plain['dlc.heatmap.locref']))
    mixed = losses.build(losses.LossSettings(), head_metas() + [head_meta])
    assert mixed.field_names == ['cocokp.cif.c', 'cocokp.cif.vec', 'cocokp.cif.scales', 'cocokp.caf.c',
                                 'cocokp.caf.vec', 'cocokp.caf.scales', 'dlc.heatmap.heatmap', 'dlc.heatmap.locref']
    total, values = mixed([None, None, x], [None, None, target])
    assert float(total) == pytest.approx(float(plain['dlc.heatmap.heatmap']) + float(plain['dlc.heatmap.locref']))
    assert values['cocokp.cif.c'] is None


def test_a_checkpoint_rebuilds_the_heatmap_head_from_its_saved_meta(tmp_path):
    head_meta = meta(target='plateau', deconv_channels=[8], deconv_kernels=[3, 1], deconv_strides=[2, 1])
    model = factory.build('resnet18', {}, [head_meta]).eval()
    path = tmp_path / 'heatmap.pkl'
    checkpoint.save(path, model, epoch=1, meta={})
    loaded = factory.from_checkpoint(checkpoint.load(path)).eval()
    assert loaded.head_metas == model.head_metas and isinstance(loaded.heads[0], HeatmapHead)
    images = torch.randn(1, 3, 65, 81)
    with torch.inference_mode():
        assert torch.equal(loaded(images)[0], model(images)[0])


def test_an_onnx_export_of_a_tiny_heatmap_model_matches_torch(tmp_path):
    head_meta = meta(apply_sigmoid=True)
    source = tmp_path / 'heatmap.pkl'
    checkpoint.save(source, factory.build('resnet18', {}, [head_meta]), epoch=1, meta={'decoders': {'dlc': None}})
    export(onnx_export.EXPORTER, source, tmp_path / 'heatmap.onnx')
    images = np.random.default_rng(0).normal(size=(1, 3, 97, 129)).astype(np.float32)
    model = factory.from_checkpoint(checkpoint.load(source)).eval()
    with torch.inference_mode():
        reference = model(torch.from_numpy(images))[0].numpy()
    exported = onnx_export.session(str(tmp_path / 'heatmap.onnx')).run(None, {'image': images})
    assert exported[0].shape == reference.shape == (1, 3, 3, 13, 17)
    assert np.abs(exported[0] - reference).max() < 1e-4
