"""How many threads torch's CPU kernels use, and how an idle one waits.

torch runs its CPU kernels on OpenMP threads (libgomp). By default it starts one per core of the machine,
and an idle thread spins (busy-waits) for a while before it sleeps. That is fastest on an idle machine and
worst on a shared one: on a laptop with a browser, a node shared by several jobs or a Slurm job given fewer
CPUs than the node has, the spinning threads and the other work take turns on the cores. Measured on this
2-core machine with one other busy process, a resnet18 training step of 8 images at 160 px took 3.2 s with
the defaults, 0.6 s with sleeping threads and 0.5 s with one thread. So openfields chooses:

* **threads**: the CPUs this process may use (its affinity mask, and Slurm's ``SLURM_CPUS_PER_TASK`` when
  set), not the cores of the machine, shared among the processes of the node under torchrun
  (``LOCAL_WORLD_SIZE``); ``OMP_NUM_THREADS`` overrides it;
* **wait policy**: ``PASSIVE`` (an idle thread sleeps), set as ``OMP_WAIT_POLICY`` when the ``openfields``
  package is imported, because libgomp reads it once, when torch loads it (a program that imported torch
  before openfields keeps its own); ``OMP_WAIT_POLICY=ACTIVE`` in the environment keeps spinning.

DataLoader worker processes run with one thread each (torch's default), so loader workers and intra-op
threads do not multiply. Every CLI logs the choice in one line when its work starts (:func:`log_choice`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

import torch

LOG = logging.getLogger(__name__)

DEFAULT_WAIT_POLICY = 'PASSIVE'


@dataclasses.dataclass(frozen=True)
class ThreadChoice:
    threads: int
    usable_cpus: int
    source: str  # what decided the thread count
    wait_policy: str

    def describe(self) -> str:
        return (f'{self.threads} CPU thread{"s" if self.threads != 1 else ""} ({self.source}; '
                f'{self.usable_cpus} CPUs usable by this process), OpenMP wait policy {self.wait_policy}')


def usable_cpus(environ: Mapping[str, str] | None = None) -> int:
    """The CPUs this process may run on: its affinity mask, capped by ``SLURM_CPUS_PER_TASK``."""
    environ = os.environ if environ is None else environ
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    slurm = environ.get('SLURM_CPUS_PER_TASK', '')
    if slurm.isdigit() and int(slurm) > 0:
        cpus = min(cpus, int(slurm))
    return max(1, cpus)


def choose(environ: Mapping[str, str] | None = None) -> ThreadChoice:
    """The thread count and wait policy for this process (nothing is changed)."""
    environ = os.environ if environ is None else environ
    cpus = usable_cpus(environ)
    requested = environ.get('OMP_NUM_THREADS', '').strip()
    local_processes = environ.get('LOCAL_WORLD_SIZE', '1')
    local_processes = int(local_processes) if local_processes.isdigit() and int(local_processes) > 0 else 1
    if requested.isdigit() and int(requested) > 0:
        threads, source = int(requested), 'OMP_NUM_THREADS'
    elif local_processes > 1:  # torchrun: the processes of this node share its CPUs
        threads, source = max(1, cpus // local_processes), f'the usable CPUs shared by {local_processes} processes'
    else:
        threads, source = cpus, 'one per usable CPU'
    return ThreadChoice(threads=threads, usable_cpus=cpus, source=source,
                        wait_policy=environ.get('OMP_WAIT_POLICY', 'libgomp default (spin, then sleep)'))


def configure(environ: Mapping[str, str] | None = None) -> ThreadChoice:
    """Apply :func:`choose` to torch. Nothing is printed yet: a CLI that stops on bad input says one
    line only; :func:`log_choice` says it once the work starts."""
    choice = choose(environ)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def log_choice(environ: Mapping[str, str] | None = None) -> None:
    """One log line with the threads in use and why (every CLI, when its work starts)."""
    choice = choose(environ)
    LOG.info('threads: %s', dataclasses.replace(choice, threads=torch.get_num_threads()).describe())
