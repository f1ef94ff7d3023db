"""Plot and compare training logs: ``python -m openfields.logs LOG [LOG ...]``.

A LOG is the JSON-lines file ``<run>.pkl.log`` that ``openfields.train`` writes (see ``training_log``); the
run's name is the file name without ``.pkl.log``. For every run the plots show the loss of each head component
(train per display interval, train and val per epoch), the learning rate, the seconds per epoch and the
evaluation metrics against epoch: the ``test`` records of the log (``--eval-interval``) and the
``<checkpoint>.eval-<dataset>.stats.json`` files next to it (as written by ``openfields.eval --watch``).
Several runs share the axes, one colour each. A table compares the runs side by side: final and best losses,
best AP and its epoch (of both sources), epochs, wall time and the flags in which the runs differ.

Logs are read by the one reader of the log, :func:`openfields.training.log.read_log`: logs still being
written and logs of interrupted or resumed runs are read as they are, a resumed run counts each epoch once,
and an incomplete last line is reported and ignored. A file that is not a log and a corrupt line are
reported on stderr and skipped.
"""

import argparse
import dataclasses
import json
import math
import pathlib
import sys

from . import cli_setup, config
from .outputs import OutputPathError, atomic_write, check_output_path
from .show.progress import format_duration
from .training import log as training_log, run_files
from .training.run_files import RunFiles
from .version import version

EVAL_METRICS = ('AP', 'AP50', 'AP75', 'AR', 'test_pixel_error', 'test_pck')  # plotted when present
EVAL_SOURCES = {'stats': 'eval stats files', 'test': 'test records (--eval-interval)'}
IGNORED_FLAGS = ('output',)  # differs between any two runs; the run name already says it
MAX_REPORTED_LINES = 10  # corrupt lines reported one by one per file; the rest are counted


def report(message: str) -> None:
    print(f'openfields.logs: {message}', file=sys.stderr)


def number(value) -> float:
    """A logged number as a float: ``None`` (a head without data) and unreadable values become NaN;
    the log writes non-finite floats as the strings ``'nan'``, ``'inf'``."""
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


# ---------------------------------------------------------------------------------------------------------
# reading


def read_records(path: pathlib.Path) -> training_log.LogContents | None:
    """The log as :func:`openfields.training.log.read_log` reads it, or None (reported) when ``path`` is
    not a log. Corrupt lines and a cut last line are reported."""
    try:
        contents = training_log.read_log(path)
    except training_log.NotALog as error:
        report(f'{error}; skipped')
        return None
    except OSError as error:
        report(f'{path}: cannot read ({error.strerror or error}); skipped')
        return None
    for line_number, reason in contents.corrupt[:MAX_REPORTED_LINES]:
        report(f'{path}:{line_number}: corrupt line skipped: {reason}')
    if len(contents.corrupt) > MAX_REPORTED_LINES:
        report(f'{path}: {len(contents.corrupt) - MAX_REPORTED_LINES} more corrupt lines skipped')
    if contents.cut_last_line:
        report(f'{path}: the last line is cut (the run was killed while writing it, or is writing it now); '
               'ignored')
    return contents


# ---------------------------------------------------------------------------------------------------------
# runs


@dataclasses.dataclass
class EvalPoint:
    """The stats of one evaluated epoch of a run: from a stats file (``source='stats'``, ``path``) or from a
    ``test`` record of the log (``source='test'``, ``path`` the log; ``stats`` without the ``test.`` prefix)."""
    epoch: int
    dataset: str
    stats: dict
    path: pathlib.Path
    source: str = 'stats'


