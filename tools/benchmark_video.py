"""Video analysis throughput (``make bench``: ``outputs/bench/video.json``; with ``--dlc-python``, beside
DeepLabCut 3.0.2's ``analyze_videos``).

Videos, made here: ``openfield.mp4``, the shared DeepLabCut project's 116 labelled 640 x 480 frames (one mouse) as an
H.264 video at 30 frames/s, and ``people.mp4``, 60 synthetic 640 x 480 frames of 2-4 people.

What runs: the whole ``python -m openfields.video`` command (model loading, frame decoding, network, decoder,
JSON lines), frames / wall seconds, for each model in torch and as its ONNX export (onnxruntime):

* single animal: DeepLabCut's ``resnet_50`` (a GroupNorm ResNet-50, output stride 16, with its heatmap + locref
  head: the network ``make bench-dlc`` races) from the same random weights DeepLabCut starts from, and a
  ShuffleNetV2-K16 with the same head; on whole 640 x 480 frames and, for the fastest, at half size;
* several people: the OpenPifPaf checkpoint of ``../shared/data/opp-checkpoint`` (ShuffleNetV2-K16, CIF + CAF),
  which openfields runs as it is.

Weights are untrained or barely trained: the figures measure speed, and a heatmap read-out costs the same
whatever the maps hold; the CIF-CAF decoder's share is logged per stage.

With ``--dlc-python``: DeepLabCut's ``analyze_videos`` on ``openfield.mp4`` with the same resnet_50 network
(its snapshot of those random weights), batch size 4 for both (the project's ``batch_size``), rounds interleaved:
DeepLabCut, openfields in float32, openfields in bfloat16 (``--precision bfloat16``: the same network with its
convolutions in bfloat16, about twice as fast on CPUs with AVX512-BF16 or AMX), and again.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np

from openfields import outputs

from .benchmark import cpu_name
from .benchmark_dlc import environment

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPOSITORY.parent / 'shared' / 'data'
PROJECT = SHARED / 'dlc-openfield'
OPP_CHECKPOINT = SHARED / 'opp-checkpoint'
FPS = 30
BATCH_SIZE = 4


def write_video(path: pathlib.Path, images) -> int:
    """``images`` (PIL, one size) as an H.264 video at :data:`FPS`; returns the frame count."""
    import av  # pylint: disable=import-outside-toplevel
    count = 0
    with av.open(str(path), 'w') as container:
        stream = None
        for image in images:
            if stream is None:
                stream = container.add_stream('libx264', rate=FPS)
                stream.width, stream.height = image.size
                stream.pix_fmt = 'yuv420p'
                stream.options = {'crf': '18'}
            for packet in stream.encode(av.VideoFrame.from_image(image.convert('RGB'))):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    return count


def openfield_frames():
    import PIL.Image  # pylint: disable=import-outside-toplevel
    for path in sorted((PROJECT / 'labeled-data').glob('*/*.png')):
        with PIL.Image.open(path) as image:
            yield image.convert('RGB')


def people_frames(n: int = 60):
    from openfields.plugins.synthetic import render  # pylint: disable=import-outside-toplevel
    config = render.SyntheticConfig(width=640, height=480, min_people=2, max_people=4, crowd_probability=0.0)
    rng = np.random.default_rng(0)
    for index in range(n):
        yield render.render_image(rng, config, index)[0]


def run(command: list[str], log: pathlib.Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY, env=environment(), check=False)
    seconds = time.perf_counter() - start
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(map(str, command[:4]))} failed ({result.returncode}); see {log}')
    return seconds, result


def stage_line(result: subprocess.CompletedProcess) -> str:
    """The video command's last line: frames/s and milliseconds per frame of each stage."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if 'frames/s' in line]
    return lines[-1].split('openfields.video: ', 1)[-1] if lines else ''


