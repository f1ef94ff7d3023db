"""``--method td`` from the command line: train the detector, then the pose model on crops; eval and predict
with only ``--checkpoint``; bad input gets one clear line."""

import json
import pathlib
import subprocess
import sys

import pytest

from openfields.network import checkpoint

DATA = ['--dataset', 'synthetic', '--synthetic-train-images', '6', '--synthetic-val-images', '3',
        '--synthetic-image-size', '112']
TRAIN = ['--method', 'td', '--detector', 'ssdlite320_mobilenet_v3_large', '--detector-pretrained', 'none',
         '--detector-epochs', '2', '--detector-lr', '1e-3', '--detector-eval-interval', '1',
         '--basenet', 'shufflenetv2k16', '--batch-size', '4', '--epochs', '2', '--lr', '1e-3', '--seed', '1',
         '--loader-workers', '0', '--topdown-crop-width', '96', '--topdown-crop-height', '128',
         '--synthetic-upsample', '2']


def run(module: str, *args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', f'openfields.{module}', *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A two-epoch top-down run (detector, then pose model) on synthetic images."""
    tmp = tmp_path_factory.mktemp('td')
    data = DATA + ['--synthetic-cache-dir', str(tmp / 'cache')]
    result = run('train', *data, *TRAIN, '--output', str(tmp / 'run.pkl'))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, data


def test_a_top_down_run_writes_a_detector_and_a_pose_model_that_records_it(trained):
    tmp, _ = trained
    pose = checkpoint.load(tmp / 'run.pkl')
    detector = checkpoint.load(tmp / 'run.detector.pkl')
    assert pose['meta']['topdown']['detector'] == str((tmp / 'run.detector.pkl').resolve())
    # 96 x 128 is rounded up to k * 16 + 1 pixels (shufflenetv2k16's stride)
    assert pose['meta']['topdown']['crop_width'] == 97 and pose['meta']['topdown']['crop_height'] == 129
    assert [m['name'] for m in pose['model']['head_metas']] == ['cif']  # one individual per crop: no CAF
    assert detector['model']['detector']['name'] == 'ssdlite320_mobilenet_v3_large'
    assert (tmp / 'run.detector.pkl.log').is_file() and (tmp / 'run.detector.best.pkl').is_file()


def test_eval_needs_only_the_checkpoint_and_oracle_boxes_score_the_pose_model_alone(trained):
    tmp, data = trained
    for extra, output in (([], 'detected'), (['--oracle-boxes'], 'oracle')):
        result = run('eval', '--checkpoint', str(tmp / 'run.pkl'), *data, *extra, '--output', str(tmp / output))
        assert result.returncode == 0, result.stderr[-3000:]
    detected = json.loads((tmp / 'detected.stats.json').read_text())
    oracle = json.loads((tmp / 'oracle.stats.json').read_text())
    assert detected['method'] == 'td' and detected['detector'].endswith('run.detector.pkl')
    assert detected['detector_time_ms'] > 0 and detected['nn_time_ms'] > 0 and detected['n_images'] == 3
    assert oracle['oracle_boxes'] is True and oracle['detector'] is None and oracle['detector_time_ms'] < 1.0
    assert 0.0 <= detected['AP'] <= 1.0 and 0.0 <= oracle['AP'] <= 1.0


def test_predict_needs_only_the_checkpoint_and_finds_a_moved_run_s_detector(trained, tmp_path):
    tmp, _ = trained
    for name in ('run.pkl', 'run.detector.pkl'):  # the run moved: the recorded detector path is gone
        (tmp_path / name).write_bytes((tmp / name).read_bytes())
    image = next((tmp / 'cache').rglob('*.png'))
    result = run('predict', '--checkpoint', str(tmp_path / 'run.pkl'), str(image), '--json-output', str(tmp_path),
                 '--detector-checkpoint', str(tmp_path / 'run.detector.pkl'))
    assert result.returncode == 0, result.stderr[-3000:]
    poses = json.loads((tmp_path / f'{image.name}.predictions.json').read_text())
    assert all(len(pose['keypoints']) == 17 * 3 for pose in poses)
    assert 'detector' in result.stderr and 'network' in result.stderr  # per-stage times


def test_an_unknown_detector_is_refused_with_the_known_names_before_anything_is_written(tmp_path):
    result = run('train', *DATA, '--synthetic-cache-dir', str(tmp_path / 'cache'), *TRAIN, '--detector', 'yolov8',
                 '--output', str(tmp_path / 'run.pkl'))
    assert result.returncode == 2
    assert 'unknown detector' in result.stderr and 'fasterrcnn_resnet50_fpn_v2' in result.stderr
    assert not list(tmp_path.glob('run*'))


def test_a_detector_of_another_dataset_is_refused(trained, tmp_path):
    tmp, _ = trained
    result = run('train', '--dataset', 'cocokp', '--cocokp-train-annotations', str(tmp / 'missing.json'), *TRAIN,
                 '--detector-checkpoint', str(tmp / 'run.detector.pkl'), '--output', str(tmp_path / 'run.pkl'))
    assert result.returncode == 2 and 'missing.json' in result.stderr  # the dataset is read first
    check = checkpoint.load(tmp / 'run.detector.pkl')
    assert check['meta']['dataset'] == 'synthetic'
    from openfields.topdown.detector_training import check_detector_checkpoint
    with pytest.raises(checkpoint.CheckpointError, match='a detector of --dataset synthetic, not cocokp'):
        check_detector_checkpoint(tmp / 'run.detector.pkl', 'cocokp')


@pytest.mark.slow  # 50 s: export, then predict and video through the export (make test-slow)
def test_the_onnx_export_of_a_top_down_model_predicts_and_runs_video_as_the_checkpoint_does(trained, tmp_path):
    """predict and video open the exported pipeline (pose model + detector, crop geometry in the metadata)."""
    tmp, _ = trained
    result = run('export_onnx', '--checkpoint', str(tmp / 'run.pkl'), '--output', str(tmp_path / 'model.onnx'),
                 '--input-size', '97x129')
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.detector.onnx', 'model.onnx']
    frames = tmp_path / 'frames'
    frames.mkdir()
    for i, image in enumerate(sorted((tmp / 'cache').rglob('*.png'))[:2]):
        (frames / f'{i:03d}.png').write_bytes(image.read_bytes())
    # a two-epoch model's weak keypoints; its boxes' scores cluster around 0.5: none near the threshold
    low = ['--cif-th', '0.1', '--instance-threshold', '0', '--detector-score-threshold', '0.5005']
    poses = {}
    for name, model in (('torch', tmp / 'run.pkl'), ('onnx', tmp_path / 'model.onnx')):
        (tmp_path / name).mkdir()
        result = run('predict', str(frames), '--checkpoint', str(model), '--json-output', str(tmp_path / name), *low)
        assert result.returncode == 0, result.stderr[-3000:]
        poses[name] = [json.loads((tmp_path / name / f'{i:03d}.png.predictions.json').read_text()) for i in range(2)]
    assert [len(p) for p in poses['onnx']] == [len(p) for p in poses['torch']] and sum(map(len, poses['onnx'])) > 0
    # the same boxes, crops and fields (within 2e-6); the argmax of a two-epoch model's nearly flat confidence
    # maps moves a few keypoints on such differences (3 % here), the others agree to the rounding of the json
    same = [max(abs(a - b) for a, b in zip(ours['keypoints'][k:k + 3], exported['keypoints'][k:k + 3])) < 0.05
            for ours, exported in zip(sum(poses['torch'], []), sum(poses['onnx'], []))
            for k in range(0, len(ours['keypoints']), 3)]
    assert sum(same) / len(same) > 0.9
    result = run('video', str(frames), '--checkpoint', str(tmp_path / 'model.onnx'), '--json-output',
                 str(tmp_path / 'v.jsonl'), *low)
    assert result.returncode == 0, result.stderr[-3000:]
    video = [json.loads(line)['annotations'] for line in (tmp_path / 'v.jsonl').read_text().splitlines()]
    assert video == poses['onnx']
    alone = tmp_path / 'alone'  # the pose model without its detector part
    alone.mkdir()
    (alone / 'model.onnx').write_bytes((tmp_path / 'model.onnx').read_bytes())
    result = run('predict', str(frames), '--checkpoint', str(alone / 'model.onnx'), '--json-output', str(alone / 'out'))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert 'model.onnx' in result.stderr and 'model.detector.onnx is missing' in result.stderr
    assert sorted(p.name for p in alone.iterdir()) == ['model.onnx']
    # exported graphs are float32: bfloat16 is refused for the pose model and for an exported detector alike
    for model, detector in ((tmp_path / 'model.onnx', []), (tmp / 'run.pkl', ['--detector-checkpoint',
                                                                              str(tmp_path / 'model.detector.onnx')])):
        result = run('predict', str(frames), '--checkpoint', str(model), *detector, '--precision', 'bfloat16',
                     '--json-output', str(tmp_path / 'bfloat16'))
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert '--precision bfloat16:' in result.stderr and 'runs in float32 only' in result.stderr
    assert not (tmp_path / 'bfloat16').exists()


def test_eval_decodes_with_the_checkpoint_s_heads_whatever_the_dataset_flags(trained):
    """The pose model has upsampling heads (stride 8); evaluating without --synthetic-upsample 2 must give
    the same poses, not poses decoded at the dataset's default stride 16."""
    tmp, data = trained
    predictions = []
    for extra in (['--synthetic-upsample', '2'], []):
        output = tmp / f'upsample{len(extra)}'
        result = run('eval', '--checkpoint', str(tmp / 'run.pkl'), *data, *extra, '--oracle-boxes',
                     '--write-predictions', '--seed-threshold', '0', '--instance-threshold', '0',
                     '--keypoint-threshold', '0', '--output', str(output))
        assert result.returncode == 0, result.stderr[-3000:]
        predictions.append(json.loads(pathlib.Path(f'{output}.pred.json').read_text()))
    assert predictions[0] and predictions[0] == predictions[1]


@pytest.mark.slow  # 15-30 s end to end: make test-slow (CI runs it), make test stays near 10 minutes
def test_video_of_a_top_down_model_gives_each_frame_the_poses_predict_gives_the_same_image(trained, tmp_path):
    tmp, _ = trained
    frames = tmp_path / 'frames'
    frames.mkdir()
    for i, image in enumerate(sorted((tmp / 'cache').rglob('*.png'))[:3]):
        (frames / f'{i:03d}.png').write_bytes(image.read_bytes())
    low = ['--cif-th', '0.1', '--instance-threshold', '0']  # a two-epoch model's weak keypoints
    result = run('video', str(frames), '--checkpoint', str(tmp / 'run.pkl'), '--json-output', str(tmp_path / 'v.jsonl'),
                 '--dlc-table', str(tmp_path / 'v.csv'), '--batch-size', '2', *low)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'top-down' in result.stderr and 'detector' in result.stderr
    result = run('predict', str(frames), '--checkpoint', str(tmp / 'run.pkl'), '--json-output', str(tmp_path), *low)
    assert result.returncode == 0, result.stderr[-3000:]
    video = [json.loads(line) for line in (tmp_path / 'v.jsonl').read_text().splitlines()]
    assert [line['frame'] for line in video] == [0, 1, 2]
    n_poses = 0
    for line in video:
        predicted = json.loads((tmp_path / f'{line["frame"]:03d}.png.predictions.json').read_text())
        assert line['annotations'] == predicted
        n_poses += len(predicted)
    assert n_poses > 0  # the comparison saw poses, not only empty frames
    table = (tmp_path / 'v.csv').read_text().splitlines()
    assert len(table) == 3 + 3 and table[1].startswith('bodyparts,nose,nose,nose,left_eye')
    assert [row.split(',')[0] for row in table[3:]] == ['0', '1', '2']


@pytest.mark.slow  # 15-30 s end to end, as the test above
def test_video_with_the_detector_on_every_third_frame_tracks_boxes_from_the_poses_in_between(trained, tmp_path):
    """The same frame three times: the tracked boxes of frames 1 and 2 come from frame 0's poses, the detector
    runs on frames 0 and 3; a detected frame's poses are those of --detect-every 1."""
    tmp, _ = trained
    frames = tmp_path / 'frames'
    frames.mkdir()
    image = sorted((tmp / 'cache').rglob('*.png'))[0].read_bytes()
    for i in range(4):
        (frames / f'{i:03d}.png').write_bytes(image)
    low = ['--cif-th', '0.1', '--instance-threshold', '0']
    lines = {}
    for every in (1, 3):
        result = run('video', str(frames), '--checkpoint', str(tmp / 'run.pkl'), '--json-output',
                     str(tmp_path / f'v{every}.jsonl'), '--detect-every', str(every), *low)
        assert result.returncode == 0, result.stderr[-3000:]
        written = (tmp_path / f'v{every}.jsonl').read_text().splitlines()
        lines[every] = [json.loads(line)['annotations'] for line in written]
    assert 'the detector on one frame in 3' in result.stderr and 'the detector ran on 2 of them' in result.stderr
    assert lines[3][0] == lines[1][0] and lines[3][3] == lines[1][3] and lines[1][0]  # frames with the detector
    assert all(len(poses) == len(lines[1][0]) for poses in lines[3])  # each pose's box went on to the next frame
    assert lines[3][1] != lines[1][1]  # a box around a pose is not the detector's box: another crop


def test_video_refuses_a_project_whose_body_parts_the_model_lacks_before_writing(trained, tmp_path):
    tmp, _ = trained
    project = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'
    if not (project / 'config.yaml').is_file():
        pytest.skip(f'shared DeepLabCut project not found at {project}')
    frames = tmp_path / 'frames'
    frames.mkdir()
    (frames / '000.png').write_bytes(next((tmp / 'cache').rglob('*.png')).read_bytes())
    result = run('video', str(frames), '--checkpoint', str(tmp / 'run.pkl'), '--json-output', str(tmp_path / 'v.jsonl'),
                 '--dlc-table', str(tmp_path / 'v.csv'), '--dlc-project', str(project), '-q')
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and 'run.pkl' in result.stderr and 'body parts' in result.stderr
    assert not list(tmp_path.glob('v.*'))


def test_eval_in_bfloat16_runs_the_detector_and_pose_network_in_it_and_records_it(trained, tmp_path):
    tmp, data = trained
    scores = {}
    for precision in ('float32', 'bfloat16'):
        result = run('eval', '--checkpoint', str(tmp / 'run.pkl'), *data, '--precision', precision, '--output',
                     str(tmp_path / precision))
        assert result.returncode == 0, result.stderr[-3000:]
        scores[precision] = json.loads((tmp_path / f'{precision}.stats.json').read_text())
    assert scores['bfloat16']['args']['precision'] == 'bfloat16' and scores['bfloat16']['n_images'] == 3
    assert abs(scores['bfloat16']['AP'] - scores['float32']['AP']) <= 0.05