@dataclasses.dataclass
class Run:
    """One training run as read from its log.

    ``train`` maps ``(epoch, batch)``, ``train_epochs`` an epoch, ``val_epochs`` and ``tests``
    ``(epoch, dataset)`` (dataset None for single-dataset logs) to a record. What a resumed run did again
    is already left out by the reader (:func:`openfields.training.log.read_log`).
    """
    name: str
    path: pathlib.Path
    processes: list[dict] = dataclasses.field(default_factory=list)
    field_names: list[str] = dataclasses.field(default_factory=list)
    train: dict = dataclasses.field(default_factory=dict)
    train_epochs: dict = dataclasses.field(default_factory=dict)
    val_epochs: dict = dataclasses.field(default_factory=dict)
    tests: dict = dataclasses.field(default_factory=dict)
    error: str | None = None
    wall_time: float = 0.0
    evals: list[EvalPoint] = dataclasses.field(default_factory=list)
    stopped: dict | None = None  # the stop signal that ended the run last, until it resumed
    cut_last_line: bool = False  # the log ends in half a record

    @property
    def args(self) -> dict:
        """The flags of the run as first started (a resumed run keeps its identity)."""
        args = self.processes[0].get('args') if self.processes else None
        return args if isinstance(args, dict) else {}

    @property
    def planned_epochs(self) -> int | None:
        args = self.processes[-1].get('args') if self.processes else None
        epochs = args.get('epochs') if isinstance(args, dict) else None
        return epochs if isinstance(epochs, int) else None

    @property
    def last_epoch(self) -> int | None:
        return max(self.train_epochs) if self.train_epochs else None

    def train_batches(self) -> tuple[list[float], list[dict]]:
        """The per-interval records in order and their x: the epochs done when the batch started,
        ``epoch - 1 + batch / n_batches`` (epochs count from 1)."""
        xs, records = [], []
        for (epoch, batch), record in sorted(self.train.items()):
            n_batches = record.get('n_batches')
            fraction = batch / n_batches if isinstance(n_batches, int) and n_batches > 0 else 0.0
            xs.append(epoch - 1 + fraction)
            records.append(record)
        return xs, records

    def val_by_epoch(self) -> dict[int, dict]:
        """One record per validated epoch: losses and times summed over datasets, head losses merged
        (each component belongs to one dataset)."""
        merged = {}
        for (epoch, dataset) in sorted(self.val_epochs, key=lambda key: (key[0], str(key[1]))):
            record = self.val_epochs[(epoch, dataset)]
            into = merged.setdefault(epoch, {'losses': [], 'times': [], 'head_losses': {}})
            into['losses'].append(number(record.get('loss')))
            into['times'].append(number(record.get('time')))
            for name, value in (record.get('head_losses') or {}).items():
                if not math.isfinite(into['head_losses'].get(name, math.nan)):
                    into['head_losses'][name] = number(value)
        return {epoch: {'loss': sum(m['losses']), 'time': sum(m['times']), 'head_losses': m['head_losses']}
                for epoch, m in merged.items()}


def _add_field_names(run: Run, names) -> None:
    for name in names:
        if isinstance(name, str) and name not in run.field_names:
            run.field_names.append(name)


def _add_record(run: Run, record: dict) -> None:
    kind = record['type']
    if isinstance(record.get('head_losses'), dict):
        _add_field_names(run, record['head_losses'])
    if kind == 'process':
        run.processes.append(record)
        run.error = run.stopped = None  # a resumed run starts afresh
    elif kind == 'stopped':
        run.stopped = record
    elif kind == 'config':
        _add_field_names(run, record.get('field_names') or [])
    elif kind == 'train':
        run.train[(record['epoch'], record['batch'])] = record
    elif kind == 'train-epoch':
        run.train_epochs[record['epoch']] = record
    elif kind in ('val-epoch', 'test'):
        dataset = record.get('dataset')
        records = run.val_epochs if kind == 'val-epoch' else run.tests
        records[(record['epoch'], dataset if isinstance(dataset, str) else None)] = record
    elif kind == 'error':
        run.error = str(record.get('message', 'error'))


def wall_time(records: list[dict]) -> float:
    """Seconds from each ``process`` record to the last record before the next one, summed: the time a
    resumed run was stopped does not count."""
    total, start, last = 0.0, None, None
    for record in records:
        t = number(record.get('time_unix'))
        if not math.isfinite(t):
            continue
        if record['type'] == 'process' or start is None:
            if start is not None:
                total += last - start
            start = t
        last = t
    return total + (last - start if start is not None else 0.0)


