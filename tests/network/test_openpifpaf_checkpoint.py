"""OpenPifPaf checkpoints: read through the allow-list (nothing of the file runs), converted to openfields' network
with OpenPifPaf's fields (reference arrays made with OpenPifPaf 0.13.11 itself: tests/data/openpifpaf_*)."""

import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from openfields.datasets import coco, keypoint_module
from openfields.network import checkpoint, factory, openpifpaf_checkpoint

SHARED = pathlib.Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data'
OPP_CHECKPOINT = SHARED / 'opp-checkpoint' / 'shufflenetv2k16-cocokp-sample.pkl'
COCO_SAMPLE = SHARED / 'coco-val-sample'
DATA = pathlib.Path(__file__).resolve().parents[1] / 'data'
needs_checkpoint = pytest.mark.skipif(not OPP_CHECKPOINT.is_file(),
                                      reason=f'the shared OpenPifPaf checkpoint is absent: {OPP_CHECKPOINT}')


class RunsShell:
    """Pickles as a call of ``os.system``: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def _crafted(path, marker, zipped):
    payload = {'model': RunsShell(marker), 'epoch': 1}
    if zipped:
        torch.save(payload, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(payload, f, protocol=2)


def _global_only_pickle(path, module, name):
    """A pickle that only instantiates ``module.name`` (a class this process does not have)."""
    path.write_bytes(b'\x80\x02c' + f'{module}\n{name}\n'.encode() + b')\x81}b.')


@pytest.mark.parametrize('zipped', [True, False], ids=['torch-save', 'plain-pickle'])
def test_a_pickle_that_would_run_a_command_is_refused_naming_the_call_and_runs_nothing(tmp_path, zipped):
    marker = tmp_path / 'ran'
    path = tmp_path / 'model.pkl'
    _crafted(path, marker, zipped)
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.load(path)
    message = str(error.value)
    assert message.startswith(f'{path}: class ')
    assert f'{os.system.__module__}.system' in message  # posix.system
    assert 'allow-list' in message and '\n' not in message
    assert not marker.exists()


def test_a_head_openfields_does_not_have_is_named(tmp_path):
    path = tmp_path / 'tracking.pkl'
    _global_only_pickle(path, 'openpifpaf.headmeta', 'TSingleImageCif')
    with pytest.raises(checkpoint.CheckpointError, match=r'tracking.pkl: head openpifpaf.headmeta.TSingleImageCif '
                                                         r'of OpenPifPaf has no openfields equivalent'):
        checkpoint.load(path)


def test_a_class_of_another_openpifpaf_layout_is_named(tmp_path):
    path = tmp_path / 'old.pkl'
    _global_only_pickle(path, 'openpifpaf.network.basenetworks', 'ShuffleNetV2')
    with pytest.raises(checkpoint.CheckpointError, match=r'class openpifpaf.network.basenetworks.ShuffleNetV2 is '
                                                         r'not in the layout of the OpenPifPaf 0.13 checkpoints'):
        checkpoint.load(path)


def test_predict_refuses_the_crafted_pickle_in_one_line_exit_2(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'model.pkl'
    _crafted(path, marker, zipped=True)
    image = tmp_path / 'image.png'
    PIL.Image.new('RGB', (33, 33)).save(image)
    result = subprocess.run([sys.executable, '-m', 'openfields.predict', str(image), '--checkpoint', str(path),
                             '--json-output', str(tmp_path / 'out')],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count('\n') == 0
    assert 'posix.system' in result.stderr or 'nt.system' in result.stderr
    assert not marker.exists() and not (tmp_path / 'out').exists()


def test_torch_force_no_weights_only_load_as_openpifpaf_users_set_it_still_runs_nothing(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'model.pkl'
    _crafted(path, marker, zipped=True)
    code = ('from openfields.network import checkpoint\n'
            f'try:\n    checkpoint.load({str(path)!r})\n'
            'except checkpoint.CheckpointError as error:\n    print(error)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD': '1'})
    assert result.returncode == 0, result.stderr
    assert 'system is outside the allow-list' in result.stdout
    assert not marker.exists()


def test_a_layer_openfields_has_not_is_named(tmp_path):
    path = tmp_path / 'leaky.pkl'
    _global_only_pickle(path, 'torch.nn.modules.activation', 'LeakyReLU')
    with pytest.raises(checkpoint.CheckpointError, match=r'layer torch.nn.modules.activation.LeakyReLU has no place'):
        checkpoint.load(path)


@needs_checkpoint
def test_the_shared_checkpoint_converts_to_a_shufflenetv2k16_with_cocokp_cif_and_caf():
    saved = checkpoint.load(OPP_CHECKPOINT)
    assert saved['format'] == checkpoint.FORMAT
    assert saved['model']['basenet'] == {'name': 'shufflenetv2k16', 'config': {'kernel_size': 5}}
    assert saved['model']['batchnorm'] == {'eps': 1e-3, 'momentum': 0.01}
    assert saved['epoch'] == 6
    assert saved['meta']['openpifpaf']['version'] == '0.13.11'
    metas = checkpoint.head_metas(saved)
    assert [(m.full_name, m.upsample_stride, m.base_stride, m.n_fields) for m in metas] == [
        ('cocokp.cif', 2, 16, 17), ('cocokp.caf', 2, 16, 19)]
    # the heads openfields' cocokp makes for COCO persons: refining with --dataset cocokp keeps both heads
    annotations = COCO_SAMPLE / 'annotations.json'
    category = coco.keypoint_category(json.loads(annotations.read_text()), annotations, None)
    wanted = keypoint_module.head_metas_for(category, 'cocokp', 2, base_stride=16)
    assert [m.to_dict() for m in metas] == [m.to_dict() for m in wanted]
    model = factory.from_checkpoint(saved, wanted)  # no head created new
    state = model.state_dict()
    for key, value in saved['model']['state_dict'].items():
        assert torch.equal(state[key], value), key


@needs_checkpoint
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_the_converted_model_gives_openpifpafs_fields(dtype):
    """Eval-mode CIF and CAF of a 97x81 crop of a COCO image (ImageNet-normalised) against OpenPifPaf 0.13.11's in
    float64; this checkpoint's fields reach 1e16, where float32 itself is off by ~1e-3 relative (OpenPifPaf's own
    float32 against its float64, recorded with the arrays): float32 must stay within twice that."""
    reference = np.load(DATA / 'openpifpaf_fields.npz')
    model = factory.from_checkpoint(checkpoint.load(OPP_CHECKPOINT)).eval().to(dtype)
    with torch.inference_mode():
        cif, caf = model(torch.from_numpy(reference['image']).to(dtype)[None])
    for name, ours in (('cif', cif[0].double().numpy()), ('caf', caf[0].double().numpy())):
        theirs = reference[name]
        assert ours.shape == theirs.shape, name
        relative = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)
        tolerance = 1e-4 if dtype == torch.float64 else 2 * float(reference[f'{name}_float32_rel_error'])
        assert relative.max() < tolerance, (name, relative.max())
        assert np.abs(theirs).max() > 1.0  # not trivially zero


@needs_checkpoint
def test_predict_gives_openpifpafs_poses_on_the_coco_sample(tmp_path):
    """OpenPifPaf's predict with its defaults (tests/data/openpifpaf_predictions.json): this 6-epoch checkpoint
    finds nobody (its CIF confidences are saturated at 0), and neither does openfields."""
    expected = json.loads((DATA / 'openpifpaf_predictions.json').read_text())
    images = [str(COCO_SAMPLE / 'images' / name) for name in sorted(expected['predictions'])]
    result = subprocess.run([sys.executable, '-m', 'openfields.predict', *images, '--checkpoint',
                             str(OPP_CHECKPOINT), '--json-output', str(tmp_path)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    for name, poses in expected['predictions'].items():
        ours = json.loads((tmp_path / f'{name}.predictions.json').read_text())
        assert len(ours) == len(poses), name
        for a, b in zip(ours, poses):
            np.testing.assert_allclose(a['keypoints'], b['keypoints'], atol=0.5)


@needs_checkpoint
def test_an_openpifpaf_checkpoint_sees_the_input_openpifpafs_predictor_makes():
    """Its images are resized as OpenPifPaf's predictor does (PIL's bilinear resize; openfields' own resize samples
    pixel centres with anti-aliased bicubic): the network input equals OpenPifPaf's (tests/data/
    openpifpaf_preprocess.json), so the same fields come out and predict's poses follow them. Measured with a
    trained OpenPifPaf-format checkpoint (not committed, 40 MB): the same people as OpenPifPaf's predict on the
    COCO sample, keypoints within 3.8 px of 640, with --fragment-merge-distance 0 --max-votes-fraction 0."""
    from openfields.inference import pipeline  # pylint: disable=import-outside-toplevel
    reference = json.loads((DATA / 'openpifpaf_preprocess.json').read_text())
    model = pipeline.open_model(str(OPP_CHECKPOINT), pipeline.PipelineSettings(long_edge=193))
    with PIL.Image.open(COCO_SAMPLE / 'images' / '000000000785.jpg') as image:
        tensor, _ = model.prepare(image.convert('RGB'), {})
    ours = tensor.double().numpy()
    assert list(ours.shape) == reference['shape']
    np.testing.assert_allclose(ours.sum(axis=(1, 2)), reference['channel_sums'], rtol=1e-6)
    np.testing.assert_allclose(ours[:, 60:66, 90:96], reference['patch_rows_60_66_cols_90_96'], atol=1e-6)
    np.testing.assert_allclose(ours[:, 128, :3], reference['last_row_first_cols'], atol=1e-6)  # the padding row
    assert model.runner.image_resize == 'openpifpaf'
    from openfields import transforms  # pylint: disable=import-outside-toplevel
    with PIL.Image.open(COCO_SAMPLE / 'images' / '000000000785.jpg') as image:  # openfields' own resize differs
        own, _, _ = transforms.eval_pipeline(193, pad='tight', image_resize='openfields')(image.convert('RGB'), [], {})
    assert np.abs(own.double().numpy()[:, 60:66, 90:96] - reference['patch_rows_60_66_cols_90_96']).max() > 0.01


@needs_checkpoint
def test_the_file_is_read_into_stand_ins_without_importing_openpifpaf():
    saved = openpifpaf_checkpoint.read(OPP_CHECKPOINT)
    shell = saved['model']
    assert isinstance(shell, openpifpaf_checkpoint.Recorded) and shell.pickled_name == 'openpifpaf.network.nets.Shell'
    assert not any(name == 'openpifpaf' or name.startswith('openpifpaf.') for name in sys.modules)
    state = openpifpaf_checkpoint.flat_state(shell)
    assert len(state) == 340 and state['head_nets.0.conv.weight'].shape == (17 * 5 * 4, 1392, 1, 1)


def _run(*args, timeout=600):
    result = subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@needs_checkpoint
@pytest.mark.slow  # 50 s: five commands on the real checkpoint (make test-slow)
def test_the_checkpoint_refines_evaluates_runs_on_video_frames_and_exports(tmp_path):
    """``train --checkpoint`` keeps both heads (cocokp's metas with --cocokp-upsample 2: none created new),
    ``eval`` writes its stats, ``video`` runs on a folder of frames, ``export_torchscript`` and ``export_onnx`` write
    their files."""
    data = [f'--cocokp-{split}-annotations={COCO_SAMPLE / "annotations.json"}' for split in ('train', 'val')]
    data += [f'--cocokp-{split}-image-dir={COCO_SAMPLE / "images"}' for split in ('train', 'val')]
    trained = _run('openfields.train', '--checkpoint', str(OPP_CHECKPOINT), '--dataset=cocokp', '--cocokp-upsample=2',
                   *data, '--epochs=1', '--train-batches=1', '--val-batches=1', '--batch-size=2',
                   '--cocokp-square-edge=129', '--lr=1e-6', '--output', str(tmp_path / 'refined.pkl'))
    assert 'created new' not in trained.stderr and 'differs' not in trained.stderr
    refined = torch.load(tmp_path / 'refined.pkl', weights_only=True)
    assert [m['name'] for m in refined['model']['head_metas']] == ['cif', 'caf']

    linked = tmp_path / 'opp.pkl'  # eval writes its stats beside the checkpoint: here, not in the shared data
    linked.symlink_to(OPP_CHECKPOINT)
    _run('openfields.eval', '--checkpoint', str(linked), '--dataset=cocokp', *data[1::2], '--eval-n-images=1')
    assert json.loads((tmp_path / 'opp.pkl.eval-cocokp.stats.json').read_text())
    frames = tmp_path / 'frames.jsonl'
    _run('openfields.video', str(COCO_SAMPLE / 'images'), '--checkpoint', str(OPP_CHECKPOINT), '--long-edge=193',
         '--json-output', str(frames))
    assert len(frames.read_text().splitlines()) == 4
    exported = tmp_path / 'model.pt'
    _run('openfields.export_torchscript', '--checkpoint', str(OPP_CHECKPOINT), '--output', str(exported))
    assert exported.stat().st_size > 0
    # its saturated fields (1e16) export to ONNX within the default tolerance (differences measured against the
    # scale of each channel: openfields/export/command.py largest_difference)
    exported = tmp_path / 'model.onnx'
    _run('openfields.export_onnx', '--checkpoint', str(OPP_CHECKPOINT), '--output', str(exported))
    assert exported.stat().st_size > 0
