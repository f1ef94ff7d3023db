"""Decoder benchmark: ``python -m tools.benchmark_decode`` (part of ``make bench``).

Measures, on this machine, and writes a JSON file (default ``outputs/bench/decode.json``):

* ``decoder``: milliseconds per image of the CIF-CAF decoder on the fields of a 641x427 image with 1, 5, 15
  and 20 people, median over repeats, total and per stage (``accumulation``, ``seeds``,
  ``caf_scoring``, ``growth`` (incl. fragment merging), ``force_complete``, ``nms``), with the
  evaluation settings (``--force-complete-pose --seed-threshold 0.2``) and with the defaults;
* ``decoder_vs_openpifpaf`` (with ``--peer-python``, or ``$OPENPIFPAF_PYTHON``): openfields' decoder next to
  OpenPifPaf 0.13.11's C++ decoder on the very same fields (5 and 15 people clean and cluttered, a random
  network's), one thread, interleaved rounds of tools/peer_decode.py (the ratio is openfields' time over
  OpenPifPaf's);
* ``predict``: end-to-end images/s of prediction on 641x427 images at batch size 1: reading and
  preprocessing the image, the network (shufflenetv2k16, COCO heads, upsample 2) and decoding.

The fields are what a well-trained network gives: the ground truth of people rendered by the synthetic
set's figure model (varied poses, sizes, overlaps, occlusions), encoded into CIF and CAF targets at
stride 8, plus clutter: 3% of the cells of every field get a random confidence in [0, 0.5) and random
vectors (about a third of those pass the decoder's 0.3 thresholds), as a real network's weak responses
do. A randomly initialised network's output is not used for decoding: its confidences are noise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import PIL.Image
import torch

from openfields import encoder, headmeta, transforms
from openfields.decoder import DecoderSettings, fields_from_targets
from openfields.decoder.cifcaf import CifCaf
from openfields.network.malloc_tuning import tune_glibc_malloc
from openfields.network import factory as network_factory
from openfields.plugins.synthetic import render
from openfields.outputs import write_json
from openfields.version import version

from .benchmark import coco_metas, cpu_name

LOG = logging.getLogger(__name__)
REPO = pathlib.Path(__file__).resolve().parent.parent

WIDTH, HEIGHT = 641, 427
UPSAMPLE = 2
CLUTTER_FRACTION = 0.03
CLUTTER_MAX_CONFIDENCE = 0.5
SETTINGS = {
    'eval': DecoderSettings(force_complete_pose=True, seed_threshold=0.2),
    'default': DecoderSettings(),
}


def rendered_scene(n_people: int, seed: int) -> tuple[PIL.Image.Image, list[dict]]:
    """A 641x427 synthetic image with exactly ``n_people`` figures and its annotations (numpy arrays)."""
    config = render.SyntheticConfig(seed=seed, width=WIDTH, height=HEIGHT, min_people=n_people,
                                    max_people=n_people, crowd_probability=0.0,
                                    min_height_fraction=0.25 if n_people > 5 else 0.35)
    image, anns = render.render_image(np.random.default_rng(seed), config, image_id=1)
    for ann in anns:
        ann['keypoints'] = np.asarray(ann['keypoints'], np.float32).reshape(-1, 3)
        ann['bbox'] = np.asarray(ann['bbox'], np.float32)
    return image, anns


def cluttered_fields(anns: list[dict], metas, rng: np.random.Generator,
                     clutter_fraction: float = CLUTTER_FRACTION) -> list[np.ndarray]:
    """Eval-mode CIF and CAF fields of the annotated people plus weak random responses in
    ``clutter_fraction`` of the cells."""
    encoders = encoder.factory(metas, encoder.EncoderSettings(suppress_selfhidden=False))
    canvas = torch.zeros(3, HEIGHT, WIDTH)
    meta = {'valid_area': np.array([0, 0, WIDTH, HEIGHT], np.float32)}
    fields = []
    for head_meta, encode in zip(metas, encoders):
        f = fields_from_targets(head_meta, encode(canvas, anns, meta).numpy())
        n_fields, _, h, w = f.shape
        clutter = (rng.random((n_fields, h, w)) < clutter_fraction) & (f[:, 1] == 0)
        f[:, 1] = np.where(clutter, rng.uniform(0, CLUTTER_MAX_CONFIDENCE, clutter.shape), f[:, 1])
        rows, columns = np.mgrid[:h, :w].astype(np.float32)
        n_positions = 1 if isinstance(head_meta, headmeta.Cif) else 2
        for k in range(n_positions):  # channels 2 + 2k (x), 3 + 2k (y); then the scales
            for c, base in ((2 + 2 * k, columns), (3 + 2 * k, rows)):
                f[:, c] = np.where(clutter, base + rng.normal(0, 1.5, clutter.shape), f[:, c])
        for c in range(2 + 2 * n_positions, f.shape[1]):
            f[:, c] = np.where(clutter, 1.0, f[:, c])
        fields.append(f)
    return fields


def clean_fields(anns: list[dict], metas) -> list[np.ndarray]:
    """Eval-mode CIF and CAF fields of the annotated people alone (no clutter)."""
    return cluttered_fields(anns, metas, np.random.default_rng(0), clutter_fraction=0.0)


def random_network_fields(seed: int = 0) -> list[np.ndarray]:
    """The fields of a randomly initialised shufflenetv2k16 on a 641x481 input: what ``eval --watch`` sees
    of a run's first checkpoints (confidences near 0.5 in every cell)."""
    torch.manual_seed(seed)
    model = network_factory.build('shufflenetv2k16', {}, coco_metas(UPSAMPLE)).eval()
    with torch.inference_mode():
        heads = model(torch.randn(1, 3, 481, WIDTH))
    return [head[0].numpy() for head in heads]