def run_from_records(name: str, path: pathlib.Path, contents: training_log.LogContents | list[dict],
                     stats_files: dict | None = None) -> Run:
    """``stats_files`` caches the eval stats read so far (path -> stats or None) across runs."""
    if isinstance(contents, list):
        contents = training_log.LogContents(records=contents, corrupt=[])
    records = contents.records
    run = Run(name=name, path=path, cut_last_line=contents.cut_last_line)
    for record in records:
        _add_record(run, record)
    run.wall_time = wall_time(contents.all_records if contents.all_records is not None else records)
    run.evals = find_evals(run, {} if stats_files is None else stats_files) + test_points(run)
    return run


# ---------------------------------------------------------------------------------------------------------
# evaluation stats


def checkpoint_base(log_path: pathlib.Path) -> str:
    """``x.pkl`` for the log ``x.pkl.log``."""
    return RunFiles.of_log(log_path).out.name


def _stats_checkpoint_and_dataset(path: pathlib.Path, stats: dict) -> tuple[str | None, str | None]:
    """The checkpoint file name and dataset a stats file belongs to: from its ``checkpoint`` and
    ``dataset`` keys, else from its name ``<checkpoint>.eval-<dataset>.stats.json``."""
    from_name = run_files.parse_eval_stats(path) or (None, None)
    checkpoint = stats.get('checkpoint')
    checkpoint = pathlib.PurePath(checkpoint).name if isinstance(checkpoint, str) else from_name[0]
    dataset = stats.get('dataset') if isinstance(stats.get('dataset'), str) else from_name[1]
    return checkpoint, dataset


def _checkpoint_epoch(run: Run, checkpoint: str) -> int | None:
    files = RunFiles.of_log(run.path)
    if checkpoint == files.out.name:  # the final checkpoint, written after the last planned epoch
        return run.planned_epochs or run.last_epoch
    return files.epoch_of(checkpoint)


def _read_stats(path: pathlib.Path) -> dict | None:
    try:
        stats = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        report(f'{path}: unreadable eval stats ({error}); skipped')
        return None
    if not isinstance(stats, dict):
        report(f'{path}: eval stats are not a JSON object; skipped')
        return None
    return stats


def find_evals(run: Run, stats_files: dict) -> list[EvalPoint]:
    """Stats files next to the log that belong to this run's checkpoints, sorted by dataset and epoch.
    An epoch evaluated both as ``x.pkl.epochNNN`` and as the final ``x.pkl`` counts once."""
    base = checkpoint_base(run.path)
    points = {}
    for path in sorted(run.path.parent.glob(run_files.STATS_GLOB)):
        if path not in stats_files:
            stats_files[path] = _read_stats(path)
        stats = stats_files[path]
        if stats is None or stats.get('oracle'):
            continue
        checkpoint, dataset = _stats_checkpoint_and_dataset(path, stats)
        epoch = _checkpoint_epoch(run, checkpoint) if checkpoint else None
        if epoch is None or dataset is None:
            continue
        if (dataset, epoch) not in points or checkpoint != base:
            points[(dataset, epoch)] = EvalPoint(epoch=epoch, dataset=dataset, stats=stats, path=path)
    return [points[key] for key in sorted(points)]


def test_points(run: Run) -> list[EvalPoint]:
    """The ``test`` records of the log as points (``test.AP`` -> ``AP``), sorted by dataset and epoch."""
    points = []
    for (epoch, dataset), record in sorted(run.tests.items(), key=lambda item: (str(item[0][1]), item[0][0])):
        metrics = record.get('metrics') if isinstance(record.get('metrics'), dict) else {}
        stats = {name[len('test.'):] if name.startswith('test.') else name: value for name, value in metrics.items()}
        points.append(EvalPoint(epoch=epoch, dataset=dataset or '', stats=stats, path=run.path, source='test'))
    return points


# ---------------------------------------------------------------------------------------------------------
# names


def log_stem(path: pathlib.Path) -> str:
    """The name of the run whose log is ``path`` (``x`` for ``x.pkl.log``)."""
    return RunFiles.of_log(path).name or path.name


def run_names(paths: list[pathlib.Path]) -> list[str]:
    """Log names without ``.pkl.log``; equal names get as many parent folders as make them distinct,
    then a number."""
    names = [log_stem(p) for p in paths]
    parents = [p.resolve().parent.parts for p in paths]
    for depth in range(1, max((len(p) for p in parents), default=0) + 1):
        duplicated = {n for n in names if names.count(n) > 1}
        if not duplicated:
            return names
        names = [('/'.join(parents[i][-depth:] + (log_stem(p),)) if names[i] in duplicated else names[i])
                 for i, p in enumerate(paths)]
    seen = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if names.count(name) > 1:
            names[i] = f'{name} ({seen[name]})'
    return names


