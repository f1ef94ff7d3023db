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
* **wait policy**: spinning pays on an idle machine (a shufflenetv2k16 training step: 1.03 images/s with
  libgomp's default, 0.78 with sleeping threads) and costs dearly on a busy one (0.45 against 0.61 next to
  one busy process; 3.2 s against 0.6 s for the resnet18 step above). So when the machine is busy as a
  command starts (other runnable threads at least half the machine's CPUs, and at least 1),
  ``OMP_WAIT_POLICY=PASSIVE`` is set (an idle thread sleeps); on a quiet machine libgomp's default stays. The
  commands decide it first thing, before they import torch, because libgomp reads it once, when torch loads
  it (:func:`openfields.cli_setup.prepare_process`); importing openfields decides nothing, and a program that
  uses openfields as a library keeps its own. ``OMP_WAIT_POLICY`` in the environment always wins.

DataLoader worker processes run with one thread each (torch's default), so loader workers and intra-op
threads do not multiply. Every CLI logs the choice in one line when its work starts (:func:`log_choice`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

# no torch here: the commands import this module before anything loads torch (openfields/cli_setup.py)
LOG = logging.getLogger(__name__)

BUSY_WAIT_POLICY = 'PASSIVE'
CHOSEN_AT_START = 'OPENFIELDS_SET_OMP_WAIT_POLICY'  # records that openfields chose the policy, and why


def wait_policy_for(other_running: float, machine_cpus: int) -> str | None:
    """``PASSIVE`` on a busy machine (other runnable threads >= half its CPUs, and >= 1), else None
    (libgomp's default: spin a while, then sleep)."""
    return BUSY_WAIT_POLICY if other_running >= max(1.0, 0.5 * machine_cpus) else None


def other_running_threads(samples: int = 5, interval_s: float = 0.01) -> int | None:
    """Runnable threads of other processes now: the fewest seen in ``samples`` readings of /proc/loadavg's
    running count (a busy neighbour is runnable in every reading, a passing one is not), less this one.
    Not the load average, which lags a minute behind: right after a run ends it would still call the
    machine busy. None where /proc/loadavg is missing."""
    import time
    seen = []
    for i in range(samples):
        try:
            with open('/proc/loadavg', encoding='ascii') as f:
                seen.append(int(f.read().split()[3].split('/')[0]) - 1)
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(interval_s)
    return min(seen)


def choose_wait_policy(environ=None, other_running=other_running_threads) -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` (default: this process's) when the machine is busy and the
    policy is not set; called by the commands before torch is loaded (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if 'OMP_WAIT_POLICY' in environ:
        return
    running = other_running()
    if running is None:
        return
    policy = wait_policy_for(running, os.cpu_count() or 1)
    if policy is not None:
        environ['OMP_WAIT_POLICY'] = policy
        environ[CHOSEN_AT_START] = f'{running} other runnable threads on {os.cpu_count()} CPUs at start-up'


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
    policy = environ.get('OMP_WAIT_POLICY')
    if policy is None:
        policy = 'libgomp default (spin, then sleep; the machine was quiet at start-up)'
    elif CHOSEN_AT_START in environ:
        policy = f'{policy} ({environ[CHOSEN_AT_START]})'
    return ThreadChoice(threads=threads, usable_cpus=cpus, source=source, wait_policy=policy)


def configure(environ: Mapping[str, str] | None = None) -> ThreadChoice:
    """Apply :func:`choose` to torch. Nothing is printed yet: a CLI that stops on bad input says one
    line only; :func:`log_choice` says it once the work starts."""
    import torch
    choice = choose(environ)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def log_choice(environ: Mapping[str, str] | None = None) -> None:
    """One log line with the threads in use and why (every CLI, when its work starts)."""
    import torch
    choice = choose(environ)
    LOG.info('threads: %s', dataclasses.replace(choice, threads=torch.get_num_threads()).describe())
