"""Experiment loggers: ``--logger tensorboard|wandb|csv`` (repeatable) besides the JSON-lines log.

The trainer writes its records once, to :class:`~openfields.training.log.TrainingLog`, which hands each to
:class:`Loggers` (rank 0 only: the other ranks have no log). Every record becomes scalars at a global step
(batches trained so far: ``(epoch - 1) * n_batches + batch + 1`` for ``train`` records, ``epoch *
n_batches`` for the end-of-epoch ones, so steps never go back):

* ``train``: ``train/loss``, ``train/lr`` and ``train/<dataset>.<head>.<component>``;
* ``val-epoch``: ``val/<dataset>.total`` and ``val/<dataset>.<head>.<component>``;
* ``test``: ``test/<dataset>.<score>`` for every score of the evaluation.

``--logger csv`` writes DeepLabCut's ``learning_stats.csv`` instead: one row per epoch, ``step`` (the
epoch) then the sorted union of ``learning_rate``, ``losses/train.total_loss``, ``losses/train.<component>``,
``losses/eval.total_loss``, ``losses/eval.<component>`` and ``metrics/test.<score>``. ``--image-log-interval
N`` adds, every N epochs, a training and a validation image with their target and predicted CIF
confidences (:mod:`openfields.show.field_images`).

A resumed run continues its loggers: the same TensorBoard folder, the W&B run of the id saved in the run's
``.wandb`` folder (W&B runs offline unless ``WANDB_MODE`` says otherwise: ``wandb sync`` uploads it later),
and the rows already in ``learning_stats.csv``. The logger packages are optional (``pip install
openfields[tensorboard]``, ``openfields[wandb]``); a missing one is a one-line error before anything is
written.

``--wandb-init-kwargs JSON`` passes further keyword arguments to ``wandb.init`` (``tags``, ``group``,
``notes``, ``job_type``, ``entity``, ...: what DeepLabCut's ``WandbLogger`` passes on from its ``logger``
section). They are checked against ``wandb.init``'s signature at start-up (:func:`check_wandb_init_kwargs`):
an unknown name, a value of the wrong kind, or one that openfields sets itself (:data:`WANDB_OWN_KWARGS`) is
refused in one line naming it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import io
import json
import logging
import os
import secrets
import shutil

from .. import outputs
from . import schedulers
from .run_files import RunFiles

LOG = logging.getLogger(__name__)

KINDS = ('tensorboard', 'wandb', 'csv')
PACKAGES = {'tensorboard': 'tensorboard', 'wandb': 'wandb'}  # kind -> the module it imports
# wandb.init arguments openfields sets itself -> how to set them instead
WANDB_OWN_KWARGS = {'project': '--wandb-project', 'name': '--wandb-run-name', 'id': 'the run\'s .wandb/run-id',
                    'resume': '--resume', 'dir': '--output', 'config': 'the run\'s flags',
                    'mode': 'the WANDB_MODE environment variable', 'settings': 'openfields'}


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('loggers')
    group.add_argument('--logger', action='append', default=[], choices=KINDS,
                       help='also log losses, learning rate and evaluation scores to TensorBoard (<run>.tensorboard/),'
                            ' Weights & Biases (offline, <run>.wandb/) or DeepLabCut\'s learning_stats.csv '
                            '(<run>.learning_stats.csv); repeatable')
    group.add_argument('--wandb-project', default='openfields', help='--logger wandb: the W&B project')
    group.add_argument('--wandb-run-name', default=None,
                       help='--logger wandb: the run\'s name (default: the checkpoint\'s file name)')
    group.add_argument('--wandb-init-kwargs', default=None, metavar='JSON',
                       help='--logger wandb: further keyword arguments of wandb.init as a JSON object, e.g. '
                            '\'{"tags": ["dekr", "split=0"], "group": "shuffle1", "notes": "..."}\' (checked '
                            'against wandb.init at start-up)')
    group.add_argument('--image-log-interval', type=int, default=0, metavar='N',
                       help='every N epochs, log a training and a validation image with their target and '
                            'predicted fields to --logger tensorboard / wandb (0: off)')


@dataclasses.dataclass(frozen=True)
class LoggerSettings:
    kinds: tuple[str, ...] = ()
    wandb_project: str = 'openfields'
    wandb_run_name: str | None = None
    image_log_interval: int = 0
    wandb_init_kwargs: str = '{}'  # --wandb-init-kwargs, JSON with sorted keys

    @classmethod
    def from_args(cls, args) -> 'LoggerSettings':
        """Checked at start-up: the packages of the loggers asked for are installed, the W&B init
        arguments are ones wandb.init takes."""
        kinds = tuple(dict.fromkeys(args.logger))
        for kind in kinds:
            if kind in PACKAGES and importlib.util.find_spec(PACKAGES[kind]) is None:
                raise ValueError(f'--logger {kind}: the {PACKAGES[kind]} package is not installed; '
                                 f'pip install openfields[{kind}]')
        if args.image_log_interval < 0:
            raise ValueError(f'--image-log-interval must be >= 0, got {args.image_log_interval}')
        return cls(kinds=kinds, wandb_project=args.wandb_project, wandb_run_name=args.wandb_run_name,
                   image_log_interval=args.image_log_interval,
                   wandb_init_kwargs=_wandb_init_kwargs(getattr(args, 'wandb_init_kwargs', None), kinds))


FLAG = '--wandb-init-kwargs'


def _wandb_init_kwargs(text: str | None, kinds: tuple[str, ...]) -> str:
    """``--wandb-init-kwargs`` checked (with ``--logger wandb`` only), as JSON with sorted keys."""
    if text is None:
        return '{}'
    if 'wandb' not in kinds:
        raise ValueError(f'{FLAG} needs --logger wandb')
    try:
        kwargs = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as error:
        raise ValueError(f'{FLAG}: not a JSON object ({error.msg})') from None
    if not isinstance(kwargs, dict):
        raise ValueError(f'{FLAG}: must be a JSON object of wandb.init arguments, got {text!r}')
    try:
        check_wandb_init_kwargs(kwargs)
    except schedulers.ParamsError as error:
        raise ValueError(f'{FLAG} {error.key}: {error.reason}') from None
    return json.dumps(kwargs, sort_keys=True)


def check_wandb_init_kwargs(kwargs: dict) -> None:
    """Arguments ``wandb.init`` takes, of the kinds it annotates, none that openfields sets itself; a
    :class:`~openfields.training.schedulers.ParamsError` keyed by the argument's name otherwise (the wandb
    package must be installed)."""
    import wandb  # pylint: disable=import-outside-toplevel
    for name in kwargs:
        if name in WANDB_OWN_KWARGS:
            raise schedulers.ParamsError(str(name), f'openfields sets wandb.init\'s {name} itself (use '
                                                    f'{WANDB_OWN_KWARGS[name]})')
    try:
        schedulers.check_params(wandb.init, kwargs)
    except schedulers.ParamsError as error:
        key = error.key[len(schedulers.PARAMS) + 1:] if error.key.startswith(schedulers.PARAMS + '.') else error.key
        reason = error.reason.replace('init rejects its params: ', 'wandb.init has ', 1).replace(
            'init takes', 'wandb.init takes', 1)
        raise schedulers.ParamsError(key, reason) from None


class Loggers:
    """The loggers of a run: each record of the training log, and images, to every sink."""

    def __init__(self, sinks: list, image_log_interval: int = 0):
        self.sinks = sinks
        self.image_log_interval = image_log_interval if any(s.takes_images for s in sinks) else 0
        self.n_batches = 1

    def step(self, record_type: str, fields: dict) -> int:
        if record_type == 'train':
            self.n_batches = fields.get('n_batches', self.n_batches)
            return (fields['epoch'] - 1) * self.n_batches + fields['batch'] + 1
        return fields.get('epoch', 0) * self.n_batches

    def record(self, record_type: str, fields: dict) -> None:
        if record_type not in ('train', 'train-epoch', 'val-epoch', 'test'):
            return
        step = self.step(record_type, fields)
        for sink in self.sinks:
            sink.record(record_type, fields, step)

    def logs_images(self, epoch: int) -> bool:
        return self.image_log_interval > 0 and epoch % self.image_log_interval == 0

    def image(self, tag: str, rgb, epoch: int) -> None:
        """``rgb``: uint8 ``(H, W, 3)``, at the end of ``epoch``."""
        for sink in self.sinks:
            if sink.takes_images:
                sink.image(tag, rgb, epoch * self.n_batches)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def scalars(record_type: str, fields: dict) -> dict[str, float]:
    """The scalars of a record for TensorBoard and W&B (names in the module's docstring)."""
    values = {}
    if record_type == 'train':
        values = {'train/loss': fields.get('loss'), 'train/lr': fields.get('lr')}
        values.update({f'train/{name}': v for name, v in (fields.get('head_losses') or {}).items()})
    elif record_type == 'val-epoch':
        dataset = fields.get('dataset', '')
        values = {f'val/{dataset}.total': fields.get('loss')}
        values.update({f'val/{name}': v for name, v in (fields.get('head_losses') or {}).items()})
    elif record_type == 'test':
        dataset = fields.get('dataset', '')
        values = {f'test/{dataset}.{name[len("test."):] if name.startswith("test.") else name}': v
                  for name, v in (fields.get('metrics') or {}).items()}
    return {name: float(v) for name, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# --- sinks --------------------------------------------------------------------------------------------------

class TensorBoardSink:
    takes_images = True

    def __init__(self, folder):
        from torch.utils.tensorboard import SummaryWriter  # pylint: disable=import-outside-toplevel
        self.writer = SummaryWriter(log_dir=str(folder))

    def record(self, record_type, fields, step):
        for name, value in scalars(record_type, fields).items():
            self.writer.add_scalar(name, value, step)

    def image(self, tag, rgb, step):
        self.writer.add_image(tag, rgb, step, dataformats='HWC')

    def close(self):
        self.writer.close()


class WandbSink:
    """An offline W&B run (``WANDB_MODE`` unless set), continued by a resumed run through its saved id."""
    takes_images = True

    def __init__(self, folder, project: str, name: str, config: dict, init_kwargs: dict | None = None):
        import wandb  # pylint: disable=import-outside-toplevel
        self.wandb = wandb
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / 'run-id'
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        try:
            self.run = wandb.init(project=project, name=name, id=run_id, resume='allow', dir=str(folder),
                                  config=config, mode=os.environ.get('WANDB_MODE', 'offline'),
                                  settings=wandb.Settings(silent=True, console='off'), **(init_kwargs or {}))
        except Exception as error:  # wandb raises its own types; any failure is the user's setup
            if created:
                shutil.rmtree(folder, ignore_errors=True)
            raise ValueError(f'--logger wandb: cannot create the W&B run in {folder}: '
                             f'{" ".join(str(error).split())}') from None
        outputs.write_text(id_file, run_id + '\n')

    def record(self, record_type, fields, step):
        values = scalars(record_type, fields)
        if values:
            self.run.log(values, step=step)

    def image(self, tag, rgb, step):
        self.run.log({tag: self.wandb.Image(rgb)}, step=step)

    def close(self):
        self.run.finish()


class CsvSink:
    """DeepLabCut's ``learning_stats.csv``: one row per epoch, rewritten whole (atomically) after each."""
    takes_images = False

    def __init__(self, path):
        self.path = path
        self.rows: dict[int, dict] = {}
        if path.is_file():  # a resumed run keeps its rows
            with open(path, newline='', encoding='utf-8') as file:
                for row in csv.DictReader(file):
                    self.rows[int(row.pop('step'))] = {k: v for k, v in row.items() if v != ''}

    def record(self, record_type, fields, step):
        epoch = fields.get('epoch')
        row = self.rows.setdefault(epoch, {})
        if record_type == 'train':
            row['learning_rate'] = fields.get('lr')
            return
        if record_type == 'train-epoch':
            row['losses/train.total_loss'] = fields.get('loss')
            row.update({f'losses/train.{k}': v for k, v in (fields.get('head_losses') or {}).items()})
        elif record_type == 'val-epoch':
            row['losses/eval.total_loss'] = fields.get('loss')
            row.update({f'losses/eval.{k}': v for k, v in (fields.get('head_losses') or {}).items()})
        elif record_type == 'test':
            row.update({f'metrics/{k}': v for k, v in (fields.get('metrics') or {}).items()})
        self._write()

    def _write(self):
        names = sorted({name for row in self.rows.values() for name in row})
        text = io.StringIO()
        writer = csv.writer(text, lineterminator='\n')
        writer.writerow(['step', *names])
        for epoch in sorted(self.rows):
            writer.writerow([epoch, *('' if self.rows[epoch].get(n) is None else self.rows[epoch][n]
                                      for n in names)])
        outputs.write_text(self.path, text.getvalue())

    def close(self):
        pass


def build(settings: LoggerSettings, files: RunFiles, config: dict) -> Loggers | None:
    """The run's loggers (rank 0), or None without ``--logger``; ``config``: recorded by W&B."""
    if not settings.kinds:
        return None
    sinks = []
    try:
        for kind in settings.kinds:
            if kind == 'tensorboard':
                sinks.append(TensorBoardSink(files.tensorboard))
            elif kind == 'wandb':
                sinks.append(WandbSink(files.wandb, settings.wandb_project,
                                       settings.wandb_run_name or files.out.name, config,
                                       json.loads(settings.wandb_init_kwargs)))
            else:
                sinks.append(CsvSink(files.learning_stats))
    except Exception:
        for sink in sinks:
            sink.close()
        raise
    LOG.info('logging to %s', ', '.join(settings.kinds))
    return Loggers(sinks, settings.image_log_interval)