def read_runs(paths: list[str]) -> list[Run]:
    """Every readable log as a Run; unreadable ones are reported and left out."""
    readable = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            report(f'{path}: is a folder, not a training log; skipped')
            continue
        records = read_records(path)
        if records is not None:
            readable.append((path, records))
    names = run_names([path for path, _ in readable])
    stats_files = {}
    return [run_from_records(name, path, records, stats_files) for name, (path, records) in zip(names, readable)]


# ---------------------------------------------------------------------------------------------------------
# table


def format_loss(value: float) -> str:
    return f'{value:.6g}'


def _final_and_best(losses: dict[int, float]) -> tuple[str, str]:
    """``(final, 'best (epoch N)')`` of per-epoch losses; the first epoch wins ties."""
    finite = {epoch: loss for epoch, loss in sorted(losses.items()) if math.isfinite(loss)}
    if not losses:
        return '-', '-'
    final = format_loss(losses[max(losses)])
    if not finite:
        return final, '-'
    best_epoch = min(finite, key=lambda epoch: (finite[epoch], epoch))
    return final, f'{format_loss(finite[best_epoch])} (epoch {best_epoch})'


def best_metric(run: Run, dataset: str, metric: str = 'AP') -> tuple[float, int] | None:
    """The highest finite, defined (pycocotools writes -1 for undefined) metric and its first epoch, of the
    stats files and the test records together."""
    points = [(number(p.stats.get(metric)), p.epoch) for p in run.evals if p.dataset == dataset]
    points = [(value, epoch) for value, epoch in points if math.isfinite(value) and value >= 0]
    if not points:
        return None
    return max(points, key=lambda point: (point[0], -point[1]))


def _status(run: Run) -> str:
    if run.error is not None:
        return f'error: {run.error}'
    if run.stopped is not None:
        return f'stopped by {run.stopped.get("signal") or "a signal"}; resume from {run.stopped.get("checkpoint")}'
    finished = run.planned_epochs is not None and run.last_epoch is not None and run.last_epoch >= run.planned_epochs
    status = 'finished' if finished else 'incomplete (running or interrupted)'
    return f'{status}, log ends in a cut line' if run.cut_last_line else status


def _epochs(run: Run) -> str:
    done = run.last_epoch or 0
    return f'{done} of {run.planned_epochs}' if run.planned_epochs is not None else str(done)


def flag_value(value) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def differing_flags(runs: list[Run]) -> list[str]:
    """Flags (process ``args`` keys, in the order logged) that every run logged, with values that are not
    the same in every run."""
    shared = [name for name in runs[0].args
              if name not in IGNORED_FLAGS and all(name in run.args for run in runs[1:])]
    return [name for name in shared
            if len({json.dumps(run.args[name], sort_keys=True, default=repr) for run in runs}) > 1]


def unshared_flags(run: Run, runs: list[Run], shown: int = 2) -> str:
    """The flags this run logged that another run did not (runs of other code versions), abbreviated."""
    names = [name for name in run.args if any(name not in other.args for other in runs)]
    if not names:
        return '-'
    more = f' (+{len(names) - shown} more)' if len(names) > shown else ''
    return ', '.join(names[:shown]) + more


def table_rows(runs: list[Run]) -> list[tuple[str, list[str]]]:
    """``(label, one cell per run)`` rows of the comparison table."""
    rows = [('epochs', [_epochs(run) for run in runs]),
            ('status', [_status(run) for run in runs]),
            ('wall time', [format_duration(run.wall_time) for run in runs])]
    train = [_final_and_best({e: number(r.get('loss')) for e, r in run.train_epochs.items()}) for run in runs]
    val = [_final_and_best({e: v['loss'] for e, v in run.val_by_epoch().items()}) for run in runs]
    rows += [('final train loss', [t[0] for t in train]), ('best train loss', [t[1] for t in train]),
             ('final val loss', [v[0] for v in val]), ('best val loss', [v[1] for v in val])]
    for dataset in sorted({p.dataset for run in runs for p in run.evals}):
        cells = []
        for run in runs:
            best = best_metric(run, dataset)
            cells.append(f'{best[0]:.4f} (epoch {best[1]})' if best else '-')
        rows.append((f'best AP {dataset}', cells))
    rows += [(f'args.{name}', [flag_value(run.args[name]) for run in runs]) for name in differing_flags(runs)]
    unshared = [unshared_flags(run, runs) for run in runs]
    if any(cell != '-' for cell in unshared):
        rows.append(('args not in every log', unshared))
    return rows