def openfields_video(model: pathlib.Path, video: pathlib.Path, frames: int, work: pathlib.Path, label: str,
                     long_edge: int | None = None, precision: str = 'float32') -> dict:
    out = work / f'{label}.jsonl'
    command = [sys.executable, '-m', 'openfields.video', str(video), '--checkpoint', str(model), '--batch-size',
               str(BATCH_SIZE), '--json-output', str(out), '--precision', precision] + (
                   ['--long-edge', str(long_edge)] if long_edge else [])
    seconds, result = run(command, work / f'{label}.log')
    written = sum(1 for _ in out.open())
    assert written == frames, f'{label}: {written} of {frames} frames written'
    return {'frames_per_s': round(frames / seconds, 3), 'seconds': round(seconds, 2), 'stages': stage_line(result)}


def onnx_of(checkpoint_path: pathlib.Path, work: pathlib.Path) -> pathlib.Path:
    """The ONNX export (traced at a small size; height and width are dynamic), made once."""
    out = work / f'{checkpoint_path.name}.onnx'
    if not out.exists():
        run([sys.executable, '-m', 'openfields.export_onnx', '--checkpoint', str(checkpoint_path), '--output',
             str(out), '--input-size', '161x129'], work / f'{out.name}.log')
    return out


def single_animal_model(project: pathlib.Path, work: pathlib.Path, name: str, flags: list[str]) -> pathlib.Path:
    """A checkpoint after one training step on the project (its weights as good as random, its metadata real)."""
    out = work / f'{name}.pkl'
    run([sys.executable, '-m', 'openfields.train', '--dlc-project', str(project), '--dlc-shuffle', '1', *flags,
         '--epochs', '1', '--train-batches', '1', '--val-batches', '1', '--batch-size', '1', '--eval-n-images', '1',
         '--loader-workers', '0', '--output', str(out), '-q'], work / f'{name}.train.log')
    return out


