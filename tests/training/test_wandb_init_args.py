"""``--wandb-init-kwargs``: wandb.init arguments (DeepLabCut's ``logger`` tags, group, notes, ...) reach the
W&B run, read back from its offline run file; an argument wandb.init does not take, one of the wrong kind or
one openfields sets itself is one line naming it."""

import glob
import json

import pytest

from openfields import train
from openfields.training import loggers
from openfields.training.run_files import RunFiles


def wandb_records(run_file, kind: str) -> list:
    """The records of ``kind`` of an offline ``.wandb`` file: a LevelDB-style log (7-byte file header, 32 KiB
    blocks of records with a 7-byte header: crc, length, type) of wandb's protobuf records."""
    from wandb.proto import wandb_internal_pb2
    data, pos, part, found = open(run_file, 'rb').read(), 7, b'', []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        length, piece = int.from_bytes(data[pos + 4:pos + 6], 'little'), data[pos + 6]
        part, pos = part + data[pos + 7:pos + 7 + length], pos + 7 + length
        if piece in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            part = b''
            if record.WhichOneof('record_type') == kind:
                found.append(getattr(record, kind))
    return found


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    pytest.importorskip('wandb')
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path / 'wandb-dir'))
    monkeypatch.setenv('WANDB_CONFIG_DIR', str(tmp_path / 'wandb-config'))
    monkeypatch.setenv('WANDB_CACHE_DIR', str(tmp_path / 'wandb-cache'))


def test_tags_group_notes_and_job_type_reach_the_wandb_run(tmp_path, offline_wandb):
    args = train.cli(['--logger', 'wandb', '--wandb-project', 'mice', '--wandb-init-kwargs',
                      '{"tags": ["dekr", "split=0"], "group": "shuffle1", "notes": "first try", "job_type": "train"}'])
    settings = loggers.LoggerSettings.from_args(args)
    files = RunFiles(tmp_path / 'run.pkl')
    run_loggers = loggers.build(settings, files, {'lr': 1e-3})
    run_loggers.record('train', {'epoch': 1, 'batch': 0, 'n_batches': 1, 'loss': 0.5, 'lr': 1e-3})
    run_loggers.close()
    run_files = glob.glob(str(files.wandb / 'wandb' / 'offline-run-*' / 'run-*.wandb'))
    assert len(run_files) == 1
    runs = wandb_records(run_files[0], 'run')
    assert runs, 'no run record'
    run = runs[0]
    assert (list(run.tags), run.run_group, run.notes, run.job_type, run.project) == (
        ['dekr', 'split=0'], 'shuffle1', 'first try', 'train', 'mice')
    assert run.run_id == (files.wandb / 'run-id').read_text().strip()


@pytest.mark.parametrize('kwargs, message', [
    ('{"tagz": ["a"]}', "--wandb-init-kwargs tagz: wandb.init has no parameter 'tagz'"),
    ('{"tags": "a"}', '--wandb-init-kwargs tags: wandb.init takes null or a list of strings here, got the string'),
    ('{"tags": [1]}', '--wandb-init-kwargs tags[0]: wandb.init takes a string here, got 1'),
    ('{"project": "p"}', "--wandb-init-kwargs project: openfields sets wandb.init's project itself (use "
                         "--wandb-project)"),
    ('["a"]', '--wandb-init-kwargs: must be a JSON object'),
    ('{"tags": ', '--wandb-init-kwargs: not a JSON object'),
])
def test_a_bad_wandb_init_argument_is_one_line_naming_it(offline_wandb, kwargs, message):
    args = train.cli(['--logger', 'wandb', '--wandb-init-kwargs', kwargs])
    with pytest.raises(ValueError) as error:
        loggers.LoggerSettings.from_args(args)
    assert str(error.value).startswith(message) and '\n' not in str(error.value)


def test_wandb_init_arguments_without_the_wandb_logger_are_refused_not_dropped():
    args = train.cli(['--logger', 'csv', '--wandb-init-kwargs', '{"tags": ["a"]}'])
    with pytest.raises(ValueError, match='--wandb-init-kwargs needs --logger wandb'):
        loggers.LoggerSettings.from_args(args)


def test_a_bad_argument_stops_the_run_before_anything_is_written(tmp_path, offline_wandb, capsys):
    with pytest.raises(SystemExit) as stop:
        train.main(['--dataset', 'synthetic', '--logger', 'wandb', '--wandb-init-kwargs', '{"group": 3}',
                    '--output', str(tmp_path / 'out' / 'run.pkl')])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and 'group: wandb.init takes a string or null here' in err[0]
    assert not (tmp_path / 'out').exists()
    assert json.loads(loggers.LoggerSettings().wandb_init_kwargs) == {}
