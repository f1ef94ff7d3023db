"""Export of a top-down model: ``export_onnx`` of the pose checkpoint writes the pose network and its
detector (``model.detector.onnx``), both verified against torch first; the files run in onnxruntime alone
and give torch's boxes and fields; bad input is one line, exit 2, nothing written.

The detectors have no trained weights here (nothing is downloaded): their BatchNorm statistics are
measured on images (:func:`calibrated`) so that their boxes and scores depend on the image as a trained
detector's do (with the initial statistics every image gives the same, tied, scores).
"""

import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import onnx
import PIL.Image
import pytest
import torch

from model_files import head_metas
from openfields.export import command, detector as detector_export, metadata, onnx as onnx_export, torchscript
from openfields.export_onnx import cli as onnx_cli
from openfields.export_torchscript import cli as torchscript_cli
from openfields.inference import runners
from openfields.network import checkpoint, factory
from openfields.topdown import cifdet_detector, detectors, inference
from openfields.topdown.detector_base import resized
from openfields.topdown.detectors import DetectorSettings

SHARED_IMAGES = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'coco-val-sample' / 'images'
TOPDOWN = {'crop_width': 97, 'crop_height': 129, 'crop_padding': 1.25, 'bbox_margin': 20.0, 'box_source': 'auto'}
SSD = 'ssdlite320_mobilenet_v3_large'


def real_images() -> list[PIL.Image.Image]:
    """The shared COCO photographs where present, else the export's own drawn verification images."""
    paths = sorted(SHARED_IMAGES.glob('*.jpg'))
    if paths:
        return [PIL.Image.open(p).convert('RGB') for p in paths]
    return detector_export.verification_images(seed=7)


