"""``python -m openfields.logs``: plots and a comparison table of training logs."""

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from openfields import eval as eval_cli, logs, train

# two tiny real runs that differ only in --lr: 4 synthetic images, 2 epochs of 2 batches
TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '80', '--synthetic-square-edge', '65', '--basenet', 'shufflenetv2k16',
        '--batch-size', '2', '--epochs', '2', '--loader-workers', '0', '--display-interval', '1',
        '--seed', '3', '-q']
PLOTS = ['losses.png', 'learning-rate.png', 'epoch-time.png', 'eval.png']
# hand-written stats of run b (a's come from a real evaluation): the final checkpoint b.pkl repeats epoch 2
B_AP = {'b.pkl.epoch001': 0.25, 'b.pkl.epoch002': 0.5, 'b.pkl': 0.5}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Logs ``a.pkl.log`` (--lr 1e-3, evaluated) and ``b.pkl.log`` (--lr 2e-3) in one folder."""
    folder = tmp_path_factory.mktemp('runs')
    cache = ['--synthetic-cache-dir', str(tmp_path_factory.mktemp('synthetic-cache'))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and immune to a busy machine
    try:
        for name, lr in (('a', '1e-3'), ('b', '2e-3')):
            train.run(train.cli(TINY + cache + ['--lr', lr, '--output', str(folder / f'{name}.pkl')]))
        eval_cli.run(eval_cli.parser().parse_args(
            TINY[:8] + cache + ['--checkpoint', str(folder / 'a.pkl.epoch*'), '--coco-eval-long-edge', '65',
                                '--loader-workers', '0', '--device', 'cpu']))
    finally:
        torch.set_num_threads(threads)
    for checkpoint, ap in B_AP.items():
        stats = {'AP': ap, 'AP50': ap, 'AP75': ap, 'AR': ap, 'checkpoint': str(folder / checkpoint),
                 'dataset': 'synthetic', 'oracle': []}
        (folder / f'{checkpoint}.eval-synthetic.stats.json').write_text(json.dumps(stats))
    return folder / 'a.pkl.log', folder / 'b.pkl.log'


@pytest.fixture(scope='module')
def cli_output(runs) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``python -m openfields.logs a.pkl.log b.pkl.log`` (default folder)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = logs.main([str(log) for log in runs])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def without_plots(monkeypatch):
    """Skip drawing: for tests of reading and of the table."""
    monkeypatch.setattr(logs, 'figures', lambda runs, new_figure: [])


def records(path, kind):
    """The log's records of one type, parsed independently of openfields.logs."""
    with open(path) as f:
        return [r for r in map(json.loads, f) if r['type'] == kind]


def parse_text_table(text: str) -> dict[str, list[str]]:
    """``{row label: cells}`` of the text table (columns separated by two or more spaces)."""
    lines = text.split('\n\n')[0].splitlines()
    rows = [re.split(r'\s{2,}', line.strip()) for line in lines if not set(line) <= {'-', ' '}]
    return {row[0]: row[1:] for row in rows}


def write_log(path, records_):
    path.write_text(''.join(json.dumps(r) + '\n' for r in records_))


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = logs.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def colour_pixels(path, colour) -> int:
    """Pixels of the PNG within a small distance of an RGB(A) colour in [0, 1]."""
    image = np.asarray(PIL.Image.open(path).convert('RGB'), dtype=float)
    target = np.array(colour[:3]) * 255
    return int((np.abs(image - target).max(axis=2) < 12).sum())


def test_writes_one_non_blank_png_per_plot_next_to_the_first_log_and_prints_their_paths(runs, cli_output):
    code, out, err = cli_output
    folder = runs[0].parent / 'a-vs-b.plots'
    assert code == 0 and err == ''
    assert sorted(p.name for p in folder.iterdir()) == sorted(PLOTS)
    assert out.strip().splitlines()[-4:] == [str(folder / name) for name in PLOTS]
    for name in PLOTS:
        pixels = np.asarray(PIL.Image.open(folder / name).convert('L'), dtype=float)
        assert pixels.shape[0] > 300 and pixels.var() > 200, name


