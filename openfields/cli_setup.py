"""What every command line of openfields does around its work, written once.

Each CLI module's ``main()`` is one call of :func:`run_cli`, which

* tunes glibc's malloc (:mod:`openfields.network.malloc_tuning`) and, on a busy machine, sets
  ``OMP_WAIT_POLICY=PASSIVE`` (:mod:`openfields.network.cpu_threads`): :func:`prepare_process`;
* parses the flags (argparse's own errors: usage and one line, exit 2);
* configures logging (``-q``: warnings and errors only) and torch's CPU threads;
* runs the command: its exit status is 0, or what ``run`` returns;
* turns a user error (one of ``user_errors``: a bad flag value, a missing file, ...) into one line
  ``prog: error: ...`` on stderr (line breaks joined; terminal escape codes removed unless stderr is a
  terminal) and exit status 2, Ctrl-C into ``prog: interrupted`` and status 130, and the
  command's other expected failures (:class:`Failure`) into their own line and status.

The wait policy has to be set before torch is loaded (libgomp reads ``OMP_WAIT_POLICY`` once, when torch
loads it), and the CLI modules import torch at their top. So each of them calls :func:`prepare_process` first,
as ``python -m`` runs it (``if __name__ == '__main__'`` above its imports); a command started another way
(``main()`` from Python) gets the same tuning from :func:`run_cli` unless torch is already loaded. Importing
openfields changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence

# no torch here: the CLI modules call prepare_process before they import torch
from .network import cpu_threads, malloc_tuning

INTERRUPTED = 130
USER_ERROR = 2
# ECMA-48 control sequences (CSI: colours, bold, cursor moves) and the two-character escapes
ANSI_ESCAPE = re.compile(r'\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]')


def prepare_process() -> None:
    """Process-wide tuning for a command, before torch is loaded: the malloc tuning, and on a busy machine
    ``OMP_WAIT_POLICY=PASSIVE`` (nothing when torch is loaded already: libgomp read the policy then). Only the
    first call does anything."""
    global _prepared
    if _prepared:
        return
    _prepared = True
    malloc_tuning.tune_glibc_malloc()
    if 'torch' not in sys.modules:
        cpu_threads.choose_wait_policy(os.environ)


_prepared = False  # one process, one tuning


@dataclasses.dataclass(frozen=True)
class Failure:
    """Expected failures other than user errors: ``errors`` end the command with ``status`` and the line
    ``prog: <word>: <message>`` (``main_rank_only``: only rank 0 of a distributed run says it)."""
    errors: tuple[type[BaseException], ...]
    status: int
    word: str = 'error'
    main_rank_only: bool = False


def configure_logging(quiet: bool, prefix: str = '', level: int | None = None) -> None:
    """INFO (``-q``: WARNING) to stderr, each line with time, level and logger; ``prefix`` before the level
    (e.g. the rank of a distributed run); ``level`` overrides the level."""
    if level is None:
        level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format=f'%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s',
                        datefmt='%H:%M:%S')


def run_cli(prog: str, parse: argparse.ArgumentParser | Callable[[Sequence[str] | None], argparse.Namespace],
            run: Callable[[argparse.Namespace], int | None], user_errors: tuple[type[BaseException], ...], *,
            argv: Sequence[str] | None = None, failures: Sequence[Failure] = (), interrupted: str = '',
            setup: Callable[[argparse.Namespace], None] | None = None, threads: bool = True,
            rank: Callable[[], tuple[int, int]] = lambda: (0, 1), exit_on_failure: bool = True) -> int:
    """Run a command (see the module docstring): 0 when it succeeded, else ``SystemExit`` with its status
    (``exit_on_failure=False``: the status is returned).

    ``prog``: the name on the error lines (``openfields.train``); ``parse``: the parser, or a function of
    ``argv`` that parses and checks; ``run``: the work, returning the exit status (an int; None: 0);
    ``interrupted``: what Ctrl-C leaves behind, after ``prog: interrupted; ``; ``setup``: configures logging
    (default: :func:`configure_logging` with ``args.quiet``), inside the error handling; ``threads``: apply
    the CPU thread choice to torch; ``rank``: ``(rank, world size)`` of a distributed run, named on its
    error lines."""
    prepare_process()
    args = parse.parse_args(argv) if isinstance(parse, argparse.ArgumentParser) else parse(argv)
    expected = [*failures, Failure(user_errors, USER_ERROR)]  # the first that matches counts
    try:
        (setup or (lambda parsed: configure_logging(getattr(parsed, 'quiet', False))))(args)
        if threads:
            cpu_threads.configure()
        status = run(args)
        if status is None:
            status = 0
        elif not isinstance(status, int):  # e.g. results returned by mistake: sys.exit would print them
            raise TypeError(f'{prog}: run returned {type(status).__name__}, not an exit status')
    except KeyboardInterrupt:
        print(f'{prog}: interrupted' + (f'; {interrupted}' if interrupted else ''), file=sys.stderr)
        status = INTERRUPTED
    except tuple(error for failure in expected for error in failure.errors) as error:
        failure = next(failure for failure in expected if isinstance(error, failure.errors))
        status = _say(prog, failure, str(error), rank())
    if status and exit_on_failure:
        sys.exit(status)
    return status


def _say(prog: str, failure: Failure, message: str, rank: tuple[int, int]) -> int:
    """The failure's one line on stderr (a distributed run names the rank); its exit status."""
    index, world_size = rank
    if not (failure.main_rank_only and index != 0):
        where = f' (rank {index}/{world_size})' if world_size > 1 else ''
        print(f'{prog}: {failure.word}{where}: {one_line(message, sys.stderr)}', file=sys.stderr)
    return failure.status


def one_line(message: str, stream) -> str:
    """``message`` on one line (line breaks and the blanks around them become one space), without terminal
    escape codes (e.g. the bold of torch's ``weights_only`` error) unless ``stream`` is a terminal."""
    message = re.sub(r'\s*\n\s*', ' ', message.strip())
    isatty = getattr(stream, 'isatty', None)
    return message if isatty is not None and isatty() else ANSI_ESCAPE.sub('', message)
