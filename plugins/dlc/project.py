"""Reading a DeepLabCut project: ``config.yaml`` and every ``labeled-data/*/CollectedData_*.csv``.

CSV layout (one row per labelled frame, coordinates in pixels of the frame as stored):

* single animal, 3 header rows: ``scorer``, ``bodyparts``, ``coords`` (``x``/``y`` per body part);
* multi-animal, 4 header rows: ``scorer``, ``individuals``, ``bodyparts``, ``coords``; body parts listed in
  ``uniquebodyparts`` sit under the pseudo-individual ``single`` and are not trained (logged);
* the image path is the first column (``labeled-data/<video>/img0001.png``) or, in newer files, three index
  columns (``labeled-data``, ``<video>``, ``img0001.png``); it is relative to the project folder.

An empty cell is an unlabelled keypoint. Like DeepLabCut, a label outside the open image area
``(0, W) x (0, H)`` counts as unlabelled too, and an individual without any labelled keypoint is dropped.
Every mistake in the header, a cell or an image path stops loading with one line naming the file and row.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import pathlib

import numpy as np
import PIL.Image
import yaml

from openfields.datasets.coco import DatasetError

LOG = logging.getLogger(__name__)

CONFIG_NAME = 'config.yaml'
LABELS_GLOB = 'labeled-data/*/CollectedData_*.csv'
UNIQUE_INDIVIDUAL = 'single'  # DeepLabCut's pseudo-individual of the unique body parts
DEFAULT_PCUTOFF = 0.6  # DeepLabCut's default likelihood threshold
IGNORED_COORDS = ('likelihood',)  # written by DeepLabCut's prediction files, not by labelling


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    """What openfields uses of a project's ``config.yaml``."""

    root: pathlib.Path  # the folder holding config.yaml: every labelled path is relative to it
    task: str
    bodyparts: list[str]  # the keypoints of one animal (``multianimalbodyparts`` in multi-animal projects)
    skeleton: list[tuple[int, int]]  # 1-based pairs; empty when config.yaml has none
    multi_animal: bool
    individuals: list[str]  # empty for single-animal projects
    unique_bodyparts: list[str]
    pcutoff: float
    training_fraction: float | None
    # what names the shuffles' files under training-datasets/ (DeepLabCut's split): Task is ``task``
    scorer: str = ''
    date: str = ''
    iteration: int | None = None  # config.yaml's "iteration"; None when it has none

    @property
    def config_path(self) -> pathlib.Path:
        return self.root / CONFIG_NAME


@dataclasses.dataclass(frozen=True)
class Frame:
    """One labelled image.

    ``keypoints``: ``(N, K, 3)`` float32 ``x, y, v`` in pixels for the N individuals with a labelled
    keypoint, ``v = 2`` labelled, ``v = 0`` (and ``x = y = 0``) unlabelled. ``source``: ``file:row``.
    """

    path: str  # posix path relative to the project folder
    width: int
    height: int
    keypoints: np.ndarray
    individuals: list[str]
    source: str


def project_root(path: str | pathlib.Path) -> pathlib.Path:
    """The project folder from ``--dlc-project`` (the folder, or its config.yaml)."""
    path = pathlib.Path(path).expanduser()
    if path.name == CONFIG_NAME:
        path = path.parent
    config = path / CONFIG_NAME
    if not config.is_file():
        raise DatasetError(f'--dlc-project: DeepLabCut config not found: {config}')
    return path.resolve()


def load_config(root: pathlib.Path) -> ProjectConfig:
    """Parse ``root/config.yaml``; its ``project_path`` is ignored (it is often stale or a placeholder)."""
    path = root / CONFIG_NAME
    try:
        with open(path, encoding='utf-8') as f:
            config = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise DatasetError(f'{path}: not valid YAML ({str(error).splitlines()[0]})') from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f'{path}: cannot be read ({error})') from None
    if not isinstance(config, dict):
        raise DatasetError(f'{path}: expected a mapping of DeepLabCut settings')
    multi_animal = bool(config.get('multianimalproject'))
    bodyparts = _names(config, 'multianimalbodyparts' if multi_animal else 'bodyparts', path, required=True)
    individuals = _names(config, 'individuals', path, required=multi_animal) if multi_animal else []
    unique = _names(config, 'uniquebodyparts', path, required=False) if multi_animal else []
    return ProjectConfig(root=root, task=str(config.get('Task') or 'animal'), bodyparts=bodyparts,
                         skeleton=_skeleton(config.get('skeleton'), bodyparts, path),
                         multi_animal=multi_animal, individuals=individuals, unique_bodyparts=unique,
                         pcutoff=_pcutoff(config.get('pcutoff'), path),
                         training_fraction=_training_fraction(config.get('TrainingFraction'), path),
                         scorer=str(config.get('scorer') or ''), date=str(config.get('date') or ''),
                         iteration=_iteration(config.get('iteration'), path))


