"""DeepLabCut's ``training-datasets`` folder: where a shuffle's train/test split lives, read without letting the
file run code.

DeepLabCut 3's ``create_training_dataset`` writes, per project iteration,
``training-datasets/iteration-<i>/UnaugmentedDataSet_<Task><date>/``:

* ``CollectedData_<scorer>.h5`` and a ``.csv`` copy: the labels of every labelled folder merged, sorted by image
  path, one row per frame (three index columns: ``labeled-data``, the video, the image);
* ``Documentation_data-<Task>_<int(100 * fraction)>shuffle<N>.pickle``: ``[train_data_details, trainIndices,
  testIndices, trainFraction]``, the indices counting rows of the merged labels (numpy int64 arrays;
  ``train_data_details`` one dict per training frame, ``image`` its path as a tuple of parts);
* ``metadata.yaml``: ``shuffles: {<Task><date>-trainset<pct>shuffle<N>: {train_fraction, index, split, engine}}``
  (``split`` numbers the distinct splits; the indices are only in the pickle).

Loading a pickle can call any importable function, so the documentation file is read by an unpickler that
knows containers, numbers, strings and numpy's array, scalar and dtype reconstruction only; any other global is
refused before it is imported.
"""

from __future__ import annotations

import builtins
import dataclasses
import pathlib
import pickle
import re

import numpy as np
from numpy._core.multiarray import _reconstruct, scalar
from numpy._core.numeric import _frombuffer

from openfields.datasets.coco import DatasetError

TRAINING_DATASETS = 'training-datasets'
ITERATION_PATTERN = re.compile(r'iteration-(\d+)')


# --- where the files are ------------------------------------------------------------------------------------

def trainset_folder(root: pathlib.Path, task: str, date: str, iteration: int | None) -> pathlib.Path:
    """``training-datasets/iteration-<i>/UnaugmentedDataSet_<Task><date>`` of ``iteration``; without one (no
    ``iteration`` in config.yaml) the highest iteration present, else 0."""
    if iteration is None:
        present = [int(m.group(1)) for p in (root / TRAINING_DATASETS).glob('iteration-*')
                   if p.is_dir() and (m := ITERATION_PATTERN.fullmatch(p.name))]
        iteration = max(present, default=0)
    return root / TRAINING_DATASETS / f'iteration-{iteration}' / f'UnaugmentedDataSet_{task}{date}'


def documentation_path(folder: pathlib.Path, task: str, train_fraction: float, shuffle: int) -> pathlib.Path:
    """The shuffle's split file; the percentage is truncated as DeepLabCut names it (0.95 -> 95)."""
    return folder / f'Documentation_data-{task}_{int(train_fraction * 100)}shuffle{shuffle}.pickle'


def merged_labels_path(folder: pathlib.Path, scorer: str) -> pathlib.Path:
    """The CSV copy of the merged labels whose rows the split's indices count (the ``.h5`` holds the same rows;
    the CSV is read because it needs no pandas)."""
    return folder / f'CollectedData_{scorer}.csv'


# --- the split file -----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ShuffleSplit:
    """A ``Documentation_data-*.pickle``: row indices of the merged labels, and the training frames' paths that
    ``train_data_details`` names (None when it names none), to check that the rows are still those frames."""

    path: pathlib.Path
    train: tuple[int, ...]
    test: tuple[int, ...]
    train_fraction: float
    train_images: tuple[str, ...] | None


def read_documentation(path: pathlib.Path) -> ShuffleSplit:
    """Read and check the layout ``[train_data_details, trainIndices, testIndices, trainFraction]``."""
    data = load_pickle(path)
    if not isinstance(data, (list, tuple)) or len(data) != 4:
        raise DatasetError(f'{path}: expected DeepLabCut\'s [train_data_details, trainIndices, testIndices, '
                           f'trainFraction], found {_kind(data)}')
    details, train, test, fraction = data
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) or not (
            0.0 < float(fraction) <= 1.0):
        raise DatasetError(f'{path}: trainFraction (item 4) must be a number in (0, 1], found {fraction!r}')
    return ShuffleSplit(path=path, train=_indices(train, path, 'trainIndices (item 2)'),
                        test=_indices(test, path, 'testIndices (item 3)'), train_fraction=float(fraction),
                        train_images=_train_images(details))


