"""Top-down video with the detector on every n-th frame (``openfields.video --detect-every``): what it gains in
speed and costs in accuracy. ``python -m tools.benchmark_box_tracking`` (``make bench-topdown``).

The shared DeepLabCut project has no continuous video with labels (its 116 labelled 640 x 480 frames are picked
from a recording), so the video is made from the held-out test frames of a top-down run's split: each frame
pans across the screen for :data:`FRAMES_PER_PAN` frames (a smooth shift of up to 60 px sideways and 30 px
down, at most 9.7 px per frame: a mouse walking across the arena at this scale), its labels shifted with it, which
gives the ground truth of every video frame. The run's model (a detector and a pose model on crops, as
``make bench-topdown`` trains it; trained here with that recipe when ``--checkpoint`` is missing) analyses
the video with ``--detect-every`` 1, 5 and 15, each in float32 and in bfloat16 (``--precision``). Per setting:
frames/s of the whole command, the mean pixel error of the labelled body parts over the frames where a pose was
found (DeepLabCut's test error), and the frames without a pose. ``openfields.eval`` gives the test frames' own
pixel error (the detector on each) in both precisions: the accuracy of the fastest setting, stated beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import PIL.Image

from openfields import outputs
from openfields.plugins.dlc import project
from openfields.plugins.dlc.split import split_path

from .benchmark import cpu_name
from .benchmark_topdown import COMMON, DETECTOR, SHARED_DLC

FRAMES_PER_PAN = 40
SETTINGS = (1, 5, 15)
PRECISIONS = ('float32', 'bfloat16')


def shift(t: int) -> tuple[float, float]:
    """The pan's offset at frame ``t`` in pixels: one sine period sideways, half a period down."""
    phase = 2 * math.pi * t / FRAMES_PER_PAN
    return 60 * math.sin(phase), 30 * math.sin(phase / 2)


def panned_video(frames: list[project.Frame], root: pathlib.Path, folder: pathlib.Path) -> list[np.ndarray]:
    """The frames of the video into ``folder`` (PNG, name order); returns each frame's ``(K, 3)`` labels."""
    labels = []
    for frame in frames:
        with PIL.Image.open(root / frame.path) as image:
            image = image.convert('RGB')
        for t in range(FRAMES_PER_PAN):
            dx, dy = shift(t)
            moved = image.transform(image.size, PIL.Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy),
                                    resample=PIL.Image.Resampling.BILINEAR)
            moved.save(folder / f'{len(labels):05d}.png')
            keypoints = frame.keypoints[0].copy()
            keypoints[keypoints[:, 2] > 0, :2] += (dx, dy)
            labels.append(keypoints)
    return labels


def pixel_errors(lines: list[dict], labels: list[np.ndarray]) -> dict[int, float]:
    """{frame: the mean distance of its labelled body parts} for the frames with a pose (best-scored pose; body
    parts the pose misses are left out, as DeepLabCut's error leaves out those below its cutoff)."""
    errors = {}
    for frame, (line, truth) in enumerate(zip(lines, labels)):
        if not line['annotations']:
            continue
        best = max(line['annotations'], key=lambda a: a['score'])
        predicted = np.asarray(best['keypoints'], dtype=np.float64).reshape(-1, 3)
        both = (truth[:, 2] > 0) & (predicted[:, 2] > 0)
        if both.any():
            errors[frame] = float(np.linalg.norm(predicted[both, :2] - truth[both, :2], axis=1).mean())
    return errors


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 2) if values else None


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 2) if values else None


def train(checkpoint: pathlib.Path) -> None:
    """``make bench-topdown``'s DeepLabCut top-down run (cifdet 4 epochs, then the pose model 12)."""
    command = [sys.executable, '-m', 'openfields.train', '--dataset', 'dlc', '--dlc-project', str(SHARED_DLC),
               *COMMON, '--method', 'td', '--detector', 'cifdet', *DETECTOR, '--detector-image-size', '320',
               '--detector-epochs', '4', '--detector-eval-interval', '4', '--epochs', '12',
               '--topdown-crop-width', '96', '--topdown-crop-height', '128', '--output', str(checkpoint)]
    subprocess.run(command, check=True, capture_output=True)


