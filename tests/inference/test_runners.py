"""Runners: a checkpoint, its ONNX and its TorchScript export give predict the same poses; foreign files
are one clear line."""

import json
import numpy as np
import onnx
import PIL.Image
import pytest
import torch

from openfields import predict
from openfields.export.metadata import ExportedModelError
from openfields.inference import runners


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for name, (width, height) in (('a.png', (120, 90)), ('b.png', (77, 101))):
        PIL.Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(folder / name)
    return folder


def predicted(model, images, out, *flags):
    failed = predict.run(predict.parser().parse_args(
        [str(images), '--checkpoint', str(model), '--json-output', str(out), '-q',
         '--seed-threshold', '0.1', '--instance-threshold', '0', *flags]))  # a random network: low thresholds
    assert failed == 0
    return {p.name: json.loads(p.read_text()) for p in sorted(out.iterdir())}


def assert_same_poses(a, b):
    """Equal to the json's rounding: 0.01 px, scores 0.001 apart at most."""
    assert a.keys() == b.keys()
    for name in a:
        assert len(a[name]) == len(b[name]) > 0
        for pose_a, pose_b in zip(a[name], b[name]):
            assert np.abs(np.subtract(pose_a['keypoints'], pose_b['keypoints'])).max() <= 0.0101
            assert abs(pose_a['score'] - pose_b['score']) <= 0.0011


@pytest.mark.parametrize('exported', ['tiny_onnx', 'tiny_torchscript'])
def test_predict_with_an_exported_model_gives_the_checkpoints_poses(exported, tiny_checkpoint, image_folder,
                                                                     tmp_path, request):
    model = request.getfixturevalue(exported)
    assert_same_poses(predicted(model, image_folder, tmp_path / 'exported'),
                      predicted(tiny_checkpoint, image_folder, tmp_path / 'torch'))


def test_each_file_kind_gets_its_runner_and_the_same_fields(tiny_checkpoint, tiny_onnx, tiny_torchscript):
    images = torch.from_numpy(np.random.default_rng(2).normal(size=(1, 3, 65, 97)).astype(np.float32))
    kinds = [runners.load(str(p)) for p in (tiny_checkpoint, tiny_onnx, tiny_torchscript)]
    assert [type(r).__name__ for r in kinds] == ['TorchRunner', 'OnnxRunner', 'TorchScriptRunner']
    reference = kinds[0].fields(images, [1])
    assert reference[0].shape == (1, 19, 8, 5, 7)
    for runner in kinds[1:]:
        assert np.abs(runner.fields(images, [1])[0] - reference[0]).max() < 1e-4


def test_an_input_the_onnx_graph_does_not_take_is_one_line_naming_its_shape(tiny_onnx):
    runner = runners.load(str(tiny_onnx))
    with pytest.raises(ExportedModelError, match=r'its graph does not take an image batch of shape \(1, 4, 65, 97\) '):
        runner.fields(torch.zeros(1, 4, 65, 97), [1])


def test_an_onnx_file_of_another_model_is_refused_with_one_line(tmp_path, image_folder, capsys):
    path = tmp_path / 'other.onnx'
    torch.onnx.export(torch.nn.Conv2d(3, 4, 1), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(ExportedModelError, match='other.onnx: not an openfields model'):
        runners.load(str(path))
    (tmp_path / 'broken.onnx').write_bytes(b'\x08\x01garbage')
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(image_folder), '--checkpoint', str(tmp_path / 'broken.onnx')])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count('\n') == 1
    assert 'broken.onnx: not a loadable ONNX model' in err


def test_an_onnx_graph_that_does_not_match_its_metadata_is_refused(tiny_onnx, tmp_path):
    model = onnx.load(str(tiny_onnx))
    model.graph.output.pop()  # one head left, two described
    onnx.save(model, str(tmp_path / 'cut.onnx'))
    with pytest.raises(ExportedModelError, match='is not the one its metadata describes'):
        runners.load(str(tmp_path / 'cut.onnx'))


def test_a_checkpoint_in_bfloat16_gives_float32_fields_within_bfloat16_rounding(tiny_checkpoint):
    images = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 3, 65, 97)).astype(np.float32))
    exact = runners.load(str(tiny_checkpoint)).fields(images, [0, 1])
    reduced = runners.load(str(tiny_checkpoint), precision='bfloat16').fields(images, [0, 1])
    for a, b in zip(exact, reduced):
        assert b.dtype == np.float32 and b.shape == a.shape
        for component in range(a.shape[2]):  # confidence, regression, spread, scale: each within its rounding
            error = np.abs(a[:, :, component] - b[:, :, component]).max()
            assert 0 < error < 4 * 2 ** -8 * np.abs(a[:, :, component]).max()


@pytest.mark.parametrize('exported', ['tiny_onnx', 'tiny_torchscript'])
def test_an_exported_model_refuses_bfloat16_in_one_line_naming_the_flag(exported, image_folder, request, capsys):
    model = request.getfixturevalue(exported)
    with pytest.raises(ValueError, match=r'--precision bfloat16: .* is an exported model, which runs in float32 '):
        runners.load(str(model), precision='bfloat16')
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(image_folder), '--checkpoint', str(model), '--precision', 'bfloat16'])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count('\n') == 1 and '--precision bfloat16' in err


def test_predict_in_bfloat16_says_so_and_finds_the_float32_poses(tiny_checkpoint, image_folder, tmp_path, caplog):
    exact = predicted(tiny_checkpoint, image_folder, tmp_path / 'float32')
    with caplog.at_level('INFO', logger='openfields.predict'):
        reduced = predicted(tiny_checkpoint, image_folder, tmp_path / 'bfloat16', '--precision', 'bfloat16')
    assert any('tiny.pkl: bottom-up in bfloat16, decoding with cifcaf' in r.getMessage() for r in caplog.records)
    assert exact.keys() == reduced.keys()
    for name in exact:  # a random network's nearly flat maps: the strongest pose keeps most of its keypoints
        best_exact, best_reduced = (max(poses, key=lambda p: p['score']) for poses in (exact[name], reduced[name]))
        assert abs(best_exact['score'] - best_reduced['score']) < 0.02
        moved = np.abs(np.subtract(best_exact['keypoints'], best_reduced['keypoints'])).reshape(-1, 3)[:, :2].max(1)
        assert (moved < 0.5).mean() > 0.7
