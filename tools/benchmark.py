"""Training throughput benchmark: ``python -m tools.benchmark`` (``make bench``).

Measures, on this machine, and writes a JSON file:

* ``train_step``: images/s of forward + backward + optimizer step of a basenet with the COCO CIF + CAF
  heads at a given batch size and square input (default shufflenetv2k16, batch 8, 385x385, upsample 2);
* ``train_step_variants``: the same step for each ``--basenet`` and each ``--variants`` entry (``plain``,
  ``channels_last``, ``compile``, ``amp_bf16``, ``amp_fp16`` and combinations joined by ``+``, the settings of
  :mod:`openfields.training.accelerate`; ``torch_depthwise``, ``torch_batchnorm``: torch's depthwise weight
  gradient or training-mode BatchNorm instead of openfields' compiled ones, :mod:`openfields.network.depthwise`
  and :mod:`openfields.network.batchnorm`), with the eval-mode forward time per image at batch 1 and, on
  CUDA, the peak GPU memory of the training step;
* ``flop_ceiling``: the fp32 matmul peak measured here (GFLOP/s, torch's threads) and, per variant, the
  network's forward FLOPs per image (torch's flop counter: convolutions and matmuls), the step's FLOPs
  (3x forward: backward is two matmul-sized passes), the images/s the peak would allow and the share of it
  the step reaches;
* ``train_step_vs_openpifpaf`` (with ``--peer-python``, or ``$OPENPIFPAF_PYTHON``): the same step in fresh
  processes of tools/peer_train_step.py, openfields (with its compiled kernels and with torch's) and
  OpenPifPaf 0.13.11, all with the same malloc tuning, in interleaved rounds;
* ``data_pipeline``: samples/s of one loader worker (image decoding, augmentation, CIF + CAF encoding)
  on real COCO images when ``../shared/data/coco-val-sample`` is there, else on the synthetic set;
* ``worker_feeds_network``: whether one worker produces samples faster than the network consumes them.

Figures are medians over repeated timings after a warm-up.
"""

import argparse
import datetime
import json
import logging
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from openfields import encoder, headmeta, transforms
from openfields.datasets import coco_person
from openfields.datasets.coco import CocoKeypoints, KeypointCategory, keypoint_category, load_json
from openfields.datasets.keypoint_module import head_metas_for
from openfields.network import factory as network_factory, losses
from openfields.network.batchnorm import BatchNorm2d
from openfields.network.depthwise import DepthwiseConv2d
from openfields.plugins.synthetic import render
from openfields.network.malloc_tuning import tune_glibc_malloc
from openfields.training import accelerate
from openfields.outputs import write_json
from openfields.version import version
from tools.peer_train_step import random_targets

LOG = logging.getLogger(__name__)

SHARED_COCO = pathlib.Path(__file__).resolve().parent.parent.parent / 'shared' / 'data' / 'coco-val-sample'


def cpu_name() -> str:
    try:
        for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def coco_metas(upsample: int, base_stride: int = 0) -> list[headmeta.Base]:
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    return head_metas_for(category, 'cocokp', upsample, base_stride=base_stride)


def loss_args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    losses.cli(parser)
    args = parser.parse_args([])
    vars(args).update(overrides)
    return args


VARIANT_PARTS = {'plain': {}, 'channels_last': {'channels_last': True}, 'compile': {'compile': True},
                 'amp_bf16': {'amp': 'bf16'}, 'amp_fp16': {'amp': 'fp16'}, 'torch_depthwise': {}, 'torch_batchnorm': {}}


def variant_settings(variant: str) -> accelerate.AccelerateSettings:
    """``'amp_bf16+channels_last'`` -> the accelerate settings of both parts."""
    fields = {}
    for part in variant.split('+'):
        if part not in VARIANT_PARTS:
            raise ValueError(f'unknown variant {part!r}: choose from {", ".join(VARIANT_PARTS)} (joined by +)')
        fields.update(VARIANT_PARTS[part])
    return accelerate.AccelerateSettings(**fields)


def use_torch_kernels(network: torch.nn.Module, depthwise: bool = True, batchnorm: bool = True) -> None:
    """The ``torch_depthwise`` and ``torch_batchnorm`` variants: torch's weight gradient in every
    :class:`DepthwiseConv2d`, torch's forward in every compiled :class:`BatchNorm2d`."""
    for module in network.modules():
        if depthwise and isinstance(module, DepthwiseConv2d):
            module.compiled_weight_grad = False
        if batchnorm and isinstance(module, BatchNorm2d):
            module.compiled = False