def test_every_run_is_drawn_in_its_own_colour_on_shared_axes(runs, cli_output):
    folder = runs[0].parent / 'a-vs-b.plots'
    for index in (0, 1):
        assert colour_pixels(folder / 'losses.png', logs.run_colour(index)) > 500
        assert colour_pixels(folder / 'learning-rate.png', logs.run_colour(index)) > 100
        assert colour_pixels(folder / 'eval.png', logs.run_colour(index)) > 100
    assert colour_pixels(folder / 'losses.png', logs.run_colour(2)) == 0  # two runs, two colours


def test_output_names_the_folder_of_the_pngs(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(logs, 'figures', lambda runs_, new_figure: [('losses', logs.agg_figure())])
    code, out, _ = run_cli([*runs, '--output', tmp_path / 'plots'], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == str(tmp_path / 'plots' / 'losses.png')
    assert [p.name for p in (tmp_path / 'plots').iterdir()] == ['losses.png']  # no temporary file left


def _final_and_best(losses: dict[int, float]) -> tuple[float, float, int]:
    best_epoch = min(losses, key=lambda e: (losses[e], e))
    return losses[max(losses)], losses[best_epoch], best_epoch


def test_table_numbers_equal_the_values_in_the_logs(runs, cli_output):
    table = parse_text_table(cli_output[1])
    assert table['run'] == ['a', 'b']
    for column, log in enumerate(runs):
        train_losses = {r['epoch']: r['loss'] for r in records(log, 'train-epoch')}
        val_losses = {r['epoch']: r['loss'] for r in records(log, 'val-epoch')}
        final, best, best_epoch = _final_and_best(train_losses)
        assert float(table['final train loss'][column]) == pytest.approx(final, rel=1e-5)
        assert table['best train loss'][column] == f'{best:.6g} (epoch {best_epoch})'
        final, best, best_epoch = _final_and_best(val_losses)
        assert float(table['final val loss'][column]) == pytest.approx(final, rel=1e-5)
        assert table['best val loss'][column] == f'{best:.6g} (epoch {best_epoch})'
        times = [r['time_unix'] for r in map(json.loads, log.read_text().splitlines())]
        seconds = round(times[-1] - times[0])
        assert table['wall time'][column] == f'0:{seconds // 60:02d}:{seconds % 60:02d}'
        assert table['epochs'][column] == '2 of 2'
        assert table['status'][column] == 'finished'
    a_stats = [json.loads(p.read_text()) for p in sorted(runs[0].parent.glob('a.pkl.epoch*.stats.json'))]
    assert len(a_stats) == 2
    a_best = max(range(2), key=lambda i: (a_stats[i]['AP'], -i))
    assert table['best AP synthetic'] == [f'{a_stats[a_best]["AP"]:.4f} (epoch {a_best + 1})', '0.5000 (epoch 2)']


def test_ap_is_read_per_epoch_and_the_final_checkpoint_counts_once(runs):
    run = logs.read_runs([str(runs[1])])[0]
    assert [(p.epoch, p.dataset, p.stats['AP']) for p in run.evals] == [(1, 'synthetic', 0.25),
                                                                        (2, 'synthetic', 0.5)]
    assert run.evals[1].path.name == 'b.pkl.epoch002.eval-synthetic.stats.json'


def test_stats_files_named_by_eval_output_are_matched_by_their_checkpoint_key(tmp_path, capsys):
    for name in ('demo', 'demo2'):
        write_log(tmp_path / f'{name}.pkl.log', [{'type': 'process', 'time_unix': 1.0, 'args': {'epochs': 8}}])
    stats = {'AP': 0.7, 'dataset': 'synthetic', 'oracle': []}
    (tmp_path / 'demo.eval-synthetic.stats.json').write_text(  # make demo: eval --output <dir>/demo.eval-synthetic
        json.dumps({**stats, 'checkpoint': 'outputs/demo/demo.pkl'}))
    (tmp_path / 'oracle-cif-caf.eval-synthetic.stats.json').write_text(
        json.dumps({**stats, 'checkpoint': None, 'oracle': ['cif', 'caf']}))
    (tmp_path / 'demo2.pkl.epoch001.eval-synthetic.stats.json').write_text(json.dumps({**stats, 'AP': 0.1}))
    (tmp_path / 'broken.stats.json').write_text('{"AP": ')
    demo, demo2 = logs.read_runs([str(tmp_path / 'demo.pkl.log'), str(tmp_path / 'demo2.pkl.log')])
    assert [(p.epoch, p.dataset, p.stats['AP']) for p in demo.evals] == [(8, 'synthetic', 0.7)]
    assert [(p.epoch, p.dataset, p.stats['AP']) for p in demo2.evals] == [(1, 'synthetic', 0.1)]  # from its name
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f'openfields.logs: {tmp_path / "broken.stats.json"}: unreadable')


def test_only_the_differing_flags_are_listed(cli_output):
    table = parse_text_table(cli_output[1])
    assert {label: cells for label, cells in table.items() if label.startswith('args.')} == \
        {'args.lr': ['0.001', '0.002']}  # --output differs too, but the run names say it


def test_flags_of_another_code_version_are_summarised_not_compared(tmp_path):
    old, new = tmp_path / 'old.pkl.log', tmp_path / 'new.pkl.log'
    write_log(old, [{'type': 'process', 'time_unix': 1.0, 'args': {'lr': 0.1, 'epochs': 2, 'output': 'old.pkl'}}])
    write_log(new, [{'type': 'process', 'time_unix': 1.0,
                      'args': {'lr': 0.2, 'epochs': 2, 'output': 'new.pkl', 'ema': 0.01, 'x': 1, 'y': 2}}])
    rows = dict(logs.table_rows(logs.read_runs([str(old), str(new)])))
    assert {label: cells for label, cells in rows.items() if label.startswith('args')} == {
        'args.lr': ['0.1', '0.2'], 'args not in every log': ['-', 'ema, x (+1 more)']}


def test_markdown_table_has_the_same_rows(runs, cli_output, capsys, without_plots):
    code, markdown, _ = run_cli([*runs, '--markdown'], capsys)
    assert code == 0
    lines = markdown.split('\n\n')[0].splitlines()
    assert lines[:2] == ['| | a | b |', '| --- | --- | --- |']
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip('|').split('|')] for line in lines[2:])}
    assert rows == {label: cells for label, cells in parse_text_table(cli_output[1]).items() if label != 'run'}


