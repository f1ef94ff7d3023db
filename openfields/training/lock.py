"""One training process per output: ``<out>.lock`` is held for the run's lifetime.

Two runs writing the same ``--output`` would interleave their logs and overwrite each other's
checkpoints. The lock is an advisory ``flock`` on ``<out>.lock``, which holds the owner's host and pid. The
kernel releases a ``flock`` when its process dies, however it dies: a lock file left by a crashed or
killed run is not locked, so the next run takes it over (and says so). Under ``--ddp`` rank 0 holds it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pathlib
import socket

LOG = logging.getLogger(__name__)


class RunLocked(ValueError):
    """Another live process trains into the same output."""


class RunLock:
    """Context manager: ``flock`` on ``path`` or :class:`RunLocked` naming the owner."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self._fd: int | None = None

    def acquire(self) -> 'RunLock':
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 200, 0).decode('utf-8', 'replace').strip() or 'another process'
                os.close(fd)
                raise RunLocked(f'{self.path}: another training run ({owner}) writes to this output; wait for '
                                'it, stop it, or choose another --output') from None
            if self._is_current(fd):
                break
            os.close(fd)  # the owner removed the file while we waited for it: lock the new one
        previous = os.pread(fd, 200, 0).decode('utf-8', 'replace').strip()
        if previous:
            LOG.warning('%s: taking over the lock of a run that ended without releasing it (%s)', self.path, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'host {socket.gethostname()} pid {os.getpid()}\n'.encode(), 0)
        self._fd = fd
        return self

    def _is_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the file, then unlock: a clean end leaves no lock file (a crash leaves its owner in it)."""
        if self._fd is None:
            return
        os.unlink(self.path)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> 'RunLock':
        return self.acquire()

    def __exit__(self, *exc_info) -> bool:
        self.release()
        return False
