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

**Following the load.** Other work comes and goes while a run lasts hours. A command's thread count is
re-decided while it runs (:class:`LoadFollower`): a sampler thread reads, four times a second, how many
threads of *other* processes are runnable (``/proc/loadavg``'s running count, less this process's own
runnable threads and those of its children, the DataLoader workers), and takes the median of the last two
seconds (a neighbour that keeps a core busy is runnable in every reading, a passing one is not). The run
then uses ``machine CPUs - others`` threads, at least 1 and at most the count chosen at start-up: next to one
CPU-bound process on 2 cores, 1 thread, which never waits at a barrier for a thread the neighbour holds off
its core. torch's thread count belongs to the thread that sets it, so the work loops call
:func:`follow_load` before each batch (training, validation, evaluation, prediction, video, detectors).
The count stays fixed where following would be wrong or blind: ``OMP_NUM_THREADS`` set (the user's count),
``OPENFIELDS_FOLLOW_LOAD=0``, a CPU set smaller than the machine (taskset, Slurm's CPU binding: the other
processes counted would mostly run on other CPUs), torchrun's processes (they share the CPUs by count
already), and training with ``--deterministic`` (float sums depend on the thread count: a resumed run matches
an uninterrupted one bit for bit only with the same count). ONNX Runtime sessions keep the count they were
made with.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

# no torch here: the commands import this module before anything loads torch (openfields/cli_setup.py)
LOG = logging.getLogger(__name__)

BUSY_WAIT_POLICY = 'PASSIVE'
FOLLOW_LOAD = 'OPENFIELDS_FOLLOW_LOAD'  # '0': keep the thread count chosen at start-up
CHOSEN_AT_START = 'OPENFIELDS_SET_OMP_WAIT_POLICY'  # records that openfields chose the policy, and why


def wait_policy_for(other_running: float, machine_cpus: int) -> str | None:
    """``PASSIVE`` on a busy machine (other runnable threads >= half its CPUs, and >= 1), else None
    (libgomp's default: spin a while, then sleep)."""
    return BUSY_WAIT_POLICY if other_running >= max(1.0, 0.5 * machine_cpus) else None


def other_running_threads(samples: int = 5, interval_s: float = 0.01) -> int | None:
    """Runnable threads of other processes now: the fewest seen in ``samples`` readings of /proc/loadavg's
    running count (a busy neighbour is runnable in every reading, a passing one is not), less this process's
    own (:class:`OtherRunnableThreads`, as the load follower reads them). Not the load average, which lags a
    minute behind: right after a run ends it would still call the machine busy. None where /proc/loadavg is
    missing."""
    read, seen = OtherRunnableThreads(), []
    for i in range(samples):
        others = read()
        if others is None:
            return None
        seen.append(others)
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
    fixed_because: str | None = None  # why the count does not follow the load (None: it follows)

    def describe(self) -> str:
        follows = (f'fixed: {self.fixed_because}' if self.fixed_because else
                   'fewer while other processes keep CPUs busy')
        return (f'{self.threads} CPU thread{"s" if self.threads != 1 else ""} ({self.source}; '
                f'{self.usable_cpus} CPUs usable by this process; {follows}), OpenMP wait policy {self.wait_policy}')


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
    return ThreadChoice(threads=threads, usable_cpus=cpus, source=source, wait_policy=policy,
                        fixed_because=_fixed_because(environ, source, cpus, local_processes))


def _fixed_because(environ: Mapping[str, str], source: str, cpus: int, local_processes: int) -> str | None:
    """Why the thread count must not follow the load (module docstring), or None."""
    machine = os.cpu_count() or 1
    if source == 'OMP_NUM_THREADS':
        return 'OMP_NUM_THREADS is set'
    if environ.get(FOLLOW_LOAD, '').strip() == '0':
        return f'{FOLLOW_LOAD}=0'
    if local_processes > 1:
        return 'torchrun\'s processes share the CPUs by count'
    if cpus < machine:
        return f'a set of {cpus} of the machine\'s {machine} CPUs, whose load /proc/loadavg does not tell apart'
    if machine_running_threads() is None:
        return 'no /proc/loadavg to read the load from'
    return None


def configure(environ: Mapping[str, str] | None = None) -> ThreadChoice:
    """Apply :func:`choose` to torch, and start following the load where it applies (a command's process; any
    follower of an earlier command in the same process is stopped). Nothing is printed yet: a CLI that stops
    on bad input says one line only; :func:`log_choice` says it once the work starts."""
    import torch
    global _FOLLOWER
    choice = choose(environ)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    if _FOLLOWER is not None:
        _FOLLOWER.stop()
        _FOLLOWER = None
    if choice.fixed_because is None:
        _FOLLOWER = LoadFollower(most=choice.threads, machine_cpus=os.cpu_count() or 1)
        _FOLLOWER.start()
    return choice


def log_choice(environ: Mapping[str, str] | None = None) -> None:
    """One log line with the threads in use and why (every CLI, when its work starts)."""
    import torch
    choice = choose(environ)
    if _FOLLOWER is None and choice.fixed_because is None:
        choice = dataclasses.replace(choice, fixed_because='this process did not start following the load')
    LOG.info('threads: %s', dataclasses.replace(choice, threads=torch.get_num_threads()).describe())


def follow_load() -> int | None:
    """Before a batch of work: the calling thread's torch thread count set to what the load follower decided
    (torch's count belongs to each thread). Returns it; None (nothing done) where no command follows the
    load (a library user's process, a fixed count)."""
    return None if _FOLLOWER is None else _FOLLOWER.apply()