def text_table(runs: list[Run]) -> str:
    rows = [('run', [run.name for run in runs])] + table_rows(runs)
    widths = [max(len(label) for label, _ in rows)]
    widths += [max(len(cells[i]) for _, cells in rows) for i in range(len(runs))]
    lines = []
    for index, (label, cells) in enumerate(rows):
        lines.append('  '.join(text.ljust(width) for text, width in zip([label] + cells, widths)).rstrip())
        if index == 0:
            lines.append('  '.join('-' * width for width in widths))
    return '\n'.join(lines)


def markdown_table(runs: list[Run]) -> str:
    def cell(text):
        return text.replace('|', '\\|')
    lines = ['| | ' + ' | '.join(cell(run.name) for run in runs) + ' |',
             '| --- |' + ' --- |' * len(runs)]
    lines += [f'| {cell(label)} | ' + ' | '.join(cell(c) for c in cells) + ' |' for label, cells in table_rows(runs)]
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------------
# figures


def run_colour(index: int):
    import matplotlib
    return matplotlib.colormaps['tab10'](index % 10)


def _style_handles() -> list:
    from matplotlib.lines import Line2D
    return [Line2D([], [], color='grey', linewidth=0.8, alpha=0.5, label='train, per display interval'),
            Line2D([], [], color='grey', linestyle='--', marker='x', label='train, epoch mean'),
            Line2D([], [], color='grey', marker='o', label='val, epoch mean')]


def _legend(fig, runs: list[Run], with_styles: bool = True) -> None:
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=run_colour(i), linewidth=2, label=run.name) for i, run in enumerate(runs)]
    if with_styles:
        handles += _style_handles()
    fig.legend(handles=handles, loc='outside lower center', ncol=min(len(handles), 4), fontsize='small')


def _finish_axes(ax, values: list[float], ylabel: str | None = None) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) > 10 * min(finite):
        ax.set_yscale('log')  # losses and rates spanning decades
    ax.grid(alpha=0.3)
    if ylabel:
        ax.set_ylabel(ylabel)


def _loss(record: dict, component: str | None) -> float:
    """The total loss of a record (component None) or one component's."""
    if component is None:
        return number(record.get('loss'))
    return number((record.get('head_losses') or {}).get(component))


def _plot_loss_lines(ax, run: Run, colour, component: str | None) -> list[float]:
    """Train per interval, train epoch means and val epoch means of one loss; returns the values."""
    xs, records = run.train_batches()
    batch_values = [_loss(r, component) for r in records]
    epochs = sorted(run.train_epochs)
    train_values = [_loss(run.train_epochs[e], component) for e in epochs]
    val = run.val_by_epoch()
    val_epochs = sorted(val)
    val_values = [_loss(val[e], component) for e in val_epochs]
    ax.plot(xs, batch_values, color=colour, linewidth=0.8, alpha=0.5)
    ax.plot(epochs, train_values, color=colour, linestyle='--', marker='x')
    ax.plot(val_epochs, val_values, color=colour, marker='o')
    return batch_values + train_values + val_values


def _loss_panels(runs: list[Run]) -> list[list[str | None]]:
    """Rows of panels: the total loss, then one row per ``<dataset>.<head>`` with its components."""
    heads = {}
    for run in runs:
        for name in run.field_names:
            head = name.rsplit('.', 1)[0]
            if name not in heads.setdefault(head, []):
                heads[head].append(name)
    return [[None]] + list(heads.values())


