"""Bottom-up against top-down on the same data and CPU: ``python -m tools.benchmark_topdown``.

Two comparisons, each method trained from scratch with its command line as a user would type it:

* ``synthetic``: the demo's synthetic set with 1-4 people per image. Bottom-up: resnet18 with CIF + CAF on
  whole images, decoded by CIF-CAF. Top-down: a detector (``--detector``), then resnet18 with a CIF head on
  crops of the individuals, ``cifmax`` per crop. COCO keypoint AP on the validation images, with the
  detector's boxes and with the ground-truth boxes (the pose model alone), and the detector's box mAP.
* ``dlc``: the shared DeepLabCut openfield project (one mouse): bottom-up with ``cifmax`` (DeepLabCut's
  read-out) against top-down; test pixel error of the project's own split.

The training epochs of each method are flags; the JSON written (``--output``) holds the wall time of every
stage, so equal budgets can be read off and the epochs tuned until they match. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

from openfields import outputs

SYNTHETIC = ['--dataset', 'synthetic', '--synthetic-image-size', '129', '--synthetic-people', '1', '4',
             '--synthetic-heights', '0.4', '0.9', '--synthetic-max-rotation', '15',
             '--synthetic-crowd-probability', '0', '--synthetic-occlusion-probability', '0',
             '--synthetic-train-images', '256', '--synthetic-val-images', '32']
SHARED_DLC = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'dlc-openfield'
COMMON = ['--basenet', 'resnet18', '--no-basenet-pretrained', '--batch-size', '8', '--optimizer', 'adam',
          '--lr', '0.002', '--b-scale', '5.0',
          '--ema', '0.1', '--batchnorm-momentum', '0.1', '--bn-recalibration-batches', '8',
          '--lr-warm-up-epochs', '0.5', '--display-interval', '50', '--loader-workers', '1', '--seed', '1',
          '--max-snapshots', '1']
DETECTOR = ['--detector-pretrained', 'none', '--detector-lr', '1e-3', '--detector-batch-size', '8']


def run(module: str, argv: list[str]) -> float:
    """``python -m openfields.<module> ARGV``; its wall time in seconds (stops on failure)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, '-m', f'openfields.{module}', *argv], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f'{module} {" ".join(argv)} failed:\n{result.stderr[-4000:]}')
    return time.perf_counter() - start


def last_test(log: pathlib.Path) -> dict:
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return next(r for r in reversed(records) if r.get('type') == 'test')['metrics']


def stats(path: pathlib.Path, keys: list[str]) -> dict:
    values = json.loads(path.read_text())
    return {key: values.get(key) for key in keys}


def compare(name: str, data: list[str], eval_data: list[str], bu_extra: list[str], epochs: dict, image_size: int,
            args, folder: pathlib.Path) -> dict:
    """Train and evaluate both methods on one dataset; ``epochs``: of the bottom-up run ('bu'), the detector
    ('detector') and the top-down pose model ('td'); ``image_size``: the long edge the detector sees."""
    scores = ['AP', 'AP50', 'test_pixel_error', 'n_images', 'nn_time_ms', 'decoder_time_ms', 'detector_time_ms']
    bu, td = folder / f'{name}-bu.pkl', folder / f'{name}-td.pkl'
    result = {'bottom_up': {'train_s': run('train', [*data, *COMMON, *bu_extra, '--epochs', str(epochs['bu']),
                                                       '--output', str(bu)])}}
    run('eval', ['--checkpoint', str(bu), *eval_data, '--output', str(folder / f'{name}-bu')])
    result['bottom_up'].update(stats(folder / f'{name}-bu.stats.json', scores))
    start = time.perf_counter()
    run('train', [*data, *COMMON, '--method', 'td', '--detector', args.detector, *DETECTOR,
                  '--detector-image-size', str(image_size),
                  '--detector-epochs', str(epochs['detector']), '--detector-eval-interval',
                  str(epochs['detector']), '--epochs', str(epochs['td']), '--topdown-crop-width', '96',
                  '--topdown-crop-height', '128', '--output', str(td)])
    detector_log = td.with_name(f'{td.stem}.detector.pkl.log')
    train_s = time.perf_counter() - start
    result['top_down'] = {'train_s': train_s, 'detector': args.detector,
                          'detector_mAP@50:95': last_test(detector_log).get('test.mAP@50:95'),
                          'detector_mAP@50': last_test(detector_log).get('test.mAP@50')}
    for boxes, extra in (('detected_boxes', []), ('oracle_boxes', ['--oracle-boxes'])):
        run('eval', ['--checkpoint', str(td), *eval_data, *extra, '--output', str(folder / f'{name}-td-{boxes}')])
        result['top_down'][boxes] = stats(folder / f'{name}-td-{boxes}.stats.json', scores)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--output', default='outputs/bench/topdown.json')
    p.add_argument('--folder', default='outputs/bench/topdown', help='where the runs are written')
    p.add_argument('--detector', default='cifdet',
                   help='cifdet (resnet18 like the pose models) trains fastest from scratch on a CPU')
    p.add_argument('--epochs', type=int, nargs=3, default=[24, 8, 16], metavar=('BU', 'DETECTOR', 'TD'),
                   help='synthetic: epochs of the bottom-up run, of the detector and of the top-down pose model')
    p.add_argument('--dlc-epochs', type=int, nargs=3, default=[8, 4, 12], metavar=('BU', 'DETECTOR', 'TD'),
                   help='the same for the DeepLabCut project')
    p.add_argument('--only', choices=('synthetic', 'dlc'), default=None)
    args = p.parse_args()
    folder = pathlib.Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = {'date': time.strftime('%Y-%m-%d'), 'args': vars(args)}
    if args.only in (None, 'synthetic'):
        results['synthetic'] = compare('synthetic', SYNTHETIC + ['--synthetic-upsample', '2'],
                                       SYNTHETIC + ['--coco-eval-long-edge', '129'],
                                       ['--synthetic-square-edge', '129', '--synthetic-no-augmentation'],
                                       dict(zip(('bu', 'detector', 'td'), args.epochs)), 129, args, folder)
    if args.only in (None, 'dlc') and SHARED_DLC.is_dir():
        dlc = ['--dataset', 'dlc', '--dlc-project', str(SHARED_DLC)]
        results['dlc'] = compare('dlc', dlc, dlc, [], dict(zip(('bu', 'detector', 'td'), args.dlc_epochs)), 320,
                                 args, folder)
    outputs.write_json(args.output, results)
    print(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
