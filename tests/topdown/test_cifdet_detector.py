"""``--detector cifdet``: openfields' own CIFdet network as the detector of top-down mode, trained on the
shared training package with the composite-field losses; its checkpoints, boxes, and a command-line run."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.network import checkpoint
from openfields.topdown import detector_training, detectors, inference
from openfields.topdown.cifdet_detector import CifDetDetector
from openfields.training import distributed
from openfields.training.run_settings import RunSettings
from openfields.training.log import read_log

TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '96', '--basenet', 'shufflenetv2k16', '--loader-workers', '0', '--seed', '3',
        '--detector', 'cifdet', '--detector-image-size', '96', '--detector-lr', '1e-3',
        '--detector-batch-size', '2', '--detector-eval-interval', '1']


DATA = ['--dataset', 'synthetic', '--synthetic-train-images', '6', '--synthetic-val-images', '3',
        '--synthetic-image-size', '112']
TRAIN = ['--method', 'td', '--detector', 'cifdet', '--detector-image-size', '112', '--detector-epochs', '2',
         '--detector-lr', '1e-3', '--detector-eval-interval', '1', '--basenet', 'shufflenetv2k16', '--batch-size', '4',
         '--epochs', '2', '--lr', '1e-3', '--seed', '1', '--loader-workers', '0', '--topdown-crop-width', '96',
         '--topdown-crop-height', '128']


def run(module: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', f'openfields.{module}', *args], capture_output=True, text=True,
                          timeout=600)


def detector_run(tmp_path, epochs: int, *extra) -> pathlib.Path:
    """Train a cifdet detector the way ``--method td`` does; the final checkpoint's path."""
    args = train.cli(TINY + ['--synthetic-cache-dir', str(tmp_path / 'cache'), '--detector-epochs', str(epochs),
                             '--output', str(tmp_path / 'run.pkl'), *extra])
    train.seed_everything(args.seed)
    base = datasets_factory.datamodule_from_args(args, 16)
    context = distributed.Context(distributed.Launch())
    device = torch.device('cpu')
    return detector_training.detector_for(detector_training.DetectorChoice.from_args(args),
                                          RunSettings.from_args(args, device), context, device, base, args.output)


@pytest.fixture(scope='module')
def trained_detector(tmp_path_factory) -> pathlib.Path:
    return detector_run(tmp_path_factory.mktemp('cifdet'), 4)


def test_a_cifdet_run_writes_its_checkpoint_scores_box_map_and_its_loss_falls(trained_detector):
    assert trained_detector.name == 'run.detector.pkl' and trained_detector.is_file()
    records = read_log(f'{trained_detector}.log').records
    losses = [r['loss'] for r in records if r['type'] == 'train-epoch']
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0]
    assert any(r['type'] == 'val-epoch' for r in records)
    tests = [r for r in records if r['type'] == 'test']
    assert len(tests) == 4 and all(0.0 <= r['metrics']['test.mAP@50:95'] <= 1.0 for r in tests)
    saved = torch.load(trained_detector, map_location='cpu', weights_only=True)  # plain dicts and tensors
    assert saved['model']['detector']['name'] == 'cifdet'
    assert [m['type'] for m in saved['model']['head_metas']] == ['cifdet']
    assert saved['model']['head_metas'][0]['categories'] == ['individual']


def test_the_checkpoint_rebuilds_the_same_network_for_inference_and_checks(trained_detector):
    saved = checkpoint.load(trained_detector)
    detector = detectors.from_checkpoint(saved['model'])
    assert isinstance(detector, CifDetDetector) and detector.settings.name == 'cifdet'
    own, stored = detector.network.state_dict(), saved['model']['state_dict']
    assert own.keys() == stored.keys() and all(torch.equal(own[k], stored[k]) for k in own)
    assert isinstance(inference.load_detector(trained_detector, torch.device('cpu')), CifDetDetector)
    assert detector_training.check_detector_checkpoint(trained_detector, 'synthetic')['epoch'] == 4


