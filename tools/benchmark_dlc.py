"""``make bench-dlc``: openfields and DeepLabCut 3.0.2 race on DeepLabCut's own project, test error against
wall time, into ``outputs/bench/dlc.json`` (docs/benchmarks.md shows the table).

Both sides get the same inputs: one copy of the project, DeepLabCut's shuffle split (openfields reads it from
``training-datasets/``), the ``pytorch_config.yaml`` files DeepLabCut writes for it (shuffle 1: bottom-up
``resnet_50``, a GroupNorm ResNet-50 with heatmap + locref head; shuffle 2: ``top_down_resnet_50`` with its
SSDLite detector, on shuffle 1's frames), the same random initial backbone (the file's ``weight_init``: both
train from scratch) and the same CPU. Each run trains with the file's own schedule, writes a snapshot after
every epoch and is stopped when its wall-time budget is spent (the top-down budget includes the detector's
epochs, the same number on both sides). Then the snapshots written by half the budget and by the whole budget
are evaluated by each program's own evaluation (DeepLabCut's ``evaluate_network``, openfields' ``eval --dataset
dlc``) on the same test frames: the test error (DeepLabCut's "RMSE", a mean pixel distance).

The DeepLabCut side runs in its own Python (``--dlc-python``, a venv built as
``../shared/reference/peer-deeplabcut.md`` says; ``make bench-dlc`` builds one) through :mod:`tools.peer_dlc`.
The sides run one after the other, DeepLabCut first, never at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from openfields import outputs

from .benchmark import cpu_name

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
PROJECT = REPOSITORY.parent / 'shared' / 'data' / 'dlc-openfield'
METHODS = {'bu': 1, 'td': 2}  # the shuffle tools.peer_dlc prepares for each


def environment() -> dict:
    """The peers' environment: offline hub, DeepLabCut without its GUI, unbuffered output."""
    return {**os.environ, 'HF_HUB_OFFLINE': '1', 'DLClight': 'True', 'PYTHONUNBUFFERED': '1'}


def timed_run(command: list[str], budget: float, snapshot_glob: tuple[pathlib.Path, str], log: pathlib.Path
              ) -> dict:
    """Run ``command`` until it ends or ``budget`` seconds have passed (then its process group is killed);
    ``{snapshot name: seconds after the start when it appeared}`` for the files matching ``snapshot_glob``."""
    folder, pattern = snapshot_glob
    seen: dict[str, float] = {}
    start = time.perf_counter()
    with log.open('w') as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, cwd=REPOSITORY,
                                   env=environment(), start_new_session=True)
        while True:
            elapsed = time.perf_counter() - start
            for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
                if path.name not in seen and not path.name.endswith('.tmp'):
                    seen[path.name] = round(elapsed, 1)
            if process.poll() is not None or elapsed > budget:
                break
            time.sleep(0.5)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return {'snapshots': seen, 'wall_s': round(time.perf_counter() - start, 1), 'returncode': process.returncode,
            'stopped_by_budget': process.returncode == -signal.SIGKILL}


def last_before(snapshots: dict[str, float], seconds: float) -> str | None:
    written = [(t, name) for name, t in snapshots.items() if t <= seconds]
    return max(written)[1] if written else None


def run_json(command: list[str], log: pathlib.Path) -> dict:
    """The last stdout line of ``command`` as JSON (tools.peer_dlc's answer); its whole output into ``log``."""
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY, env=environment(),
                            check=False)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(command[:4])} failed ({result.returncode}); see {log}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def dlc_side(args, project: pathlib.Path, method: str, work: pathlib.Path) -> dict:
    shuffle = METHODS[method]
    (train_folder,) = (project / 'dlc-models-pytorch').glob(f'iteration-0/*shuffle{shuffle}/train')
    budget = args.budget[method]
    command = [args.dlc_python, str(REPOSITORY / 'tools' / 'peer_dlc.py'), 'train', str(project), str(shuffle),
               '--detector-epochs', str(args.detector_epochs)]
    run = timed_run(command, budget, (train_folder, 'snapshot-[0-9]*.pt'), work / f'dlc-{method}-train.log')
    chosen = {label: last_before(run['snapshots'], seconds) for label, seconds in
              (('half', budget / 2), ('full', budget))}
    names = sorted({name for name in chosen.values() if name})
    errors = {}
    if names:
        errors = run_json([args.dlc_python, str(REPOSITORY / 'tools' / 'peer_dlc.py'), 'evaluate', str(project),
                           str(shuffle), *[n[:-len('.pt')] for n in names]], work / f'dlc-{method}-eval.log')
    return {**run, 'evaluated': {label: _dlc_result(name, errors, run) for label, name in chosen.items()}}


def _dlc_result(name: str | None, errors: dict, run: dict) -> dict | None:
    if name is None:
        return None
    epoch = int(name[len('snapshot-'):-len('.pt')])
    row = errors.get(str(epoch))
    return {'snapshot': name, 'epoch': epoch, 'wall_s': run['snapshots'][name],
            'test_error_px': row and row['test_rmse'], 'train_error_px': row and row['train_rmse']}