def calibrated(detector, images):
    """``detector`` with the BatchNorm statistics of ``images`` (cumulative averages), in eval mode."""
    norms = [m for m in detector.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    tensors = [resized(image, detector.settings.image_size)[0] for image in images]
    detector.train()
    with torch.no_grad():
        if detector.settings.family == cifdet_detector.NAME:
            detector.network(detector.normalised_batch(tensors))
        else:
            model = detector.model
            image_list, _ = model.transform(tensors)
            features = model.backbone(image_list.tensors)
            if detector.settings.family == 'ssd':
                model.head(list(features.values()))
    return detector.eval()


def new_detector(name: str, image_size: int):
    torch.manual_seed(0)
    settings = DetectorSettings(name=name, pretrained='none', image_size=image_size)
    if name == cifdet_detector.NAME:
        network = factory.build('resnet18', {}, [cifdet_detector.head_meta('cocokp', 16)])
        detector = cifdet_detector.CifDetDetector(network, settings)
    else:
        detector = detectors.build(settings)
    return calibrated(detector, detector_export.verification_images(seed=3) + real_images()[:2])


def pose_checkpoint(path, detector_path):
    checkpoint.save(path, factory.build('resnet18', {}, head_metas()[:1]), epoch=2,
                    meta={'decoders': {'cocokp': ['cifmax']},
                          'topdown': {**TOPDOWN, 'detector': str(pathlib.Path(detector_path).resolve())}})


def export_args(source, output, *extra, exporter=onnx_export.EXPORTER):
    return command.parser('test', 'test', exporter.suffix).parse_args(
        ['--checkpoint', str(source), '--output', str(output), '--input-size', '97x129', *extra])


@pytest.fixture(scope='module')
def td_run(tmp_path_factory):
    """A top-down run's two checkpoints (SSDLite detector, resnet18 CIF pose model) and their export."""
    tmp = tmp_path_factory.mktemp('td_export')
    checkpoint.save(tmp / 'run.detector.pkl', new_detector(SSD, 320), epoch=1, meta={})
    pose_checkpoint(tmp / 'run.pkl', tmp / 'run.detector.pkl')
    worst = command.run(export_args(tmp / 'run.pkl', tmp / 'exported' / 'model.onnx'), onnx_export.EXPORTER)
    return tmp, worst


def stored_metadata(path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    return json.loads({p.key: p.value for p in model.metadata_props}[metadata.KEY])


def test_the_export_writes_the_pose_model_and_its_detector_and_the_crop_geometry(td_run):
    tmp, worst = td_run
    assert sorted(p.name for p in (tmp / 'exported').iterdir()) == ['model.detector.onnx', 'model.onnx']
    assert worst < 1e-4
    pose = stored_metadata(tmp / 'exported' / 'model.onnx')
    assert pose['kind'] == 'fields' and pose['topdown'] == {**TOPDOWN, 'detector': 'model.detector.onnx'}
    assert [m['name'] for m in pose['head_metas']] == ['cif']
    described = stored_metadata(tmp / 'exported' / 'model.detector.onnx')
    assert described['kind'] == 'detector' and described['family'] == 'ssd'
    assert described['detector'] == {'name': SSD, 'pretrained': 'none', 'image_size': 320, 'score_threshold': 0.3,
                                     'max_boxes': 20}
    assert described['input'] == 'image' and described['outputs'] == ['boxes', 'scores']
    assert described['source'] == 'run.detector.pkl' and described['format'] == metadata.FORMAT
    # the pose model still loads as a fields model; its detector is found by name beside it
    runner = runners.load(str(tmp / 'exported' / 'model.onnx'))
    assert [m.name for m in runner.head_metas] == ['cif']


def test_the_onnx_detector_gives_the_torch_detector_s_boxes_on_real_images(td_run):
    tmp, _ = td_run
    exported = inference.load_detector(tmp / 'exported' / 'model.detector.onnx', 'cpu')
    reference = inference.load_detector(tmp / 'run.detector.pkl', 'cpu')
    assert isinstance(exported, detector_export.OnnxDetector) and exported.settings == reference.settings
    compared = 0
    for image in real_images():
        boxes, scores = exported.boxes(image)
        expected_boxes, expected_scores = reference.boxes(image)
        assert boxes.dtype == np.float32 and scores.dtype == np.float32 and boxes.shape == (len(scores), 4)
        assert len(scores) == len(expected_scores) > 0
        assert np.all(np.diff(scores) <= 0)  # best first
        assert np.abs(scores - expected_scores).max() < 1e-4
        # in the original image's pixels: the detector's 0.05 pixels at its input size, scaled back
        assert np.abs(boxes - expected_boxes).max() < 0.05 * max(image.size) / 320
        compared += len(scores)
    assert compared >= 2 * exported.settings.max_boxes


def test_the_detector_is_thresholded_and_capped_by_its_settings(td_run):
    tmp, _ = td_run
    exported = detector_export.load_detector_onnx(tmp / 'exported' / 'model.detector.onnx')
    image = real_images()[0]
    _, scores = exported.boxes(image)
    exported.settings = dataclasses.replace(exported.settings, max_boxes=3, score_threshold=float(scores[1]))
    boxes, capped = exported.boxes(image)
    assert len(capped) == 2 and np.array_equal(capped, scores[:2]) and boxes.shape == (2, 4)


def test_both_files_run_in_onnxruntime_alone_and_match_torch(td_run, tmp_path):
    """No openfields, no torch: onnxruntime, numpy and PIL read the files as a user would."""
    tmp, _ = td_run
    image = real_images()[0]
    image.save(tmp_path / 'image.png')
    array = np.asarray(image.resize((320, round(image.size[1] * 320 / image.size[0])), PIL.Image.BILINEAR),
                       dtype=np.float32).transpose(2, 0, 1) / 255
    reference = inference.load_detector(tmp / 'run.detector.pkl', 'cpu').detect([torch.from_numpy(array)])[0]
    crops = np.random.default_rng(0).normal(size=(2, 3, 129, 97)).astype(np.float32)
    model = factory.from_checkpoint(checkpoint.load(tmp / 'run.pkl')).eval()
    with torch.inference_mode():
        fields = model(torch.from_numpy(crops))[0].numpy()
    np.savez(tmp_path / 'reference.npz', boxes=reference['boxes'].numpy(), scores=reference['scores'].numpy(),
             crops=crops, fields=fields)
    script = f'''
import json, sys
sys.modules['torch'] = None  # importing torch (or openfields) would fail
import numpy as np, onnxruntime, PIL.Image
folder = {str(tmp / 'exported')!r}
pose = onnxruntime.InferenceSession(folder + '/model.onnx', providers=['CPUExecutionProvider'])
topdown = json.loads(pose.get_modelmeta().custom_metadata_map['openfields'])['topdown']
detector = onnxruntime.InferenceSession(folder + '/' + topdown['detector'], providers=['CPUExecutionProvider'])
settings = json.loads(detector.get_modelmeta().custom_metadata_map['openfields'])['detector']
image = PIL.Image.open({str(tmp_path / 'image.png')!r}).convert('RGB')
scale = settings['image_size'] / max(image.size)
image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)), PIL.Image.BILINEAR)
array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255
boxes, scores = detector.run(['boxes', 'scores'], {{'image': array}})
reference = np.load({str(tmp_path / 'reference.npz')!r})
fields = pose.run(None, {{'image': reference['crops']}})[0]
print(json.dumps({{'n': len(scores), 'n_ref': len(reference['scores']),
                  'crop': [topdown['crop_width'], topdown['crop_height']],
                  'boxes': float(np.abs(boxes[:20] - reference['boxes'][:20]).max()),
                  'scores': float(np.abs(scores[:20] - reference['scores'][:20]).max()),
                  'fields': float(np.abs(fields - reference['fields']).max())}}))
'''
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert found['n'] >= 20 and found['n_ref'] >= 20 and found['crop'] == [97, 129]
    assert found['boxes'] < 0.05 and found['scores'] < 1e-4 and found['fields'] < 1e-4


@pytest.mark.parametrize('name, image_size', [('fasterrcnn_mobilenet_v3_large_fpn', 256), ('cifdet', 161)])
def test_the_other_detector_families_export_and_match_torch(name, image_size):
    detector = new_detector(name, image_size)
    data, worst = detector_export.export_verified(detector, 'run.detector.pkl', real_images()[:2])
    assert worst['detections'] > 0  # something was compared
    assert worst['boxes'] <= detector_export.BOX_TOLERANCE and worst['scores'] <= detector_export.SCORE_TOLERANCE
    assert stored_metadata_of_bytes(data)['family'] == detectors.DetectorSettings(name=name).family


def stored_metadata_of_bytes(data: bytes) -> dict:
    model = onnx.load_from_string(data)
    return json.loads({p.key: p.value for p in model.metadata_props}[metadata.KEY])


def test_a_top_down_checkpoint_whose_detector_is_missing_is_one_line_exit_2_and_nothing_written(td_run, tmp_path,
                                                                                                capsys):
    tmp, _ = td_run
    moved = tmp_path / 'moved.pkl'  # the recorded detector path is gone and none is beside it
    saved = checkpoint.load(tmp / 'run.pkl')
    saved['meta']['topdown']['detector'] = str(tmp_path / 'gone' / 'run.detector.pkl')
    checkpoint.write(moved, saved)
    with pytest.raises(SystemExit) as exit_info:
        onnx_cli.main(['--checkpoint', str(moved), '--output', str(tmp_path / 'out' / 'model.onnx')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and str(moved) in err and 'run.detector.pkl is missing' in err
    assert '--detector-checkpoint' in err and not (tmp_path / 'out').exists()
    # --detector-checkpoint finds it
    onnx_cli.main(['--checkpoint', str(moved), '--output', str(tmp_path / 'out' / 'model.onnx'),
                      '--detector-checkpoint', str(tmp / 'run.detector.pkl'), '--input-size', '97x129'])
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['model.detector.onnx', 'model.onnx']
    assert stored_metadata(tmp_path / 'out' / 'model.onnx')['topdown']['detector'] == 'model.detector.onnx'


def test_a_pose_checkpoint_given_as_its_detector_is_one_line_exit_2(td_run, tmp_path, capsys):
    tmp, _ = td_run
    with pytest.raises(SystemExit) as exit_info:
        onnx_cli.main(['--checkpoint', str(tmp / 'run.pkl'), '--output', str(tmp_path / 'model.onnx'),
                          '--detector-checkpoint', str(tmp / 'run.pkl')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'run.pkl: a pose model, not a detector' in err
    assert list(tmp_path.iterdir()) == []


def test_a_detector_that_differs_from_torch_writes_nothing(td_run, tmp_path, monkeypatch):
    tmp, _ = td_run
    real = detector_export.OnnxDetector.detections
    monkeypatch.setattr(detector_export.OnnxDetector, 'detections',
                        lambda self, image: (lambda b, s: (b + 0.1, s))(*real(self, image)))
    mismatch = r'boxes differ from torch.s by up to 0\.1\d* pixels \(tolerance 0\.05\)'
    with pytest.raises(command.ExportMismatch, match=mismatch):
        command.run(export_args(tmp / 'run.pkl', tmp_path / 'model.onnx'), onnx_export.EXPORTER)
    assert list(tmp_path.iterdir()) == []


def test_a_file_without_detector_metadata_or_a_pose_model_is_not_a_detector(td_run, tiny_onnx, tmp_path):
    tmp, _ = td_run
    bare = onnx.load(str(tmp / 'exported' / 'model.detector.onnx'))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / 'bare.onnx'))
    with pytest.raises(metadata.ExportedModelError, match='bare.onnx: not an openfields model'):
        detector_export.load_detector_onnx(tmp_path / 'bare.onnx')
    with pytest.raises(metadata.ExportedModelError, match='tiny.onnx: a pose model, not a detector'):
        inference.load_detector(tiny_onnx, 'cpu')
    (tmp_path / 'junk.onnx').write_bytes(b'not onnx')
    with pytest.raises(metadata.ExportedModelError, match='junk.onnx: not a loadable ONNX model'):
        detector_export.load_detector_onnx(tmp_path / 'junk.onnx')
    # and the other way round: the detector is not a pose model
    with pytest.raises(metadata.ExportedModelError, match='model.detector.onnx: a detector, not a pose model'):
        runners.load(str(tmp / 'exported' / 'model.detector.onnx'))


def test_torchscript_export_of_a_top_down_model_names_export_onnx(td_run, tmp_path, capsys):
    tmp, _ = td_run
    with pytest.raises(SystemExit) as exit_info:
        torchscript_cli.main(['--checkpoint', str(tmp / 'run.pkl'), '--output', str(tmp_path / 'model.pt')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'python -m openfields.export_onnx' in err and 'top-down' in err
    assert list(tmp_path.iterdir()) == []


def test_a_detector_checkpoint_given_as_the_model_is_refused(td_run, tmp_path):
    tmp, _ = td_run
    with pytest.raises(ValueError, match='run.detector.pkl: a detector, not a pose model; give the pose checkpoint'):
        command.run(export_args(tmp / 'run.detector.pkl', tmp_path / 'model.onnx'), onnx_export.EXPORTER)
    assert list(tmp_path.iterdir()) == []
