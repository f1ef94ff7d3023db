"""``--dlc-table`` of ``openfields.eval`` and ``openfields.predict`` on the shared DeepLabCut project: the table
reads back through pandas with DeepLabCut's header, its rows are the project's image paths and its values the
predictions."""

import json
import pathlib

import numpy as np
import pytest

from openfields import eval as eval_cli
from openfields import predict, train
from openfields.datasets import factory as datasets_factory
from openfields.network import checkpoint, factory

pandas = pytest.importorskip('pandas')
pytest.importorskip('tables')

PROJECT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'
pytestmark = pytest.mark.skipif(not (PROJECT / 'config.yaml').is_file(),
                                reason=f'no DeepLabCut project at {PROJECT}')
BODYPARTS = ['snout', 'leftear', 'rightear', 'tailbase']
# a random network's confidences are low: decode them anyway, so the table holds numbers
LOW_THRESHOLDS = ['--seed-threshold', '0.0', '--instance-threshold', '0.0', '--keypoint-threshold', '0.0']


@pytest.fixture(scope='module')
def dlc_run(tmp_path_factory):
    """The project's datamodule and a resnet18 checkpoint of its heads (random weights)."""
    dlc = datasets_factory.datamodule_from_args(train.cli(['--dataset', 'dlc', '--dlc-project', str(PROJECT)]),
                                                base_stride=16)
    path = tmp_path_factory.mktemp('dlc') / 'mouse.pkl'
    checkpoint.save(path, factory.build('resnet18', {}, dlc.head_metas), epoch=1,
                    meta={'decoders': {'dlc': ['cifmax']}})
    return dlc, path


def read_h5(path) -> 'pandas.DataFrame':
    frame = pandas.read_hdf(path, 'df_with_missing')
    assert list(frame.columns.names) == ['scorer', 'bodyparts', 'coords']
    assert list(frame.columns.get_level_values('bodyparts').unique()) == BODYPARTS
    assert list(frame.columns.get_level_values('coords')[:3]) == ['x', 'y', 'likelihood']
    return frame


def assert_row_is_the_pose(row: np.ndarray, keypoints: list):
    """A table row ``(x, y, likelihood) x K`` against a COCO result's ``keypoints`` (2 decimals, v >= 0.01)."""
    row, pose = row.reshape(-1, 3), np.asarray(keypoints, dtype=float).reshape(-1, 3)
    found = pose[:, 2] > 0
    assert np.all(np.isnan(row[~found]))
    np.testing.assert_allclose(row[found, :2], pose[found, :2], atol=0.006)
    np.testing.assert_allclose(row[found, 2], pose[found, 2], atol=0.011)


def test_eval_writes_dlc_tables_whose_values_are_the_predictions(dlc_run, tmp_path):
    dlc, ckpt = dlc_run
    csv_path, h5_path, out = tmp_path / 'eval.csv', tmp_path / 'eval.h5', tmp_path / 'eval'
    eval_cli.main(['--checkpoint', str(ckpt), '--dataset', 'dlc', '--dlc-project', str(PROJECT),
                   '--coco-eval-long-edge', '161', '--eval-n-images', '3', '--loader-workers', '0', '--device', 'cpu',
                   '--output', str(out), '--write-predictions', '--dlc-table', str(csv_path), str(h5_path),
                   *LOW_THRESHOLDS])
    frame = read_h5(h5_path)
    assert frame.columns.get_level_values('scorer')[0] == 'openfields_mouse'
    assert len(frame) == 3 and all(label.startswith('labeled-data/m4s1/img') for label in frame.index)
    assert set(frame.index) <= set(dlc.split.test) and not np.isnan(frame.to_numpy()).all()
    from_csv = pandas.read_csv(csv_path, header=[0, 1, 2], index_col=0)
    np.testing.assert_allclose(from_csv.to_numpy(), frame.to_numpy(), equal_nan=True)
    assert list(from_csv.index) == list(frame.index)
    predictions = {r['image_id']: r for r in json.loads(out.with_suffix('.pred.json').read_text())}
    for label, row in zip(frame.index, frame.to_numpy()):
        assert_row_is_the_pose(row, predictions[dlc.image_ids[label]]['keypoints'])
    assert json.loads(out.with_suffix('.stats.json').read_text())['dlc_table'] == [str(csv_path), str(h5_path)]


def test_predict_writes_a_dlc_table_of_the_images_relative_to_the_project(dlc_run, tmp_path):
    _, ckpt = dlc_run
    images = [PROJECT / 'labeled-data' / 'm4s1' / name for name in ('img0010.png', 'img0000.png')]
    h5_path = tmp_path / 'predicted.h5'
    assert predict.run(predict.parser().parse_args(
        [*map(str, images), '--checkpoint', str(ckpt), '--dataset', 'dlc', '--dlc-project', str(PROJECT),
         '--long-edge', '161', '--device', 'cpu', '--json-output', str(tmp_path), '--dlc-table', str(h5_path),
         *LOW_THRESHOLDS])) == 0
    frame = read_h5(h5_path)
    assert list(frame.index) == ['labeled-data/m4s1/img0000.png', 'labeled-data/m4s1/img0010.png']
    assert not np.isnan(frame.to_numpy()).any()  # cifmax finds every body part of a single animal
    for image, label in zip(images, ('labeled-data/m4s1/img0010.png', 'labeled-data/m4s1/img0000.png')):
        poses = json.loads((tmp_path / f'{image.name}.predictions.json').read_text())
        best = max(poses, key=lambda p: p['score'])
        assert_row_is_the_pose(frame.loc[label].to_numpy(), best['keypoints'])


@pytest.mark.parametrize('argv, message', [
    (['--dlc-table', 'x.txt'], '--dlc-table x.txt: DeepLabCut tables are .csv or .h5'),
    (['--dlc-table', 'x.csv'], '--dlc-table needs --dlc-project'),
])
def test_bad_table_flags_of_predict_are_one_line_before_the_model_loads(tmp_path, capsys, argv, message):
    image = PROJECT / 'labeled-data' / 'm4s1' / 'img0000.png'
    with pytest.raises(SystemExit) as stop:
        predict.main([str(image), '--checkpoint', str(tmp_path / 'absent.pkl'), *argv])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and message in err and len(err.splitlines()) == 1


def test_eval_table_needs_the_dlc_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        eval_cli.main(['--dataset', 'cocokp', '--checkpoint', str(tmp_path / 'absent.pkl'),
                       '--dlc-table', str(tmp_path / 't.csv')])
    assert stop.value.code == 2 and '--dlc-table needs --dataset dlc' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
