"""Run files: every file of a training run is named here, from its output path."""

from openfields.training.run_files import Position, RunFiles, eval_stats, parse_eval_stats, position_from_name


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
