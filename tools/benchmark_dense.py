"""What dense connections change: ``python -m tools.benchmark_dense --output outputs/bench/dense.json``.

On the shared COCO sample (4 images, 14 people), oracle fields (the encoders' targets as a perfect network would
give them, cif + caf + caf25) decoded with and without ``--dense-connections``, in three cases:

* ``labelled``: the sample as it is;
* ``eyes-held-back``: both eyes of every person unlabelled: the sparse skeleton reaches the nose only through an
  eye (the training guide's example of a person split in two);
* ``30%-held-back``: a seeded 30% of the labelled keypoints unlabelled.

Each with openfields' fragment merging (default) and without it (``--fragment-merge-distance 0``, as OpenPifPaf's
decoder). COCO keypoint AP and decoder milliseconds per image (median of ``--repeats`` interleaved runs). The
network's cost of the dense head: shufflenetv2k16 (COCO's upsample 2) with and without it on one 641x427 image,
median of interleaved forward passes, and its floating-point operations (torch's FlopCounterMode: unlike the
times, a busy machine does not move them).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.utils.flop_counter

from openfields import eval as eval_cli, outputs
from openfields.datasets import coco_person
from openfields.datasets.coco import KeypointCategory
from openfields.datasets.keypoint_module import dense_head_meta, head_metas_for
from openfields.network import factory

COCO_SAMPLE = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'coco-val-sample'


def held_back(data: dict, joints=None, fraction: float = 0.0, seed: int = 0) -> dict:
    """A copy of the json with ``joints`` (0-based) or a random ``fraction`` of the labelled keypoints unlabelled."""
    data = json.loads(json.dumps(data))
    rng = np.random.default_rng(seed)
    for annotation in data['annotations']:
        keypoints = annotation['keypoints']
        for joint in range(len(keypoints) // 3):
            labelled = keypoints[3 * joint + 2] > 0
            if labelled and (joints is not None and joint in joints or rng.random() < fraction):
                keypoints[3 * joint:3 * joint + 3] = [0, 0, 0]
        annotation['num_keypoints'] = sum(1 for v in keypoints[2::3] if v > 0)
    return data


def oracle(annotations: pathlib.Path, output: pathlib.Path, flags: list[str]) -> dict:
    argv = ['--dataset', 'cocokp', f'--cocokp-val-annotations={annotations}',
            f'--cocokp-val-image-dir={COCO_SAMPLE / "images"}', f'--cocokp-train-annotations={annotations}',
            '--oracle', 'cif', 'caf', 'caf25', '--cocokp-with-dense', '--loader-workers=0', '--output', str(output),
            *flags]
    return eval_cli.evaluate(eval_cli.EvalSettings.from_args(eval_cli.parser().parse_args(argv)), None)


def decoder_rows(folder: pathlib.Path, repeats: int) -> list[dict]:
    data = json.loads((COCO_SAMPLE / 'annotations.json').read_text())
    cases = {'labelled': data, 'eyes-held-back': held_back(data, joints={1, 2}),
             '30%-held-back': held_back(data, fraction=0.3, seed=1)}
    variants = {(merge, dense): (['--fragment-merge-distance=0'] if merge == 'off' else []) +
                (['--dense-connections'] if dense else [])
                for merge in ('on', 'off') for dense in (False, True)}
    results = {}
    for case, case_data in cases.items():
        path = folder / f'{case}.json'
        path.write_text(json.dumps(case_data))
        for _ in range(repeats):  # interleaved: each variant once per round
            for key, flags in variants.items():
                stats = oracle(path, folder / f'{case}-{key[0]}-{key[1]}', flags)
                results.setdefault((case, *key), []).append(stats)
    return [{'case': case, 'fragment_merging': merge, 'dense_connections': dense, 'AP': runs[0]['AP'],
             'decoder_ms_per_image': statistics.median(r['decoder_time_ms'] for r in runs),
             'people': sum(1 for a in cases[case]['annotations'] if a.get('num_keypoints', 0) > 0)}
            for (case, merge, dense), runs in results.items()]


def network_rows(repeats: int) -> list[dict]:
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    metas = head_metas_for(category, 'cocokp', 2, base_stride=16)
    models = {False: factory.build('shufflenetv2k16', {}, metas).eval(),
              True: factory.build('shufflenetv2k16', {}, metas + [
                  dense_head_meta(metas[1], coco_person.DENSE_COCO_PERSON_CONNECTIONS, '--cocokp-with-dense')]).eval()}
    image = torch.zeros(1, 3, 433, 641)  # 641x427 padded to a multiple of 16, plus one
    seconds, flops = {False: [], True: []}, {}
    with torch.inference_mode():
        for dense, model in models.items():  # a count, unlike the times, that a busy machine does not move
            with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
                model(image)
            flops[dense] = counter.get_total_flops()
        for model in models.values():
            model(image)  # warm-up
        for _ in range(repeats):
            for dense, model in models.items():
                start = time.perf_counter()
                model(image)
                seconds[dense].append(time.perf_counter() - start)
    return [{'basenet': 'shufflenetv2k16', 'input': '641x433', 'dense_head': dense,
             'network_ms': round(1000 * statistics.median(seconds[dense]), 1), 'gflops': round(flops[dense] / 1e9, 2),
             'threads': torch.get_num_threads()}
            for dense in (False, True)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--output', default='outputs/bench/dense.json')
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    if not (COCO_SAMPLE / 'annotations.json').is_file():
        raise SystemExit(f'the shared COCO sample is not at {COCO_SAMPLE}')
    with tempfile.TemporaryDirectory() as folder:
        decoding = decoder_rows(pathlib.Path(folder), args.repeats)
    result = {'date': time.strftime('%Y-%m-%d'), 'decoding': decoding, 'network': network_rows(args.repeats)}
    outputs.write_json(args.output, result)
    for row in decoding:
        print(f"{row['case']:>15} merge {row['fragment_merging']:>3} dense {row['dense_connections']!s:>5}: "
              f"AP {row['AP']:.3f}, decoder {row['decoder_ms_per_image']:.1f} ms/image")
    for row in result['network']:
        print(f"network {row['basenet']} {row['input']} dense head {row['dense_head']}: {row['network_ms']} ms, "
              f"{row['gflops']} GFLOPs")


if __name__ == '__main__':
    main()
