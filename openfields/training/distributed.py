"""Distributed data parallel training (``--ddp``): who am I, who leads, and the collectives the loop needs.

One process per device. The launcher says which one through the environment:

* the torch launcher (``torchrun``, ``python -m torch.distributed.launch``): ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` (``--local-rank N`` on the command line of the legacy
  launcher replaces ``LOCAL_RANK``);
* Slurm's ``srun``: ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``; the rendezvous host is
  ``MASTER_ADDR`` when set, else the first host of ``SLURM_JOB_NODELIST``; the port is ``--ddp-master-port``,
  else ``MASTER_PORT``, else :func:`default_master_port` of ``SLURM_JOB_ID``.

The torch launcher's variables win when both are present (``torchrun`` inside a Slurm allocation).
Collectives use NCCL on CUDA and gloo on the CPU (``--ddp-backend gloo`` on CUDA lets several processes share a GPU:
a check on a machine with one GPU, ``make gpu-check``). Rank 0 writes logs and checkpoints; every rank takes part
in every collective, in the same order. :class:`Context` has the same methods for a single process, where
they do nothing, so the training code has one path.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping

import torch
import torch.distributed as dist

LOG = logging.getLogger(__name__)

TORCH_LAUNCHER_VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')
SLURM_VARIABLES = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID')
# arguments that legitimately differ between the ranks of one job
RANK_SPECIFIC_ARGS = ('local_rank', 'argv')


class LaunchError(ValueError):
    """``--ddp`` without a usable launcher environment."""


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('distributed (--ddp)')
    group.add_argument('--ddp', action='store_true',
                       help='distributed data parallel: one process per device, started by torchrun or srun; '
                            '--batch-size is per process')
    group.add_argument('--ddp-no-sync-bn', dest='ddp_sync_bn', default=True, action='store_false',
                       help='keep plain BatchNorm (statistics of each process\'s batch) instead of '
                            'synchronised BatchNorm over the global batch')
    group.add_argument('--ddp-master-port', type=int, default=None,
                       help='rendezvous port under Slurm (default: MASTER_PORT, else 15000 + job id mod 10000)')
    group.add_argument('--ddp-backend', choices=('auto', 'nccl', 'gloo'), default='auto',
                       help='collectives: auto is NCCL on CUDA and gloo on the CPU; gloo on CUDA lets the processes '
                            'share GPUs (process r on cuda:r mod GPUs), slower than NCCL')
    group.add_argument('--ddp-timeout', type=float, default=1800.0,
                       help='seconds a collective may wait for the other processes before the job fails')
    group.add_argument('--local-rank', dest='local_rank', type=int, default=None,
                       help='set by the legacy python -m torch.distributed.launch (default: LOCAL_RANK)')


@dataclasses.dataclass(frozen=True)
class Launch:
    """Where this process sits in the job; ``world_size == 1`` is a plain single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = ''
    master_port: int = 0
    launcher: str = 'single'  # 'torch', 'slurm' or 'single'

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def first_host(nodelist: str) -> str:
    """The first host of a Slurm host list: ``'gpu[07-09,12],cpu1'`` -> ``'gpu07'``."""
    match = re.match(r'([^,\[]*)(?:\[([^\]]*)\])?([^,]*)', nodelist.strip())
    if not match or not (match.group(1) or match.group(2)):
        raise LaunchError(f'SLURM_JOB_NODELIST {nodelist!r}: no host name in it')
    prefix, ranges, suffix = match.groups()
    if ranges is None:
        return prefix + suffix
    first = re.split(r'[,-]', ranges)[0]
    return prefix + first + suffix


def default_master_port(job_id: str | int) -> int:
    """A port per job, so that jobs sharing a node do not collide: ``15000 + job_id mod 10000``.

    slurm/train.sh exports the same value; it stays below Linux's ephemeral range (32768-60999).
    """
    return 15000 + int(job_id) % 10000


def _int_variable(environ: Mapping[str, str], name: str) -> int:
    try:
        return int(environ[name])
    except ValueError:
        raise LaunchError(f'--ddp: environment variable {name}={environ[name]!r} is not an integer') from None


