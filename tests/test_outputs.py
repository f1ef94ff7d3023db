"""Writing outputs: whole files or nothing, temporary files findable, output paths checked up front."""

import pytest

from openfields import outputs


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / 'stats.json'
    outputs.write_json(path, {'AP': 0.5})
    with pytest.raises(RuntimeError):
        with outputs.atomic_write(path) as f:
            f.write('{"AP": ')
            raise RuntimeError('killed')
    assert path.read_text() == '{\n  "AP": 0.5\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ['stats.json']


def test_a_path_writer_gets_a_temporary_sibling_renamed_on_success(tmp_path):
    path = tmp_path / 'sub' / 'table.h5'
    with outputs.atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith('.table.h5.') and tmp.name.endswith('.tmp')
        tmp.write_bytes(b'data')
        assert not path.exists()
    assert path.read_bytes() == b'data' and not tmp.exists()


def test_stale_temporary_files_are_those_of_the_path(tmp_path):
    for name in ('.m.pkl.123.tmp', '.m.pkl.x.tmp', '.other.pkl.5.tmp', 'm.pkl'):
        (tmp_path / name).touch()
    assert [p.name for p in outputs.stale_temp_files(tmp_path / 'm.pkl')] == ['.m.pkl.123.tmp']


def test_output_paths_under_a_file_or_naming_a_folder_are_refused(tmp_path):
    (tmp_path / 'afile').write_text('x')
    with pytest.raises(outputs.OutputPathError, match='--output .*afile is a file, not a folder'):
        outputs.check_output_path(tmp_path / 'afile' / 'x.pkl', '--output')
    with pytest.raises(outputs.OutputPathError, match='is a folder, not a file'):
        outputs.check_output_path(tmp_path, '--json-output')
    outputs.check_output_path(tmp_path / 'new' / 'deeper' / 'x.pkl', '--output')  # created later: fine
    outputs.check_output_path(None, '--output')


class Stopped(Exception):
    pass


def test_a_writer_failing_part_way_may_keep_what_it_wrote_as_partial_and_a_later_success_drops_it(tmp_path):
    path = tmp_path / 'poses.jsonl'
    with pytest.raises(Stopped):
        with outputs.atomic_write(path, partial_on=(Stopped,)) as f:
            f.write('frame 0\n')
            raise Stopped
    assert not path.exists() and (tmp_path / 'poses.jsonl.partial').read_text() == 'frame 0\n'
    with pytest.raises(ValueError):
        with outputs.atomic_write(path, partial_on=(Stopped,)) as f:
            f.write('frame 0\n')
            raise ValueError('not a partial-keeping failure')
    assert (tmp_path / 'poses.jsonl.partial').read_text() == 'frame 0\n'  # the earlier one, untouched
    with outputs.atomic_write(path, partial_on=(Stopped,)) as f:
        f.write('frame 0\nframe 1\n')
    assert path.read_text() == 'frame 0\nframe 1\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['poses.jsonl']
