"""Helpers of the distributed tests: free ports, torchrun and hand-started ranks, parameter comparison."""

import os
import pathlib
import socket
import subprocess
import sys

import torch

# one thread per process: the test machine has two cores for two ranks
SINGLE_THREAD = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}

# a tiny synthetic run: 8 images of 48 px cropped to 33 px, no augmentation, fixed seed
TINY_DDP = ['--dataset', 'synthetic', '--synthetic-train-images', '8', '--synthetic-val-images', '4',
            '--synthetic-image-size', '48', '--synthetic-square-edge', '33', '--synthetic-no-augmentation',
            '--basenet', 'shufflenetv2k16', '--loader-workers', '0', '--display-interval', '1',
            '--seed', '7', '--optimizer', 'sgd', '--lr', '0.001', '--momentum', '0.9',
            '--lr-warm-up-epochs', '0', '--ema', '0', '--device', 'cpu']


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def environment(**extra) -> dict:
    """This process's environment for a child, without any launcher variable of an outer job."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')
           and not k.startswith('SLURM_')}
    return {**env, **SINGLE_THREAD, **extra}


TRAIN_FLOAT64 = str(pathlib.Path(__file__).parent / 'train_float64.py')
TRAIN_FAILING_RANK = str(pathlib.Path(__file__).parent / 'train_failing_rank.py')


def torchrun_command(argv: list[str], nproc: int = 2, script: str | None = None) -> list[str]:
    """torchrun of ``-m openfields.train --ddp ARGV``, or of ``script --ddp ARGV``."""
    entry = [script] if script else ['-m', 'openfields.train']
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
            *entry, '--ddp', *argv]


def torchrun(argv: list[str], nproc: int = 2, timeout: float = 300, script: str | None = None
             ) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node N -m openfields.train --ddp ARGV`` to completion."""
    return subprocess.run(torchrun_command(argv, nproc, script), capture_output=True, text=True,
                          env=environment(), timeout=timeout)


def start_ranks(argv_per_rank: list[list[str]], entry: list[str] = ('-m', 'openfields.train'),
                extra_env: dict | None = None) -> list[subprocess.Popen]:
    """Start one process per rank by hand, as a launcher would, but with nobody watching over them."""
    port = free_port()
    world_size = len(argv_per_rank)
    processes = []
    for rank, argv in enumerate(argv_per_rank):
        env = environment(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                          MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), **(extra_env or {}))
        processes.append(subprocess.Popen([sys.executable, *entry, '--ddp', *argv], env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return processes


def finish(processes: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    """(exit code, stderr) of every process; kills them all if one outlives ``timeout``."""
    try:
        outputs = [p.communicate(timeout=timeout) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, err) for p, (_, err) in zip(processes, outputs)]


def state_of(path) -> dict[str, torch.Tensor]:
    """The floating-point tensors of a checkpoint's model."""
    state = torch.load(path, map_location='cpu', weights_only=True)['model']['state_dict']
    return {k: v.double() for k, v in state.items() if v.dtype.is_floating_point}


def relative_difference(a: dict, b: dict) -> float:
    """``||a - b|| / ||b||`` over all tensors together."""
    assert a.keys() == b.keys()
    diff = sum(float(((a[k] - b[k]) ** 2).sum()) for k in a)
    norm = sum(float((b[k] ** 2).sum()) for k in b)
    return (diff / norm) ** 0.5
