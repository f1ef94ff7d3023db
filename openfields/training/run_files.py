"""The names of every file of a training run; everything else asks this module.

A run is named by its output path ``<out>`` (``outputs/<basenet>-<yymmdd-HHMMSS>-<dataset>-<8 hex>.pkl``
by default); ``<run>`` is ``<out>`` without ``.pkl``::

    <out>                         final checkpoint (the model to use; no training state)
    <out>.epochNNN                regular snapshot after NNN epochs (resumable)
    <out>.epochNNN.batchBBBBBB    written on a stop signal: NNN epochs and BBBBBB batches of the next done
    <run>.best.pkl                best snapshot by the key metric (--eval-interval)
    <out>.log                     JSON-lines training log (openfields.training.log)
    <out>.config.json             every flag of the run, a config file for --config
    <out>.lock                    held while the run trains (openfields.training.lock)
    <out><suffix>                 a dataset's run file, e.g. ``.dlc-split.json``
    <run>.detector.pkl            the detector run of a top-down run (``--method td``), with files of its own
    <checkpoint>.eval-<dataset>.stats.json   what ``openfields.eval`` scored on a checkpoint

A new run (no ``--resume``) refuses an output an earlier run wrote to (:meth:`RunFiles.check_unused`): two runs
in one log, and checkpoints replaced, would leave neither run readable.

Temporary files of the atomic writes are ``.<name>.<pid>.tmp`` beside each (:mod:`openfields.outputs`).
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import hashlib
import os
import pathlib
import re

from .. import outputs

SNAPSHOT_SUFFIX = re.compile(r'\.epoch(\d{3,})(?:\.batch(\d{6,}))?$')
SNAPSHOT_GLOB = '.epoch*'  # after a glob of <out>: every snapshot (regular and interrupted)
BEST_SUFFIX = '.best.pkl'
DETECTOR_SUFFIX = '.detector.pkl'
LOG_SUFFIX = '.log'
STATS_SUFFIX = '.stats.json'
STATS_GLOB = f'*{STATS_SUFFIX}'
EVAL_STATS = re.compile(r'^(?P<checkpoint>.+)\.eval-(?P<dataset>[^/]+)\.stats\.json$')


class OutputInUse(ValueError):
    """A new run's output holds the files of an earlier run."""


@dataclasses.dataclass(frozen=True, order=True)
class Position:
    """``epoch`` epochs done and ``batches`` batches of the next: where training continues."""
    epoch: int = 0
    batches: int = 0