def _names(config: dict, key: str, path, required: bool) -> list[str]:
    value = config.get(key)
    if (value is None or value == []) and not required:  # DeepLabCut writes `uniquebodyparts: []`
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) for v in value):
        raise DatasetError(f'{path}: "{key}" must be a non-empty list of names')
    names = [str(v) for v in value]
    if len(set(names)) != len(names):
        raise DatasetError(f'{path}: "{key}" lists a name twice: {names}')
    return names


def _skeleton(value, bodyparts: list[str], path) -> list[tuple[int, int]]:
    """config.yaml's ``skeleton`` (pairs of body part names) as 1-based index pairs."""
    if not value:
        return []
    pairs = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2 or not all(str(n) in bodyparts for n in pair):
            raise DatasetError(f'{path}: "skeleton" entry {pair} is not a pair of body parts of {bodyparts}')
        pairs.append((bodyparts.index(str(pair[0])) + 1, bodyparts.index(str(pair[1])) + 1))
    return pairs


def _pcutoff(value, path) -> float:
    if value is None:
        return DEFAULT_PCUTOFF
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise DatasetError(f'{path}: "pcutoff" must be a number in [0, 1], got {value!r}')
    return float(value)


def _training_fraction(value, path) -> float | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not isinstance(value[0], (int, float)):
        raise DatasetError(f'{path}: "TrainingFraction" must be a list of fractions, got {value!r}')
    return float(value[0])


def _iteration(value, path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatasetError(f'{path}: "iteration" must be a whole number >= 0, got {value!r}')
    return value


# --- labels -----------------------------------------------------------------------------------------------

def label_files(config: ProjectConfig) -> list[pathlib.Path]:
    files = sorted(config.root.glob(LABELS_GLOB))
    if not files:
        raise DatasetError(f'{config.root}: no labels found ({LABELS_GLOB})')
    return files


def load_frames(config: ProjectConfig) -> list[Frame]:
    """Every labelled frame of the project, sorted by path; an image labelled twice is an error."""
    frames: dict[str, Frame] = {}
    for csv_path in label_files(config):
        for frame in read_labels(csv_path, config):
            if frame.path in frames:
                raise DatasetError(f'{frame.source}: image {frame.path} is labelled again '
                                   f'(first in {frames[frame.path].source})')
            frames[frame.path] = frame
    n_labelled = sum(int(np.count_nonzero(f.keypoints[:, :, 2] > 0)) for f in frames.values())
    LOG.info('%s: %d labelled frames, %d labelled keypoints of %d body parts %s', config.root, len(frames),
             n_labelled, len(config.bodyparts), config.bodyparts)
    return [frames[path] for path in sorted(frames)]


@dataclasses.dataclass(frozen=True)
class _Header:
    """Where each (individual, body part, x|y) lives in a CSV row."""

    n_index_columns: int
    width: int  # cells per row
    columns: dict[tuple[str, str, str], int]  # (individual, bodypart, coord) -> column
    individuals: list[str]  # in order of first appearance, without the unique pseudo-individual


def read_labels(csv_path: pathlib.Path, config: ProjectConfig) -> list[Frame]:
    """The frames of one ``CollectedData_*.csv``."""
    return [frame for _, frame in read_rows(csv_path, config) if frame is not None]


def read_rows(csv_path: pathlib.Path, config: ProjectConfig) -> list[tuple[str, Frame | None]]:
    """Every data row of one ``CollectedData_*.csv`` in file order: its image path and its frame (None when
    nothing in the row is labelled). DeepLabCut's split indices count these rows of its merged labels."""
    try:
        with open(csv_path, newline='', encoding='utf-8-sig') as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f'{csv_path}: cannot be read as CSV ({error})') from None
    n_header = 4 if config.multi_animal else 3
    header = _parse_header(rows[:n_header], csv_path, config)
    parsed = []
    n_outside = 0
    for row_number, row in enumerate(rows[n_header:], start=n_header + 1):
        if not any(cell.strip() for cell in row):
            continue
        relative, frame, outside = _parse_row(row, row_number, header, csv_path, config)
        n_outside += outside
        parsed.append((relative, frame))
    if n_outside:
        LOG.info('%s: %d labels outside their image count as unlabelled', csv_path, n_outside)
    return parsed


