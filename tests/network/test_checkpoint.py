"""Checkpoints: atomic writes, weights-only loading, clear refusals."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from openfields.network import checkpoint, factory
from openfields.datasets import coco_person
from openfields.datasets.keypoint_module import head_metas_for
from openfields.datasets.coco import KeypointCategory


def small_model():
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    return factory.build('resnet18', {}, head_metas_for(category, 'cocokp', 2, base_stride=16))


def test_saved_checkpoint_is_plain_and_rebuilds_the_model(tmp_path):
    model = small_model().eval()
    path = tmp_path / 'm.pkl'
    checkpoint.save(path, model, epoch=3, meta={'args': {'lr': 0.1}, 'version': 'x'})
    raw = torch.load(path, weights_only=True)
    assert raw['format'] == 'openfields.checkpoint' and raw['epoch'] == 3
    assert raw['model']['basenet']['name'] == 'resnet18'
    rebuilt = factory.from_checkpoint(checkpoint.load(path)).eval()
    assert rebuilt.head_metas[1].upsample_stride == 2 and rebuilt.head_metas[1].stride == 8
    image = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        for a, b in zip(model(image), rebuilt(image)):
            assert torch.equal(a, b)


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / 'm.pkl'
    checkpoint.save(path, model, epoch=1, meta={})

    def crash(obj, f, *args, **kwargs):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(OSError, match='disk full'):
        checkpoint.save(path, model, epoch=2, meta={})
    monkeypatch.undo()
    assert checkpoint.load(path)['epoch'] == 1
    assert [p.name for p in tmp_path.iterdir()] == ['m.pkl']


def test_truncated_or_foreign_files_are_refused_with_the_path(tmp_path):
    model = small_model()
    path = tmp_path / 'm.pkl'
    checkpoint.save(path, model, epoch=1, meta={})
    truncated = tmp_path / 'truncated.pkl'
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(checkpoint.CheckpointError, match='truncated.pkl: not a loadable openfields checkpoint'):
        checkpoint.load(truncated)
    with pytest.raises(checkpoint.CheckpointError, match='file not found'):
        checkpoint.load(tmp_path / 'nope.pkl')


def test_pickled_code_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ('touch ' + str(tmp_path / 'pwned'),))

    path = tmp_path / 'evil.pkl'
    torch.save({'format': checkpoint.FORMAT, 'payload': Evil()}, path)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(path)
    assert not (tmp_path / 'pwned').exists()


def test_a_training_process_killed_mid_run_leaves_the_last_checkpoint_loadable(tmp_path):
    out = tmp_path / 'killed.pkl'
    command = [sys.executable, '-m', 'openfields.train', '--dataset', 'synthetic',
               '--synthetic-train-images', '4', '--synthetic-val-images', '2', '--synthetic-image-size', '80',
               '--synthetic-square-edge', '65', '--synthetic-cache-dir', str(tmp_path / 'cache'),
               '--basenet', 'shufflenetv2k16', '--batch-size', '2', '--epochs', '1000', '--loader-workers', '0',
               '--output', str(out), '-q']
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (tmp_path / 'killed.pkl.epoch002').exists():
            time.sleep(0.05)
        assert (tmp_path / 'killed.pkl.epoch002').exists(), process.stderr.read1().decode()
        time.sleep(0.3)  # somewhere inside the next epochs, possibly inside a checkpoint write
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    epochs = sorted(tmp_path.glob('killed.pkl.epoch*'))
    assert checkpoint.load(epochs[-1])['epoch'] == int(epochs[-1].name[-3:])
