"""CPU thread settings on a quiet and on a busy machine: ``python -m tools.benchmark_threads`` (``make bench``).

Times a training step (resnet18, batch 8, 160x160: a short, representative mix of convolutions) in fresh
processes for each setting, once on the machine as it is ("quiet") and once next to one process that keeps
a core busy ("busy": a laptop's browser, a job sharing the node). Settings:

* ``sleeping``: one thread per usable CPU, ``OMP_WAIT_POLICY=PASSIVE`` (what openfields chooses when the
  machine is busy at start-up);
* ``spinning``: the same threads with libgomp's default wait, idle threads spin before they sleep (what
  openfields keeps on a quiet machine);
* ``one thread``: ``OMP_NUM_THREADS=1``.

Writes the median seconds per step of each (setting, load) to a JSON file (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import statistics
import subprocess
import sys

from openfields.network import cpu_threads
from openfields.outputs import write_json
from openfields.version import version

from .benchmark import cpu_name

STEP = '''
import json, time, torch, torchvision
torch.manual_seed(0)
model = torchvision.models.resnet18()
images = torch.randn(8, 3, 160, 160)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
times = []
for i in range({steps} + 2):
    start = time.perf_counter()
    loss = model(images).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    times.append(time.perf_counter() - start)
print(json.dumps({{'times': times[2:], 'threads': torch.get_num_threads()}}))
'''

SETTINGS = {
    'sleeping': {'OMP_WAIT_POLICY': 'PASSIVE'},
    'spinning': {'OMP_WAIT_POLICY': None},
    'one thread': {'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': '1'},
}


def _busy_loop():  # the neighbour: one core at 100 %
    while True:
        pass


def time_setting(overrides: dict, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ('OMP_WAIT_POLICY', 'OMP_NUM_THREADS', cpu_threads.CHOSEN_AT_START)}
    env.update({k: v for k, v in overrides.items() if v is not None})
    env.setdefault('OMP_NUM_THREADS', str(cpu_threads.usable_cpus()))
    run = subprocess.run([sys.executable, '-c', STEP.format(steps=steps)], env=env, capture_output=True,
                         text=True, check=True, timeout=1200)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return {'seconds_per_step': statistics.median(result['times']), 'threads': result['threads']}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tools.benchmark_threads', description=__doc__.splitlines()[0])
    parser.add_argument('--output', default='outputs/bench/threads.json')
    parser.add_argument('--steps', type=int, default=5)
    args = parser.parse_args(argv)
    results = {}
    for load in ('quiet', 'busy'):
        neighbour = None
        if load == 'busy':
            neighbour = multiprocessing.Process(target=_busy_loop, daemon=True)
            neighbour.start()
        try:
            for name, overrides in SETTINGS.items():
                results[f'{load}, {name}'] = time_setting(overrides, args.steps)
                print(f'{load:5s} {name:11s} {results[f"{load}, {name}"]["seconds_per_step"]:.3f} s/step', flush=True)
        finally:
            if neighbour is not None:
                neighbour.terminate()
                neighbour.join()
    write_json(args.output, {'date': datetime.datetime.now().isoformat(timespec='seconds'), 'version': version(),
                             'cpu': cpu_name(), 'usable_cpus': cpu_threads.usable_cpus(),
                             'step': 'resnet18, batch 8, 160x160, SGD', 'results': results})
    print(args.output)


if __name__ == '__main__':
    main()
