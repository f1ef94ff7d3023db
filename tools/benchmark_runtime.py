"""Network-only throughput of torch vs onnxruntime on this CPU: ``python -m tools.benchmark_runtime``.

Random weights (a checkpoint is built per basenet with COCO person heads); the ONNX file comes from
``openfields.export_onnx``'s own code. Prints one JSON line per basenet: images/s, median of the timed runs.
"""

import argparse
import json
import pathlib
import statistics
import tempfile
import time

import torch

from openfields.export import command, onnx as onnx_export
from openfields.inference import runners
from openfields.network import checkpoint, factory
from openfields.datasets import coco_person
from openfields.datasets.coco import KeypointCategory
from openfields.datasets.keypoint_module import head_metas_for


def images_per_second(runner, images, repeats: int) -> float:
    runner.fields(images, [0, 1])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.fields(images, [0, 1])
        times.append(time.perf_counter() - start)
    return images.shape[0] / statistics.median(times)


def measure(basenet: str, width: int, height: int, repeats: int, folder: pathlib.Path) -> dict:
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    model = factory.build(basenet, {}, head_metas_for(category, 'cocokp', 1, base_stride=16))
    ckpt = folder / f'{basenet}.pkl'
    checkpoint.save(ckpt, model, epoch=0, meta={})
    args = command.parser('bench', 'bench', '.onnx').parse_args(
        ['--checkpoint', str(ckpt), '--output', str(folder / f'{basenet}.onnx')])
    command.run(args, onnx_export.EXPORTER)
    images = torch.randn(1, 3, height, width)
    return {'basenet': basenet, 'size': f'{width}x{height}', 'threads': torch.get_num_threads(),
            'torch_images_per_s': round(images_per_second(runners.load(str(ckpt)), images, repeats), 2),
            'onnxruntime_images_per_s': round(
                images_per_second(runners.load(str(folder / f'{basenet}.onnx')), images, repeats), 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--basenets', nargs='+', default=['shufflenetv2k16', 'resnet50'])
    p.add_argument('--size', default='641x481')
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    with tempfile.TemporaryDirectory() as folder:
        for basenet in args.basenets:
            print(json.dumps(measure(basenet, width, height, args.repeats, pathlib.Path(folder))), flush=True)


if __name__ == '__main__':
    main()