def _parse_header(rows: list[list[str]], csv_path, config: ProjectConfig) -> _Header:
    expected = ['scorer', 'individuals', 'bodyparts', 'coords'] if config.multi_animal else [
        'scorer', 'bodyparts', 'coords']
    kind = 'multi-animal' if config.multi_animal else 'single-animal'
    for row_number, name in enumerate(expected, start=1):
        if len(rows) < row_number or not rows[row_number - 1] or rows[row_number - 1][0].strip() != name:
            found = rows[row_number - 1][0] if len(rows) >= row_number and rows[row_number - 1] else 'nothing'
            raise DatasetError(f'{csv_path}: row {row_number}: expected the "{name}" header row of a {kind} '
                               f'project ({config.config_path}), found {found!r}')
    coords = rows[-1]
    n_index = next((i for i, cell in enumerate(coords) if i > 0 and cell.strip()), len(coords))
    if n_index not in (1, 3) or n_index == len(coords):
        raise DatasetError(f'{csv_path}: row {len(rows)}: expected 1 or 3 image path columns before the '
                           f'coordinates, found {n_index}')
    width = len(coords)
    if any(len(r) != width for r in rows):
        bad = next(i for i, r in enumerate(rows, start=1) if len(r) != width)
        raise DatasetError(f'{csv_path}: row {bad}: {len(rows[bad - 1])} cells, the coords row has {width}')
    bodypart_row = len(rows) - 1
    columns: dict[tuple[str, str, str], int] = {}
    individuals: list[str] = []
    for column in range(n_index, width):
        individual = rows[1][column].strip() if config.multi_animal else ''
        bodypart, coord = rows[bodypart_row - 1][column].strip(), coords[column].strip()
        if coord in IGNORED_COORDS:
            continue
        _check_column(individual, bodypart, coord, csv_path, bodypart_row, config)
        key = (individual, bodypart, coord)
        if key in columns:
            raise DatasetError(f'{csv_path}: row {bodypart_row}: column {column + 1} repeats '
                               f'{"/".join(k for k in key if k)}')
        columns[key] = column
        if individual != UNIQUE_INDIVIDUAL and individual not in individuals:
            individuals.append(individual)
    _check_complete(columns, individuals, csv_path, bodypart_row, config)
    return _Header(n_index_columns=n_index, width=width, columns=columns, individuals=individuals)


def _check_column(individual, bodypart, coord, csv_path, row_number, config: ProjectConfig):
    if coord not in ('x', 'y'):
        raise DatasetError(f'{csv_path}: row {row_number + 1}: coordinate {coord!r} is not x or y')
    if config.multi_animal and individual == UNIQUE_INDIVIDUAL:
        if bodypart not in config.unique_bodyparts:
            raise DatasetError(f'{csv_path}: row {row_number}: {bodypart!r} under "{UNIQUE_INDIVIDUAL}" is not '
                               f'in uniquebodyparts of {config.config_path} ({config.unique_bodyparts})')
        return
    if config.multi_animal and individual not in config.individuals:
        raise DatasetError(f'{csv_path}: row 2: individual {individual!r} is not in individuals of '
                           f'{config.config_path} ({config.individuals})')
    if bodypart not in config.bodyparts:
        key = 'multianimalbodyparts' if config.multi_animal else 'bodyparts'
        raise DatasetError(f'{csv_path}: row {row_number}: body part {bodypart!r} is not in {key} of '
                           f'{config.config_path} ({", ".join(config.bodyparts)})')


