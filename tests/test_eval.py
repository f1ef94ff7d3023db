"""``python -m openfields.eval``: oracle accuracy, checkpoints, stats files, --watch."""

import json
import pathlib
import select
import signal
import subprocess
import sys
import time

import pytest

from openfields import eval as eval_cli
from openfields import train
from openfields.datasets.coco import KeypointCategory
from openfields.network import checkpoint, factory
from openfields.datasets import coco_person
from openfields.datasets.keypoint_module import head_metas_for

SHARED = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'
needs_shared = pytest.mark.skipif(not (SHARED / 'coco-val-sample' / 'annotations.json').is_file(),
                                  reason=f'shared sample data not found at {SHARED}')


def cocokp_flags(folder: pathlib.Path) -> list[str]:
    return ['--dataset', 'cocokp', '--cocokp-val-annotations', str(folder / 'annotations.json'),
            '--cocokp-train-annotations', str(folder / 'annotations.json'),
            '--cocokp-val-image-dir', str(folder / 'images'), '--cocokp-train-image-dir', str(folder / 'images')]


def oracle_ap(argv, tmp_path) -> dict:
    out = tmp_path / 'oracle'
    results = eval_cli.run(eval_cli.parser().parse_args(
        argv + ['--oracle', 'cif', 'caf', '--oracle-stride', '16', '--cocokp-upsample', '2',
                '--synthetic-upsample', '2', '--loader-workers', '0', '--output', str(out), '--device', 'cpu']))
    stats = json.loads((tmp_path / 'oracle.stats.json').read_text())
    assert stats == json.loads(json.dumps(results[0], default=str))
    return stats


@needs_shared
def test_oracle_fields_recover_the_coco_sample(tmp_path):
    stats = oracle_ap(cocokp_flags(SHARED / 'coco-val-sample'), tmp_path)
    # two labelled keypoints of the sample are out of reach of COCO's skeleton (a nose whose eyes are
    # unlabelled, a wrist whose elbow is unlabelled): fragment merging gives them back to their person
    assert stats['AP'] >= 0.99
    assert stats['n_images'] == 4
    assert {'AP50', 'AP75', 'APM', 'APL', 'AR', 'decoder_time_ms', 'nn_time_ms', 'version'} <= set(stats)


@needs_shared
def test_oracle_fields_recover_crowdpose_through_the_generic_flags(tmp_path):
    # the CrowdPose json ships COCO's skeleton, which does not fit its 14 keypoints: a skeleton derived
    # from the annotations replaces it
    stats = oracle_ap(cocokp_flags(SHARED / 'crowdpose-sample'), tmp_path)
    assert stats['AP'] >= 0.99


@needs_shared
@pytest.mark.parametrize('force_complete', [False, True])
def test_oracle_fields_recover_both_samples_with_and_without_force_complete(tmp_path, force_complete):
    for name in ('coco-val-sample', 'crowdpose-sample'):
        argv = cocokp_flags(SHARED / name) + (['--force-complete-pose'] if force_complete else [])
        assert oracle_ap(argv, tmp_path)['AP'] >= 0.99, name


def test_oracle_fields_recover_the_synthetic_validation_set(tmp_path):
    stats = oracle_ap(['--dataset', 'synthetic', '--synthetic-val-images', '16', '--synthetic-train-images', '2',
                       '--synthetic-cache-dir', str(tmp_path / 'cache')], tmp_path)
    assert stats['AP'] >= 0.99


@needs_shared
def test_eval_needs_no_training_json(tmp_path):
    folder = SHARED / 'coco-val-sample'
    argv = ['--dataset', 'cocokp', '--cocokp-val-annotations', str(folder / 'annotations.json'),
            '--cocokp-val-image-dir', str(folder / 'images'),
            '--cocokp-train-annotations', str(tmp_path / 'absent.json')]
    assert oracle_ap(argv, tmp_path)['n_images'] == 4


