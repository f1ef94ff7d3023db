"""The JSON-lines training log."""

import json
import math

import pytest

from openfields.training.log import NotALog, TrainingLog, read, read_log


def test_records_are_complete_json_lines_with_type_and_time(tmp_path):
    log = TrainingLog(tmp_path / 'run' / 'x.pkl.log')
    log.write('process', argv=['a', 'b'], args={'lr': 0.1})
    log.write('train', epoch=1, loss=2.5, head_losses={'d.cif.c': 1.0, 'd.caf.c': None})
    lines = (tmp_path / 'run' / 'x.pkl.log').read_text().splitlines()
    assert [json.loads(line)['type'] for line in lines] == ['process', 'train']
    assert json.loads(lines[1])['head_losses'] == {'d.cif.c': 1.0, 'd.caf.c': None}
    assert json.loads(lines[0])['time_unix'] > 1.7e9


def test_non_finite_numbers_stay_valid_json(tmp_path):
    log = TrainingLog(tmp_path / 'x.log')
    log.write('error', loss=math.nan)
    assert read(tmp_path / 'x.log')[0]['loss'] == 'nan'


def test_reader_skips_an_incomplete_last_line(tmp_path):
    log = TrainingLog(tmp_path / 'x.log')
    log.write('train', epoch=1, batch=0)
    with open(tmp_path / 'x.log', 'a') as f:
        f.write('{"type": "train", "ep')  # a run killed mid-write
    contents = read_log(tmp_path / 'x.log')
    assert [r['epoch'] for r in contents.records] == [1]
    assert contents.cut_last_line and contents.corrupt == []


def test_reader_reports_corrupt_lines_by_number(tmp_path):
    (tmp_path / 'x.log').write_text('{"type": "process"}\nnot json\n{"type": "train"}\n')
    contents = read_log(tmp_path / 'x.log')
    assert [r['type'] for r in contents.records] == ['process']
    assert [line for line, _ in contents.corrupt] == [2, 3]
    assert not contents.cut_last_line


def test_a_file_that_is_not_a_log_is_refused(tmp_path):
    (tmp_path / 'x.pkl').write_bytes(b'PK\x03\x04\0\0binary')
    with pytest.raises(NotALog, match='x.pkl'):
        read_log(tmp_path / 'x.pkl')


def kill_during_epoch_3_and_resume(log: TrainingLog, resume_record: bool = True):
    """A 4-epoch run killed during epoch 3 (its snapshot was not written), resumed from epoch002."""
    log.write('process', resumed_from=None)
    for epoch in (1, 2, 3):
        for batch in (0, 1):
            log.write('train', epoch=epoch, batch=batch)
        log.write('train-epoch', epoch=epoch)
        log.write('val-epoch', epoch=epoch, dataset='d')
    log.write('process', resumed_from='x.pkl.epoch002')
    if resume_record:
        log.write('resume', checkpoint='x.pkl.epoch002', epoch=2, batches=0)
    for epoch in (3, 4):
        for batch in (0, 1):
            log.write('train', epoch=epoch, batch=batch)
        log.write('train-epoch', epoch=epoch)
        log.write('val-epoch', epoch=epoch, dataset='d')


@pytest.mark.parametrize('resume_record', [True, False])
def test_an_epoch_redone_after_a_resume_counts_once(tmp_path, resume_record):
    kill_during_epoch_3_and_resume(TrainingLog(tmp_path / 'x.log'), resume_record)
    contents = read_log(tmp_path / 'x.log')
    assert [r['epoch'] for r in contents.records if r['type'] == 'train-epoch'] == [1, 2, 3, 4]
    assert [r['epoch'] for r in contents.records if r['type'] == 'val-epoch'] == [1, 2, 3, 4]
    assert [(r['epoch'], r['batch']) for r in contents.records if r['type'] == 'train'] == \
        [(e, b) for e in (1, 2, 3, 4) for b in (0, 1)]
    assert contents.superseded == 4  # epoch 3's two train records, its train-epoch and val-epoch
    assert sum(r['type'] == 'process' for r in contents.records) == 2


def test_a_resume_inside_an_epoch_keeps_the_batches_before_it(tmp_path):
    log = TrainingLog(tmp_path / 'x.log')
    log.write('process')
    for batch in range(4):
        log.write('train', epoch=1, batch=batch)
    log.write('stopped', signal='SIGTERM', checkpoint='x.pkl.epoch000.batch000002')
    log.write('process', resumed_from='x.pkl.epoch000.batch000002')
    log.write('resume', epoch=0, batches=2)
    for batch in (2, 3):
        log.write('train', epoch=1, batch=batch, again=True)
    records = read(tmp_path / 'x.log')
    assert [(r['batch'], r.get('again', False)) for r in records if r['type'] == 'train'] == \
        [(0, False), (1, False), (2, True), (3, True)]
    assert [r['type'] for r in records].count('stopped') == 1


def test_without_a_path_nothing_is_written(tmp_path):
    TrainingLog(None).write('train', epoch=1)
    assert list(tmp_path.iterdir()) == []