def _check_complete(columns, individuals, csv_path, row_number, config: ProjectConfig):
    """Every individual has x and y of every configured body part."""
    if not individuals:
        raise DatasetError(f'{csv_path}: row {row_number}: no body part columns')
    for individual in individuals:
        missing = [f'{b}/{c}' for b in config.bodyparts for c in ('x', 'y')
                   if (individual, b, c) not in columns]
        if missing:
            who = f'individual {individual!r}: ' if individual else ''
            raise DatasetError(f'{csv_path}: row {row_number}: {who}no column for {", ".join(missing)} '
                               f'(body parts of {config.config_path}: {", ".join(config.bodyparts)})')


def _parse_row(row, row_number, header: _Header, csv_path,
               config: ProjectConfig) -> tuple[str, Frame | None, int]:
    """One data row -> (image path, Frame or None when nothing is labelled, number of labels outside the image)."""
    source = f'{csv_path}: row {row_number}'
    if len(row) != header.width:
        raise DatasetError(f'{source}: {len(row)} cells, the header has {header.width}')
    parts = [cell.strip().replace('\\', '/') for cell in row[:header.n_index_columns]]
    relative = '/'.join(p.strip('/') for p in parts if p)
    path = config.root / relative
    if not relative or not path.is_file():
        raise DatasetError(f'{source}: image {relative or "(empty path)"} not found (looked for {path})')
    with PIL.Image.open(path) as image:
        width, height = image.size
    keypoints = np.zeros((len(header.individuals), len(config.bodyparts), 3), dtype=np.float32)
    n_outside = 0
    for i, individual in enumerate(header.individuals):
        for k, bodypart in enumerate(config.bodyparts):
            x = _number(row[header.columns[(individual, bodypart, 'x')]], source, bodypart)
            y = _number(row[header.columns[(individual, bodypart, 'y')]], source, bodypart)
            if math.isnan(x) or math.isnan(y):
                continue
            if not (0.0 < x < width and 0.0 < y < height):
                n_outside += 1
                continue
            keypoints[i, k] = (x, y, 2.0)
    labelled = np.any(keypoints[:, :, 2] > 0, axis=1)
    if not np.any(labelled):
        return relative, None, n_outside
    return relative, Frame(path=relative, width=width, height=height, keypoints=keypoints[labelled],
                           individuals=[n for n, keep in zip(header.individuals, labelled) if keep],
                           source=source), n_outside


def _number(cell: str, source: str, bodypart: str) -> float:
    cell = cell.strip()
    if not cell:
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise DatasetError(f'{source}: {bodypart}: {cell!r} is not a number') from None


# --- COCO-style view ----------------------------------------------------------------------------------------

def coco_dict(config: ProjectConfig, frames: list[Frame], image_ids: dict[str, int]) -> dict:
    """The frames as a COCO keypoint dict (one category, ``file_name`` relative to the project folder).

    Boxes are the tight boxes of the labelled keypoints; ``area`` (the OKS scale ``s^2``) is their area with
    each side at least one pixel, as DeepLabCut's OKS uses the keypoints' extent.
    """
    images, annotations = [], []
    for frame in frames:
        image_id = image_ids[frame.path]
        images.append({'id': image_id, 'file_name': frame.path, 'width': frame.width, 'height': frame.height})
        for keypoints in frame.keypoints:
            labelled = keypoints[keypoints[:, 2] > 0, :2]
            x0, y0 = labelled.min(axis=0)
            w, h = labelled.max(axis=0) - (x0, y0)
            annotations.append({
                'id': len(annotations) + 1, 'image_id': image_id, 'category_id': 1, 'iscrowd': 0,
                'keypoints': [round(float(v), 3) for v in keypoints.reshape(-1)],
                'num_keypoints': int(len(labelled)),
                'bbox': [float(x0), float(y0), float(w), float(h)],
                'area': float(max(w, 1.0) * max(h, 1.0)),
            })
    category = {'id': 1, 'name': config.task, 'supercategory': 'animal', 'keypoints': list(config.bodyparts),
                'skeleton': [list(pair) for pair in config.skeleton]}
    return {'images': images, 'annotations': annotations, 'categories': [category]}
