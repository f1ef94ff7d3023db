"""Train/test split of a DeepLabCut project's frames, and the split file kept next to a checkpoint.

``--dlc-shuffle N`` names a DeepLabCut shuffle: when the project holds that shuffle's split (``training-datasets/
iteration-<i>/UnaugmentedDataSet_<Task><date>/Documentation_data-<Task>_<pct>shuffle<N>.pickle``, read by
:mod:`openfields.deeplabcut.training_datasets`), openfields trains and tests on DeepLabCut's frames, so a test
error compares with DeepLabCut's for the same shuffle. Otherwise (one log line names the file looked for) the
split is openfields' own, a function of the frame paths, the training fraction and the shuffle number only:
the frames sorted by path are permuted by ``numpy.random.default_rng(shuffle)`` and the first
``floor(N * fraction)`` of the permutation train (DeepLabCut's rule, with a seed DeepLabCut does not set).

Training writes the split to ``<checkpoint>.dlc-split.json``; evaluation of that checkpoint (or of one of its
``.epochNNN`` siblings) reads it back, so the test frames stay the test frames even if flags or labels change.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib

import numpy as np

from openfields import outputs
from openfields.datasets.coco import DatasetError
from openfields.deeplabcut import training_datasets
from openfields.training.run_files import RunFiles

from . import project

LOG = logging.getLogger(__name__)

SPLIT_SUFFIX = '.dlc-split.json'
FORMAT = 'openfields-dlc-split-1'


@dataclasses.dataclass(frozen=True)
class Split:
    train: tuple[str, ...]  # frame paths relative to the project folder, sorted
    test: tuple[str, ...]
    train_fraction: float
    shuffle: int
    deeplabcut_file: str | None = None  # the DeepLabCut split file it was read from; None: openfields' own


def project_split(config: project.ProjectConfig, frames: list[project.Frame], train_fraction: float,
                  shuffle: int) -> Split:
    """DeepLabCut's split of the shuffle when the project holds one, else openfields' own (logged)."""
    check_fraction(train_fraction)
    folder = training_datasets.trainset_folder(config.root, config.task, config.date, config.iteration)
    path = training_datasets.documentation_path(folder, config.task, train_fraction, shuffle)
    if path.is_file():
        return deeplabcut_split(path, config, frames, train_fraction, shuffle)
    LOG.info('dlc: no DeepLabCut split of shuffle %d at train fraction %s (looked for %s); drawing openfields\' '
             'own split seeded by the shuffle number', shuffle, train_fraction, path)
    return make_split([f.path for f in frames], train_fraction, shuffle)


def check_fraction(train_fraction: float) -> None:
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f'--dlc-train-fraction must be in (0, 1), got {train_fraction}')


def make_split(paths: list[str], train_fraction: float, shuffle: int) -> Split:
    """Deterministic split of ``paths``; at least one frame on each side."""
    check_fraction(train_fraction)
    ordered = sorted(paths)
    n_train = math.floor(len(ordered) * train_fraction + 1e-9)  # 1e-9: 0.95 * 100 is 94.999...
    if not 1 <= n_train < len(ordered):
        raise ValueError(f'--dlc-train-fraction {train_fraction} of {len(ordered)} frames leaves '
                         f'{n_train} for training and {len(ordered) - n_train} for testing; both need one')
    order = np.random.default_rng(shuffle).permutation(len(ordered))
    return Split(train=tuple(sorted(ordered[i] for i in order[:n_train])),
                 test=tuple(sorted(ordered[i] for i in order[n_train:])),
                 train_fraction=float(train_fraction), shuffle=int(shuffle))


# --- DeepLabCut's split --------------------------------------------------------------------------------------

def deeplabcut_split(path: pathlib.Path, config: project.ProjectConfig, frames: list[project.Frame],
                     train_fraction: float, shuffle: int) -> Split:
    """The labelled frames at the split file's rows of the merged labels beside it. The rows must be the
    project's labelled frames as they are now: otherwise the indices would silently name other frames."""
    found = training_datasets.read_documentation(path)
    if not math.isclose(found.train_fraction, train_fraction):
        raise DatasetError(f'{path}: holds the split of train fraction {found.train_fraction}, not '
                           f'{train_fraction} (--dlc-train-fraction)')
    merged = training_datasets.merged_labels_path(path.parent, config.scorer)
    if not merged.is_file():
        raise DatasetError(f'{path}: the merged labels whose rows its indices count are missing ({merged})')
    rows = project.read_rows(merged, config)
    row_paths = [relative for relative, _ in rows]
    labelled = {frame.path for frame in frames}
    _check_indices(found, row_paths, merged)
    _check_same_labels(found, {relative for relative, frame in rows if frame is not None}, labelled, merged)
    train = sorted(row_paths[i] for i in found.train if row_paths[i] in labelled)
    test = sorted(row_paths[i] for i in found.test if row_paths[i] in labelled)
    if not train or not test:
        raise DatasetError(f'{path}: {len(train)} labelled training and {len(test)} labelled test frames; '
                           'openfields needs at least one of each')
    LOG.info('dlc: DeepLabCut\'s split of shuffle %d (%s): %d train, %d test frames', shuffle, path, len(train),
             len(test))
    return Split(train=tuple(train), test=tuple(test), train_fraction=float(train_fraction), shuffle=int(shuffle),
                 deeplabcut_file=str(path))


