"""Progress of long work (evaluation, prediction): a line every ``interval`` seconds with the count, the
rate and the time left, so a user (or a Slurm log) tells progress from a hang.

One plain log line per interval, the same on a terminal and in a file: Slurm logs stay readable.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator

LOG = logging.getLogger(__name__)


def cli(group, what: str = 'scoring') -> None:
    """``--progress-interval SECONDS`` (shared by eval, training's evaluation and predict)."""
    group.add_argument('--progress-interval', type=float, default=10.0, metavar='SECONDS',
                       help=f'while {what}, log the images done, images/s and the time left every SECONDS '
                            '(negative: never)')


def format_duration(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
    """Counts ``what`` (e.g. 'images') towards ``total`` (None: unknown) and logs every ``interval_s``."""

    def __init__(self, label: str, total: int | None, *, what: str = 'images', interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, log: logging.Logger = LOG):
        self.label = label
        self.total = total
        self.what = what
        self.interval_s = interval_s
        self.clock = clock
        self.log = log
        self.done = 0
        self.start = clock()
        self._last_report = self.start

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.interval_s >= 0 and now - self._last_report >= self.interval_s:
            self._last_report = now
            self.log.info('%s', self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float('inf')
            eta_text = format_duration(eta) if eta != float('inf') else '?'
            return (f'{self.label}: {self.done}/{self.total} {self.what} ({100 * self.done / self.total:.0f}%), '
                    f'{rate:.2f} {self.what}/s, ETA {eta_text}')
        return f'{self.label}: {self.done} {self.what}, {rate:.2f} {self.what}/s'


class StageTimes:
    """Seconds spent per stage (e.g. load, network, decoder) of a loop over images, for a summary line."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def stage(self, name: str):
        start = self.clock()
        try:
            yield
        finally:
            self.add(name, self.clock() - start)

    def timed(self, iterable: Iterable, name: str) -> Iterator:
        """The items of ``iterable``, the time each took to arrive counted as stage ``name``."""
        iterator = iter(iterable)
        while True:
            with self.stage(name):
                try:
                    item = next(iterator)
                except StopIteration:
                    return
            yield item

    def line(self, n_images: int) -> str:
        """``'load 3.1 ms, network 40.2 ms, decoder 5.0 ms per image'`` (stages in first-seen order)."""
        per_image = ', '.join(f'{name} {1000 * s / max(n_images, 1):.1f} ms' for name, s in self.seconds.items())
        return f'{per_image} per image' if per_image else 'no stage timed'