def test_corrupt_line_and_non_log_files_are_reported_and_skipped(runs, cli_output, tmp_path, capsys,
                                                                without_plots):
    lines = runs[0].read_text().splitlines(keepends=True)
    corrupt = tmp_path / 'a.pkl.log'
    corrupt.write_text(''.join(lines[:4] + ['{"type": "train", "epoch": 1, oops\n'] + lines[4:6]
                               + ['{"type": "val-epoch", "loss": 1.0}\n'] + lines[6:]))
    not_a_log = tmp_path / 'notes.txt'
    not_a_log.write_text('just some notes\n')
    checkpoint = runs[0].with_name('a.pkl')  # a binary file
    code, out, err = run_cli([corrupt, not_a_log, checkpoint, runs[1]], capsys)
    assert code == 0
    assert err.splitlines() == [
        f'openfields.logs: {corrupt}:5: corrupt line skipped: not JSON (Expecting property name enclosed in '
        'double quotes)',
        f'openfields.logs: {corrupt}:8: corrupt line skipped: "val-epoch" record without an integer "epoch"',
        f'openfields.logs: {not_a_log}: not a training log (no JSON-lines records of type process, resume, '
        'config, train, train-epoch, val-epoch, test, stopped, error); skipped',
        f'openfields.logs: {checkpoint}: not a training log (binary file); skipped']
    table = parse_text_table(out)
    assert table['run'] == ['a', 'b']
    original = parse_text_table(cli_output[1])
    for label in ('epochs', 'wall time', 'final train loss', 'best train loss', 'final val loss', 'best val loss'):
        assert table[label] == original[label], label