def position_from_name(path) -> Position | None:
    """The position a snapshot's name encodes (None for a file that is not a snapshot)."""
    match = SNAPSHOT_SUFFIX.search(str(path))
    if match is None:
        return None
    return Position(int(match.group(1)), int(match.group(2) or 0))


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """The files of the run whose final checkpoint is ``out``."""
    out: pathlib.Path

    def __init__(self, out: str | os.PathLike):
        object.__setattr__(self, 'out', pathlib.Path(out))

    @classmethod
    def of_checkpoint(cls, path: str | os.PathLike) -> 'RunFiles':
        """The run a checkpoint belongs to: ``x.pkl`` for ``x.pkl``, ``x.pkl.epoch007(.batch000010)`` and
        ``x.best.pkl``."""
        name = SNAPSHOT_SUFFIX.sub('', str(path))
        if name.endswith(BEST_SUFFIX):
            name = name[:-len(BEST_SUFFIX)] + '.pkl'
        return cls(name)

    @classmethod
    def of_log(cls, path: str | os.PathLike) -> 'RunFiles':
        """The run whose log is ``path`` (``<out>.log``)."""
        name = str(path)
        return cls(name[:-len(LOG_SUFFIX)] if name.endswith(LOG_SUFFIX) else name)

    @property
    def detector_run(self) -> 'RunFiles':
        """The files of this top-down run's detector run: ``<run>.detector.pkl`` beside ``<out>``."""
        return RunFiles(f'{self.run}{DETECTOR_SUFFIX}')

    @property
    def is_detector_run(self) -> bool:
        return self.out.name.endswith(DETECTOR_SUFFIX)

    def epoch_of(self, checkpoint: str | os.PathLike) -> int | None:
        """The epochs done in this run's checkpoint ``checkpoint`` (a path or a file name beside ``<out>``):
        NNN for a regular snapshot, None for the final checkpoint (its epoch is the run's last) and for
        any other file."""
        name = pathlib.PurePath(checkpoint).name
        position = position_from_name(name)
        if position is None or name != self.snapshot(position.epoch).name:
            return None
        return position.epoch

    @property
    def run(self) -> str:
        """``<out>`` without its ``.pkl`` suffix."""
        out = str(self.out)
        return out[:-len('.pkl')] if out.endswith('.pkl') else out

    @property
    def name(self) -> str:
        """The run's name: the file name of ``<out>`` without ``.pkl`` (what ``openfields.logs`` shows)."""
        return pathlib.PurePath(self.run).name

    @property
    def log(self) -> pathlib.Path:
        return pathlib.Path(f'{self.out}{LOG_SUFFIX}')

    @property
    def config(self) -> pathlib.Path:
        return pathlib.Path(f'{self.out}.config.json')

    @property
    def lock(self) -> pathlib.Path:
        return pathlib.Path(f'{self.out}.lock')

    @property
    def best(self) -> pathlib.Path:
        return pathlib.Path(f'{self.run}{BEST_SUFFIX}')

    def snapshot(self, epoch: int) -> pathlib.Path:
        return pathlib.Path(f'{self.out}.epoch{epoch:03d}')

    @property
    def learning_stats(self) -> pathlib.Path:
        """``--logger csv``: DeepLabCut's ``learning_stats.csv`` layout, one row per epoch."""
        return pathlib.Path(f'{self.out}.learning_stats.csv')

    @property
    def tensorboard(self) -> pathlib.Path:
        """``--logger tensorboard``: the folder of the event files (a resumed run appends to it)."""
        return pathlib.Path(f'{self.out}.tensorboard')

    @property
    def wandb(self) -> pathlib.Path:
        """``--logger wandb``: ``WANDB_DIR`` of the run and its ``run-id`` (a resumed run continues it)."""
        return pathlib.Path(f'{self.out}.wandb')

    def interrupted(self, position: Position) -> pathlib.Path:
        return pathlib.Path(f'{self.snapshot(position.epoch)}.batch{position.batches:06d}')

    def dataset_file(self, suffix: str) -> pathlib.Path:
        """A file a dataset writes for this run (``write_run_files``), e.g. ``.dlc-split.json``."""
        return pathlib.Path(f'{self.out}{suffix}')

    def regular_snapshots(self) -> list[tuple[int, pathlib.Path]]:
        """``(epoch, path)`` of the regular snapshots on disk, oldest first."""
        found = []
        for path in glob.glob(self.snapshot_glob()):
            position = position_from_name(path)
            if position is not None and path == str(self.snapshot(position.epoch)):
                found.append((position.epoch, pathlib.Path(path)))
        return sorted(found)

    def rotated_out(self, keep: int) -> list[pathlib.Path]:
        """The regular snapshots that ``--max-snapshots keep`` deletes: all but the ``keep`` newest
        (``keep=0``: none)."""
        return [] if keep <= 0 else [path for _, path in self.regular_snapshots()[:-keep]]

    def interrupted_snapshots(self) -> list[tuple[Position, pathlib.Path]]:
        found = []
        for path in glob.glob(f'{glob.escape(str(self.out))}.epoch*.batch*'):
            position = position_from_name(path)
            if position is not None and path == str(self.interrupted(position)):
                found.append((position, pathlib.Path(path)))
        return sorted(found)

    def resumable(self) -> list[tuple[Position, pathlib.Path]]:
        """Every snapshot ``--resume`` can continue, by position (a later position last)."""
        regular = [(Position(epoch, 0), path) for epoch, path in self.regular_snapshots()]
        return sorted(regular + self.interrupted_snapshots())

    def files(self) -> list[pathlib.Path]:
        """The run's files that exist now (checkpoints, log, config, lock)."""
        named = [self.out, self.log, self.config, self.lock, self.best]
        return [p for p in named if p.exists()] + [p for _, p in self.resumable()]

    def written(self) -> list[pathlib.Path]:
        """What a run has written here: its log, config and checkpoints (not the lock, which a run that
        could not start leaves too)."""
        return [p for p in self.files() if p != self.lock]

    def check_unused(self) -> None:
        """Before a new run (not ``--resume``) writes here: :class:`OutputInUse` naming the earlier run's files,
        how to continue it and how to start afresh, when there are any."""
        written = self.written()
        if not written:
            return
        shown = ', '.join(p.name for p in written[:3]) + (f' and {len(written) - 3} more' if len(written) > 3 else '')
        if self.is_detector_run:
            raise OutputInUse(f'{self.out}: an earlier detector run of this --output wrote here ({shown}); continue '
                              'it with --detector-resume auto, reuse its detector with --detector-epochs 0, or start '
                              'afresh with another --output or after removing those files')
        raise OutputInUse(f'--output {self.out}: an earlier run wrote here ({shown}); continue it with --resume auto '
                          '(or --resume CHECKPOINT), or start afresh with another --output or after removing those '
                          'files')

    def snapshot_glob(self) -> str:
        """The glob of this run's snapshots (regular and interrupted)."""
        return snapshot_glob(glob.escape(str(self.out)))

    def stale_temp_files(self) -> list[pathlib.Path]:
        """Temporary files that a killed process of this run left beside its files."""
        names = [self.out, self.log, self.config, self.best, self.learning_stats,
                 *(p for _, p in self.resumable())]
        stale = [t for p in names for t in outputs.stale_temp_files(p)]
        # a snapshot whose write was killed never got its name: match its temp file by pattern
        pattern = re.compile(rf'\.{re.escape(self.out.name)}\.epoch\d{{3,}}(\.batch\d{{6,}})?\.\d+'
                             + re.escape(outputs.TEMP_SUFFIX))
        if self.out.parent.is_dir():
            stale += [p for p in self.out.parent.iterdir() if pattern.fullmatch(p.name)]
        return sorted(set(stale))