def matmul_peak_gflops(device, edge: int = 2048, repeats: int = 5) -> float:
    """Best of ``repeats`` fp32 (edge x edge) @ (edge x edge) products after a warm-up, GFLOP/s."""
    a, b = (torch.randn(edge, edge, device=device) for _ in range(2))
    durations = []
    for i in range(repeats + 1):
        _synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)
        if i > 0:
            durations.append(time.perf_counter() - start)
    return round(2 * edge ** 3 / min(durations) / 1e9, 1)


def forward_gflop_per_image(network: torch.nn.Module, image: torch.Tensor) -> float:
    """Convolution and matmul FLOPs of one image's forward pass (torch's flop counter), in GFLOP."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(image)
    return round(counter.get_total_flops() / image.shape[0] / 1e9, 3)


def flop_share(images_per_s: float, gflop_per_image: float, peak_gflops: float) -> dict:
    """Where a training step stands against the FLOP ceiling: 3x forward FLOPs at the matmul peak."""
    step_gflop_per_image = 3 * gflop_per_image
    ceiling = peak_gflops / step_gflop_per_image
    return {'forward_gflop_per_image': gflop_per_image, 'step_gflop_per_image': round(step_gflop_per_image, 3),
            'matmul_peak_gflops': peak_gflops, 'ceiling_images_per_s': round(ceiling, 3),
            'share_of_ceiling': round(images_per_s / ceiling, 3)}


def _synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def time_train_step(basenet: str, batch_size: int, edge: int, upsample: int, repeats: int, device,
                    variant: str = 'plain', peak_gflops: float | None = None) -> dict:
    settings = variant_settings(variant)
    settings.check(device)
    metas = coco_metas(upsample)
    network = accelerate.to_memory_format(network_factory.build(basenet, {}, metas).to(device).train(), settings)
    parts = variant.split('+')
    use_torch_kernels(network, depthwise='torch_depthwise' in parts, batchnorm='torch_batchnorm' in parts)
    model, precision = accelerate.compiled(network, settings), accelerate.Precision(settings, device)
    loss = losses.factory(loss_args(), metas)
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
    images = precision.images(torch.randn(batch_size, 3, edge, edge, device=device))
    with torch.no_grad():
        shapes = [o.shape for o in network(images[:1])]
    targets = [random_targets(meta.n_fields, 5 if isinstance(meta, headmeta.Cif) else 9, batch_size, shape[-2:],
                              device=device) for meta, shape in zip(metas, shapes)]
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    warm_up = 2 if settings.compile else 1  # compiling takes the first step(s); kernels and allocators warm up
    durations = []
    for i in range(repeats + warm_up):
        start = time.perf_counter()
        with precision.autocast():
            outputs = model(images)
        total, _ = loss(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        precision.backward(total)
        precision.step(optimizer)
        _synchronize(device)
        if i >= warm_up:
            durations.append(time.perf_counter() - start)
    median = statistics.median(durations)
    result = {'basenet': basenet, 'variant': variant, 'batch_size': batch_size, 'input': [edge, edge],
              'upsample': upsample, 'heads': [m.full_name for m in metas], 'repeats': repeats,
              'seconds_per_step_median': round(median, 4),
              'seconds_per_step_min': round(min(durations), 4),
              'images_per_s': round(batch_size / median, 3),
              'peak_gpu_memory_mib': round(torch.cuda.max_memory_allocated(device) / 2 ** 20)
              if device.type == 'cuda' else None,
              'inference_ms_per_image': time_inference(network, precision, images[:1], repeats)}
    if peak_gflops:
        result['flop_ceiling'] = flop_share(result['images_per_s'], forward_gflop_per_image(network, images[:1]),
                                            peak_gflops)
    return result


def time_inference(network, precision, image, repeats: int) -> float:
    """Median eval-mode forward of one image (batch 1), in ms, uncompiled."""
    network.eval()
    durations = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            with precision.autocast():
                network(image)
            _synchronize(image.device)
            if i > 0:
                durations.append(time.perf_counter() - start)
    network.train()
    return round(1000 * statistics.median(durations), 2)


def pipeline_dataset(edge: int, upsample: int, cache_dir: pathlib.Path):
    if (SHARED_COCO / 'annotations.json').is_file():
        annotations, image_dir, source = SHARED_COCO / 'annotations.json', SHARED_COCO / 'images', 'coco-val-sample'
    else:
        config = render.SyntheticConfig(seed=0, n_images=16, width=385, height=385)
        annotations = render.write_dataset(cache_dir / render.dataset_key(config), config, 'train')
        image_dir, source = annotations.parent / 'images', 'synthetic'
    data = load_json(annotations, 'annotations')
    category = keypoint_category(data, annotations, None)
    metas = head_metas_for(category, 'cocokp', upsample, base_stride=16)
    encoders = encoder.factory(metas, encoder.EncoderSettings(), bmin=0.1)
    cif = metas[0]
    preprocess = transforms.train_pipeline(
        square_edge=edge, keypoints=cif.keypoints, hflip=cif.hflip, hflip_probability=0.5,
        encoders=encoders)
    return CocoKeypoints(data, annotations, image_dir, category, preprocess, dataset_name='cocokp'), source


def time_data_pipeline(edge: int, upsample: int, n_samples: int, cache_dir: pathlib.Path) -> dict:
    torch.set_num_threads(1)  # a loader worker runs single-threaded
    dataset, source = pipeline_dataset(edge, upsample, cache_dir)
    dataset[0]  # warm-up
    durations = []
    for i in range(n_samples):
        start = time.perf_counter()
        dataset[i % len(dataset)]
        durations.append(time.perf_counter() - start)
    median = statistics.median(durations)
    return {'source': source, 'square_edge': edge, 'upsample': upsample, 'samples': n_samples,
            'seconds_per_sample_median': round(median, 4),
            'samples_per_s_per_worker': round(1.0 / median, 2)}


def gpu_hardware(device) -> dict:
    """The GPU's name and memory (None on other devices)."""
    if device.type != 'cuda':
        return {'gpu': None, 'gpu_memory_gib': None}
    properties = torch.cuda.get_device_properties(device)
    return {'gpu': properties.name, 'gpu_memory_gib': round(properties.total_memory / 2 ** 30, 1),
            'cuda': torch.version.cuda, 'gpus': torch.cuda.device_count()}


