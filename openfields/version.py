"""The version string recorded in logs and checkpoints: ``X.Y.Z+N.gHASH[.dirty]``.

Inside a git checkout, ``N`` counts the commits since the last ``vX.Y.Z`` tag (or since the start of
history when there is none), ``HASH`` is the short commit hash and ``.dirty`` marks uncommitted changes
to tracked files. Outside a checkout, the installed package's version is used.
"""

import functools
import importlib.metadata
import pathlib
import subprocess

BASE_VERSION = '0.1.0'


def _git(root: pathlib.Path, *args: str) -> str:
    return subprocess.run(['git', '-C', str(root), *args], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()


def _from_git(root: pathlib.Path) -> str | None:
    try:
        commit = _git(root, 'rev-parse', '--short=7', 'HEAD')
        try:
            tag = _git(root, 'describe', '--tags', '--abbrev=0', '--match', 'v[0-9]*')
            base = tag[1:]
            n_commits = _git(root, 'rev-list', '--count', f'{tag}..HEAD')
        except subprocess.CalledProcessError:
            base = BASE_VERSION
            n_commits = _git(root, 'rev-list', '--count', 'HEAD')
        dirty = _git(root, 'status', '--porcelain', '--untracked-files=no') != ''
    except (OSError, subprocess.SubprocessError):
        return None
    return f'{base}+{n_commits}.g{commit}' + ('.dirty' if dirty else '')


@functools.cache
def version() -> str:
    root = pathlib.Path(__file__).resolve().parent.parent
    if (root / '.git').exists():
        from_git = _from_git(root)
        if from_git is not None:
            return from_git
    try:
        return importlib.metadata.version('openfields')
    except importlib.metadata.PackageNotFoundError:
        return BASE_VERSION