def time_decoder(fields: list[np.ndarray], settings: DecoderSettings, repeats: int) -> dict:
    metas = _metas()
    decode = CifCaf(metas[0], metas[1], settings)
    decode(fields)  # warm-up
    totals, stages, found = [], {}, 0
    for _ in range(repeats):
        start = time.perf_counter()
        found = len(decode(fields))
        totals.append(1000 * (time.perf_counter() - start))
        for stage, ms in decode.stats.items():
            stages.setdefault(stage, []).append(ms)
    return {'decoded': found, 'ms_median': round(statistics.median(totals), 2), 'ms_min': round(min(totals), 2),
            'stages_ms_median': {k: round(statistics.median(v), 2) for k, v in stages.items()},
            'considered': dict(decode.counts)}


def scenes(people: list[int]):
    """``(kind, people, annotated, [cif, caf])`` of the clean and cluttered fields of rendered scenes with
    ``people`` figures each, then of a random network."""
    metas = _metas()
    for n_people in people:
        _, anns = rendered_scene(n_people, seed=100 + n_people)
        annotated = sum(1 for a in anns if not a.get('iscrowd'))
        yield 'clean', n_people, annotated, clean_fields(anns, metas)
        yield 'cluttered', n_people, annotated, cluttered_fields(anns, metas, np.random.default_rng(n_people))
    yield 'random network', 0, 0, random_network_fields()


def time_scenes(people: list[int], settings: DecoderSettings, repeats: int) -> list[dict]:
    """Clean and cluttered fields of rendered scenes with ``people`` figures, and a random network's."""
    return [{'fields': kind, 'people': n_people, 'annotated': annotated,
             **time_decoder(fields, settings, repeats)} for kind, n_people, annotated, fields in scenes(people)]