def test_an_incomplete_last_line_of_a_log_being_written_is_ignored_and_said(runs, tmp_path, capsys, without_plots):
    lines = runs[0].read_text().splitlines(keepends=True)
    first_val = next(i for i, line in enumerate(lines) if '"val-epoch"' in line)
    growing = tmp_path / 'growing.pkl.log'
    growing.write_text(''.join(lines[:first_val + 1]) + lines[first_val + 1][:40])
    code, out, err = run_cli([growing], capsys)
    assert code == 0
    assert err.splitlines() == [f'openfields.logs: {growing}: the last line is cut (the run was killed while '
                                'writing it, or is writing it now); ignored']
    table = parse_text_table(out)
    assert table['epochs'] == ['1 of 2']
    assert table['status'] == ['incomplete (running or interrupted), log ends in a cut line']
    assert float(table['final val loss'][0]) == pytest.approx(json.loads(lines[first_val])['loss'], rel=1e-5)


def test_a_finished_log_whose_last_line_is_cut_does_not_read_as_plainly_finished(runs, tmp_path, capsys,
                                                                                 without_plots):
    text = runs[0].read_text()
    cut = tmp_path / 'cut.pkl.log'
    cut.write_text(text + '{"type": "test", "epoch": 2, "metr')
    code, out, err = run_cli([cut], capsys)
    assert code == 0 and 'the last line is cut' in err
    assert parse_text_table(out)['status'] == ['finished, log ends in a cut line']


def test_a_stopped_run_says_where_to_resume(runs, tmp_path, capsys, without_plots):
    lines = runs[0].read_text().splitlines(keepends=True)
    first_epoch = next(i for i, line in enumerate(lines) if '"train-epoch"' in line)
    stopped = tmp_path / 'stopped.pkl.log'
    stopped.write_text(''.join(lines[:first_epoch + 1]) + json.dumps(
        {'type': 'stopped', 'signal': 'SIGTERM', 'checkpoint': 'x.pkl.epoch001.batch000001'}) + '\n')
    code, out, err = run_cli([stopped], capsys)
    assert code == 0 and err == ''
    assert parse_text_table(out)['status'] == ['stopped by SIGTERM; resume from x.pkl.epoch001.batch000001']


def test_equal_run_names_are_told_apart_by_their_folders(runs, tmp_path):
    copy = tmp_path / 'other' / 'a.pkl.log'
    copy.parent.mkdir()
    shutil.copy(runs[0], copy)
    assert [run.name for run in logs.read_runs([str(runs[0]), str(copy)])] == \
        [f'{runs[0].parent.name}/a', 'other/a']


def _epoch_records(epoch, t, train_loss, val_losses=None, batches=(0, 2, 3)):
    """Records of one epoch of 4 batches of a two-dataset run, starting at time t; without val_losses the
    run is interrupted after the logged batches, before its epoch records."""
    losses = {'d1.cif.c': train_loss / 2, 'd2.cif.c': train_loss / 2}
    records_ = [{'type': 'train', 'time_unix': t + i, 'epoch': epoch, 'batch': batch, 'n_batches': 4,
                 'lr': 0.1, 'loss': train_loss, 'head_losses': losses} for i, batch in enumerate(batches)]
    if val_losses is None:
        return records_
    return records_ + [
        {'type': 'train-epoch', 'time_unix': t + 3, 'epoch': epoch, 'loss': train_loss, 'head_losses': losses,
         'n_batches': 4, 'time': 2.0, 'batches_per_dataset': {'d1': 2, 'd2': 2}},
        *({'type': 'val-epoch', 'time_unix': t + 4, 'epoch': epoch, 'dataset': dataset, 'loss': loss,
           'head_losses': {f'{dataset}.cif.c': loss, f'{other}.cif.c': None}, 'n_batches': 1, 'time': 0.5}
          for (dataset, loss), other in zip(val_losses.items(), ('d2', 'd1'))),
        {'type': 'profile', 'time_unix': t + 4, 'whatever': 1},  # a record type this reader does not know
    ]