def stop_following(reason: str) -> None:
    """Keep the count chosen at start-up from now on (e.g. ``--deterministic``), set in the calling thread."""
    global _FOLLOWER
    if _FOLLOWER is not None:
        _FOLLOWER.stop()
        import torch
        torch.set_num_threads(_FOLLOWER.most)
        LOG.info('threads: %d, fixed from now on (%s)', _FOLLOWER.most, reason)
        _FOLLOWER = None


def machine_running_threads() -> int | None:
    """Runnable threads of the whole machine now (``/proc/loadavg``'s running count, this process included);
    None where /proc/loadavg is missing."""
    try:
        with open('/proc/loadavg', encoding='ascii') as f:
            return int(f.read().split()[3].split('/')[0])
    except (OSError, ValueError, IndexError):
        return None


def runnable_threads(pid: int | str = 'self') -> int:
    """Threads of process ``pid`` that are runnable now (state R in ``/proc/<pid>/task/*/stat``); 0 when the
    process is gone."""
    try:
        tasks = os.listdir(f'/proc/{pid}/task')
    except OSError:
        return 0
    count = 0
    for task in tasks:
        stat = _read_stat(f'/proc/{pid}/task/{task}/stat')
        count += stat is not None and _after_name(stat)[:1] == b'R'
    return count


def child_processes(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (DataLoader workers, ...): a scan of /proc."""
    children = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            stat = _read_stat(f'/proc/{name}/stat')
            if stat is not None and int(_after_name(stat).split()[1]) == parent:
                children.append(int(name))
    return children


def _read_stat(path: str) -> bytes | None:
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:  # the task ended meanwhile
        return None


def _after_name(stat: bytes) -> bytes:
    """A stat line from its state field on (the name before it may hold spaces and parentheses)."""
    return stat[stat.rindex(b')') + 2:]


class OtherRunnableThreads:
    """Reads how many threads of other processes are runnable now: the machine's running count less this
    process's runnable threads and its children's. The list of children is read again when it is
    ``children_every_s`` old and others seem busy (a child started since, a new DataLoader worker, would
    count as another's): a /proc scan costs about a millisecond per 70 processes."""

    def __init__(self, children_every_s: float = 1.0):
        self.pid = os.getpid()
        self.children_every_s = children_every_s
        self.children: list[int] = []
        self.children_read_at = -float('inf')

    def __call__(self) -> int | None:
        total = machine_running_threads()
        if total is None:
            return None
        others = total - self._own()
        now = time.monotonic()
        if others > 0 and now - self.children_read_at >= self.children_every_s:
            self.children, self.children_read_at = child_processes(self.pid), now
            others = total - self._own()
        return max(0, others)

    def _own(self) -> int:
        return runnable_threads('self') + sum(runnable_threads(child) for child in self.children)


class LoadFollower:
    """The thread count torch should use now (:attr:`threads`), re-decided from the other processes'
    runnable threads (module docstring): ``machine_cpus - median(last window readings)``, between 1 and
    ``most``, once more than half a window has been read. :meth:`start` takes a reading every ``period_s`` on
    a daemon thread (:meth:`sample`, which tests call directly with their own ``read_others``); :meth:`apply`
    sets the count in the calling thread."""

    def __init__(self, most: int, machine_cpus: int, *, period_s: float = 0.25, window: int = 8,
                 read_others: Callable[[], int | None] | None = None, say_every_s: float = 30.0):
        self.most, self.machine_cpus = most, machine_cpus
        self.period_s, self.window, self.say_every_s = period_s, window, say_every_s
        self.read_others = read_others if read_others is not None else OtherRunnableThreads()
        self.readings: list[int] = []
        self.threads = most
        self._stopped = threading.Event()
        self._sampler: threading.Thread | None = None
        self._said_at = -float('inf')

    def sample(self) -> int:
        """Take one reading; returns the (possibly new) thread count."""
        others = self.read_others()
        if others is None:
            return self.threads
        self.readings = [*self.readings[1 - self.window:], others]
        if len(self.readings) <= self.window // 2:  # a majority of a full window decides
            return self.threads
        median = sorted(self.readings)[(len(self.readings) - 1) // 2]  # the lower median
        threads = min(self.most, max(1, self.machine_cpus - median))
        if threads != self.threads:
            self._say(threads, median)
            self.threads = threads
        return threads

    def _say(self, threads: int, others: int) -> None:
        """One line per change, at most every ``say_every_s`` at INFO (the rest at DEBUG)."""
        now = time.monotonic()
        level = logging.INFO if now - self._said_at >= self.say_every_s else logging.DEBUG
        if level == logging.INFO:
            self._said_at = now
        if threads < self.most:
            LOG.log(level, 'threads: %d now, not %d: other processes keep %d of the %d CPUs busy (a busy '
                    'machine: this run gets its share and runs slower until they end)',
                    threads, self.most, others, self.machine_cpus)
        else:
            LOG.log(level, 'threads: %d again (the machine is quiet)', threads)

    def apply(self) -> int:
        import torch
        threads = self.threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return threads

    def start(self) -> None:
        self._sampler = threading.Thread(target=self._run, name='openfields-load-follower', daemon=True)
        self._sampler.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.period_s):
            self.sample()

    def stop(self) -> None:
        self._stopped.set()


_FOLLOWER: LoadFollower | None = None  # the command's follower (configure); None in a library user's process


def _forget_follower_in_child() -> None:  # a forked child (a DataLoader worker) has no sampler thread
    global _FOLLOWER
    _FOLLOWER = None


os.register_at_fork(after_in_child=_forget_follower_in_child)
