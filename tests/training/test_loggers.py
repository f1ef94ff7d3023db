"""``--logger tensorboard|wandb|csv``: the losses, learning rate and images a tiny run logs are read back
from each logger's own files; a missing package is one line; a resumed run continues the same W&B run."""

import csv
import glob
import json
import sys

import pytest

from openfields import train
from openfields.training import loggers

TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '2', '--synthetic-val-images', '2',
        '--synthetic-image-size', '80', '--synthetic-square-edge', '65', '--basenet', 'shufflenetv2k16',
        '--batch-size', '2', '--loader-workers', '0', '--lr', '1e-3', '--display-interval', '1']


def wandb_history(run_file) -> list[dict]:
    """The history rows of an offline ``.wandb`` file: a LevelDB-style log (7-byte file header, 32 KiB
    blocks of records with a 7-byte header: crc, length, type) of wandb's protobuf records."""
    from wandb.proto import wandb_internal_pb2
    data, pos, part, rows = open(run_file, 'rb').read(), 7, b'', []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], 'little'), data[pos + 6]
        part, pos = part + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            part = b''
            if record.WhichOneof('record_type') == 'history':
                rows.append({i.key or '/'.join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    pytest.importorskip('wandb')
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_CONFIG_DIR', str(tmp_path / 'wandb-config'))
    monkeypatch.setenv('WANDB_CACHE_DIR', str(tmp_path / 'wandb-cache'))


def test_tensorboard_wandb_and_csv_hold_the_losses_and_images(tmp_path, offline_wandb):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / 'run.pkl'
    train.main(TINY + ['--epochs', '2', '--logger', 'tensorboard', '--logger', 'wandb', '--logger', 'csv',
                       '--image-log-interval', '2', '--output', str(out)])
    events = EventAccumulator(str(tmp_path / 'run.pkl.tensorboard'), size_guidance={'images': 0, 'scalars': 0})
    events.Reload()
    assert [e.step for e in events.Scalars('train/loss')] == [1, 2]  # one batch per epoch
    assert {'train/lr', 'train/synthetic.cif.c', 'val/synthetic.total', 'val/synthetic.caf.vec'} <= set(
        events.Tags()['scalars'])
    assert [e.step for e in events.Images('images/train')] == [2] and events.Images('images/val')[0].width > 100

    run_files = glob.glob(str(tmp_path / 'run.pkl.wandb' / 'wandb' / 'offline-run-*' / 'run-*.wandb'))
    assert len(run_files) == 1
    rows = wandb_history(run_files[0])
    assert [row['_step'] for row in rows] == [1, 2]
    assert rows[1]['train/loss'] == pytest.approx(events.Scalars('train/loss')[1].value)
    assert rows[1]['images/train/_type'] == 'image-file'

    with open(tmp_path / 'run.pkl.learning_stats.csv', newline='') as file:
        table = list(csv.DictReader(file))
    assert [row['step'] for row in table] == ['1', '2']
    assert {'learning_rate', 'losses/train.total_loss', 'losses/eval.total_loss',
            'losses/eval.synthetic.cif.c'} <= set(table[0])


@pytest.mark.slow  # two W&B start-ups
def test_a_resumed_run_continues_its_wandb_run(tmp_path, offline_wandb):
    out = tmp_path / 'run.pkl'
    train.main(TINY + ['--epochs', '1', '--logger', 'wandb', '--output', str(out)])
    run_id = (tmp_path / 'run.pkl.wandb' / 'run-id').read_text().strip()
    train.main(TINY + ['--epochs', '2', '--logger', 'wandb', '--resume', str(tmp_path / 'run.pkl.epoch001')])
    assert (tmp_path / 'run.pkl.wandb' / 'run-id').read_text().strip() == run_id
    runs = glob.glob(str(tmp_path / 'run.pkl.wandb' / 'wandb' / 'offline-run-*' / f'run-{run_id}.wandb'))
    steps = [row['_step'] for run in runs for row in wandb_history(run)]
    assert sorted(steps) == [1, 2]


@pytest.mark.parametrize('kind', ['tensorboard', 'wandb'])
def test_a_missing_logger_package_is_one_line_with_the_install_hint(tmp_path, monkeypatch, capsys, kind):
    monkeypatch.setitem(sys.modules, kind, None)
    monkeypatch.setattr(loggers.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(SystemExit) as stop:
        train.main(TINY + ['--epochs', '1', '--logger', kind, '--output', str(tmp_path / 'run.pkl')])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and f'pip install openfields[{kind}]' in err[0]
    assert not list(tmp_path.iterdir())


def test_scalars_name_losses_by_dataset_head_and_component():
    values = loggers.scalars('train', {'loss': 2.0, 'lr': 0.1, 'head_losses': {'dlc.cif.c': 1.5, 'dlc.caf.c': None}})
    assert values == {'train/loss': 2.0, 'train/lr': 0.1, 'train/dlc.cif.c': 1.5}
    assert loggers.scalars('test', {'dataset': 'dlc', 'metrics': {'test.AP': 0.75}}) == {'test/dlc.AP': 0.75}
