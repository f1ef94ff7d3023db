"""Writing outputs so that nothing already written is lost.

Every file openfields writes (checkpoints, stats, predictions, plots, configs, data splits) goes through
:func:`atomic_write`: the bytes go to a temporary sibling ``.<name>.<pid>.tmp`` in the same folder, are
flushed to disk, and the temporary file is renamed over ``<name>``. A reader sees the old file or the new
one, never half of one; a process killed mid-write leaves only the temporary file, which
:func:`stale_temp_files` finds (a resumed training run removes its own). A writer that fails part-way
may keep what it wrote as ``<name>.partial`` (``partial_on``: the video command when a frame fails), a name
that never looks complete.

:func:`check_output_path` is what every CLI calls at start-up for each path it will write: a path whose
folder cannot be created (a parent is a regular file) or that names a folder is a one-line error naming the
flag, before any work is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
from collections.abc import Iterator

TEMP_SUFFIX = '.tmp'
PARTIAL_SUFFIX = '.partial'


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the flag and the path."""


def temp_path(path: str | os.PathLike) -> pathlib.Path:
    """The temporary sibling this process writes ``path`` through: hidden, ends in ``.tmp``."""
    path = pathlib.Path(path)
    return path.with_name(f'.{path.name}.{os.getpid()}{TEMP_SUFFIX}')


def stale_temp_files(path: str | os.PathLike) -> list[pathlib.Path]:
    """Temporary files of ``path`` left by any process (killed during a write)."""
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        return []
    prefix = f'.{path.name}.'
    return sorted(p for p in path.parent.iterdir()
                  if p.name.startswith(prefix) and p.name.endswith(TEMP_SUFFIX)
                  and p.name[len(prefix):-len(TEMP_SUFFIX)].isdigit())


def partial_path(path: str | os.PathLike) -> pathlib.Path:
    """Where a writer that failed part-way keeps what it wrote of ``path``: ``<name>.partial``."""
    path = pathlib.Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike,
                partial_on: tuple[type[BaseException], ...] = ()) -> Iterator[pathlib.Path]:
    """The temporary sibling of ``path`` to write, for writers that want a path (HDF5, video containers);
    on a clean exit it is renamed over ``path``, on an exception it is removed and ``path`` is left as
    it was; on an exception of ``partial_on`` it is renamed to :func:`partial_path` instead."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
        if partial_on:  # what an earlier, failed run kept is not this run's
            partial_path(path).unlink(missing_ok=True)
    except partial_on:
        os.replace(tmp, partial_path(path))
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'w', encoding: str | None = 'utf-8',
                 partial_on: tuple[type[BaseException], ...] = ()) -> Iterator:
    """Open a temporary sibling of ``path`` for writing; on a clean exit it is synced and renamed over
    ``path``, on an exception it is removed and ``path`` is left as it was (an exception of ``partial_on``:
    synced and kept as :func:`partial_path`). ``mode`` is 'w' or 'wb'."""
    if mode not in ('w', 'wb'):
        raise ValueError(f'atomic_write: mode {mode!r} is not w or wb')
    with atomic_path(path, partial_on) as tmp:
        with open(tmp, mode, encoding=None if 'b' in mode else encoding) as f:
            try:
                yield f
            except partial_on:
                f.flush()
                os.fsync(f.fileno())
                raise
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike, data, indent: int | None = 2) -> None:
    """JSON written atomically; values JSON does not know (paths, numpy scalars) become strings."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=indent, default=str)
        f.write('\n')


def check_output_path(path: str | os.PathLike | None, flag: str, *, folder: bool = False) -> None:
    """Raise :class:`OutputPathError` when ``path`` cannot be written: an existing ancestor that is not a
    folder, a file where a folder is wanted (``folder=True``) or a folder where a file is wanted, or a
    folder without write permission. Nothing is created."""
    if path is None:
        return
    path = pathlib.Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise OutputPathError(f'{flag} {path}: is a file, not a folder')
        if not folder and path.is_dir():
            raise OutputPathError(f'{flag} {path}: is a folder, not a file')
    for ancestor in ([path] if folder else []) + list(path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputPathError(f'{flag} {path}: {ancestor} is a file, not a folder')
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise OutputPathError(f'{flag} {path}: the folder {ancestor} is not writable')
            return
