"""Which snapshots a run keeps: ``--save-epochs``, ``--max-snapshots``, the key metric that picks the best
snapshot and the best score so far (DeepLabCut's snapshot manager, with openfields' names; the files are
written by :mod:`openfields.training.checkpointer`, named by :mod:`openfields.training.run_files`).

* with ``--eval-interval`` the key metric (``--key-metric test.<score>``, ``test.<dataset>.<score>``) picks
  the best snapshot: written when a score is strictly better than every earlier one of the run (NaN never
  is), with ``best: {epoch, metric, value, larger_is_better}`` in its meta. The best score is part of the
  training state, so a resumed run replaces the best snapshot only with a strictly better score.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import re

LOG = logging.getLogger(__name__)

LARGER_IS_BETTER = re.compile(r'^(m?a[pr](\d+|[sml])?|pck\d*)$', re.IGNORECASE)  # AP50, APM, AR100, mAP, pck
SMALLER_IS_BETTER = re.compile(r'^(rmse|errors?|px|epe)$', re.IGNORECASE)  # pixel_error, rmse_pcutoff


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('snapshots')
    group.add_argument('--save-epochs', type=int, default=None, metavar='N',
                       help='write a regular snapshot <output>.epochNNN every N epochs and at the last one '
                            '(default: with every validation, see --val-interval)')
    group.add_argument('--max-snapshots', type=int, default=0, metavar='K',
                       help='keep only the K newest regular snapshots of the run (0: keep all); the best '
                            'snapshot and the final <output> are never deleted')
    group.add_argument('--key-metric', default=None, metavar='NAME',
                       help='score that selects the best snapshot <run>.best.pkl (<run>: --output without '
                            '.pkl): test.<score> of the first dataset or test.<dataset>.<score>, e.g. '
                            'test.AP, test.test_pixel_error (default with --eval-interval: the first score '
                            'of the first dataset\'s metrics)')
    direction = group.add_mutually_exclusive_group()
    direction.add_argument('--key-metric-asc', action='store_true',
                           help='larger --key-metric is better (default for names with AP, AR, PCK, mAP)')
    direction.add_argument('--key-metric-desc', action='store_true',
                           help='smaller --key-metric is better (default for names with rmse, error, px)')
    group.add_argument('--save-optimizer-state', default=True, action=argparse.BooleanOptionalAction,
                       help='keep the optimizer state (momentum, Adam moments) in the newest regular snapshot '
                            '(older ones and the best one are rewritten without it): exact --resume needs it; '
                            'without it the snapshots keep position, random and schedule state and a resume '
                            'starts the optimizer afresh (DeepLabCut\'s default is without). Checkpoints '
                            'written on a stop signal always keep it')


@dataclasses.dataclass(frozen=True)
class SnapshotSettings:
    max_snapshots: int = 0
    key_metric: str | None = None
    larger_is_better: bool | None = None  # None: from the metric's name
    save_optimizer_state: bool = True

    @classmethod
    def from_args(cls, args) -> 'SnapshotSettings':
        if args.max_snapshots < 0:
            raise ValueError(f'--max-snapshots must be >= 0, got {args.max_snapshots}')
        direction = True if args.key_metric_asc else False if args.key_metric_desc else None
        if (args.key_metric is not None or direction is not None) and not args.eval_interval:
            flag = '--key-metric' if args.key_metric is not None else \
                '--key-metric-asc' if direction else '--key-metric-desc'
            raise ValueError(f'{flag} needs --eval-interval N > 0: the key metric is computed by the evaluation')
        return cls(max_snapshots=args.max_snapshots, key_metric=args.key_metric, larger_is_better=direction,
                   save_optimizer_state=args.save_optimizer_state)


# --- the key metric --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class KeyMetric:
    """``name`` (as given, e.g. ``test.AP``) is the score ``stat`` of ``dataset``."""

    name: str
    dataset: str
    stat: str
    larger_is_better: bool


def larger_is_better(name: str) -> bool | None:
    """The default direction of a score from the words of its name (None: unknown)."""
    words = re.split(r'[._\-@:/ ]+', name)
    larger = any(LARGER_IS_BETTER.match(w) for w in words)
    smaller = any(SMALLER_IS_BETTER.match(w) for w in words)
    return None if larger == smaller else larger


# DeepLabCut's training-time metric names (runner.key_metric) -> the openfields scores of the same quantity
DLC_METRIC_NAMES = {'mAP': 'AP', 'mAR': 'AR', 'rmse': 'test_pixel_error',
                    'rmse_pcutoff': 'test_pixel_error_pcutoff'}


def _dlc_alias(name: str, names_per_dataset: dict[str, list[str]]) -> str:
    """``test.mAP`` -> ``test.AP`` (and ``test.<dataset>.mAP``) when the metrics have no score of the
    DeepLabCut name itself; any other name unchanged."""
    prefix, _, stat = name.rpartition('.')
    alias = DLC_METRIC_NAMES.get(stat)
    if alias is None or stat in {n for names in names_per_dataset.values() for n in names}:
        return name
    LOG.info('--key-metric %s: DeepLabCut\'s %s is openfields\' %s', name, stat, alias)
    return f'{prefix}.{alias}'


def available_names(names_per_dataset: dict[str, list[str]]) -> list[str]:
    """``test.<score>`` of the first dataset, then ``test.<dataset>.<score>`` of every dataset."""
    first = next(iter(names_per_dataset))
    return [f'test.{n}' for n in names_per_dataset[first]] + \
        [f'test.{d}.{n}' for d, names in names_per_dataset.items() for n in names]


def key_metric(settings: SnapshotSettings, names_per_dataset: dict[str, list[str]]) -> KeyMetric:
    """The key metric of a run that evaluates ``names_per_dataset`` ({dataset: score names}); a clear
    ValueError (listing the available names) for a name the metrics do not produce or an unknown direction."""
    first = next(iter(names_per_dataset))
    name = settings.key_metric
    if name is None:
        if not names_per_dataset[first]:
            raise ValueError(f'--eval-interval: the metrics of {first} declare no score to select the best snapshot')
        name = f'test.{names_per_dataset[first][0]}'
    name = _dlc_alias(name, names_per_dataset)
    dataset, stat = _split(name, names_per_dataset)
    if stat not in names_per_dataset.get(dataset, ()):
        raise ValueError(f'--key-metric {name}: not a score of the evaluated datasets; available: '
                         + ', '.join(available_names(names_per_dataset)))
    direction = settings.larger_is_better if settings.larger_is_better is not None else larger_is_better(stat)
    if direction is None:
        raise ValueError(f'--key-metric {name}: is larger or smaller better? Pass --key-metric-asc (larger) '
                         'or --key-metric-desc (smaller)')
    return KeyMetric(name=name, dataset=dataset, stat=stat, larger_is_better=direction)


def _split(name: str, names_per_dataset: dict[str, list[str]]) -> tuple[str, str]:
    """``test.<dataset>.<score>`` or ``test.<score>`` (first dataset) -> (dataset, score)."""
    first = next(iter(names_per_dataset))
    rest = name[len('test.'):] if name.startswith('test.') else None
    if rest is None:
        return first, ''  # not a test score: refused by the caller with the available names
    dataset, _, stat = rest.partition('.')
    if stat and dataset in names_per_dataset and stat in names_per_dataset[dataset]:
        return dataset, stat
    return first, rest


# --- the best score --------------------------------------------------------------------------------------

def is_better(value: float, best: float | None, larger: bool) -> bool:
    """Strictly better than ``best`` (None: nothing yet); NaN never is."""
    if math.isnan(value):
        return False
    return best is None or (value > best if larger else value < best)


class BestTracker:
    """The best key-metric score of a run so far (``key=None``: no evaluation, never a best)."""

    def __init__(self, key: KeyMetric | None):
        self.key = key
        self.best: dict | None = None  # {'epoch', 'metric', 'value', 'larger_is_better'}

    def update(self, epoch: int, scores: dict[str, dict[str, float]]) -> bool:
        """Take ``scores`` ({dataset: {score: value}}) of ``epoch``; True when they hold a new best."""
        if self.key is None:
            return False
        value = float(scores.get(self.key.dataset, {}).get(self.key.stat, math.nan))
        if not is_better(value, None if self.best is None else self.best['value'], self.key.larger_is_better):
            return False
        self.best = {'epoch': epoch, 'metric': self.key.name, 'value': value,
                     'larger_is_better': self.key.larger_is_better}
        return True

    def state_dict(self) -> dict | None:
        return None if self.best is None else dict(self.best)

    def restore(self, saved: dict | None, source: str) -> None:
        """Keep ``saved`` (a resumed run's best, or the meta of its best snapshot) when it is the same key
        metric and better than the best so far."""
        if saved is None or self.key is None:
            return
        if (saved.get('metric'), saved.get('larger_is_better')) != (self.key.name, self.key.larger_is_better):
            LOG.warning('%s: its best snapshot was chosen by %s (larger is better: %s), this run chooses by %s '
                        '(%s); the next evaluation replaces it', source, saved.get('metric'),
                        saved.get('larger_is_better'), self.key.name, self.key.larger_is_better)
            return
        if is_better(float(saved.get('value', math.nan)), None if self.best is None else self.best['value'],
                     self.key.larger_is_better):
            self.best = dict(saved)