def may_be_checkpoint(path: str | os.PathLike) -> bool:
    """False for the files a run or an evaluation writes beside its checkpoints (logs, configs, locks,
    stats, predictions, temporary files): what ``eval --watch`` skips when a glob matches them."""
    return not str(path).endswith(('.tmp', '.log', '.json', '.zip', '.lock'))


def snapshot_glob(out_pattern: str) -> str:
    """The glob of the snapshots of the runs whose ``<out>`` matches ``out_pattern`` (a glob)."""
    return f'{out_pattern}{SNAPSHOT_GLOB}'


def eval_stats(checkpoint: str | os.PathLike, dataset: str) -> pathlib.Path:
    """``<checkpoint>.eval-<dataset>.stats.json``."""
    return stats_file(eval_prefix(checkpoint, dataset))


def stats_file(prefix: str | os.PathLike) -> pathlib.Path:
    """``<prefix>.stats.json``: the scores eval writes for the output prefix ``prefix`` (``--output``)."""
    return pathlib.Path(f'{prefix}{STATS_SUFFIX}')


def eval_prefix(checkpoint: str | os.PathLike, dataset: str) -> str:
    """``<checkpoint>.eval-<dataset>``: eval's default output prefix (stats, predictions)."""
    return f'{checkpoint}.eval-{dataset}'


def parse_eval_stats(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(checkpoint file name, dataset)`` of an eval stats file name, or None."""
    match = EVAL_STATS.match(pathlib.Path(path).name)
    return (match['checkpoint'], match['dataset']) if match else None


def default_name(basenet: str, dataset: str, now: datetime.datetime, token_source: str,
                 environ=None) -> str:
    """``<basenet>-<yymmdd-HHMMSS>-<dataset>-<8 hex>.pkl``; in a Slurm job ``slurm<JOB_ID>`` replaces the
    hex, so that a requeued job finds its run (``--resume auto``)."""
    stamp = now.strftime('%y%m%d-%H%M%S')
    job_id = (os.environ if environ is None else environ).get('SLURM_JOB_ID')
    token = f'slurm{job_id}' if job_id else \
        hashlib.sha256(f'{stamp} {os.getpid()} {token_source}'.encode()).hexdigest()[:8]
    return f'{basenet}-{stamp}-{dataset}-{token}.pkl'


def names_a_file(output: str | None) -> bool:
    """``--output`` names the checkpoint itself (not a folder for the default name)."""
    return bool(output) and not (output.endswith('/') or pathlib.Path(output).is_dir())


def output_path(output: str | None, default: str) -> pathlib.Path:
    """The run's ``<out>`` from ``--output`` (a file, a folder ending in / or an existing folder, or None:
    ``outputs/``) and the default file name."""
    if output is None:
        return pathlib.Path('outputs') / default
    if not names_a_file(output):
        return pathlib.Path(output) / default
    return pathlib.Path(output)


def slurm_run_pattern(output: str | None, job_id: str) -> str:
    """The glob of the final checkpoint names of a Slurm job's run under ``--output`` (a folder)."""
    folder = pathlib.Path(output or 'outputs')
    return str(pathlib.Path(glob.escape(str(folder))) / f'*-slurm{job_id}.pkl')