def test_resumed_multi_dataset_run_continues_its_epochs_and_sums_val_losses(tmp_path):
    process = {'type': 'process', 'args': {'epochs': 4, 'lr': 0.1}}
    log = tmp_path / 'multi.pkl.log'
    write_log(log, [
        {**process, 'time_unix': 1000.0},
        *_epoch_records(1, 1000.0, 8.0, {'d1': 3.0, 'd2': 4.0}),
        *_epoch_records(2, 1010.0, 6.0, {'d1': 2.0, 'd2': 3.0}),
        *_epoch_records(3, 1020.0, 99.0, batches=(0, 1, 2)),  # interrupted at 1022, resumed at 5000
        {**process, 'time_unix': 5000.0},
        *_epoch_records(3, 5000.0, 5.0, {'d1': 2.5, 'd2': 3.5}),
        *_epoch_records(4, 5010.0, 5.5, {'d1': 3.0, 'd2': 3.5}),
    ])
    run = logs.read_runs([str(log)])[0]
    table = dict(logs.table_rows([run]))
    assert table['epochs'] == ['4 of 4'] and table['status'] == ['finished']
    assert table['wall time'] == [logs.format_duration((1022 - 1000) + (5014 - 5000))]
    assert table['final train loss'] == ['5.5'] and table['best train loss'] == ['5 (epoch 3)']
    assert table['final val loss'] == ['6.5'] and table['best val loss'] == ['5 (epoch 2)']
    assert [key for key in sorted(run.train) if key[0] == 3] == [(3, 0), (3, 2), (3, 3)]  # (3, 1) superseded
    val = run.val_by_epoch()
    assert val[2]['head_losses'] == {'d1.cif.c': 2.0, 'd2.cif.c': 3.0} and val[2]['time'] == 1.0
    assert run.field_names == ['d1.cif.c', 'd2.cif.c']


def test_an_error_record_ends_the_run_with_its_message(tmp_path):
    log = tmp_path / 'diverged.pkl.log'
    write_log(log, [{'type': 'process', 'time_unix': 1000.0, 'args': {'epochs': 4}},
                     *_epoch_records(1, 1000.0, 8.0, {'d1': 3.0, 'd2': 4.0}),
                     {'type': 'error', 'time_unix': 1009.0, 'message': 'd1.cif.c is not finite'}])
    table = dict(logs.table_rows(logs.read_runs([str(log)])))
    assert table['status'] == ['error: d1.cif.c is not finite'] and table['epochs'] == ['1 of 4']
    assert table['wall time'] == ['0:00:09']


def test_a_log_with_only_its_first_record_is_plotted_empty(tmp_path, capsys):
    log = tmp_path / 'started.pkl.log'
    write_log(log, [{'type': 'process', 'time_unix': 1.0, 'args': {'epochs': 5}}])
    code, out, err = run_cli([log, '--output', tmp_path / 'plots'], capsys)
    assert code == 0 and err == ''
    table = parse_text_table(out)
    assert table['epochs'] == ['0 of 5'] and table['final train loss'] == ['-']
    assert sorted(p.name for p in (tmp_path / 'plots').iterdir()) == sorted(PLOTS[:3])


def test_show_opens_every_plot_and_writes_no_file(runs, tmp_path, capsys, monkeypatch):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    for log in runs:  # copies without stats files: three plots
        shutil.copy(log, tmp_path)
    shown = []
    monkeypatch.setattr(plt, 'show', lambda: shown.append(len(plt.get_fignums())))
    try:
        code, out, _ = run_cli([tmp_path / 'a.pkl.log', tmp_path / 'b.pkl.log', '--show'], capsys)
    finally:
        plt.close('all')
    assert code == 0 and shown == [3]
    assert '.png' not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.pkl.log', 'b.pkl.log']


