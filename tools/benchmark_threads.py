"""Commands on a quiet and on a busy machine: ``python -m tools.benchmark_threads`` (``make bench``).

Times three whole commands, each in a fresh process, while other CPU-bound processes come after the command
began (a laptop's browser, a job sharing the node): on the machine as it is ("quiet"), and next to one and two
processes that spin on a core from the moment the command says its work started (its ``threads:`` log line)
to its end. The commands (work of 15-30 s each on a quiet 2-core machine):

* ``train``: the demo's training (``make demo``'s resnet18 and synthetic set), one epoch;
* ``eval``: ``openfields.eval`` of that checkpoint on 400 synthetic validation images;
* ``video``: ``openfields.video`` of that checkpoint on 80 synthetic 640 x 480 frames of people.

Each runs twice per load, alternating: with the thread count following the load (openfields' default,
``openfields/network/cpu_threads.py``) and fixed at the start-up choice (``OPENFIELDS_FOLLOW_LOAD=0``, how
every command ran before). The figure is the seconds from the ``threads:`` line to the end; the *fair-share
ratio* divides it by what the command's share of the cores explains: with ``k`` spinning processes on ``n``
CPUs the command gets ``n - k`` of them (``n / (k + 1)`` once ``k >= n``), so the quiet time times
``n / share`` (2x next to one on 2 cores, 3x next to two). Issue 25's target: a ratio of 1.5 at most.

Writes everything to a JSON file (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from openfields.network import cpu_threads
from openfields.outputs import write_json
from openfields.version import version

from .benchmark import cpu_name

DEMO_DATA = ['--dataset', 'synthetic', '--synthetic-image-size', '129', '--synthetic-people', '1', '2',
             '--synthetic-heights', '0.5', '0.9', '--synthetic-max-rotation', '15',
             '--synthetic-crowd-probability', '0', '--synthetic-occlusion-probability', '0',
             '--synthetic-train-images', '256', '--synthetic-val-images', '400']
TRAIN = ['--basenet', 'resnet18', '--no-basenet-pretrained', '--synthetic-square-edge', '129',
         '--synthetic-upsample', '2', '--synthetic-no-augmentation', '--epochs', '1', '--batch-size', '8',
         '--optimizer', 'adam', '--lr', '0.002', '--b-scale', '5.0', '--ema', '0.1', '--batchnorm-momentum', '0.1',
         '--lr-warm-up-epochs', '0.5', '--display-interval', '8', '--loader-workers', '1', '--seed', '1',
         '--val-batches', '1']
WORK_STARTED = re.compile(r'INFO openfields\.network\.cpu_threads: threads: ')
MODES = {'following': {}, 'fixed': {cpu_threads.FOLLOW_LOAD: '0'}}


def fair_share(n_cpus: int, others: int) -> float:
    """The CPUs a command gets next to ``others`` single-threaded CPU-bound processes on ``n_cpus``."""
    return float(n_cpus - others) if others < n_cpus else n_cpus / (others + 1)


def spinner() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-c', 'while True: pass'])


def timed(command: list[str], mode: str, others: int, log: pathlib.Path) -> float:
    """Seconds from the command's ``threads:`` line to its end, with ``others`` spinners started at that line."""
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', cpu_threads.FOLLOW_LOAD)}
    env.update(MODES[mode])
    with log.open('w') as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    spinners: list[subprocess.Popen] = []
    try:
        while process.poll() is None and not WORK_STARTED.search(log.read_text()):
            time.sleep(0.05)
        start = time.perf_counter()
        spinners = [spinner() for _ in range(others)]
        status = process.wait()
        seconds = time.perf_counter() - start
    finally:
        for other in spinners:
            other.kill()
            other.wait()
        if process.poll() is None:
            process.kill()
    if status != 0:
        raise RuntimeError(f'{" ".join(command)} exited with {status}: {log.read_text()[-2000:]}')
    return seconds


def commands(work: pathlib.Path) -> dict[str, list[str]]:
    """The commands; ``{run}`` in their outputs is replaced by each run's name."""
    python = [sys.executable, '-m']
    checkpoint = work / 'demo.pkl'
    return {
        'train': [*python, 'openfields.train', *DEMO_DATA, *TRAIN, '--output', str(work / 'train-{run}.pkl')],
        'eval': [*python, 'openfields.eval', '--checkpoint', str(checkpoint), *DEMO_DATA,
                 '--coco-eval-long-edge', '129', '--loader-workers', '1', '--output', str(work / 'eval-{run}')],
        'video': [*python, 'openfields.video', str(work / 'frames'), '--checkpoint', str(checkpoint),
                  '--json-output', str(work / 'video-{run}.jsonl')],
    }


def prepare(work: pathlib.Path) -> None:
    """The checkpoint (one epoch of the demo's training: its weights do not change the timings much), the
    rendered synthetic sets, and 80 frames of people."""
    subprocess.run([sys.executable, '-m', 'openfields.train', *DEMO_DATA, *TRAIN, '--output',
                    str(work / 'demo.pkl')], check=True, capture_output=True)
    from .benchmark_video import people_frames  # pylint: disable=import-outside-toplevel
    (work / 'frames').mkdir()
    for i, image in enumerate(people_frames(80)):
        image.save(work / 'frames' / f'{i:04d}.png')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tools.benchmark_threads', description=__doc__.splitlines()[0])
    parser.add_argument('--output', default='outputs/bench/threads.json')
    parser.add_argument('--commands', nargs='+', default=['train', 'eval', 'video'], choices=['train', 'eval', 'video'])
    parser.add_argument('--others', nargs='+', type=int, default=[0, 1, 2],
                        help='spinning processes next to the command (0: quiet)')
    args = parser.parse_args(argv)
    n_cpus = os.cpu_count() or 1
    # a run of some commands keeps the figures of the others from the file
    output = pathlib.Path(args.output)
    results = [r for r in (json.loads(output.read_text())['results'] if output.is_file() else [])
               if r['command'] not in args.commands]
    with tempfile.TemporaryDirectory(prefix='openfields-threads-') as tmp:
        work = pathlib.Path(tmp)
        prepare(work)
        for name, command in commands(work).items():
            if name not in args.commands:
                continue
            quiet: dict[str, float] = {}
            for others in args.others:
                for mode in MODES:  # alternating: the two modes see the same machine
                    run = f'{mode}-{others}'
                    seconds = timed([part.replace('{run}', run) for part in command], mode, others,
                                    work / f'{name}-{run}.log')
                    if others == 0:
                        quiet[mode] = seconds
                    explained = quiet.get(mode, float('nan')) * n_cpus / fair_share(n_cpus, others)
                    results.append({'command': name, 'mode': mode, 'others': others, 'seconds': round(seconds, 2),
                                    'share_cpus': round(fair_share(n_cpus, others), 3),
                                    'fair_share_ratio': round(seconds / explained, 2)})
                    print(f'{name:5s} {mode:9s} next to {others}: {seconds:6.1f} s, fair-share ratio '
                          f'{results[-1]["fair_share_ratio"]:.2f}', flush=True)
    write_json(args.output, {'date': datetime.datetime.now().isoformat(timespec='seconds'), 'version': version(),
                             'cpu': cpu_name(), 'cpus': n_cpus, 'usable_cpus': cpu_threads.usable_cpus(),
                             'results': results})
    print(args.output)


if __name__ == '__main__':
    main()
