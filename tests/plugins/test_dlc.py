"""The dlc plugin: DeepLabCut project folders (config.yaml + labeled-data CSVs) as an openfields dataset."""

import dataclasses
import json
import logging
import pathlib
import re

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
import yaml

from openfields import eval as eval_cli
from openfields import predict, train
from openfields.datasets import factory as datasets_factory
from openfields.datasets.coco import DatasetError
from openfields.decoder.annotation import Annotation
from openfields.network import checkpoint
from openfields.plugins.dlc import project
from openfields.plugins.dlc.split import make_split

SHARED_PROJECT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'
needs_shared = pytest.mark.skipif(not (SHARED_PROJECT / 'config.yaml').is_file(),
                                  reason=f'DeepLabCut sample project not found at {SHARED_PROJECT}')

BODYPARTS = ['snout', 'leftear', 'rightear', 'tailbase']
COLOURS = [(255, 60, 60), (60, 255, 60), (60, 60, 255), (255, 255, 60)]


# --- writing small projects ---------------------------------------------------------------------------------

def write_image(path: pathlib.Path, size, points=()):
    """A dark PNG with a coloured dot at each labelled point (so a network has something to see)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = PIL.Image.new('RGB', size, (30, 30, 30))
    draw = PIL.ImageDraw.Draw(image)
    for (x, y), colour in zip(points, COLOURS * 4):
        if x is not None:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    image.save(path)


def write_csv(path: pathlib.Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(','.join('' if c is None else str(c) for c in row) + '\n' for row in rows))


def single_animal_header(bodyparts=BODYPARTS, scorer='me'):
    return [['scorer'] + [scorer] * 2 * len(bodyparts),
            ['bodyparts'] + [b for b in bodyparts for _ in 'xy'],
            ['coords'] + ['x', 'y'] * len(bodyparts)]


def cell_values(points):
    return [v for p in points for v in ((None, None) if p is None else p)]


@pytest.fixture()
def mice(tmp_path):
    """A single-animal project: 6 frames in two videos, 64x48 and 80x60 images, one unlabelled ear."""
    root = tmp_path / 'mice-me-2024-01-01'
    root.mkdir()
    (root / 'config.yaml').write_text(yaml.safe_dump({
        'Task': 'mice', 'scorer': 'me', 'project_path': '/somewhere/else', 'multianimalproject': False,
        'bodyparts': BODYPARTS, 'skeleton': [['snout', 'leftear'], ['snout', 'rightear'], ['snout', 'tailbase']],
        'pcutoff': 0.5, 'TrainingFraction': [0.67]}))
    for video, size in (('v1', (64, 48)), ('v2', (80, 60))):
        rows = single_animal_header()
        for i in range(3):
            x, y = 20 + 5 * i, 20 + 3 * i
            points = [(x, y), (x + 8, y - 6), (x + 8, y + 6), (x + 30, y)]
            if video == 'v2' and i == 0:
                points[2] = None  # unlabelled
            relative = f'labeled-data/{video}/img{i:03d}.png'
            write_image(root / relative, size, [p or (None, None) for p in points])
            rows.append([relative] + cell_values(points))
        write_csv(root / 'labeled-data' / video / 'CollectedData_me.csv', rows)
    return root


def mice_args(root, *extra):
    return train.cli(['--dataset', 'dlc', '--dlc-project', str(root), '--basenet', 'shufflenetv2k16',
                      '--loader-workers', '0', *extra])


def datamodule(root, *extra):
    return datasets_factory.datamodule_from_args(mice_args(root, *extra), base_stride=16)


# --- the shared DeepLabCut example project ------------------------------------------------------------------

@needs_shared
def test_shared_project_has_116_frames_of_4_body_parts_read_at_full_precision():
    config = project.load_config(project.project_root(SHARED_PROJECT))
    frames = project.load_frames(config)
    assert config.bodyparts == BODYPARTS and not config.multi_animal
    assert config.pcutoff == 0.4 and config.training_fraction == 0.95 and config.skeleton == []
    assert len(frames) == 116 and {(f.width, f.height) for f in frames} == {(640, 480)}
    assert all(f.keypoints.shape == (1, 4, 3) and np.all(f.keypoints[..., 2] == 2) for f in frames)
    first = frames[0]
    assert first.path == 'labeled-data/m4s1/img0000.png'
    np.testing.assert_allclose(first.keypoints[0, :, :2], [[21.521, 265.428], [33.819, 265.941],
                                                           [19.984, 250.056], [87.11, 152.698]], atol=1e-3)


@needs_shared
def test_shared_project_splits_110_train_6_test_frames_and_derives_a_skeleton(caplog):
    with caplog.at_level(logging.INFO):
        dlc = datamodule(SHARED_PROJECT)
    assert len(dlc.split.train) == 110 and len(dlc.split.test) == 6
    assert not set(dlc.split.train) & set(dlc.split.test)
    skeleton = dlc.head_metas[1].skeleton
    assert len(skeleton) == 3 and {j for pair in skeleton for j in pair} == {1, 2, 3, 4}  # a tree over all
    assert '"skeleton" is empty' in caplog.text
    assert dlc.evaluation.pcutoff == 0.4  # config.yaml's
    assert dlc.head_metas[0].hflip == {'leftear': 'rightear', 'rightear': 'leftear'}


# --- reading labels -----------------------------------------------------------------------------------------

def test_labels_keep_unlabelled_cells_as_v0_and_each_image_its_own_size(mice):
    config = project.load_config(project.project_root(mice / 'config.yaml'))
    frames = project.load_frames(config)
    assert [f.path for f in frames][:2] == ['labeled-data/v1/img000.png', 'labeled-data/v1/img001.png']
    assert [(f.width, f.height) for f in frames] == [(64, 48)] * 3 + [(80, 60)] * 3
    unlabelled = frames[3].keypoints[0]
    assert unlabelled[:, 2].tolist() == [2, 2, 0, 2] and unlabelled[2, :2].tolist() == [0, 0]
    assert config.skeleton == [(1, 2), (1, 3), (1, 4)]
    assert frames[4].keypoints[0, 3].tolist() == [55, 23, 2]


def test_image_path_in_three_index_columns_is_read(mice):
    csv_path = mice / 'labeled-data' / 'v1' / 'CollectedData_me.csv'
    rows = [r.split(',') for r in csv_path.read_text().splitlines()]
    rewritten = [[r[0], '', ''] + r[1:] for r in rows[:3]] + [r[0].split('/') + r[1:] for r in rows[3:]]
    write_csv(csv_path, rewritten)
    config = project.load_config(mice)
    assert [f.path for f in project.load_frames(config)][0] == 'labeled-data/v1/img000.png'


def test_multi_animal_csv_has_individuals_and_drops_unlabelled_ones(tmp_path):
    root = tmp_path / 'pair'
    root.mkdir()
    (root / 'config.yaml').write_text(yaml.safe_dump({
        'Task': 'pair', 'multianimalproject': True, 'individuals': ['m1', 'm2'], 'bodyparts': 'MULTI!',
        'multianimalbodyparts': ['snout', 'tail'], 'uniquebodyparts': ['corner'], 'skeleton': []}))
    rows = [['scorer'] + ['me'] * 10,
            ['individuals'] + ['m1'] * 4 + ['m2'] * 4 + ['single'] * 2,
            ['bodyparts'] + ['snout', 'snout', 'tail', 'tail'] * 2 + ['corner', 'corner'],
            ['coords'] + ['x', 'y'] * 5]
    rows.append(['labeled-data/v/a.png', 10, 12, 30, 32, None, None, None, None, 5, 5])  # m2 not labelled
    rows.append(['labeled-data/v/b.png', 10, 12, None, None, 50, 52, 70, 72, 5, 5])  # m1 tail missing
    rows.append(['labeled-data/v/c.png', 10, 12, 130, 32, 50, 52, 70, 72, None, None])  # x=130 outside 120
    write_csv(root / 'labeled-data' / 'v' / 'CollectedData_me.csv', rows)
    for name, size in (('a', (100, 80)), ('b', (100, 80)), ('c', (120, 90))):
        write_image(root / 'labeled-data' / 'v' / f'{name}.png', size)

    frames = project.load_frames(project.load_config(root))
    a, b, c = frames
    assert a.individuals == ['m1'] and a.keypoints.tolist() == [[[10, 12, 2], [30, 32, 2]]]
    assert b.individuals == ['m1', 'm2'] and b.keypoints[:, :, 2].tolist() == [[2, 0], [2, 2]]
    assert b.keypoints[1].tolist() == [[50, 52, 2], [70, 72, 2]]
    assert (c.width, c.height) == (120, 90) and c.keypoints[0, 1].tolist() == [0, 0, 0]


def test_coco_view_boxes_the_labelled_keypoints_tightly(mice):
    dlc = datamodule(mice)
    annotations = [a for a in dlc.coco['annotations'] if a['image_id'] == dlc.image_ids['labeled-data/v2/img000.png']]
    assert len(annotations) == 1 and annotations[0]['num_keypoints'] == 3
    # snout (20, 20), left ear (28, 14), tail base (50, 20); the right ear is unlabelled
    assert annotations[0]['bbox'] == [20.0, 14.0, 30.0, 6.0] and annotations[0]['area'] == 180.0


# --- bad input ----------------------------------------------------------------------------------------------

def test_header_body_part_not_in_config_names_the_file_and_row(mice):
    csv_path = mice / 'labeled-data' / 'v2' / 'CollectedData_me.csv'
    text = csv_path.read_text().replace('tailbase', 'tail')
    csv_path.write_text(text)
    with pytest.raises(DatasetError, match=re.escape(f'{csv_path}: row 2: body part \'tail\' is not in bodyparts')):
        datamodule(mice)


def test_header_without_a_configured_body_part_names_the_file_and_row(mice):
    csv_path = mice / 'labeled-data' / 'v1' / 'CollectedData_me.csv'
    rows = [r.split(',') for r in csv_path.read_text().splitlines()]
    write_csv(csv_path, [r[:-2] for r in rows])  # the tailbase columns are gone
    with pytest.raises(DatasetError, match=re.escape(f'{csv_path}: row 2: no column for tailbase/x, tailbase/y')):
        datamodule(mice)


def test_label_of_a_missing_image_names_the_file_and_row(mice):
    (mice / 'labeled-data' / 'v2' / 'img001.png').unlink()
    csv_path = mice / 'labeled-data' / 'v2' / 'CollectedData_me.csv'
    with pytest.raises(DatasetError, match=re.escape(f'{csv_path}: row 5: image labeled-data/v2/img001.png '
                                                     'not found')):
        datamodule(mice)


def test_a_cell_that_is_not_a_number_names_the_file_and_row(mice):
    csv_path = mice / 'labeled-data' / 'v1' / 'CollectedData_me.csv'
    csv_path.write_text(csv_path.read_text().replace(',20,20,', ',20,twenty,', 1))
    with pytest.raises(DatasetError, match=re.escape(f'{csv_path}: row 4: snout: \'twenty\' is not a number')):
        datamodule(mice)


def test_missing_config_yaml_names_the_path(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(f'DeepLabCut config not found: {tmp_path / "config.yaml"}')):
        datamodule(tmp_path)


def test_training_keypoint_size_is_its_own_flag_independent_of_the_oks_sigma(mice):
    assert datamodule(mice).head_metas[0].sigmas == [0.2] * 4
    dlc = datamodule(mice, '--dlc-sigma', '0.15', '--dlc-oks-sigma', '0.3')
    assert dlc.head_metas[0].sigmas == dlc.head_metas[1].sigmas == [0.15] * 4
    assert dlc.metrics()[1].sigmas == [0.3] * 4
    with pytest.raises(ValueError, match='--dlc-sigma must be positive, got 0.0'):
        datamodule(mice, '--dlc-sigma', '0')


def test_missing_project_flag_is_explained():
    with pytest.raises(ValueError, match='--dataset dlc needs --dlc-project PATH'):
        datasets_factory.datamodule_from_args(train.cli(['--dataset', 'dlc']), base_stride=16)


# --- split --------------------------------------------------------------------------------------------------

def test_split_depends_only_on_frames_fraction_and_shuffle():
    paths = [f'labeled-data/v/img{i:04d}.png' for i in range(116)]
    split = make_split(paths, 0.95, shuffle=1)
    assert len(split.train) == 110 and len(split.test) == 6
    assert sorted(split.train + split.test) == paths
    assert make_split(list(reversed(paths)), 0.95, shuffle=1) == split  # order of reading does not matter
    assert make_split(paths, 0.95, shuffle=2).test != split.test
    assert len(make_split(paths[:100], 0.95, shuffle=1).train) == 95  # floor(100 * 0.95) despite rounding
    with pytest.raises(ValueError, match='--dlc-train-fraction 0.05 of 10 frames leaves 0 for training and 10'):
        make_split(paths[:10], 0.05, shuffle=1)


def test_split_written_with_the_checkpoint_is_used_to_evaluate_it(mice, tmp_path):
    trained = datamodule(mice, '--dlc-shuffle', '3')
    trained.write_run_files(tmp_path / 'run.pkl')
    written = json.loads((tmp_path / 'run.pkl.dlc-split.json').read_text())
    assert written['test'] == list(trained.split.test) and written['shuffle'] == 3
    evaluated = datamodule(mice, '--dlc-shuffle', '4', '--dlc-train-fraction', '0.5')
    assert evaluated.split.test != trained.split.test
    evaluated.use_run_files(tmp_path / 'run.pkl.epoch002')  # an intermediate checkpoint of the run
    assert evaluated.split == trained.split


def test_split_file_with_a_frame_the_project_no_longer_has_is_an_error(mice, tmp_path):
    datamodule(mice).write_run_files(tmp_path / 'run.pkl')
    (mice / 'labeled-data' / 'v2' / 'CollectedData_me.csv').unlink()
    with pytest.raises(DatasetError, match=re.escape(f'{tmp_path / "run.pkl.dlc-split.json"}: ')
                       + '.* frame labeled-data/v2/img00.\\.png is not labelled in the project'):
        datamodule(mice).use_run_files(tmp_path / 'run.pkl')


# --- metrics and training -----------------------------------------------------------------------------------

def ground_truth_as_predictions(dlc, frame, shift=(0.0, 0.0)) -> list[Annotation]:
    data = frame.keypoints[0].copy()
    data[:, :2] += shift
    data[:, 2] = (frame.keypoints[0, :, 2] > 0) * 0.9
    return [Annotation(meta=dlc.head_metas[0], data=data, joint_scales=np.full(4, 3.0, np.float32))]


def stats_of_shifted_test_frames(dlc) -> dict:
    """Metrics of the ground truth as predictions: train frames exact, test frames off by (3, 4), i.e. 5 px."""
    metrics = dlc.metrics()
    for frame in dlc.frames:
        shift = (3.0, 4.0) if frame.path in dlc.split.test else (0.0, 0.0)
        for metric in metrics:
            metric.accumulate(ground_truth_as_predictions(dlc, frame, shift), {'image_id': dlc.image_ids[frame.path]})
    stats = {}
    for metric in metrics:
        stats.update(metric.stats())
    return stats


def test_metrics_report_pixel_error_and_pck_per_split(mice):
    dlc = datamodule(mice, '--dlc-pck-radius', '4')
    stats = stats_of_shifted_test_frames(dlc)
    assert stats['test_pixel_error'] == pytest.approx(5.0) and stats['train_pixel_error'] == pytest.approx(0.0)
    assert stats['test_pixel_error_pcutoff'] == pytest.approx(5.0)  # confidence 0.9 >= pcutoff 0.5
    assert stats['test_pck'] == 0.0 and stats['train_pck'] == 1.0  # radius 4 < 5
    labelled = {split: sum(int(np.sum(f.keypoints[..., 2] > 0)) for f in dlc.frames if f.path in paths)
                for split, paths in (('test', dlc.split.test), ('train', dlc.split.train))}
    assert stats['train_labelled_keypoints'] == labelled['train'] and labelled['train'] + labelled['test'] == 23
    assert datamodule(mice, '--dlc-pcutoff', '0.95').metrics()[0].pcutoff == 0.95


def test_oks_ap_of_the_test_frames_uses_the_dlc_oks_sigma(mice):
    # mice boxes are 30 x 12 px (30 x 6 without the right ear): s^2 = 360 (180)
    # sigma 0.1: OKS = exp(-25 / (2 * 360 * 0.2^2)) = 0.42 (0.18) < 0.5, so no threshold is met
    assert stats_of_shifted_test_frames(datamodule(mice))['AP'] == 0.0
    # sigma 1: OKS = exp(-25 / (2 * 360 * 2^2)) = 0.991 (0.983) > 0.95, so every threshold is met
    assert stats_of_shifted_test_frames(datamodule(mice, '--dlc-oks-sigma', '1.0'))['AP'] == pytest.approx(1.0)


def test_one_epoch_trains_and_evaluation_writes_dlc_stats_on_the_training_split(mice, tmp_path, caplog):
    out = tmp_path / 'run.pkl'
    train.run(mice_args(mice, '--dlc-square-edge', '65', '--batch-size', '2', '--epochs', '1', '--seed', '0',
                        '--optimizer', 'adam', '--lr', '1e-3', '--output', str(out)))
    assert out.is_file() and (tmp_path / 'run.pkl.dlc-split.json').is_file()
    # other flags at evaluation: the split file wins (4 train and 2 test frames, not 3 and 3)
    with caplog.at_level(logging.INFO, logger='openfields.show.progress'):
        eval_cli.run(eval_cli.parser().parse_args([
            '--checkpoint', str(out), '--dataset', 'dlc', '--dlc-project', str(mice), '--dlc-train-fraction', '0.5',
            '--coco-eval-long-edge', '65', '--loader-workers', '0', '--device', 'cpu', '--progress-interval', '0']))
    progress = [r.getMessage() for r in caplog.records if r.name == 'openfields.show.progress']
    assert progress and progress[-1].startswith(f'evaluating {out}: 6/6 images (100%)')
    assert 'images/s, ETA' in progress[-1]
    stats = json.loads((tmp_path / 'run.pkl.eval-dlc.stats.json').read_text())
    assert stats['test_images'] == 2 and stats['train_images'] == 4 and stats['n_images'] == 6
    for key in ('test_pixel_error', 'train_pixel_error', 'test_pixel_error_pcutoff', 'train_pixel_error_pcutoff',
                'test_pck', 'train_pck', 'AP', 'pcutoff', 'pck_radius'):
        assert key in stats
    assert stats['pcutoff'] == 0.5 and stats['test_labelled_keypoints'] + stats['train_labelled_keypoints'] == 23
    assert stats['decoder'] == ['cifmax:0']  # a single-animal project: each body part at its map's peak


def test_predict_decodes_a_single_animal_checkpoint_with_cifmax(mice, tmp_path, caplog):
    out = tmp_path / 'run.pkl'
    train.run(mice_args(mice, '--dlc-square-edge', '65', '--batch-size', '2', '--epochs', '1', '--seed', '0',
                        '--train-batches', '1', '--val-batches', '1', '--output', str(out)))
    assert checkpoint.load(out)['meta']['decoders'] == {'dlc': ['cifmax']}
    image = str(mice / 'labeled-data' / 'v1' / 'img000.png')
    with caplog.at_level(logging.INFO, logger='openfields.predict'):
        assert predict.run(predict.parser().parse_args([image, '--checkpoint', str(out), '--device', 'cpu',
                                                        '--json-output', str(tmp_path / 'json')])) == 0
    assert 'decoding with cifmax:0' in caplog.text
    assert (tmp_path / 'json' / 'img000.png.predictions.json').is_file()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger='openfields.predict'):
        predict.run(predict.parser().parse_args([image, '--checkpoint', str(out), '--device', 'cpu',
                                                 '--decoder', 'cifcaf']))
    assert 'decoding with cifcaf:0' in caplog.text  # --decoder wins


def test_single_animal_projects_decode_with_cifmax_multi_animal_ones_with_cifcaf(mice):
    single = datamodule(mice)
    assert single.decoder_names() == ['cifmax']
    single.config = dataclasses.replace(single.config, multi_animal=True)
    assert single.decoder_names() is None  # the best decoder for the heads: cifcaf


def test_metric_names_are_pixel_error_and_pck_per_split_then_oks_ap(mice):
    names = datamodule(mice).metric_names()
    assert names[:6] == ['test_pixel_error', 'test_pixel_error_pcutoff', 'test_pck',
                         'train_pixel_error', 'train_pixel_error_pcutoff', 'train_pck']
    assert names[6:9] == ['AP', 'AP50', 'AP75']


def test_every_checkpoint_of_a_run_finds_the_runs_split_file(tmp_path):
    from openfields.plugins.dlc.split import find_split_file, split_path
    run = tmp_path / 'run.pkl'
    split = split_path(run)
    assert split.name == 'run.pkl.dlc-split.json'
    split.write_text('{}')
    for checkpoint in ('run.pkl', 'run.pkl.epoch007', 'run.pkl.epoch002.batch000010', 'run.best.pkl'):
        assert find_split_file(tmp_path / checkpoint) == split
    assert find_split_file(tmp_path / 'other.pkl.epoch001') is None


def test_raw_datasets_are_the_split_frames_as_read(mice):
    dlc = datamodule(mice)
    train_frames, val_frames = dlc.raw_dataset('train'), dlc.raw_dataset('val')
    assert (len(train_frames), len(val_frames)) == (len(dlc.split.train), len(dlc.split.test))
    image, anns, meta = val_frames[0]
    assert image.size in ((64, 48), (80, 60)) and len(anns) == 1 and 'offset' not in meta  # no preprocessing
    with pytest.raises(ValueError, match="no split 'test'"):
        dlc.raw_dataset('test')