def _torch_launch(environ: Mapping[str, str], local_rank_flag: int | None) -> Launch:
    missing = [name for name in TORCH_LAUNCHER_VARIABLES if name not in environ
               and not (name == 'LOCAL_RANK' and local_rank_flag is not None)]
    if missing:
        raise LaunchError(f'--ddp: the torch launcher environment is incomplete: {", ".join(missing)} '
                          'not set (start with torchrun --nproc_per_node N -m openfields.train --ddp ...)')
    local_rank = local_rank_flag if local_rank_flag is not None else _int_variable(environ, 'LOCAL_RANK')
    return Launch(rank=_int_variable(environ, 'RANK'), world_size=_int_variable(environ, 'WORLD_SIZE'),
                  local_rank=local_rank, master_addr=environ['MASTER_ADDR'],
                  master_port=_int_variable(environ, 'MASTER_PORT'), launcher='torch')


def _slurm_launch(environ: Mapping[str, str], master_port: int | None) -> Launch:
    missing = [name for name in SLURM_VARIABLES if name not in environ]
    if 'MASTER_ADDR' not in environ and 'SLURM_JOB_NODELIST' not in environ:
        missing.append('SLURM_JOB_NODELIST (or MASTER_ADDR)')
    if master_port is None and 'MASTER_PORT' not in environ and 'SLURM_JOB_ID' not in environ:
        missing.append('SLURM_JOB_ID (or MASTER_PORT, or --ddp-master-port)')
    if missing:
        raise LaunchError(f'--ddp: the Slurm environment is incomplete: {", ".join(missing)} not set '
                          '(start the processes with srun, one task per device)')
    if master_port is None:
        master_port = (_int_variable(environ, 'MASTER_PORT') if 'MASTER_PORT' in environ
                       else default_master_port(_int_variable(environ, 'SLURM_JOB_ID')))
    master_addr = environ.get('MASTER_ADDR') or first_host(environ['SLURM_JOB_NODELIST'])
    return Launch(rank=_int_variable(environ, 'SLURM_PROCID'), world_size=_int_variable(environ, 'SLURM_NTASKS'),
                  local_rank=_int_variable(environ, 'SLURM_LOCALID'), master_addr=master_addr,
                  master_port=master_port, launcher='slurm')


def launch_from_environment(environ: Mapping[str, str], *, master_port: int | None = None,
                            local_rank_flag: int | None = None) -> Launch:
    """This process's place in a ``--ddp`` job, read from the launcher's variables.

    Raises :class:`LaunchError` naming the missing variables; ``WORLD_SIZE=1`` (or one Slurm task) is a
    single process, with a warning.
    """
    if environ.get('WORLD_SIZE') == '1' or ('WORLD_SIZE' not in environ and environ.get('SLURM_NTASKS') == '1'):
        LOG.warning('--ddp with a world size of 1: training as a single process')
        return Launch()
    if 'RANK' in environ or 'WORLD_SIZE' in environ:
        launch = _torch_launch(environ, local_rank_flag)
    elif 'SLURM_PROCID' in environ:
        launch = _slurm_launch(environ, master_port)
    else:
        raise LaunchError('--ddp: no launcher environment: neither the torch launcher\'s '
                          f'{", ".join(TORCH_LAUNCHER_VARIABLES)} nor Slurm\'s {", ".join(SLURM_VARIABLES)} '
                          'are set (start with torchrun --nproc_per_node N -m openfields.train --ddp ... '
                          'or srun; see docs/hpc.md)')
    if not 0 <= launch.rank < launch.world_size or launch.local_rank < 0:
        raise LaunchError(f'--ddp: rank {launch.rank} (local rank {launch.local_rank}) does not fit a world '
                          f'size of {launch.world_size}')
    return launch


def launch_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Launch:
    """A single process without ``--ddp``; with it, :func:`launch_from_environment`."""
    if not args.ddp:
        return Launch()
    if args.ddp_timeout <= 0:
        raise ValueError(f'--ddp-timeout must be positive, got {args.ddp_timeout}')
    return launch_from_environment(os.environ if environ is None else environ,
                                   master_port=args.ddp_master_port, local_rank_flag=args.local_rank)


def backend_for(name: str, device: torch.device) -> str:
    """``--ddp-backend``: ``auto`` is NCCL on CUDA and gloo elsewhere; NCCL needs CUDA."""
    if name == 'auto':
        return 'nccl' if device.type == 'cuda' else 'gloo'
    if name == 'nccl' and device.type != 'cuda':
        raise ValueError(f'--ddp-backend nccl needs CUDA devices, not {device}')
    return name