def loss_figure(runs: list[Run], new_figure):
    rows = _loss_panels(runs)
    n_cols = max(len(row) for row in rows)
    fig = new_figure(figsize=(4.2 * n_cols, 2.9 * len(rows) + 0.8))
    fig.suptitle('loss per head component')
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for row, row_axes in zip(rows, axes):
        for ax in row_axes[len(row):]:
            ax.set_visible(False)
        for ax, component in zip(row_axes, row):
            values = []
            for i, run in enumerate(runs):
                values += _plot_loss_lines(ax, run, run_colour(i), component)
            ax.set_title(component or 'total loss', fontsize='medium')
            ax.set_xlabel('epoch')
            _finish_axes(ax, values)
    _legend(fig, runs)
    return fig


def learning_rate_figure(runs: list[Run], new_figure):
    fig = new_figure(figsize=(7, 4.5))
    ax = fig.subplots()
    values = []
    for i, run in enumerate(runs):
        xs, records = run.train_batches()
        lrs = [number(r.get('lr')) for r in records]
        ax.plot(xs, lrs, color=run_colour(i), marker='.', markersize=3)
        values += lrs
    ax.set_title('learning rate (at each display interval)', fontsize='medium')
    ax.set_xlabel('epoch')
    _finish_axes(ax, values, 'learning rate')
    _legend(fig, runs, with_styles=False)
    return fig


def epoch_time_figure(runs: list[Run], new_figure):
    from matplotlib.lines import Line2D
    fig = new_figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for i, run in enumerate(runs):
        epochs = sorted(run.train_epochs)
        seconds = [number(run.train_epochs[e].get('time')) for e in epochs]
        ax.plot(epochs, seconds, color=run_colour(i), marker='o')
        val = run.val_by_epoch()
        val_epochs = sorted(val)
        ax.plot(val_epochs, [val[e]['time'] for e in val_epochs], color=run_colour(i), linestyle='--', marker='x')
    ax.set_title('seconds per epoch', fontsize='medium')
    ax.set_xlabel('epoch')
    _finish_axes(ax, [], 'seconds')
    ax.set_ylim(bottom=0)
    styles = [Line2D([], [], color='grey', marker='o', label='training'),
              Line2D([], [], color='grey', linestyle='--', marker='x', label='validation')]
    handles = [Line2D([], [], color=run_colour(i), linewidth=2, label=run.name) for i, run in enumerate(runs)]
    fig.legend(handles=handles + styles, loc='outside lower center', ncol=min(len(runs) + 2, 4), fontsize='small')
    return fig


def _eval_metrics(points: list[EvalPoint]) -> list[str]:
    """The columns of the evaluation figure: :data:`EVAL_METRICS` that some point has, else the first four
    names of the first point."""
    present = [m for m in EVAL_METRICS if any(m in p.stats for p in points)]
    return present or [name for name in points[0].stats if math.isfinite(number(points[0].stats[name]))][:4]


def eval_figure(runs: list[Run], new_figure):
    """Metric against epoch: a row per dataset, a column per metric, a line style per source (stats files,
    test records); None without any evaluation."""
    from matplotlib.lines import Line2D
    points = [p for run in runs for p in run.evals]
    datasets = sorted({p.dataset for p in points})
    metrics = _eval_metrics(points) if points else []
    if not datasets or not metrics:
        return None
    styles = {'stats': dict(marker='o'), 'test': dict(marker='s', linestyle=':')}
    fig = new_figure(figsize=(3.6 * len(metrics), 3.2 * len(datasets) + 0.8))
    fig.suptitle('evaluation (test records of the logs, stats files next to them)')
    axes = fig.subplots(len(datasets), len(metrics), squeeze=False)
    for row, dataset in zip(axes, datasets):
        for ax, metric in zip(row, metrics):
            for i, run in enumerate(runs):
                for source, style in styles.items():
                    chosen = [p for p in run.evals if p.dataset == dataset and p.source == source]
                    values = [number(p.stats.get(metric)) for p in chosen]
                    values = [v if v >= 0 else math.nan for v in values]  # -1: undefined in pycocotools
                    ax.plot([p.epoch for p in chosen], values, color=run_colour(i), **style)
            ax.set_title(f'{metric} {dataset}', fontsize='medium')
            ax.set_xlabel('epoch')
            _finish_axes(ax, [])
    handles = [Line2D([], [], color=run_colour(i), linewidth=2, label=run.name) for i, run in enumerate(runs)]
    handles += [Line2D([], [], color='grey', label=EVAL_SOURCES[source], **style) for source, style in styles.items()
                if any(p.source == source for p in points)]
    fig.legend(handles=handles, loc='outside lower center', ncol=min(len(handles), 4), fontsize='small')
    return fig


