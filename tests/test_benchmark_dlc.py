"""``python -m tools.benchmark_dlc`` (``make bench-dlc``): how a side is stopped at its wall-time budget, which
snapshots are scored, and the summary's target. DeepLabCut itself runs only in ``make bench-dlc``."""

import sys

from tools import benchmark_dlc

WRITER = '''
import pathlib, sys, time
folder = pathlib.Path(sys.argv[1])
for epoch in range(1, 100):
    time.sleep(0.4)
    (folder / f'snapshot-{epoch:03d}.pt.tmp').write_text('x')
    (folder / f'snapshot-{epoch:03d}.pt.tmp').rename(folder / f'snapshot-{epoch:03d}.pt')
'''


def test_a_run_is_killed_at_its_budget_and_its_snapshots_are_timed(tmp_path):
    script = tmp_path / 'writer.py'
    script.write_text(WRITER)
    run = benchmark_dlc.timed_run([sys.executable, str(script), str(tmp_path)], 2.5, (tmp_path, 'snapshot-*.pt'),
                                  tmp_path / 'writer.log')
    assert run['stopped_by_budget'] and 2.5 <= run['wall_s'] < 5
    times = [run['snapshots'][name] for name in sorted(run['snapshots'])]
    assert 3 <= len(times) <= 6 and times == sorted(times) and times[-1] <= 3.0
    assert all(not name.endswith('.tmp') for name in run['snapshots'])
    written = sorted(p.name for p in tmp_path.glob('snapshot-*.pt'))
    assert len(written) <= len(times) + 1  # nothing keeps writing after the kill
    assert benchmark_dlc.last_before(run['snapshots'], times[1] + 0.01) == sorted(run['snapshots'])[1]
    assert benchmark_dlc.last_before(run['snapshots'], 0.1) is None


def test_a_run_that_ends_on_its_own_is_not_stopped(tmp_path):
    run = benchmark_dlc.timed_run([sys.executable, '-c', 'pass'], 30, (tmp_path / 'absent', '*'), tmp_path / 'l.log')
    assert run == {'snapshots': {}, 'wall_s': run['wall_s'], 'returncode': 0, 'stopped_by_budget': False}
    assert run['wall_s'] < 30


def side(half, full, epochs=4):
    return {'snapshots': {f'e{i}': 10.0 * i for i in range(epochs)},
            'evaluated': {'half': half and {'test_error_px': half}, 'full': full and {'test_error_px': full}}}


def test_the_target_is_openfields_at_half_the_budget_against_deeplabcut_at_all_of_it():
    met = benchmark_dlc.summary('bu', side(80.0, 40.0), side(35.0, 20.0, epochs=7), 600)
    assert met['target_met'] is True and (met['deeplabcut_epochs'], met['openfields_epochs']) == (4, 7)
    assert (met['deeplabcut_test_error_px'], met['openfields_half_budget_test_error_px']) == (40.0, 35.0)
    assert benchmark_dlc.summary('bu', side(80.0, 40.0), side(45.0, 20.0), 600)['target_met'] is False
    # nothing found (an untrained detector finds no box): no error to compare, no verdict
    assert benchmark_dlc.summary('td', side(80.0, 40.0), side(None, None), 600)['target_met'] is None
