"""DeepLabCut's prediction table: header rows, NaN for missing parts, a round trip through the reader."""

import numpy as np
import pytest

from openfields.deeplabcut import prediction_table as dlc_table


class Pose:
    def __init__(self, data, score):
        self.data, self.score = np.array(data, dtype=float), score


POSES = [
    [Pose([[10, 20, 0.9], [0, 0, 0.0]], 0.4), Pose([[1.5, 2.25, 0.5], [3, 4, 0.75]], 0.8)],  # best second
    [],                                                                                        # nothing found
]


def test_single_animal_csv_has_three_header_rows_and_the_best_pose_per_frame(tmp_path):
    table = dlc_table.from_poses(POSES, ['snout', 'tail'], 'openfields_m', ['0', '1'])
    dlc_table.write(tmp_path / 't.csv', table)
    rows = (tmp_path / 't.csv').read_text().splitlines()
    assert rows[:3] == ['scorer' + ',openfields_m' * 6, 'bodyparts,snout,snout,snout,tail,tail,tail',
                        'coords' + ',x,y,likelihood' * 2]
    assert rows[3] == '0,1.5,2.25,0.5,3.0,4.0,0.75' and rows[4] == '1' + ',' * 6


def test_multi_animal_csv_round_trips_with_nan_for_missing_parts(tmp_path):
    table = dlc_table.from_poses(POSES, ['snout', 'tail'], 'openfields_m', ['0', '1'], n_individuals=2)
    dlc_table.write(tmp_path / 't.csv', table)
    read = dlc_table.read_csv(tmp_path / 't.csv')
    assert (read.scorer, read.bodyparts, read.individuals, read.index) == (
        'openfields_m', ['snout', 'tail'], ['individual1', 'individual2'], ['0', '1'])
    np.testing.assert_array_equal(read.values, table.values)
    assert np.isnan(read.values[0, 1, 1]).all()  # tail of the second pose: not found
    assert read.values[0, 1, 0].tolist() == [10, 20, 0.9] and np.isnan(read.values[1]).all()


def test_h5_without_pandas_is_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__('sys').modules, 'pandas', None)
    table = dlc_table.from_poses(POSES, ['snout', 'tail'], 's', ['0', '1'])
    with pytest.raises(ValueError, match=r'pip install .openfields\[dlc-h5\]'):
        dlc_table.write(tmp_path / 't.h5', table)
    assert list(tmp_path.iterdir()) == []


def test_multi_animal_h5_reads_back_in_pandas_with_deeplabcuts_header(tmp_path):
    pandas = pytest.importorskip('pandas', reason='the .h5 table needs pandas (openfields[dlc-h5] extra)')
    pytest.importorskip('tables', reason='the .h5 table needs PyTables')
    table = dlc_table.from_poses(POSES, ['snout', 'tail'], 'openfields_m', ['0', '1'], n_individuals=2)
    dlc_table.write(tmp_path / 't.h5', table)
    frame = pandas.read_hdf(tmp_path / 't.h5', dlc_table.H5_KEY)
    assert list(frame.columns.names) == ['scorer', 'individuals', 'bodyparts', 'coords']
    assert np.allclose(frame[('openfields_m', 'individual1', 'snout', 'x')].to_numpy(), [1.5, np.nan], equal_nan=True)
    np.testing.assert_array_equal(frame.to_numpy().reshape(table.values.shape), table.values)
    assert [p.name for p in tmp_path.iterdir()] == ['t.h5']  # no temporary file left
