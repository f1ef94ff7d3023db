"""Run files: every file of a training run is named here, from its output path."""

import argparse
import glob

import pytest

from openfields import train
from openfields.training import resume
from openfields.training.run_files import (OutputInUse, Position, RunFiles, eval_stats, parse_eval_stats,
                                           position_from_name, stats_file)

TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '48', '--synthetic-square-edge', '33', '--synthetic-no-augmentation',
        '--basenet', 'resnet18', '--no-basenet-pretrained', '--batch-size', '2', '--loader-workers', '0', '--seed', '5',
        '--lr', '1e-4',
        '--epochs', '1', '--train-batches', '1']


def test_best_path_replaces_the_pkl_suffix():
    assert str(RunFiles('outputs/x.pkl').best) == 'outputs/x.best.pkl'
    assert str(RunFiles('outputs/x').best) == 'outputs/x.best.pkl'


def test_every_checkpoint_of_a_run_names_its_run():
    for name in ('x.pkl', 'x.pkl.epoch007', 'x.pkl.epoch007.batch000010', 'x.best.pkl'):
        assert RunFiles.of_checkpoint(f'out/{name}').out.as_posix() == 'out/x.pkl'


def test_snapshot_names_round_trip_their_position():
    files = RunFiles('out/x.pkl')
    assert files.snapshot(7).as_posix() == 'out/x.pkl.epoch007'
    assert files.interrupted(Position(2, 3)).as_posix() == 'out/x.pkl.epoch002.batch000003'
    assert position_from_name(files.interrupted(Position(2, 3))) == Position(2, 3)
    assert position_from_name(files.snapshot(12)) == Position(12, 0)
    assert position_from_name('out/x.pkl.epoch001.eval-synthetic.stats.json') is None


def test_eval_stats_names_parse_back():
    path = eval_stats('out/x.pkl.epoch003', 'synthetic')
    assert path.name == 'x.pkl.epoch003.eval-synthetic.stats.json'
    assert parse_eval_stats(path) == ('x.pkl.epoch003', 'synthetic')


def test_rotation_names_the_oldest_regular_snapshots_of_this_run_only(tmp_path):
    names = ['m.pkl', 'm.best.pkl', 'm.pkl.epoch001', 'm.pkl.epoch002', 'm.pkl.epoch010', 'm.pkl.epoch011',
             'm.pkl.epoch003.batch000002', 'm.pkl.epoch001.eval-synthetic.stats.json', 'm.pkl.log',
             'm2.pkl.epoch001', 'other.pkl.epoch000']
    for name in names:
        (tmp_path / name).touch()
    files = RunFiles(tmp_path / 'm.pkl')
    assert files.rotated_out(0) == []
    assert files.rotated_out(2) == [tmp_path / 'm.pkl.epoch001', tmp_path / 'm.pkl.epoch002']
    assert [p.name for _, p in files.resumable()] == [
        'm.pkl.epoch001', 'm.pkl.epoch002', 'm.pkl.epoch003.batch000002', 'm.pkl.epoch010', 'm.pkl.epoch011']


def test_stale_temp_files_are_those_of_this_run(tmp_path):
    names = ['.m.pkl.epoch003.123.tmp', '.m.pkl.log.7.tmp', '.m.pkl.55.tmp', '.m2.pkl.epoch001.9.tmp',
             '.m.pkl.epoch003.notapid.tmp', 'm.pkl.epoch002']
    for name in names:
        (tmp_path / name).touch()
    stale = {p.name for p in RunFiles(tmp_path / 'm.pkl').stale_temp_files()}
    assert stale == {'.m.pkl.epoch003.123.tmp', '.m.pkl.55.tmp'} | ({'.m.pkl.log.7.tmp'})


def test_a_log_names_its_run_and_only_regular_snapshots_have_an_epoch():
    files = RunFiles.of_log('out/x.pkl.log')
    assert files.out.as_posix() == 'out/x.pkl' and files.log.as_posix() == 'out/x.pkl.log'
    assert files.epoch_of('x.pkl.epoch012') == 12
    assert files.epoch_of('out/x.pkl.epoch012') == 12
    for other in ('x.pkl', 'x.pkl.epoch012.batch000003', 'y.pkl.epoch012', 'x.pkl.epoch012.eval-d.stats.json'):
        assert files.epoch_of(other) is None


def test_a_top_down_runs_detector_run_and_the_names_other_commands_read():
    files = RunFiles('out/run.pkl')
    detector = files.detector_run
    assert detector.out.as_posix() == 'out/run.detector.pkl'
    assert detector.is_detector_run and not files.is_detector_run
    assert detector.log.as_posix() == 'out/run.detector.pkl.log'
    assert detector.best.as_posix() == 'out/run.detector.best.pkl'
    assert RunFiles('out/run').detector_run.out.as_posix() == 'out/run.detector.pkl'
    assert files.name == 'run' and RunFiles.of_log('out/run.pkl.log').name == 'run'
    assert files.snapshot_glob() == 'out/run.pkl.epoch*'
    assert RunFiles('o[1]/r.pkl').snapshot_glob() == 'o[[]1]/r.pkl.epoch*'
    assert stats_file('out/run.eval').as_posix() == 'out/run.eval.stats.json'
    assert eval_stats('out/run.pkl', 'synthetic') == stats_file('out/run.pkl.eval-synthetic')


def test_an_output_is_unused_until_a_run_has_written_a_log_or_a_checkpoint(tmp_path):
    files = RunFiles(tmp_path / 'm.pkl')
    files.check_unused()
    files.lock.write_text('host elsewhere pid 999999\n')  # a run that never wrote anything
    files.check_unused()
    for path in (files.log, files.snapshot(3), files.out):
        path.write_text('x')
        with pytest.raises(OutputInUse, match='--output .*m.pkl: an earlier run wrote here .*--resume auto'):
            files.check_unused()
        path.unlink()
    files.snapshot(3).write_text('x')
    files.log.write_text('x')
    with pytest.raises(OutputInUse) as refused:
        files.check_unused()
    assert '(m.pkl.log, m.pkl.epoch003)' in str(refused.value)


def test_a_new_detector_run_refuses_the_files_of_an_earlier_one_and_names_its_flags(tmp_path):
    detector = RunFiles(tmp_path / 'run.pkl').detector_run
    detector.log.write_text('x')
    new_run = argparse.Namespace(resume=None, output=str(detector.out), checkpoint=None)
    with pytest.raises(OutputInUse, match='--detector-resume auto, reuse its detector with --detector-epochs 0'):
        resume.checkpoint_to_resume(new_run)
    continued = argparse.Namespace(resume='auto', output=str(detector.out), checkpoint=None)
    assert resume.checkpoint_to_resume(continued) is None  # no snapshot yet: a new run, in the same files


def test_training_again_into_an_earlier_runs_output_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / 'm.pkl'
    argv = TINY + ['--synthetic-cache-dir', str(tmp_path / 'cache'), '--output', str(out)]
    train.main(argv)
    written = {path: open(path, 'rb').read() for path in glob.glob(f'{tmp_path}/m.*')}
    assert str(RunFiles(out).log) in written and str(out) in written
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    assert err[0].startswith(f'openfields.train: error: --output {out}: an earlier run wrote here (m.pkl, m.pkl.log')
    assert '--resume auto' in err[0] and 'another --output' in err[0]
    assert {path: open(path, 'rb').read() for path in glob.glob(f'{tmp_path}/m.*')} == written
