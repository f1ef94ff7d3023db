"""Train/test split of a DeepLabCut project's frames, and the split file kept next to a checkpoint.

The split is a function of the frame paths, the training fraction and the shuffle number only: the frames
sorted by path are permuted by ``numpy.random.default_rng(shuffle)`` and the first ``floor(N * fraction)``
of the permutation train (DeepLabCut's rule, with a seed DeepLabCut does not set). Training writes it to
``<checkpoint>.dlc-split.json``; evaluation of that checkpoint (or of one of its ``.epochNNN`` siblings)
reads it back, so the test frames stay the test frames even if flags or labels change.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib

import numpy as np

from openfields import outputs
from openfields.datasets.coco import DatasetError
from openfields.training.run_files import RunFiles

SPLIT_SUFFIX = '.dlc-split.json'
FORMAT = 'openfields-dlc-split-1'


@dataclasses.dataclass(frozen=True)
class Split:
    train: tuple[str, ...]  # frame paths relative to the project folder, sorted
    test: tuple[str, ...]
    train_fraction: float
    shuffle: int


def make_split(paths: list[str], train_fraction: float, shuffle: int) -> Split:
    """Deterministic split of ``paths``; at least one frame on each side."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f'--dlc-train-fraction must be in (0, 1), got {train_fraction}')
    ordered = sorted(paths)
    n_train = math.floor(len(ordered) * train_fraction + 1e-9)  # 1e-9: 0.95 * 100 is 94.999...
    if not 1 <= n_train < len(ordered):
        raise ValueError(f'--dlc-train-fraction {train_fraction} of {len(ordered)} frames leaves '
                         f'{n_train} for training and {len(ordered) - n_train} for testing; both need one')
    order = np.random.default_rng(shuffle).permutation(len(ordered))
    return Split(train=tuple(sorted(ordered[i] for i in order[:n_train])),
                 test=tuple(sorted(ordered[i] for i in order[n_train:])),
                 train_fraction=float(train_fraction), shuffle=int(shuffle))


def split_path(checkpoint_path: str | os.PathLike) -> pathlib.Path:
    """The split file of the training run whose final checkpoint is ``checkpoint_path``."""
    return RunFiles(checkpoint_path).dataset_file(SPLIT_SUFFIX)


def find_split_file(checkpoint_path: str | os.PathLike) -> pathlib.Path | None:
    """``<checkpoint>.dlc-split.json``, else the run's (``run.pkl`` for ``run.pkl.epoch007``,
    ``run.pkl.epoch002.batch000010`` and ``run.best.pkl``); None if absent."""
    candidates = [split_path(checkpoint_path), RunFiles.of_checkpoint(checkpoint_path).dataset_file(SPLIT_SUFFIX)]
    return next((p for p in candidates if p.is_file()), None)


def write_split(path: pathlib.Path, split: Split, project: pathlib.Path):
    """Write the split as json, atomically."""
    data = {'format': FORMAT, 'project': str(project), 'train_fraction': split.train_fraction,
            'shuffle': split.shuffle, 'train': list(split.train), 'test': list(split.test)}
    outputs.write_json(path, data, indent=1)


def read_split(path: pathlib.Path, known_paths: set[str]) -> Split:
    """The split written by :func:`write_split`; every frame must still be labelled in the project."""
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f'{path}: not a readable split file ({error})') from None
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise DatasetError(f'{path}: not an openfields DeepLabCut split (format {FORMAT})')
    for key in ('train', 'test'):
        if not isinstance(data.get(key), list) or not data[key]:
            raise DatasetError(f'{path}: "{key}" must be a non-empty list of frame paths')
        unknown = [p for p in data[key] if p not in known_paths]
        if unknown:
            raise DatasetError(f'{path}: {key} frame {unknown[0]} is not labelled in the project '
                               f'({len(unknown)} such frames)')
    return Split(train=tuple(sorted(data['train'])), test=tuple(sorted(data['test'])),
                 train_fraction=float(data.get('train_fraction', math.nan)), shuffle=int(data.get('shuffle', -1)))