def save_fields(folder: pathlib.Path, people: list[int]) -> list[str]:
    """Every scene's fields as ``<name>.cif.npy`` and ``<name>.caf.npy`` (``clean-5``, ``cluttered-5``,
    ``random-network``) in ``folder``, for another decoder to time on the very same input
    (tools/peer_decode.py); returns the names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for kind, n_people, _, (cif, caf) in scenes(people):
        names.append(kind.replace(' ', '-') + (f'-{n_people}' if n_people else ''))
        np.save(folder / f'{names[-1]}.cif.npy', cif)
        np.save(folder / f'{names[-1]}.caf.npy', caf)
    return names


def compare_with_peer(peer_python: str, people: list[int], repeats: int, rounds: int) -> list[dict]:
    """openfields' decoder (default flags, and with every confident cell voting) against OpenPifPaf's C++
    decoder run by ``peer_python`` (a venv with OpenPifPaf 0.13.11) on the same saved fields, one thread,
    in ``rounds`` interleaved rounds of tools/peer_decode.py processes (the machine's load hits both alike)."""
    with tempfile.TemporaryDirectory() as folder:
        save_fields(pathlib.Path(folder), people)
        ours = [sys.executable, '-m', 'tools.peer_decode', folder, '--decoder', 'openfields', '--repeats', str(repeats)]
        commands = {'openfields': ours, 'openfields_all_votes': ours + ['--max-votes-fraction', '0'],
                    'openpifpaf': [peer_python, '-m', 'tools.peer_decode', folder, '--decoder', 'openpifpaf',
                                   '--repeats', str(repeats)]}
        results = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
                results[name] += [json.loads(line) for line in out.splitlines() if line.startswith('{')]
    return peer_rows(results)


def peer_rows(results: dict[str, list[dict]]) -> list[dict]:
    """Per input: the median over rounds of each decoder's median ms, the poses found and the ratios."""
    def median(name, input_name, key='decoder_ms_median'):
        return round(statistics.median(r[key] for r in results[name] if r['input'] == input_name), 2)
    rows = []
    for input_name in dict.fromkeys(r['input'] for r in results['openpifpaf']):
        row = {'input': input_name, 'openfields_ms': median('openfields', input_name),
               'openfields_all_votes_ms': median('openfields_all_votes', input_name),
               'openpifpaf_ms': median('openpifpaf', input_name),
               'openpifpaf_cpp_only_ms': median('openpifpaf', input_name, 'cpp_ms_median'),
               'rounds': sum(r['input'] == input_name for r in results['openpifpaf']),
               'poses': {name: next(r['poses'] for r in rs if r['input'] == input_name)
                         for name, rs in results.items()}}
        row['ratio'] = round(row['openfields_ms'] / row['openpifpaf_ms'], 2)
        row['ratio_all_votes'] = round(row['openfields_all_votes_ms'] / row['openpifpaf_ms'], 2)
        rows.append(row)
    return rows


def time_predict(n_images: int, threads: int) -> dict:
    """Images/s of read + preprocess + network + decode at batch size 1 on 641x427 PNG files."""
    metas = _metas()
    model = network_factory.build('shufflenetv2k16', {}, coco_metas(UPSAMPLE)).eval()
    preprocess = transforms.eval_pipeline(long_edge=WIDTH, pad='tight')
    decode = CifCaf(metas[0], metas[1], SETTINGS['eval'])
    with tempfile.TemporaryDirectory() as folder:
        paths, fields = [], []
        for i in range(n_images):
            image, anns = rendered_scene(5, seed=200 + i)
            paths.append(pathlib.Path(folder) / f'{i}.png')
            image.save(paths[-1])
            fields.append(cluttered_fields(anns, metas, np.random.default_rng(i)))
        durations, network_ms = [], []
        for i in range(n_images + 1):
            start = time.perf_counter()
            image = PIL.Image.open(paths[i % n_images]).convert('RGB')
            tensor, _, _ = preprocess(image, [], {'image_id': i})
            network_start = time.perf_counter()
            with torch.inference_mode():
                model(tensor[None])
            network_ms.append(1000 * (time.perf_counter() - network_start))
            decode(fields[i % n_images])  # a trained network's fields (see the module docstring)
            if i > 0:
                durations.append(time.perf_counter() - start)
    median = statistics.median(durations)
    return {'images': n_images, 'input': [WIDTH, HEIGHT], 'basenet': 'shufflenetv2k16', 'upsample': UPSAMPLE,
            'torch_threads': threads, 'network_ms_median': round(statistics.median(network_ms[1:]), 1),
            'seconds_per_image_median': round(median, 3), 'images_per_s': round(1.0 / median, 2)}


def _metas():
    return coco_metas(UPSAMPLE, base_stride=16)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tools.benchmark_decode',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--output', default='outputs/bench/decode.json')
    parser.add_argument('--people', type=int, nargs='+', default=[1, 5, 15, 20])
    parser.add_argument('--repeats', type=int, default=20, help='timed decoder calls per setting')
    parser.add_argument('--predict-images', type=int, default=8, help='timed images end to end (0: skip)')
    parser.add_argument('--save-fields', default=None, metavar='DIR',
                        help='also write every scene\'s fields as .npy into DIR (for tools/peer_decode.py)')
    parser.add_argument('--peer-python', default=os.environ.get('OPENPIFPAF_PYTHON') or None, metavar='PYTHON',
                        help='the python of a venv with OpenPifPaf 0.13.11 (shared/reference/peer-openpifpaf.md; '
                             'default: $OPENPIFPAF_PYTHON): also time its C++ decoder on the same fields')
    parser.add_argument('--peer-people', type=int, nargs='+', default=[5, 15])
    parser.add_argument('--peer-rounds', type=int, default=3)
    args = parser.parse_args(argv)
    tune_glibc_malloc()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if args.save_fields:
        names = save_fields(pathlib.Path(args.save_fields), args.people)
        LOG.info('wrote the fields of %s into %s', ', '.join(names), args.save_fields)
    decoder = {}
    for name, settings in SETTINGS.items():
        decoder[name] = time_scenes(args.people, settings, args.repeats)
        for row in decoder[name]:
            LOG.info('decoder (%s settings), %s fields, %2d people: %.1f ms (%s; %d seeds, %d poses grown%s)',
                     name, row['fields'], row['people'], row['ms_median'],
                     ', '.join(f'{k} {v:.1f}' for k, v in row['stages_ms_median'].items()),
                     row['considered']['seeds'], row['considered']['poses_grown'],
                     ', capped' if row['considered']['capped'] else '')
    peer = None
    if args.peer_python:
        peer = compare_with_peer(args.peer_python, args.peer_people, args.repeats, args.peer_rounds)
        for row in peer:
            LOG.info('decoder vs OpenPifPaf (C++), %s fields: %.2f ms vs %.2f ms (%.2fx; all cells voting %.2f ms, '
                     '%.2fx)', row['input'], row['openfields_ms'], row['openpifpaf_ms'], row['ratio'],
                     row['openfields_all_votes_ms'], row['ratio_all_votes'])
    threads = torch.get_num_threads()
    predict = time_predict(args.predict_images, threads) if args.predict_images > 0 else None
    if predict:
        LOG.info('predict end to end: %.2f images/s (network %.0f ms per image)', predict['images_per_s'],
                 predict['network_ms_median'])
    result = {'date': datetime.datetime.now().isoformat(timespec='seconds'), 'version': version(),
              'torch': torch.__version__, 'numpy': np.__version__,
              'hardware': {'cpu': cpu_name(), 'cores': os.cpu_count(), 'torch_threads': threads},
              'image': [WIDTH, HEIGHT], 'stride': 16 // UPSAMPLE, 'decoder': decoder, 'decoder_vs_openpifpaf': peer,
              'predict': predict}
    out = pathlib.Path(args.output)
    write_json(out, result)
    LOG.info('wrote %s', out)


if __name__ == '__main__':
    main()
