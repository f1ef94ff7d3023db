"""``python -m openfields.export_onnx``: dynamic sizes, fields within 1e-4 of torch, metadata, bad input."""

import importlib.util
import sys

import numpy as np
import onnx
import pytest
import torch

from model_files import export, head_metas
from openfields.export import command, onnx as onnx_export, torchscript
from openfields.export_onnx import cli as onnx_cli
from openfields.inference import runners
from openfields.network import checkpoint, factory


def torch_fields(checkpoint_path, images):
    model = factory.from_checkpoint(checkpoint.load(checkpoint_path)).eval()
    with torch.inference_mode():
        return [t.numpy() for t in model(torch.from_numpy(images))]


@pytest.mark.parametrize('shape', [(1, 3, 65, 81), (2, 3, 129, 97), (1, 3, 97, 193)])
def test_every_field_matches_torch_within_1e_4_at_any_size_and_batch(tiny_checkpoint, tiny_onnx, shape):
    images = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    reference = torch_fields(tiny_checkpoint, images)
    exported = onnx_export.session(str(tiny_onnx)).run(None, {'image': images})
    assert [e.shape for e in exported] == [r.shape for r in reference]
    assert reference[0].shape == (shape[0], 17, 5, (shape[2] - 1) // 16 + 1, (shape[3] - 1) // 16 + 1)
    for ref, out in zip(reference, exported):
        assert np.abs(ref - out).max() < 1e-4


def test_the_head_metas_travel_in_the_metadata_and_rebuild_equal(tiny_onnx):
    model = onnx.load(str(tiny_onnx), load_external_data=False)
    assert 'openfields' in {p.key for p in model.metadata_props}
    assert [o.name for o in model.graph.output] == ['cocokp.cif', 'cocokp.caf']
    assert model.opset_import[0].version == onnx_export.OPSET
    runner = runners.load(str(tiny_onnx))
    assert [m.to_dict() for m in runner.head_metas] == [m.to_dict() for m in head_metas()]
    assert runner.basenet == 'resnet18' and runner.decoders == {'cocokp': ['cifcaf']}


def test_an_export_off_by_more_than_the_tolerance_writes_nothing(tiny_checkpoint, tmp_path):
    real = torchscript.EXPORTER  # the same check serves both formats; TorchScript exports in a second
    shifted = command.Exporter('TorchScript', '.pt', real.export,
                               lambda data, images: [o + 2e-4 for o in real.run(data, images)])
    with pytest.raises(command.ExportMismatch, match='differ from torch by up to 0.0002'):
        export(shifted, tiny_checkpoint, tmp_path / 'model.pt')
    assert list(tmp_path.iterdir()) == []


def test_small_values_amid_huge_ones_are_compared_with_their_channels_scale():
    """A saturated network's channel holds 1e16 values and their differences (1e8) whose float32 rounding is
    that of 1e16 numbers: compared with a hundredth of the channel's largest value. A trained head's channel (values
    within +-10) is compared absolutely, as before."""
    saturated = np.zeros((1, 2, 5, 3, 3), np.float32)
    saturated[0, 0, 3] = 1e16
    saturated[0, 1, 3, 0, 0] = 8e7
    off = saturated.copy()
    off[0, 1, 3, 0, 0] = 7.8e7  # 2.5% of the element, 2e-10 of its channel's largest value
    assert command.largest_difference([saturated], [off], ['h']) == pytest.approx(2e6 / 1e14, rel=1e-3)
    trained = np.full((1, 2, 5, 3, 3), 4.0, np.float32)
    assert command.largest_difference([trained], [trained + 2e-4], ['h']) == pytest.approx(2e-4 / 4, rel=1e-2)
    small = trained.copy()
    small[0, 0, 2, 0, 0] = 0.5  # below 1: absolute
    shifted = small.copy()
    shifted[0, 0, 2, 0, 0] += 3e-4
    assert command.largest_difference([small], [shifted], ['h']) == pytest.approx(3e-4, rel=1e-2)


def test_a_file_that_is_not_an_openfields_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / 'weights.pkl').write_bytes(b'not a checkpoint')
    with pytest.raises(SystemExit) as exit_info:
        onnx_cli.main(['--checkpoint', str(tmp_path / 'weights.pkl'), '--output', str(tmp_path / 'm.onnx')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'weights.pkl: not a loadable openfields checkpoint' in err
    assert err.startswith('openfields.export_onnx: error: ') and not (tmp_path / 'm.onnx').exists()


def test_both_commands_run_as_modules_of_the_package():
    for name in ('openfields.export_onnx', 'openfields.export_torchscript'):
        assert importlib.util.find_spec(f'{name}.__main__') is not None


def test_without_onnxruntime_the_error_is_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import fails as if not installed
    with pytest.raises(command.MissingDependency, match=r'pip install openfields\[export\]'):
        onnx_export.require_onnx()


class ShapeDependent(torch.nn.Module):
    """A forward whose Python branches on a value: torch.export cannot trace it for every input."""

    def forward(self, image):
        return (image * 2,) if image.sum() > 0 else (image,)


def test_a_network_torchs_exporter_refuses_is_one_line_naming_why():
    with pytest.raises(onnx_export.ExportFailed) as failed:
        onnx_export.export(ShapeDependent(), torch.ones(1, 3, 33, 33), ['out'], '{}')
    message = str(failed.value)
    assert message.startswith("torch's ONNX exporter cannot export this network with dynamic input sizes (")
    assert '\n' not in message and message.endswith('predict, video and eval run the checkpoint itself')
