"""A top-down run under ``--ddp`` (torchrun, two real processes, gloo on the CPU): the detector run shares
its images between the ranks like a pose run, rank 0 writes and scores, then the pose model trains."""

import pytest

from distributed_runs import torchrun

from openfields.network import checkpoint
from openfields.training.log import read_log


@pytest.mark.slow  # 15-30 s end to end: make test-slow (CI runs it), make test stays near 10 minutes
def test_a_top_down_run_under_ddp_shards_the_detector_images_and_rank_0_writes(tmp_path):
    result = torchrun(['--method', 'td', '--detector', 'ssdlite320_mobilenet_v3_large', '--detector-pretrained',
                       'none', '--detector-epochs', '2', '--detector-eval-interval', '1', '--detector-lr', '1e-3',
                       '--dataset', 'synthetic', '--synthetic-train-images', '8', '--synthetic-val-images', '4',
                       '--synthetic-image-size', '96', '--synthetic-cache-dir', str(tmp_path / 'cache'),
                       '--basenet', 'shufflenetv2k16', '--batch-size', '2', '--epochs', '1', '--seed', '5',
                       '--topdown-crop-width', '48', '--topdown-crop-height', '64', '--loader-workers', '0',
                       '--device', 'cpu', '--output', str(tmp_path / 'run.pkl')])
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_log(tmp_path / 'run.detector.pkl.log').records
    process = next(r for r in records if r['type'] == 'process')
    epochs = [r for r in records if r['type'] == 'train-epoch']
    assert process['world_size'] == 2
    assert [r['n_batches'] for r in epochs] == [2, 2]  # 8 images, 2 ranks, batches of 2
    assert len([r for r in records if r['type'] == 'test']) == 2  # rank 0 scored, once per epoch
    assert checkpoint.load(tmp_path / 'run.pkl')['meta']['topdown']['detector'].endswith('run.detector.pkl')
