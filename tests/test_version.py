"""The version string recorded in logs and checkpoints."""

import re
import subprocess

from openfields import version as version_module


def test_checkout_version_has_base_commit_count_and_hash(tmp_path):
    subprocess.run(['git', 'init', '-q', str(tmp_path)], check=True)
    (tmp_path / 'a.txt').write_text('a')
    git = ['git', '-C', str(tmp_path), '-c', 'user.name=t', '-c', 'user.email=t@t']
    subprocess.run(git + ['add', 'a.txt'], check=True)
    subprocess.run(git + ['commit', '-qm', 'one'], check=True)
    clean = version_module._from_git(tmp_path)
    assert re.fullmatch(r'0\.1\.0\+1\.g[0-9a-f]{7}', clean)
    (tmp_path / 'a.txt').write_text('changed')
    assert version_module._from_git(tmp_path) == clean + '.dirty'
    subprocess.run(git + ['tag', 'v0.2.0'], check=True)
    subprocess.run(git + ['commit', '-qam', 'two'], check=True)
    assert re.fullmatch(r'0\.2\.0\+1\.g[0-9a-f]{7}', version_module._from_git(tmp_path))


def test_outside_a_checkout_there_is_no_git_version(tmp_path):
    assert version_module._from_git(tmp_path) is None


def test_package_version_matches_the_pattern():
    assert re.fullmatch(r'\d+\.\d+\.\d+(\+\d+\.g[0-9a-f]{7}(\.dirty)?)?', version_module.version())
