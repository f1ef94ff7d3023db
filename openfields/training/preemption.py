"""Stopping cleanly on SIGTERM or SIGUSR1 (Slurm's preemption and ``--signal``).

The first signal only sets a flag: the training loop finishes its current step, writes a checkpoint that
``--resume`` continues from, and the process exits with :data:`EXIT_CODE`, which ``slurm/train.sh
--requeue`` turns into ``scontrol requeue``. A second signal of the same kind ends the process at once.
DataLoader worker processes forked while the handlers are installed inherit them, so a signal sent to the
whole process tree (as Slurm does) does not kill the workers under the loop's feet.
"""

import os
import signal

EXIT_CODE = 75  # EX_TEMPFAIL: a temporary failure, try again (resume)
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """Context manager: while active, ``requested`` is the first stop signal received (or None)."""

    def __init__(self, signals=SIGNALS):
        self.signals = signals
        self.requested: int | None = None
        self._previous = {}
        self._pid = None

    def __enter__(self) -> 'StopSignals':
        self._pid = os.getpid()
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False

    def _handle(self, signum, frame):  # pylint: disable=unused-argument
        if os.getpid() != self._pid:  # an inherited handler in a forked worker: the parent decides
            return
        if self.requested == signum:  # asked twice: stop now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.requested = signum  # no logging here: the handler may interrupt a logging call

    @property
    def name(self) -> str | None:
        return signal.Signals(self.requested).name if self.requested is not None else None