def test_nothing_readable_exits_non_zero_with_the_reason(tmp_path):
    missing = tmp_path / 'missing.pkl.log'
    result = subprocess.run([sys.executable, '-m', 'openfields.logs', str(missing), str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ''
    assert result.stderr.splitlines() == [
        f'openfields.logs: {missing}: cannot read (No such file or directory); skipped',
        f'openfields.logs: {tmp_path}: is a folder, not a training log; skipped',
        'openfields.logs: error: none of the given files could be read as a training log']


def test_test_records_are_evaluations_of_their_epoch_and_count_for_the_best_ap(tmp_path, capsys):
    process = {'type': 'process', 'args': {'epochs': 3}}

    def test(epoch, ap, pixel_error='nan'):
        return {'type': 'test', 'time_unix': 1000.0 + epoch, 'epoch': epoch, 'dataset': 'dlc',
                'metrics': {'test.test_pixel_error': pixel_error, 'test.AP': ap}}

    log = tmp_path / 'evaluated.pkl.log'
    write_log(log, [{**process, 'time_unix': 1000.0}, *_epoch_records(1, 1000.0, 8.0, {'dlc': 3.0}), test(1, 0.2, 9.5),
                    *_epoch_records(2, 1010.0, 7.0, {'dlc': 2.0}), test(2, 0.9),  # superseded by the resume
                    {**process, 'time_unix': 2000.0}, *_epoch_records(2, 2000.0, 6.0, {'dlc': 2.0}), test(2, 0.4),
                    *_epoch_records(3, 2010.0, 5.0, {'dlc': 2.0}), test(3, 0.3, 4.0)])
    run = logs.read_runs([str(log)])[0]
    assert [(p.epoch, p.dataset, p.source, p.stats['AP']) for p in run.evals] == \
        [(1, 'dlc', 'test', 0.2), (2, 'dlc', 'test', 0.4), (3, 'dlc', 'test', 0.3)]
    assert dict(logs.table_rows([run]))['best AP dlc'] == ['0.4000 (epoch 2)']
    assert logs._eval_metrics(run.evals) == ['AP', 'test_pixel_error']
    code, _, err = run_cli([log, '--output', tmp_path / 'plots'], capsys)
    assert code == 0 and err == ''
    assert colour_pixels(tmp_path / 'plots' / 'eval.png', logs.run_colour(0)) > 100


def test_a_real_run_with_eval_interval_is_plotted_from_its_test_records(tmp_path, capsys):
    cache = ['--synthetic-cache-dir', str(tmp_path / 'cache')]
    out = tmp_path / 'e.pkl'
    train.run(train.cli(TINY + cache + ['--lr', '1e-3', '--train-batches', '1', '--eval-interval', '1',
                                        '--coco-eval-long-edge', '0', '--output', str(out)]))
    run = logs.read_runs([f'{out}.log'])[0]
    tests = records(f'{out}.log', 'test')
    assert [(p.epoch, p.source, p.stats['AP']) for p in run.evals] == \
        [(r['epoch'], 'test', r['metrics']['test.AP']) for r in tests]
    code, out_text, _ = run_cli([f'{out}.log', '--output', tmp_path / 'plots'], capsys)
    best = max(range(len(tests)), key=lambda i: (tests[i]['metrics']['test.AP'], -i))
    assert parse_text_table(out_text)['best AP synthetic'] == \
        [f'{tests[best]["metrics"]["test.AP"]:.4f} (epoch {best + 1})']
    assert (tmp_path / 'plots' / 'eval.png').is_file()


def test_an_output_folder_under_a_regular_file_is_one_line_before_any_log_is_read(runs, tmp_path, capsys):
    (tmp_path / 'afile').write_text('not a folder')
    code, out, err = run_cli([*runs, '--output', tmp_path / 'afile' / 'x'], capsys)
    assert code == 2 and out == ''  # not even the table: nothing is read
    assert err.splitlines() == [f'openfields.logs: error: --output {tmp_path / "afile" / "x"}: '
                                f'{tmp_path / "afile"} is a file, not a folder']