PEER_FRAMEWORKS = ('openfields', 'openfields-torch-kernels', 'openpifpaf')


def compare_with_openpifpaf(peer_python: str, batch_size: int, edge: int, steps: int, rounds: int,
                            peak_gflops: float) -> dict:
    """Rounds of fresh tools/peer_train_step.py processes, one per framework in turn (the machine's load
    hits all alike): median seconds per step over all rounds, images/s, share of the FLOP ceiling
    (shufflenetv2k16's FLOPs, the same network in both) and each one's time over OpenPifPaf's."""
    root = pathlib.Path(__file__).resolve().parent.parent
    seconds = {name: [] for name in PEER_FRAMEWORKS}
    for round_index in range(rounds):
        for name in PEER_FRAMEWORKS:
            python = peer_python if name == 'openpifpaf' else sys.executable
            command = [python, '-m', 'tools.peer_train_step', '--framework', name, '--batch-size', str(batch_size),
                       '--square-edge', str(edge), '--steps', str(steps)]
            LOG.info('train step side by side, round %d/%d: %s', round_index + 1, rounds, name)
            output = subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout
            seconds[name] += json.loads(output.strip().splitlines()[-1])['seconds_per_step']
    metas = coco_metas(2)
    network = network_factory.build('shufflenetv2k16', {}, metas).train()
    gflop = forward_gflop_per_image(network, torch.randn(1, 3, edge, edge))
    rows = {}
    for name, values in seconds.items():
        median = statistics.median(values)
        rows[name] = {'seconds_per_step': values, 'seconds_per_step_median': round(median, 4),
                      'images_per_s': round(batch_size / median, 3),
                      'time_over_openpifpaf': round(median / statistics.median(seconds['openpifpaf']), 3),
                      **flop_share(batch_size / median, gflop, peak_gflops)}
        LOG.info('%s: %.3f images/s (%.0f%% of the FLOP ceiling), %.2fx OpenPifPaf\'s time', name,
                 rows[name]['images_per_s'], 100 * rows[name]['share_of_ceiling'], rows[name]['time_over_openpifpaf'])
    return {'basenet': 'shufflenetv2k16', 'batch_size': batch_size, 'input': [edge, edge], 'rounds': rounds,
            'malloc_tuning': 'same for both (tools/peer_train_step.py)', 'frameworks': rows}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tools.benchmark', description=__doc__.splitlines()[0])
    parser.add_argument('--output', default='outputs/bench/train.json')
    parser.add_argument('--basenet', nargs='+', default=['shufflenetv2k16'],
                        help='basenets of train_step_variants; the first also gives train_step')
    parser.add_argument('--variants', nargs='+',
                        default=['plain', 'torch_depthwise', 'torch_depthwise+torch_batchnorm', 'channels_last',
                                 'compile'],
                        help=f'train step variants: {", ".join(VARIANT_PARTS)}, or several joined by + '
                             '(compile: minutes of compilation on a CPU)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--square-edge', type=int, default=385)
    parser.add_argument('--upsample', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5, help='timed training steps')
    parser.add_argument('--samples', type=int, default=40, help='timed data pipeline samples (0: skip)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--peer-python', default=os.environ.get('OPENPIFPAF_PYTHON') or None, metavar='PYTHON',
                        help='the python of a venv with OpenPifPaf 0.13.11 (shared/reference/peer-openpifpaf.md): '
                             'also time its train step next to openfields\' (CPU)')
    parser.add_argument('--peer-rounds', type=int, default=3, help='interleaved rounds of the peer comparison')
    parser.add_argument('--peer-steps', type=int, default=2, help='timed steps per process of a round')
    args = parser.parse_args(argv)
    tune_glibc_malloc()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    peak_gflops = matmul_peak_gflops(device)
    LOG.info('fp32 matmul peak: %.1f GFLOP/s on %s (%d threads)', peak_gflops, device, threads)
    peer = None
    if args.peer_python and device.type == 'cpu':
        # first: this process keeps the memory of its own training steps (malloc tuning), which would
        # squeeze the fresh processes into the page cache's share of memory
        peer = compare_with_openpifpaf(args.peer_python, args.batch_size, args.square_edge, args.peer_steps,
                                       args.peer_rounds, peak_gflops)
    variants = []
    for basenet in args.basenet:
        for variant in args.variants:
            LOG.info('timing %d training steps of %s (%s), batch %d, %dx%d on %s (%d threads) ...', args.repeats,
                     basenet, variant, args.batch_size, args.square_edge, args.square_edge, device, threads)
            variants.append(time_train_step(basenet, args.batch_size, args.square_edge, args.upsample,
                                            args.repeats, device, variant, peak_gflops))
            LOG.info('train step: %.3f images/s (%.0f%% of the FLOP ceiling), inference %.1f ms/image, '
                     'peak GPU memory %s MiB', variants[-1]['images_per_s'],
                     100 * variants[-1]['flop_ceiling']['share_of_ceiling'],
                     variants[-1]['inference_ms_per_image'], variants[-1]['peak_gpu_memory_mib'])
    train = variants[0]
    data = None
    if args.samples > 0:
        cache_dir = pathlib.Path(args.output).parent / 'cache'
        data = time_data_pipeline(args.square_edge, args.upsample, args.samples, cache_dir)
        LOG.info('data pipeline: %.2f samples/s per worker (%s)', data['samples_per_s_per_worker'], data['source'])
    result = {
        'date': datetime.datetime.now().isoformat(timespec='seconds'),
        'version': version(), 'torch': torch.__version__,
        'hardware': {'cpu': cpu_name(), 'cores': os.cpu_count(), 'torch_threads': threads,
                     'device': str(device),
                     **gpu_hardware(device)},
        'train_step': train, 'train_step_variants': variants, 'train_step_vs_openpifpaf': peer,
        'data_pipeline': data,
        'worker_feeds_network': data['samples_per_s_per_worker'] > train['images_per_s'] if data else None,
    }
    out = pathlib.Path(args.output)
    write_json(out, result)
    LOG.info('one worker feeds the network: %s; wrote %s', result['worker_feeds_network'], out)


if __name__ == '__main__':
    main()
