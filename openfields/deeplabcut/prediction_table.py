"""DeepLabCut's prediction table: one row per frame, columns ``(scorer, [individual,] bodypart, coord)``
with coords ``x, y, likelihood`` in pixels; NaN where a body part was not found.

CSV (always) has one header row per column level (``scorer``, ``individuals`` for multi-animal tables,
``bodyparts``, ``coords``) and the frame label in the first column, as DeepLabCut writes it. HDF5 (``.h5``,
key ``df_with_missing``) needs pandas and PyTables; without them :func:`write` says how to install them.

Single-animal tables (``individuals=None``) take each frame's highest-scoring pose; multi-animal tables
fill ``individual1..N`` with the N best poses, best first (no identity tracking across frames).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import pathlib

import numpy as np

from .. import outputs

COORDS = ('x', 'y', 'likelihood')
H5_KEY = 'df_with_missing'
H5_HINT = "the .h5 table needs pandas and PyTables: pip install 'openfields[dlc-h5]' (or write a .csv)"


@dataclasses.dataclass(frozen=True)
class Table:
    """``values`` ``(n_frames, n_individuals, n_bodyparts, 3)`` float: x, y, likelihood."""
    scorer: str
    bodyparts: list[str]
    individuals: list[str] | None  # None: the single-animal layout (one pose per frame)
    index: list[str]               # one label per frame (DeepLabCut uses the frame number or image path)
    values: np.ndarray


def from_poses(poses_per_frame: list[list], bodyparts: list[str], scorer: str, index: list[str],
               n_individuals: int | None = None, individual_names: list[str] | None = None) -> Table:
    """A table from each frame's annotations (``.data`` ``(K, 3)`` x, y, confidence; ``.score``);
    ``n_individuals=None``: single-animal layout; ``individual_names``: a multi-animal project's
    ``individuals`` (default ``individual1..N``)."""
    if individual_names is not None:
        n_individuals = len(individual_names)
    slots = 1 if n_individuals is None else n_individuals
    values = np.full((len(poses_per_frame), slots, len(bodyparts), 3), np.nan)
    for frame, poses in enumerate(poses_per_frame):
        for slot, pose in enumerate(sorted(poses, key=lambda a: -a.score)[:slots]):
            data = np.asarray(pose.data, dtype=float)
            found = data[:, 2] > 0
            values[frame, slot, found] = data[found]
    individuals = None if n_individuals is None else (
        list(individual_names) if individual_names is not None
        else [f'individual{i + 1}' for i in range(n_individuals)])
    return Table(scorer=scorer, bodyparts=list(bodyparts), individuals=individuals, index=list(index),
                 values=values)


def columns(table: Table) -> list[tuple[str, ...]]:
    """Column keys in order: ``(scorer, [individual,] bodypart, coord)``."""
    who = table.individuals if table.individuals is not None else [None]
    return [(table.scorer,) + ((i,) if i is not None else ()) + (b, c)
            for i in who for b in table.bodyparts for c in COORDS]


def header_names(table: Table) -> list[str]:
    return ['scorer'] + (['individuals'] if table.individuals is not None else []) + ['bodyparts', 'coords']


def to_csv(table: Table) -> str:
    keys = columns(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    for level, name in enumerate(header_names(table)):
        writer.writerow([name] + [key[level] for key in keys])
    flat = table.values.reshape(len(table.index), -1)
    for label, row in zip(table.index, flat):
        writer.writerow([label] + ['' if np.isnan(v) else repr(float(v)) for v in row])
    return buffer.getvalue()


def read_csv(path: str | pathlib.Path) -> Table:
    """A table written by :func:`write` (or DeepLabCut, single index column)."""
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f))
    n_header = 4 if rows[1][0] == 'individuals' else 3
    header, body = rows[:n_header], rows[n_header:]
    multi = n_header == 4
    individuals = list(dict.fromkeys(header[1][1:])) if multi else None
    bodyparts = list(dict.fromkeys(header[n_header - 2][1:]))
    values = np.array([[float(v) if v else np.nan for v in row[1:]] for row in body], dtype=float)
    values = values.reshape(len(body), len(individuals or [None]), len(bodyparts), len(COORDS))
    return Table(scorer=header[0][1], bodyparts=bodyparts, individuals=individuals,
                 index=[row[0] for row in body], values=values)


def write(path: str | pathlib.Path, table: Table) -> None:
    """``.csv`` or ``.h5`` by suffix, atomically (a failed run leaves no table)."""
    path = pathlib.Path(path)
    if path.suffix == '.h5':
        write_h5(path, table)
    else:
        outputs.write_text(path, to_csv(table))


def require_pandas():
    try:
        import pandas  # pylint: disable=import-outside-toplevel
        import tables  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        raise ValueError(H5_HINT) from None
    return pandas


def write_h5(path: pathlib.Path, table: Table) -> None:
    pandas = require_pandas()
    frame = pandas.DataFrame(table.values.reshape(len(table.index), -1), index=table.index,
                             columns=pandas.MultiIndex.from_tuples(columns(table), names=header_names(table)))
    with outputs.atomic_path(path) as tmp:
        frame.to_hdf(tmp, key=H5_KEY, mode='w')
