"""The JSON-lines training log."""

import json
import math

from openfields.training_log import TrainingLog, read


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
    log.write('train', epoch=1)
    with open(tmp_path / 'x.log', 'a') as f:
        f.write('{"type": "train", "ep')  # a run killed mid-write
    assert [r['epoch'] for r in read(tmp_path / 'x.log')] == [1]


def test_without_a_path_nothing_is_written(tmp_path):
    TrainingLog(None).write('train', epoch=1)
    assert list(tmp_path.iterdir()) == []