def analyse(checkpoint: pathlib.Path, video: pathlib.Path, every: int, precision: str, output: pathlib.Path
            ) -> tuple[float, list]:
    start = time.perf_counter()
    subprocess.run([sys.executable, '-m', 'openfields.video', str(video), '--checkpoint', str(checkpoint),
                    '--detect-every', str(every), '--precision', precision, '--json-output', str(output), '-q'],
                   check=True)
    seconds = time.perf_counter() - start
    return seconds, [json.loads(line) for line in output.read_text().splitlines()]


def held_out_errors(checkpoint: pathlib.Path, precision: str, prefix: pathlib.Path) -> dict:
    """``openfields.eval`` of the run's held-out test frames (the detector on each): pixel error, mAP, ms."""
    subprocess.run([sys.executable, '-m', 'openfields.eval', '--checkpoint', str(checkpoint), '--dataset', 'dlc',
                    '--dlc-project', str(SHARED_DLC), '--precision', precision, '--output', str(prefix), '-q'],
                   check=True)
    stats = json.loads(prefix.with_name(f'{prefix.name}.stats.json').read_text())
    return {key: stats.get(key) for key in ('test_pixel_error', 'AP', 'n_images', 'detector_time_ms', 'nn_time_ms')}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog='python -m tools.benchmark_box_tracking', description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', default='outputs/bench/topdown/dlc-td.pkl',
                        help='a top-down run on the shared DeepLabCut project (trained here when missing)')
    parser.add_argument('--output', default='outputs/bench/box_tracking.json')
    args = parser.parse_args(argv)
    if not (SHARED_DLC / 'config.yaml').is_file():
        sys.exit(f'the shared DeepLabCut project is missing: {SHARED_DLC}')
    checkpoint = pathlib.Path(args.checkpoint)
    if not checkpoint.is_file():
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        train(checkpoint)
    split = json.loads(split_path(checkpoint).read_text())
    config = project.load_config(SHARED_DLC)
    test_frames = [f for f in project.load_frames(config) if f.path in set(split['test'])]
    results, per_frame = [], {}
    with tempfile.TemporaryDirectory(prefix='openfields-box-tracking-') as tmp:
        video = pathlib.Path(tmp) / 'frames'
        video.mkdir()
        labels = panned_video(test_frames, SHARED_DLC, video)
        test_frame_eval = {p: held_out_errors(checkpoint, p, pathlib.Path(tmp) / f'eval-{p}') for p in PRECISIONS}
        print(json.dumps(test_frame_eval), flush=True)
        for every in SETTINGS:
            for precision in PRECISIONS:  # interleaved: a drift of the machine's speed hits both alike
                seconds, lines = analyse(checkpoint, video, every, precision,
                                         pathlib.Path(tmp) / f'every{every}-{precision}.jsonl')
                errors = per_frame[every, precision] = pixel_errors(lines, labels)
                results.append({'detect_every': every, 'precision': precision, 'seconds': round(seconds, 2),
                                'frames_per_s': round(len(labels) / seconds, 2),
                                'mean_pixel_error': _mean(list(errors.values())),
                                'median_pixel_error': _median(list(errors.values())),
                                'frames_without_pose': len(labels) - len(errors)})
                print(json.dumps(results[-1]), flush=True)
    # like with like: the frames where every setting found the mouse
    common = set.intersection(*(set(errors) for errors in per_frame.values()))
    for result in results:
        errors = [per_frame[result['detect_every'], result['precision']][frame] for frame in sorted(common)]
        result.update(common_frames=len(common), common_mean_pixel_error=_mean(errors),
                      common_median_pixel_error=_median(errors))
    outputs.write_json(args.output, {'date': time.strftime('%Y-%m-%d'), 'cpu': cpu_name(),
                                     'checkpoint': str(checkpoint), 'test_frames': [f.path for f in test_frames],
                                     'test_frame_eval': test_frame_eval, 'video_frames': len(labels),
                                     'results': results, 'fastest': max(results, key=lambda r: r['frames_per_s'])})


if __name__ == '__main__':
    main()