def _indices(value, path: pathlib.Path, name: str) -> tuple[int, ...]:
    """A 1-D list or array of whole numbers (DeepLabCut writes int64 arrays; user splits may be lists)."""
    array = np.asarray(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if array is None or array.ndim != 1 or (array.size and array.dtype.kind not in 'iu'):
        raise DatasetError(f'{path}: {name} must be a list of frame indices, found {_kind(value)}')
    return tuple(int(i) for i in array)


def _train_images(details) -> tuple[str, ...] | None:
    """The ``image`` of every dict in ``train_data_details`` as a project-relative posix path."""
    if not isinstance(details, (list, tuple)) or not details:
        return None
    images = [d.get('image') if isinstance(d, dict) else None for d in details]
    if all(isinstance(i, (tuple, list)) and all(isinstance(p, str) for p in i) for i in images):
        return tuple('/'.join(i) for i in images)
    if all(isinstance(i, str) for i in images):
        return tuple(i.replace('\\', '/') for i in images)
    return None


def _kind(value) -> str:
    if isinstance(value, np.ndarray):
        return f'a {value.ndim}-D {value.dtype} array'
    if isinstance(value, (list, tuple)):
        return f'a {type(value).__name__} of {len(value)} items'
    return type(value).__name__


# --- a pickle of plain data only ----------------------------------------------------------------------------

def _plain_dtype(dtype) -> None:
    """Raw bytes must never become object pointers (numpy trusts the pickle's dtype flags)."""
    if np.dtype(dtype).hasobject:
        raise pickle.UnpicklingError(f'array data given as raw bytes for dtype {dtype} holding objects')


class _CheckedArray(np.ndarray):
    """``numpy.ndarray`` as the unpickler sees it: built from raw bytes only for dtypes without objects."""

    def __new__(cls, shape, dtype=float, buffer=None, *args, **kwargs):
        if buffer is not None:
            _plain_dtype(dtype)
        return super().__new__(cls, shape, dtype, buffer, *args, **kwargs)

    def __setstate__(self, state):
        # (version,) shape, dtype, is_fortran, data: a list for object arrays, else bytes
        if isinstance(state, tuple) and len(state) in (4, 5) and not isinstance(state[-1], list):
            _plain_dtype(state[-3])
        super().__setstate__(state)


def _checked_frombuffer(buffer, dtype, shape, order):
    _plain_dtype(dtype)
    return _frombuffer(buffer, dtype, shape, order)


def _checked_scalar(dtype, *data):
    if data and isinstance(data[0], (bytes, bytearray)):
        _plain_dtype(dtype)
    return scalar(dtype, *data)


def _latin1_bytes(text: str, encoding: str):
    """Protocols 0 to 2 write ``bytes`` as ``_codecs.encode(text, 'latin1')``; no other codec runs."""
    if encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError(f'bytes encoded as {encoding!r}, not latin1')
    return text.encode('latin1')


# The globals that pickles of containers, numbers, strings and numpy arrays name (numpy 1 wrote numpy.core,
# numpy 2 writes numpy._core; protocol 5 arrays use _frombuffer, older protocols _reconstruct + ndarray, and
# their bytes _codecs.encode).
PLAIN_GLOBALS = {
    ('numpy', 'dtype'): np.dtype,
    ('numpy', 'ndarray'): _CheckedArray,
    **{(f'{core}.multiarray', '_reconstruct'): _reconstruct for core in ('numpy.core', 'numpy._core')},
    **{(f'{core}.multiarray', 'scalar'): _checked_scalar for core in ('numpy.core', 'numpy._core')},
    **{(f'{core}.numeric', '_frombuffer'): _checked_frombuffer for core in ('numpy.core', 'numpy._core')},
    **{('builtins', name): getattr(builtins, name) for name in ('set', 'frozenset', 'complex', 'bytearray')},
    ('_codecs', 'encode'): _latin1_bytes,
}


class PlainUnpickler(pickle.Unpickler):
    """Refuses every global but :data:`PLAIN_GLOBALS`, naming the file and the global."""

    def __init__(self, file, path: pathlib.Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module, name):
        found = PLAIN_GLOBALS.get((module, name))
        if found is None:
            raise DatasetError(f'{self.path}: refused to load {module}.{name}: a DeepLabCut split file holds '
                               'only containers, numbers, strings and numpy arrays')
        return found


def load_pickle(path: pathlib.Path):
    """The pickle's plain data; anything else is a :class:`DatasetError` naming the file."""
    try:
        with open(path, 'rb') as f:
            return _unwrap(PlainUnpickler(f, path).load())
    except DatasetError:
        raise
    except Exception as error:  # pylint: disable=broad-except  # a damaged or foreign pickle raises anything
        raise DatasetError(f'{path}: not a readable pickle ({type(error).__name__}: {error})') from None


def _unwrap(value):
    """Arrays built through :class:`_CheckedArray` as plain ``numpy.ndarray``, in any container."""
    if isinstance(value, _CheckedArray):
        return value.view(np.ndarray)
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value