def _check_indices(found: training_datasets.ShuffleSplit, row_paths: list[str], merged: pathlib.Path) -> None:
    """Every index a row of the merged labels, none twice, none on both sides; the frames that
    ``train_data_details`` names at the training rows."""
    seen: dict[int, str] = {}
    for name, indices in (('trainIndices', found.train), ('testIndices', found.test)):
        for i in indices:
            if not 0 <= i < len(row_paths):
                raise DatasetError(f'{found.path}: {name} holds row {i}, but the merged labels {merged} have '
                                   f'{len(row_paths)} rows (0 to {len(row_paths) - 1})')
            if i in seen:
                where = 'twice' if seen[i] == name else f'in {seen[i]} too'
                raise DatasetError(f'{found.path}: {name} lists row {i} ({row_paths[i]}) {where}')
            seen[i] = name
    unknown = set(found.train_images or ()) - {row_paths[i] for i in found.train}
    if unknown:
        raise DatasetError(f'{found.path}: its train_data_details name {min(unknown)}, which is at none of its '
                           f'trainIndices in {merged}: the merged labels changed after this split was made')


def _check_same_labels(found: training_datasets.ShuffleSplit, merged_frames: set[str], project_frames: set[str],
                       merged: pathlib.Path) -> None:
    """The merged labels label the frames the project labels now (DeepLabCut trains from the merged copy)."""
    if merged_frames == project_frames:
        return
    only = (f'{min(project_frames - merged_frames)} is labelled only in labeled-data'
            if project_frames - merged_frames else f'{min(merged_frames - project_frames)} only in the merged labels')
    raise DatasetError(f'{found.path}: the merged labels {merged} hold {len(merged_frames)} labelled frames, the '
                       f'project\'s labeled-data {len(project_frames)} ({only}): the labels changed after DeepLabCut '
                       'made this split; re-create the shuffle in DeepLabCut')


# --- the split next to the checkpoint -----------------------------------------------------------------------

def split_path(checkpoint_path: str | os.PathLike) -> pathlib.Path:
    """The split file of the training run whose final checkpoint is ``checkpoint_path``."""
    return RunFiles(checkpoint_path).dataset_file(SPLIT_SUFFIX)


def find_split_file(checkpoint_path: str | os.PathLike) -> pathlib.Path | None:
    """``<checkpoint>.dlc-split.json``, else the run's (``run.pkl`` for ``run.pkl.epoch007``,
    ``run.pkl.epoch002.batch000010`` and ``run.best.pkl``); None if absent."""
    candidates = [split_path(checkpoint_path), RunFiles.of_checkpoint(checkpoint_path).dataset_file(SPLIT_SUFFIX)]
    return next((p for p in candidates if p.is_file()), None)


def write_split(path: pathlib.Path, split: Split, project_root: pathlib.Path):
    """Write the split as json, atomically."""
    data = {'format': FORMAT, 'project': str(project_root), 'train_fraction': split.train_fraction,
            'shuffle': split.shuffle, 'deeplabcut_file': split.deeplabcut_file, 'train': list(split.train),
            'test': list(split.test)}
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
                 train_fraction=float(data.get('train_fraction', math.nan)), shuffle=int(data.get('shuffle', -1)),
                 deeplabcut_file=data.get('deeplabcut_file'))