@needs_shared
def test_oracle_keeps_occluded_keypoints_that_training_suppresses(tmp_path):
    # training unlabels occluded keypoints next to a visible one of the same type on another person;
    # the oracle encodes what the metric scores, so by default it keeps them
    args = eval_cli.parser().parse_args(cocokp_flags(SHARED / 'coco-val-sample'))
    assert args.encoder_suppress_selfhidden is False
    assert train.parser().parse_args([]).encoder_suppress_selfhidden is True


def write_checkpoint(path: pathlib.Path, slowly: bool = False):
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    model = factory.build('resnet18', {}, head_metas_for(category, 'synthetic', 1, base_stride=16))
    if not slowly:
        checkpoint.save(path, model, epoch=1, meta={})
        return
    tmp = path.with_name('staging.bin')
    checkpoint.save(tmp, model, epoch=1, meta={})
    data = tmp.read_bytes()
    tmp.unlink()
    with open(path, 'wb') as f:  # a copy arriving slowly, as over a network file system
        f.write(data[:len(data) // 2])
        f.flush()
        time.sleep(4.0)
        f.write(data[len(data) // 2:])


def test_watch_evaluates_each_checkpoint_exactly_once(tmp_path):
    cache = tmp_path / 'cache'
    command = [sys.executable, '-m', 'openfields.eval', '--watch', '--watch-interval', '0.5',
               '--checkpoint', str(tmp_path / 'model-*.pkl'), '--dataset', 'synthetic',
               '--synthetic-val-images', '2', '--synthetic-train-images', '2', '--synthetic-image-size', '97',
               '--synthetic-cache-dir', str(cache), '--coco-eval-long-edge', '97', '--loader-workers', '0']
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2.0)
        write_checkpoint(tmp_path / 'model-a.pkl')
        write_checkpoint(tmp_path / 'model-b.pkl', slowly=True)
        deadline = time.time() + 120
        while time.time() < deadline and not all(
                (tmp_path / f'model-{x}.pkl.eval-synthetic.stats.json').exists() for x in 'ab'):
            time.sleep(0.2)
        time.sleep(1.5)  # a few more polls: nothing may be evaluated again
    finally:
        watcher.send_signal(signal.SIGINT)
        output, _ = watcher.communicate(timeout=30)
    assert watcher.returncode == 130, output
    for name in ('model-a.pkl', 'model-b.pkl'):
        assert (tmp_path / f'{name}.eval-synthetic.stats.json').exists(), output
        assert output.count(f'{tmp_path / name}: AP') == 1, output
    assert 'Traceback' not in output


def test_checkpoint_glob_matching_nothing_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.main(['--checkpoint', str(tmp_path / 'none-*.pkl'), '--dataset', 'synthetic',
                       '--synthetic-cache-dir', str(tmp_path / 'cache')])
    assert exit_info.value.code == 2
    assert 'matches no file' in capsys.readouterr().err


def test_checkpoint_whose_heads_do_not_match_the_dataset_names_both(tmp_path, capsys):
    category = KeypointCategory(id=1, name='mouse', keypoints=['snout', 'tail', 'ear'], skeleton=[(1, 2), (1, 3)],
                                sigmas=None)
    path = tmp_path / 'mouse.pkl'
    metas = head_metas_for(category, 'mice', 1, base_stride=16)
    checkpoint.save(path, factory.build('resnet18', {}, metas), epoch=1, meta={})
    with pytest.raises(SystemExit):
        eval_cli.main(['--checkpoint', str(path), '--dataset', 'synthetic', '--synthetic-val-images', '2',
                       '--synthetic-train-images', '2', '--synthetic-cache-dir', str(tmp_path / 'cache')])
    err = capsys.readouterr().err
    assert "['mice.cif', 'mice.caf']" in err and 'synthetic.cif' in err


def test_an_output_under_a_regular_file_stops_eval_before_the_checkpoint_or_data_are_read(tmp_path, capsys):
    (tmp_path / 'afile').write_text('not a folder')
    cache = tmp_path / 'cache'
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.main(['--checkpoint', str(tmp_path / 'missing.pkl'), '--dataset', 'synthetic',
                       '--synthetic-cache-dir', str(cache), '--output', str(tmp_path / 'afile' / 'x')])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f'openfields.eval: error: --output {tmp_path / "afile" / "x"}: {tmp_path / "afile"} is a file, not a folder']
    assert not cache.exists()


def test_interrupting_watch_exits_130_with_one_line_saying_so(tmp_path):
    command = [sys.executable, '-m', 'openfields.eval', '--watch', '--watch-interval', '0.2',
               '--checkpoint', str(tmp_path / 'model-*.pkl'), '--dataset', 'synthetic',
               '--synthetic-cache-dir', str(tmp_path / 'cache')]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, started = time.time() + 60, ''
        while 'waiting' not in started and time.time() < deadline:  # polling: past start-up
            if select.select([watcher.stderr], [], [], 1.0)[0]:
                started = watcher.stderr.readline()
        assert 'matches no file yet; waiting' in started
    finally:
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130
    assert err.splitlines() == ['openfields.eval: interrupted']


def test_eval_n_images_scores_only_the_first_n_and_logs_progress(tmp_path, caplog):
    caplog.set_level('INFO')
    argv = ['--dataset', 'synthetic', '--synthetic-val-images', '6', '--synthetic-train-images', '2',
            '--synthetic-image-size', '80', '--synthetic-cache-dir', str(tmp_path / 'cache'),
            '--eval-n-images', '3', '--progress-interval', '0']
    stats = oracle_ap(argv, tmp_path)
    assert stats['n_images'] == 3 and stats['AP'] >= 0.9
    progress = [r.getMessage() for r in caplog.records if r.name == 'openfields.show.progress']
    assert progress[-1].startswith('evaluating the oracle: 3/3 images (100%)') and 'ETA 0:00:00' in progress[-1]
    assert len(progress) == 3  # one line per image with a zero interval (batch size 1)


@needs_shared
def test_an_exported_model_evaluates_to_its_checkpoint_s_predictions(tiny_checkpoint, tiny_onnx, tmp_path):
    """eval opens models through the inference owner: an ONNX export is evaluated like its checkpoint."""
    predictions = {}
    for name, model in (('checkpoint', tiny_checkpoint), ('onnx', tiny_onnx)):
        eval_cli.run(eval_cli.parser().parse_args(
            cocokp_flags(SHARED / 'coco-val-sample') + [
                '--checkpoint', str(model), '--long-edge', '161', '--seed-threshold', '0.1', '--instance-threshold',
                '0', '--loader-workers', '0', '--write-predictions', '--output', str(tmp_path / name)]))
        predictions[name] = json.loads((tmp_path / f'{name}.pred.json').read_text())
        assert json.loads((tmp_path / f'{name}.stats.json').read_text())['n_images'] == 4
    assert len(predictions['checkpoint']) == len(predictions['onnx']) > 0  # a random network's weak poses
    for ours, exported in zip(predictions['checkpoint'], predictions['onnx']):
        assert ours['image_id'] == exported['image_id']
        assert max(abs(a - b) for a, b in zip(ours['keypoints'], exported['keypoints'])) < 0.05


def test_bfloat16_without_a_checkpoint_is_refused_the_oracle_runs_no_network(tmp_path, capsys):
    cache = tmp_path / 'cache'
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.main(['--oracle', 'cif', 'caf', '--dataset', 'synthetic', '--synthetic-cache-dir', str(cache),
                       '--precision', 'bfloat16'])
    assert exit_info.value.code == 2 and not cache.exists()
    assert capsys.readouterr().err.splitlines() == [
        "openfields.eval: error: --precision bfloat16 is the arithmetic of a --checkpoint's network; the oracle "
        'runs none']