def prepare_dlc(dlc_python: str, work: pathlib.Path) -> pathlib.Path:
    """A project copy with DeepLabCut's shuffles and, as shuffle 1's snapshot, its random initial weights."""
    project = work / 'project'
    shutil.copytree(PROJECT, project)
    run([dlc_python, str(REPOSITORY / 'tools' / 'peer_dlc.py'), 'prepare', str(project)], work / 'prepare.log')
    (train,) = (project / 'dlc-models-pytorch').glob('iteration-0/*shuffle1/train')
    shutil.copy(train / 'random-init.pt', train / 'snapshot-001.pt')
    return project


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--output', type=pathlib.Path, default=REPOSITORY / 'outputs' / 'bench' / 'video.json')
    parser.add_argument('--work-dir', type=pathlib.Path, default=REPOSITORY / 'outputs' / 'bench' / 'video-work')
    parser.add_argument('--dlc-python', default=None, help='python of a venv with deeplabcut==3.0.2')
    parser.add_argument('--rounds', type=int, default=2, help='interleaved rounds against DeepLabCut')
    parser.add_argument('--race-only', action='store_true',
                        help='with --dlc-python: only the race against DeepLabCut (not every network and runtime)')
    args = parser.parse_args(argv)
    if args.race_only and not args.dlc_python:
        parser.error('--race-only needs --dlc-python')
    if not (PROJECT / 'config.yaml').is_file():
        parser.exit(2, f'benchmark_video: the shared DeepLabCut project is missing ({PROJECT})\n')
    work = args.work_dir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    openfield, people = work / 'openfield.mp4', work / 'people.mp4'
    n_openfield, n_people = write_video(openfield, openfield_frames()), write_video(people, people_frames())
    results = {'date': time.strftime('%Y-%m-%d'), 'cpu': f'{cpu_name()} ({os.cpu_count()} CPUs)', 'batch_size': BATCH_SIZE,
               'videos': {'openfield': {'frames': n_openfield, 'size': '640x480'},
                          'people': {'frames': n_people, 'size': '640x480'}}, 'openfields': {}}
    project = prepare_dlc(args.dlc_python, work) if args.dlc_python else PROJECT
    dlc_config = ['--config', 'dlc'] if args.dlc_python else ['--dlc-heads', 'heatmap', '--basenet', 'resnet50_gn',
                                                            '--no-basenet-pretrained']
    models = {'resnet50_gn_heatmap': single_animal_model(project, work, 'resnet50_gn_heatmap', dlc_config)}
    if args.race_only:
        results['deeplabcut_race'] = race(args.dlc_python, project, models['resnet50_gn_heatmap'], openfield,
                                          n_openfield, work, args.rounds)
        outputs.write_json(args.output, results)
        print(json.dumps(results, indent=1))
        return
    models['shufflenetv2k16_heatmap'] = single_animal_model(project, work, 'shufflenetv2k16_heatmap', [
        '--dlc-heads', 'heatmap', '--basenet', 'shufflenetv2k16'])
    for name, model in models.items():
        for runtime, path in (('torch', model), ('onnx', onnx_of(model, work))):
            results['openfields'][f'openfield/{name}/{runtime}'] = openfields_video(
                path, openfield, n_openfield, work, f'{name}-{runtime}')
            outputs.write_json(args.output, results)
    results['openfields']['openfield/shufflenetv2k16_heatmap/onnx/320x240'] = openfields_video(
        onnx_of(models['shufflenetv2k16_heatmap'], work), openfield, n_openfield, work,
        'shufflenetv2k16-onnx-half', long_edge=320)
    opp = next(OPP_CHECKPOINT.glob('*.pkl'), None)
    if opp is not None:
        for runtime, path in (('torch', opp), ('onnx', onnx_of(opp, work))):
            results['openfields'][f'people/openpifpaf_shufflenetv2k16/{runtime}'] = openfields_video(
                path, people, n_people, work, f'opp-{runtime}')
    outputs.write_json(args.output, results)
    if args.dlc_python:
        results['deeplabcut_race'] = race(args.dlc_python, project, models['resnet50_gn_heatmap'], openfield,
                                          n_openfield, work, args.rounds)
        outputs.write_json(args.output, results)
    print(json.dumps(results, indent=1))


def race(dlc_python: str, project: pathlib.Path, model: pathlib.Path, video: pathlib.Path, frames: int,
         work: pathlib.Path, rounds: int) -> dict:
    """DeepLabCut's analyze_videos and openfields.video (float32, then bfloat16: ``--precision``), same network,
    video, batch size; interleaved."""
    dlc, ours, ours_bfloat16 = [], [], []
    for index in range(rounds):
        seconds, result = run([dlc_python, str(REPOSITORY / 'tools' / 'peer_dlc.py'), 'analyze', str(project), '1',
                               str(video), '--batch-size', str(BATCH_SIZE)], work / f'dlc-analyze-{index}.log')
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        assert answer['frames'] == frames, answer
        dlc.append({'frames_per_s': round(frames / seconds, 3), 'seconds': round(seconds, 2),
                    'analyze_videos_seconds': round(answer['seconds'], 2)})
        ours.append(openfields_video(model, video, frames, work, f'race-openfields-{index}'))
        ours_bfloat16.append(openfields_video(model, video, frames, work, f'race-openfields-bfloat16-{index}',
                                              precision='bfloat16'))
    best_dlc = max(r['frames_per_s'] for r in dlc)
    return {'network': 'resnet50_gn + heatmap/locref head, 640x480 frames', 'deeplabcut': dlc, 'openfields': ours,
            'openfields_bfloat16': ours_bfloat16,
            'ratio_best': round(max(r['frames_per_s'] for r in ours) / best_dlc, 2),
            'ratio_best_bfloat16': round(max(r['frames_per_s'] for r in ours_bfloat16) / best_dlc, 2)}


if __name__ == '__main__':
    main()
