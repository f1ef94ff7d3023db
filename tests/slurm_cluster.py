"""A private one-node Slurm cluster for tests: munged, slurmctld and slurmd on loopback.

Everything lives in one folder (configuration, state, spool, logs, munge key and socket); the daemons run
in the foreground as children of the test, listen on free unprivileged ports, and are stopped by their
process ids. ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none`` need no cgroups, so this
runs in containers. Debian's packages are installed when missing and the test runs as root.
"""

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

PACKAGES = ('slurmctld', 'slurmd', 'slurm-client', 'munge')
TOOLS = ('munged', 'slurmctld', 'slurmd', 'sbatch', 'scontrol', 'sinfo', 'scancel')
DAEMON_NAMES = ('munged', 'slurmctld', 'slurmd', 'slurmstepd')
SEARCH_PATH = os.pathsep.join([os.environ.get('PATH', ''), '/usr/sbin', '/sbin'])


def tool(name: str) -> str | None:
    return shutil.which(name, path=SEARCH_PATH)


def missing_tools() -> list[str]:
    return [name for name in TOOLS if tool(name) is None]


def running_daemons() -> set[int]:
    """Process ids of every munge or Slurm daemon on this machine."""
    pids = set()
    for comm in pathlib.Path('/proc').glob('[0-9]*/comm'):
        try:
            if comm.read_text().strip() in DAEMON_NAMES:
                pids.add(int(comm.parent.name))
        except OSError:
            continue
    return pids