def openfields_side(args, project: pathlib.Path, method: str, work: pathlib.Path) -> dict:
    shuffle = METHODS[method]
    out = work / f'openfields-{method}' / 'model.pkl'
    if out.parent.exists():
        shutil.rmtree(out.parent)
    out.parent.mkdir(parents=True)
    budget = args.budget[method]
    command = [sys.executable, '-m', 'openfields.train', '--config', 'dlc', '--dlc-project', str(project),
               '--dlc-shuffle', str(shuffle), '--val-interval', '1', '--save-epochs', '1', '--max-snapshots', '0',
               '--output', str(out)]
    if method == 'td':
        command += ['--detector-epochs', str(args.detector_epochs)]
    run = timed_run(command, budget, (out.parent, f'{out.name}.epoch[0-9]*'), work / f'openfields-{method}-train.log')
    evaluated = {}
    for label, seconds in (('half', budget / 2), ('full', budget)):
        name = last_before(run['snapshots'], seconds)
        evaluated[label] = None if name is None else _openfields_eval(project, shuffle, out.parent / name, run, work)
    return {**run, 'evaluated': evaluated}


def _openfields_eval(project: pathlib.Path, shuffle: int, snapshot: pathlib.Path, run: dict,
                     work: pathlib.Path) -> dict:
    output = work / f'{snapshot.name}-shuffle{shuffle}'
    command = [sys.executable, '-m', 'openfields.eval', '--dataset', 'dlc', '--dlc-project', str(project),
               '--dlc-shuffle', str(shuffle), '--checkpoint', str(snapshot), '--output', str(output)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY, env=environment(), check=False)
    (work / f'{output.name}.eval.log').write_text(result.stdout + result.stderr)
    stats = json.loads(pathlib.Path(f'{output}.stats.json').read_text()) if result.returncode == 0 else {}
    return {'snapshot': snapshot.name, 'epoch': int(snapshot.name.rsplit('epoch', 1)[1]),
            'wall_s': run['snapshots'][snapshot.name], 'test_error_px': stats.get('test_pixel_error'),
            'train_error_px': stats.get('train_pixel_error'), 'test_found_keypoints': stats.get('test_found_keypoints'),
            'test_labelled_keypoints': stats.get('test_labelled_keypoints'), 'returncode': result.returncode}


def summary(method: str, deeplabcut: dict, openfields: dict, budget: float) -> dict:
    """DeepLabCut's error at the whole budget against openfields' at half of it (the target) and at all of it."""
    dlc = deeplabcut
    target = (dlc['evaluated']['full'] or {}).get('test_error_px')
    half = (openfields['evaluated']['half'] or {}).get('test_error_px')
    full = (openfields['evaluated']['full'] or {}).get('test_error_px')
    return {'method': method, 'budget_s': budget, 'deeplabcut_test_error_px': target,
            'deeplabcut_half_budget_test_error_px': (dlc['evaluated']['half'] or {}).get('test_error_px'),
            'openfields_half_budget_test_error_px': half, 'openfields_test_error_px': full,
            'deeplabcut_epochs': len(dlc['snapshots']), 'openfields_epochs': len(openfields['snapshots']),
            'target_met': None if target is None or half is None else half <= target}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--dlc-python', required=True, help='python of a venv with deeplabcut==3.0.2')
    parser.add_argument('--project', type=pathlib.Path, default=PROJECT)
    parser.add_argument('--work-dir', type=pathlib.Path, default=REPOSITORY / 'outputs' / 'bench' / 'dlc-work')
    parser.add_argument('--budget-bu', type=float, default=720.0, help='seconds of training, bottom-up')
    parser.add_argument('--budget-td', type=float, default=600.0, help='seconds of training, top-down (detector '
                        'included)')
    parser.add_argument('--detector-epochs', type=int, default=10, help='top-down: detector epochs on both sides')
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument('--output', type=pathlib.Path, default=REPOSITORY / 'outputs' / 'bench' / 'dlc.json')
    args = parser.parse_args(argv)
    if not (args.project / 'config.yaml').is_file():
        parser.exit(2, f'benchmark_dlc: no DeepLabCut project at {args.project} (config.yaml missing)\n')
    args.budget = {'bu': args.budget_bu, 'td': args.budget_td}
    work = args.work_dir.resolve()
    if work.exists():
        shutil.rmtree(work)
    project = work / 'project'
    shutil.copytree(args.project, project)
    run_json([args.dlc_python, str(REPOSITORY / 'tools' / 'peer_dlc.py'), 'prepare', str(project)],
             work / 'prepare.log')
    results = {'cpu': f'{cpu_name()} ({os.cpu_count()} CPUs)', 'date': time.strftime('%Y-%m-%d'), 'detector_epochs': args.detector_epochs,
               'runs': {}, 'summary': []}
    for method in args.methods:
        results['runs'][method] = {'deeplabcut': dlc_side(args, project, method, work)}
        outputs.write_json(args.output, results)  # what is measured so far survives a later failure
        results['runs'][method]['openfields'] = openfields_side(args, project, method, work)
        results['summary'].append(summary(method, **results['runs'][method], budget=args.budget[method]))
        outputs.write_json(args.output, results)
    for row in results['summary']:
        print(json.dumps(row))


if __name__ == '__main__':
    main()