def device_for(launch: Launch, device: torch.device, backend: str = 'auto') -> torch.device:
    """Each process on its own device: ``cuda:LOCAL_RANK`` on CUDA, the CPU otherwise; with
    ``--ddp-backend gloo`` on CUDA the processes may share GPUs (``cuda:LOCAL_RANK mod GPUs``)."""
    if launch.world_size == 1:
        return device
    if device.type == 'cuda':
        if device.index is not None and device.index != launch.local_rank:
            raise ValueError(f'--device {device} with --ddp: each process uses cuda:LOCAL_RANK '
                             f'(here cuda:{launch.local_rank}); pass --device cuda')
        if backend == 'gloo':
            return torch.device('cuda', launch.local_rank % torch.cuda.device_count())
        if launch.local_rank >= torch.cuda.device_count():
            raise ValueError(f'--ddp: local rank {launch.local_rank} but only {torch.cuda.device_count()} '
                             'CUDA devices are visible to this process (one task per GPU, e.g. '
                             'srun --gpus-per-task 1 or torchrun --nproc_per_node <GPUs>)')
        return torch.device('cuda', launch.local_rank)
    if device.type != 'cpu':
        raise ValueError(f'--device {device} with --ddp: only CUDA (NCCL) and the CPU (gloo) are supported')
    return device


def arguments_digest(arguments: Mapping) -> str:
    """SHA-256 of the arguments that every rank must share (everything but the rank-specific ones)."""
    shared = {k: v for k, v in arguments.items() if k not in RANK_SPECIFIC_ARGS}
    return hashlib.sha256(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()


class Context:
    """The collectives of one process; every method is a no-op (identity) for a single process."""

    def __init__(self, launch: Launch):
        self.launch = launch
        self.backend = 'gloo'

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def is_main(self) -> bool:
        return self.launch.is_main

    @property
    def active(self) -> bool:
        return self.launch.world_size > 1

    def start(self, device: torch.device, timeout_s: float = 1800.0, backend: str = 'auto') -> None:
        """Join the process group: ``backend`` (:func:`backend_for`: NCCL on CUDA, gloo on the CPU)."""
        if not self.active:
            return
        self.backend = backend_for(backend, device)
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        host = f'[{self.launch.master_addr}]' if ':' in self.launch.master_addr else self.launch.master_addr
        dist.init_process_group(self.backend,
                                init_method=f'tcp://{host}:{self.launch.master_port}',
                                rank=self.launch.rank, world_size=self.launch.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
        LOG.info('rank %d/%d joined the process group at %s:%d (%s)', self.rank, self.world_size,
                 self.launch.master_addr, self.launch.master_port, dist.get_backend())

    def close(self) -> None:
        """Leave the process group (a rank that exits without this may abort instead of exiting)."""
        if self.active and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast_object(self, value):
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, value) -> list:
        """``[value of rank 0, value of rank 1, ...]`` on every rank."""
        if not self.active:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def _all_reduce(self, tensor: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        tensor = tensor.to('cuda' if self.backend == 'nccl' else 'cpu')  # NCCL reduces CUDA tensors only
        dist.all_reduce(tensor, op=op)
        return tensor.cpu()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on at least one (e.g. a stop signal)."""
        if not self.active:
            return flag
        return bool(self._all_reduce(torch.tensor([int(flag)]), op=dist.ReduceOp.MAX).item())

    def mean(self, values: list[float | None]) -> list[float | None]:
        """Element-wise mean over the ranks; None (and NaN) entries are left out of the mean."""
        if not self.active:
            return values
        local = torch.tensor([v if v is not None else float('nan') for v in values], dtype=torch.float64)
        finite = torch.isfinite(local)
        sums = self._all_reduce(torch.cat([torch.where(finite, local, 0.0), finite.double()]))
        totals, counts = sums[:len(values)], sums[len(values):]
        return [float(t / c) if c > 0 else (None if v is None else float('nan'))
                for t, c, v in zip(totals, counts, values)]

    def check_same_arguments(self, arguments: Mapping) -> None:
        """Fail on every rank when the ranks were started with different arguments, naming them."""
        if not self.active:
            return
        digests = self.gather_objects(arguments_digest(arguments))
        if len(set(digests)) == 1:
            return
        every = self.gather_objects({k: v for k, v in arguments.items() if k not in RANK_SPECIFIC_ARGS})
        names = sorted({k for a in every for k in a if any(a.get(k) != b.get(k) for b in every)})
        details = '; '.join(f'--{name.replace("_", "-")}: ' +
                            ', '.join(f'rank {r} {a.get(name)!r}' for r, a in enumerate(every))
                            for name in names[:3])
        raise ValueError(f'--ddp: the ranks were started with different arguments ({details}); '
                         'start every rank with the same command line')