def stop(pids, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, to each process id (that still exists)."""
    pids = set(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if pathlib.Path(f'/proc/{pid}').exists() and not _zombie(pid)}
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return pathlib.Path(f'/proc/{pid}/stat').read_text().split(') ')[1].startswith('Z')
    except (OSError, IndexError):
        return True


def install_packages() -> str | None:
    """``apt-get install`` Debian's Slurm and munge packages; None on success, else why not.

    Daemons that the packages' scripts start anyway are stopped again (by pid).
    """
    if os.geteuid() != 0:
        return 'Slurm is not installed and installing it needs root'
    if tool('apt-get') is None:
        return 'Slurm is not installed and there is no apt-get to install it'
    before = running_daemons()
    env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
    install = ['apt-get', 'install', '-y', '-q', '--no-install-recommends', *PACKAGES]
    policy = pathlib.Path('/usr/sbin/policy-rc.d')
    created_policy = not policy.exists()
    if created_policy:  # tell the packages' scripts not to start services
        policy.write_text('#!/bin/sh\nexit 101\n')
        policy.chmod(0o755)
    try:
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            subprocess.run(['apt-get', 'update', '-q'], env=env, capture_output=True, text=True)
            result = subprocess.run(install, env=env, capture_output=True, text=True)
    finally:
        if created_policy:
            policy.unlink()
        stop(running_daemons() - before)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ['no output']
        return f'apt-get install {" ".join(PACKAGES)} failed: {lines[-1]}'
    return None if not missing_tools() else f'still missing after apt-get install: {", ".join(missing_tools())}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def memory_mb() -> int:
    for line in pathlib.Path('/proc/meminfo').read_text().splitlines():
        if line.startswith('MemTotal:'):
            return int(line.split()[1]) // 1024
    return 1024


def slurm_conf(folder: pathlib.Path, host: str, cpus: int) -> str:
    return '\n'.join([
        'ClusterName=openfieldstest',
        f'SlurmctldHost={host}(127.0.0.1)',
        f'SlurmctldPort={free_port()}',
        f'SlurmdPort={free_port()}',
        'SlurmUser=root',
        'SlurmdUser=root',
        'AuthType=auth/munge',
        'CredType=cred/munge',
        f'AuthInfo=socket={folder / "munge.socket"}',
        f'StateSaveLocation={folder / "state"}',
        f'SlurmdSpoolDir={folder / "spool"}',
        f'SlurmctldPidFile={folder / "slurmctld.pid"}',
        f'SlurmdPidFile={folder / "slurmd.pid"}',
        f'SlurmctldLogFile={folder / "slurmctld.log"}',
        f'SlurmdLogFile={folder / "slurmd.log"}',
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none',
        'SchedulerType=sched/builtin',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core',
        'MpiDefault=none',
        'ReturnToService=2',
        'SlurmdParameters=config_overrides',
        f'NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb()} State=UNKNOWN',
        f'PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP',
        '',
    ])


class Cluster:
    """The running cluster: ``env`` for Slurm's commands, ``sbatch`` and ``wait`` for jobs."""

    def __init__(self, folder: pathlib.Path, env: dict):
        self.folder = folder
        self.env = env

    def command(self, *argv, cwd=None, check=True) -> str:
        result = subprocess.run([tool(argv[0]), *argv[1:]], env=self.env, cwd=cwd, capture_output=True,
                                text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f'{" ".join(argv)}: {result.stderr.strip()}\n{self.logs()}')
        return result.stdout

    def sbatch(self, *argv, cwd) -> int:
        return int(self.command('sbatch', '--parsable', *argv, cwd=cwd).strip().split(';')[0])

    def job_state(self, job_id: int) -> dict:
        fields = self.command('scontrol', '-o', 'show', 'job', str(job_id)).split()
        return dict(f.split('=', 1) for f in fields if '=' in f)

    def wait(self, job_id: int, timeout: float) -> dict:
        """The job's final record (JobState, ExitCode, ...); fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state['JobState'] not in ('PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'REQUEUED'):
                return state
            time.sleep(1.0)
        raise AssertionError(f'job {job_id} did not finish within {timeout} s: {self.job_state(job_id)}')

    def logs(self) -> str:
        tails = []
        for name in ('munged.log', 'slurmctld.log', 'slurmd.log'):
            path = self.folder / name
            if path.exists():
                tails.append(f'--- {name}\n' + '\n'.join(path.read_text().splitlines()[-15:]))
        return '\n'.join(tails)


def _start(argv, folder, name, env) -> subprocess.Popen:
    with open(folder / f'{name}.out', 'wb') as out:  # the daemon keeps its own copy of the descriptor
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(condition, timeout: float, what: str, cluster_logs):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f'{what} within {timeout} s\n{cluster_logs()}')


@contextlib.contextmanager
def one_node_cluster(folder: pathlib.Path, cpus: int):
    """Start munged, slurmctld and slurmd in ``folder``; stop them (by pid) on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for sub in ('state', 'spool'):
        (folder / sub).mkdir(mode=0o700, exist_ok=True)
    key = folder / 'munge.key'
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split('.')[0]
    conf = folder / 'slurm.conf'
    conf.write_text(slurm_conf(folder, host, cpus))
    env = {**os.environ, 'SLURM_CONF': str(conf), 'PATH': SEARCH_PATH}
    cluster = Cluster(folder, env)
    others = running_daemons()  # not ours: left alone
    daemons = []
    try:
        daemons.append(_start([tool('munged'), '--foreground', '--force', f'--key-file={key}',
                               f'--socket={folder / "munge.socket"}', f'--pid-file={folder / "munged.pid"}',
                               f'--log-file={folder / "munged.log"}', f'--seed-file={folder / "munged.seed"}'],
                              folder, 'munged', env))
        _wait_for(lambda: (folder / 'munge.socket').exists(), 30, 'munged did not open its socket', cluster.logs)
        daemons.append(_start([tool('slurmctld'), '-D', '-i', '-f', str(conf)], folder, 'slurmctld', env))
        daemons.append(_start([tool('slurmd'), '-D', '-f', str(conf), '-N', host], folder, 'slurmd', env))
        _wait_for(lambda: 'idle' in cluster.command('sinfo', '-h', '-o', '%T', check=False), 60,
                  'the node did not become idle', cluster.logs)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.command('scancel', '--partition=test', check=False)
        for daemon in reversed(daemons):  # slurmd, slurmctld, then munged
            stop([daemon.pid])
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=5)
        # job step daemons (slurmstepd) that our slurmd started end on their own shortly after it
        with contextlib.suppress(AssertionError):
            _wait_for(lambda: not running_daemons() - others, 30, 'step daemons still running', lambda: '')
        stop(running_daemons() - others)