def test_boxes_of_an_image_are_capped_sorted_in_its_pixels_and_may_be_none(trained_detector):
    detector = detectors.from_checkpoint(checkpoint.load(trained_detector)['model'])
    detector.settings = dataclasses.replace(detector.settings, score_threshold=0.0, max_boxes=3)
    torch.manual_seed(0)
    image = PIL.Image.fromarray((torch.rand(150, 300, 3) * 255).to(torch.uint8).numpy())
    boxes, scores = detector.boxes(image)
    assert boxes.shape == (len(scores), 4) and 1 <= len(boxes) <= 3
    assert list(scores) == sorted(scores, reverse=True) and boxes.dtype == np.float32
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert boxes[:, [0, 2]].max() <= 300 and boxes[:, [1, 3]].max() <= 150 and boxes.min() >= 0
    detection = detector.detect([torch.rand(3, 70, 96)])[0]  # any size: padded to the fields
    assert set(detection) == {'boxes', 'scores', 'labels'} and set(detection['labels'].tolist()) <= {1}
    detector.settings = dataclasses.replace(detector.settings, score_threshold=1.0)
    boxes, scores = detector.boxes(image)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_a_resumed_cifdet_run_ends_bit_identical_to_a_straight_run(tmp_path):
    straight = checkpoint.load(detector_run(tmp_path / 'a', 2, '--detector-eval-interval', '0'))
    detector_run(tmp_path / 'b', 1, '--detector-eval-interval', '0')
    resumed = checkpoint.load(detector_run(tmp_path / 'b', 2, '--detector-eval-interval', '0', '--detector-resume',
                                           str(tmp_path / 'b' / 'run.detector.pkl.epoch001')))
    a, b = straight['model']['state_dict'], resumed['model']['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_detector_pretrained_path_is_refused_for_cifdet():
    with pytest.raises(ValueError, match='--detector-pretrained x.pth: --detector cifdet takes auto or none'):
        detectors.DetectorSettings(name='cifdet', pretrained='x.pth')


@pytest.mark.slow  # 15-30 s end to end: make test-slow (CI runs it), make test stays near 10 minutes
def test_a_top_down_cifdet_run_from_the_command_line_trains_evaluates_and_predicts(tmp_path):
    data = DATA + ['--synthetic-cache-dir', str(tmp_path / 'cache')]
    result = run('train', *data, *TRAIN, '--output', str(tmp_path / 'run.pkl'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert checkpoint.load(tmp_path / 'run.detector.pkl')['model']['detector']['name'] == 'cifdet'
    result = run('eval', '--checkpoint', str(tmp_path / 'run.pkl'), *data, '--output', str(tmp_path / 'eval'))
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / 'eval.stats.json').read_text())
    assert stats['detector'].endswith('run.detector.pkl') and 0.0 <= stats['AP'] <= 1.0
    image = next((tmp_path / 'cache').rglob('*.png'))
    result = run('predict', '--checkpoint', str(tmp_path / 'run.pkl'), str(image), '--json-output', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert isinstance(json.loads((tmp_path / f'{image.name}.predictions.json').read_text()), list)


def test_bfloat16_gives_the_float32_boxes_to_a_fraction_of_a_pixel(trained_detector):
    detector = inference.load_detector(trained_detector, torch.device('cpu'), 'bfloat16')
    detector.settings = dataclasses.replace(detector.settings, score_threshold=0.0, max_boxes=5)
    images = sorted((trained_detector.parent / 'cache').rglob('*.png'))[:2]
    assert images
    differences = []
    for path in images:
        image = PIL.Image.open(path).convert('RGB')
        exact, exact_scores = detector.boxes(image)
        reduced, reduced_scores = detector.boxes(image, precision='bfloat16')
        assert reduced.dtype == np.float32 and len(exact) > 0
        differences.append(np.abs(exact[0] - reduced[0]).max())
        assert abs(exact_scores[0] - reduced_scores[0]) < 1e-4
    # the basenet in bfloat16 (not exact), the head in float32: 6e-5 px here
    assert 0 < max(differences) < 0.01
