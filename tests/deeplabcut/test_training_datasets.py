"""DeepLabCut's training-datasets folder: its split files read through an unpickler of plain data only."""

import collections
import fractions
import os
import pickle
import re

import numpy as np
import pytest
from numpy._core.multiarray import _reconstruct, scalar
from numpy._core.numeric import _frombuffer

from openfields.datasets.coco import DatasetError
from openfields.deeplabcut import training_datasets

DETAILS = [{'image': ('labeled-data', 'm4s1', 'img0002.png'), 'size': (3, 480, 640),
            'joints': np.array([[0, 54, 339], [1, 64, 348]], dtype=np.int64)}]


def dump(path, data, protocol=pickle.HIGHEST_PROTOCOL):
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


class Reduces:
    """Pickles as a call of ``function(*args)``: what a crafted file would make the unpickler do."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def test_reads_the_layout_deeplabcut_writes(tmp_path):
    # as DeepLabCut 3.0.2 writes it: [train_data_details, trainIndices, testIndices, trainFraction], protocol 5
    path = dump(tmp_path / 'Documentation_data-openfield_95shuffle1.pickle',
                [DETAILS, np.array([2, 0, 3], dtype=np.int64), np.array([1], dtype=np.int64), 0.95])
    split = training_datasets.read_documentation(path)
    assert (split.train, split.test, split.train_fraction) == ((2, 0, 3), (1,), 0.95)
    assert split.train_images == ('labeled-data/m4s1/img0002.png',) and split.path == path


def test_indices_as_lists_and_numpy_scalars_are_read(tmp_path):
    path = dump(tmp_path / 's.pickle', ([], [np.int64(4), 5], (), np.float64(0.8)))
    split = training_datasets.read_documentation(path)
    assert (split.train, split.test, split.train_fraction, split.train_images) == ((4, 5), (), 0.8, None)


def test_a_numpy_1_pickle_of_protocol_2_is_read(tmp_path):
    """numpy 1 named its reconstruction functions numpy.core.*; protocol 2 rebuilds arrays with _reconstruct."""
    data = pickle.dumps([[{'image': 'labeled-data\\m4s1\\img0001.png'}], np.arange(3), np.array([7]),
                         np.float64(0.5)], protocol=2)
    assert b'numpy._core.multiarray' in data
    path = tmp_path / 'old.pickle'
    path.write_bytes(data.replace(b'numpy._core.', b'numpy.core.'))
    split = training_datasets.read_documentation(path)
    assert (split.train, split.test, split.train_fraction) == ((0, 1, 2), (7,), 0.5)
    assert split.train_images == ('labeled-data/m4s1/img0001.png',)


def test_arrays_come_back_as_plain_numpy_arrays(tmp_path):
    data = training_datasets.load_pickle(dump(tmp_path / 'a.pickle', {'a': [np.arange(2)], 'b': (np.eye(2),)},
                                              protocol=2))
    assert type(data['a'][0]) is np.ndarray and type(data['b'][0]) is np.ndarray
    np.testing.assert_array_equal(data['b'][0], np.eye(2))


def test_a_pickle_that_would_call_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'ran'
    path = dump(tmp_path / 'evil.pickle', [[], Reduces(os.system, f'touch {marker}'), [], 0.95])
    with pytest.raises(DatasetError, match=re.escape(f'{path}: refused to load {os.system.__module__}.system')):
        training_datasets.read_documentation(path)
    assert not marker.exists()


@pytest.mark.parametrize('value, name', [(fractions.Fraction(19, 20), 'fractions.Fraction'),
                                         (collections.OrderedDict(a=1), 'collections.OrderedDict')])
def test_a_pickle_holding_a_class_is_refused_naming_it(tmp_path, value, name):
    path = dump(tmp_path / 'classes.pickle', [[], [0], [1], value])
    with pytest.raises(DatasetError, match=re.escape(f'{path}: refused to load {name}')):
        training_datasets.read_documentation(path)


@pytest.mark.parametrize('crafted, what', [
    # an object array over raw bytes would hold the pointers 0x4141...
    (Reduces(np.ndarray, (1,), np.dtype(object), b'A' * 8), 'not a readable pickle (UnpicklingError: array data '
                                                            'given as raw bytes for dtype object holding objects)'),
    (Reduces(np.frombuffer, b'A' * 8, np.dtype(object)), 'refused to load numpy.frombuffer'),
], ids=['ndarray-buffer', 'frombuffer'])
def test_raw_bytes_never_become_object_arrays(tmp_path, crafted, what):
    path = dump(tmp_path / 'objects.pickle', [[], crafted, [], 0.95])
    with pytest.raises(DatasetError, match=re.escape(f'{path}: {what}')):
        training_datasets.read_documentation(path)


class ReducesWithState(Reduces):
    """Pickles as ``function(*args)`` followed by ``__setstate__(state)`` (the BUILD a dtype or array gets)."""

    def __init__(self, function, args, state):
        super().__init__(function, *args)
        self.state = state

    def __reduce__(self):
        return self.function, self.args, self.state


# a void dtype whose pickled flags claim it holds objects (NPY_ITEM_HASOBJECT): numpy takes the flags as given
FLAGGED_DTYPE = ReducesWithState(np.dtype, ('V8', False, True), (3, '|', None, None, None, 8, 1, 1))


@pytest.mark.parametrize('crafted', [
    Reduces(_frombuffer, b'A' * 8, FLAGGED_DTYPE, (1,), 'C'),  # protocol 5 arrays
    ReducesWithState(_reconstruct, (np.ndarray, (0,), b'b'), (1, (1,), FLAGGED_DTYPE, False, b'A' * 8)),
    Reduces(scalar, FLAGGED_DTYPE, b'A' * 8),
], ids=['frombuffer', 'reconstruct', 'scalar'])
def test_a_dtype_flagged_as_holding_objects_never_takes_raw_bytes(tmp_path, crafted):
    path = dump(tmp_path / 'flags.pickle', [[], crafted, [], 0.95])
    with pytest.raises(DatasetError, match=re.escape(f'{path}: not a readable pickle') + '.*holding objects'):
        training_datasets.read_documentation(path)


@pytest.mark.parametrize('data, what', [
    ({'train': [0]}, 'expected DeepLabCut\'s [train_data_details, trainIndices, testIndices, trainFraction], '
                     'found dict'),
    ([[], [0], [1]], 'found a list of 3 items'),
    ([[], np.array([0.5]), [1], 0.95], 'trainIndices (item 2) must be a list of frame indices, found a 1-D float64'),
    ([[], [0], [[1, 2]], 0.95], 'testIndices (item 3) must be a list of frame indices, found a list of 1 items'),
    ([[], [0], [True], 0.95], 'testIndices (item 3) must be a list of frame indices'),
    ([[], [0], [1], '0.95'], 'trainFraction (item 4) must be a number in (0, 1], found \'0.95\''),
    ([[], [0], [1], 95], 'trainFraction (item 4) must be a number in (0, 1], found 95'),
])
def test_another_layout_names_the_file_and_the_item(tmp_path, data, what):
    path = dump(tmp_path / 'layout.pickle', data)
    with pytest.raises(DatasetError, match=re.escape(f'{path}: ') + '.*' + re.escape(what)):
        training_datasets.read_documentation(path)


def test_a_damaged_pickle_names_the_file(tmp_path):
    path = tmp_path / 'cut.pickle'
    path.write_bytes(pickle.dumps([[], [0], [1], 0.95])[:-5])
    with pytest.raises(DatasetError, match=re.escape(f'{path}: not a readable pickle')):
        training_datasets.read_documentation(path)


def test_files_are_named_as_deeplabcut_names_them(tmp_path):
    folder = training_datasets.trainset_folder(tmp_path, 'openfield', 'Oct30', 3)
    assert folder == tmp_path / 'training-datasets' / 'iteration-3' / 'UnaugmentedDataSet_openfieldOct30'
    assert training_datasets.documentation_path(folder, 'openfield', 0.95, 1).name == \
        'Documentation_data-openfield_95shuffle1.pickle'
    assert training_datasets.documentation_path(folder, 'x', 0.29, 2).name == \
        'Documentation_data-x_28shuffle2.pickle'  # int(0.29 * 100) is 28, in DeepLabCut too
    assert training_datasets.merged_labels_path(folder, 'Pranav').name == 'CollectedData_Pranav.csv'


def test_without_an_iteration_in_config_the_highest_present_is_taken(tmp_path):
    assert training_datasets.trainset_folder(tmp_path, 't', 'd', None).parent.name == 'iteration-0'  # none yet
    for name in ('iteration-0', 'iteration-2', 'iteration-10', 'iteration-x'):
        (tmp_path / 'training-datasets' / name).mkdir(parents=True)
    (tmp_path / 'training-datasets' / 'iteration-11').write_text('')  # not a folder
    assert training_datasets.trainset_folder(tmp_path, 't', 'd', None).parent.name == 'iteration-10'
    assert training_datasets.trainset_folder(tmp_path, 't', 'd', 2).parent.name == 'iteration-2'