def figures(runs: list[Run], new_figure) -> list[tuple[str, object]]:
    """``(file stem, figure)`` of every plot; ``new_figure(figsize=...)`` makes an empty figure."""
    made = [('losses', loss_figure(runs, new_figure)),
            ('learning-rate', learning_rate_figure(runs, new_figure)),
            ('epoch-time', epoch_time_figure(runs, new_figure)),
            ('eval', eval_figure(runs, new_figure))]
    return [(stem, fig) for stem, fig in made if fig is not None]


def agg_figure(**kwargs):
    """A figure drawn by the Agg backend, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(layout='constrained', **kwargs)
    FigureCanvasAgg(fig)
    return fig


def pyplot_figure(**kwargs):
    import matplotlib.pyplot as plt
    return plt.figure(layout='constrained', **kwargs)


def write_pngs(made: list[tuple[str, object]], folder: pathlib.Path, dpi: int = 100) -> list[pathlib.Path]:
    """Each figure as ``folder/<stem>.png``, written atomically."""
    paths = []
    for stem, fig in made:
        path = folder / f'{stem}.png'
        with atomic_write(path, 'wb') as f:
            fig.savefig(f, format='png', dpi=dpi)
        paths.append(path)
    return paths


def default_output(runs: list[Run]) -> pathlib.Path:
    """``<folder of the first log>/<run>.plots``, or ``<a>-vs-<b>.plots`` for several runs."""
    stems = [log_stem(run.path) for run in runs]
    name = '-vs-'.join(stems)
    if len(name) > 80:
        name = f'{stems[0]}-vs-{len(stems) - 1}-more'
    return runs[0].path.parent / f'{name}.plots'


# ---------------------------------------------------------------------------------------------------------
# command line


def cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('logs', nargs='+', metavar='LOG', help='training logs <run>.pkl.log')
    parser.add_argument('-o', '--output', default=None, metavar='DIR',
                        help='write the plots as PNG files into DIR and print their paths '
                             '(default without --show: <folder of the first log>/<run>[-vs-<run>...].plots)')
    parser.add_argument('--show', action='store_true', help='open the plots in matplotlib windows')
    parser.add_argument('--markdown', action='store_true', help='print the comparison table as markdown')
    parser.add_argument('--dpi', type=int, default=100, help='resolution of the PNG files')


def parser() -> argparse.ArgumentParser:
    p = config.ArgumentParser(prog='python -m openfields.logs', description=__doc__.splitlines()[0])
    p.add_argument('--version', action='version', version=f'openfields {version()}')
    cli(p)
    return p


def run(args) -> int:
    """Print the table and write (or show) the plots; the exit status."""
    if args.dpi < 1:
        raise ValueError(f'--dpi {args.dpi}: must be at least 1')
    check_output_path(args.output, '--output', folder=True)
    runs = read_runs(args.logs)
    if not runs:
        report('error: none of the given files could be read as a training log')
        return 1
    print(markdown_table(runs) if args.markdown else text_table(runs))
    made = figures(runs, pyplot_figure if args.show else agg_figure)
    if args.output is not None or not args.show:
        folder = pathlib.Path(args.output) if args.output is not None else default_output(runs)
        print()
        for path in write_pngs(made, folder, dpi=args.dpi):
            print(path)
    if args.show:
        import matplotlib.pyplot as plt
        plt.show()
    return 0


def main(argv=None) -> int:
    """``python -m openfields.logs``: the exit status (returned, for ``sys.exit``)."""
    return cli_setup.run_cli('openfields.logs', parser(), run, (ValueError, OutputPathError), argv=argv,
                             setup=lambda args: cli_setup.configure_logging(quiet=True), threads=False,
                             exit_on_failure=False)  # what it says is printed: warnings only in the log


if __name__ == '__main__':
    sys.exit(main())
