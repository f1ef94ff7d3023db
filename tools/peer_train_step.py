"""A training step timed in a fresh process: ``python -m tools.peer_train_step --framework NAME``.

``--framework openfields`` (the project's venv) or ``openfields-torch-kernels`` (the same with torch's
depthwise weight gradient and BatchNorm instead of openfields' compiled ones) or ``openpifpaf`` (a throwaway
venv with OpenPifPaf 0.13.11, shared/reference/peer-openpifpaf.md). The same step for all: shufflenetv2k16
built from scratch with the COCO person CIF + CAF heads (upsample 2, stride 8), each framework's own losses on
the same kind of random targets (2% positive cells, regression targets in [0.5, 1.5)), forward + backward +
SGD (momentum 0.9, Nesterov), batch 8 of 385x385 by default. All get the same glibc malloc tuning
(``mallopt`` as in ``openfields/network/malloc_tuning.py``, applied here so that OpenPifPaf gets it too;
``--no-malloc-tuning`` turns it off for all) and torch's default threads. Prints one JSON object: the seconds
of each timed step.

tools/benchmark.py runs it in interleaved rounds (``--peer-python``) so that the machine's load hits all alike.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import time

import torch

# the same options and values as openfields/network/malloc_tuning.py (duplicated: OpenPifPaf's venv has no
# openfields)
MALLOPT = ((-4, 0), (-1, 2 ** 31 - 1), (-2, 256 * 2 ** 20))  # M_MMAP_MAX, M_TRIM_THRESHOLD, M_TOP_PAD


def tune_malloc() -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    return all(libc.mallopt(option, value) == 1 for option, value in MALLOPT)


def random_targets(n_fields: int, n_channels: int, batch_size: int, hw, generator=None, device='cpu'):
    """(B, fields, channels, h, w) targets of both frameworks' layout (also tools/benchmark.py's): confidence 1
    at 2% positive cells, 0 elsewhere; regressions in [0.5, 1.5) at the positive cells, NaN (ignored)
    elsewhere."""
    t = torch.full((batch_size, n_fields, n_channels, *hw), float('nan'), device=device)
    positive = torch.rand(batch_size, n_fields, *hw, generator=generator, device=device) < 0.02
    t[:, :, 0] = positive.float()
    for c in range(1, n_channels):
        values = torch.rand(batch_size, n_fields, *hw, generator=generator, device=device) + 0.5
        t[:, :, c] = torch.where(positive, values, torch.full_like(values, float('nan')))
    return t


def openfields_step(compiled_kernels: bool):
    from openfields.network import factory as network_factory, losses
    from tools.benchmark import coco_metas, loss_args, use_torch_kernels
    metas = coco_metas(2)
    network = network_factory.build('shufflenetv2k16', {}, metas).train()
    if not compiled_kernels:
        use_torch_kernels(network)
    loss = losses.factory(loss_args(), metas)
    n_channels = [5, 9]

    def total_loss(outputs, targets):
        return loss(outputs, targets)[0]
    return network, total_loss, [m.n_fields for m in metas], n_channels


def openpifpaf_step():
    import openpifpaf
    from openpifpaf.plugins.coco import CocoKp
    CocoKp.upsample_stride = 2
    metas = [m for m in CocoKp().head_metas if m.name in ('cif', 'caf')]
    network, _ = openpifpaf.network.Factory(base_name='shufflenetv2k16').factory(head_metas=metas)
    network.train()
    loss = openpifpaf.network.losses.Factory().factory(metas)

    def total_loss(outputs, targets):
        return loss(outputs, targets)[0]
    return network, total_loss, [m.n_fields for m in metas], [5, 9]


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tools.peer_train_step', description=__doc__.splitlines()[0])
    parser.add_argument('--framework', required=True,
                        choices=['openfields', 'openfields-torch-kernels', 'openpifpaf'])
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--square-edge', type=int, default=385)
    parser.add_argument('--steps', type=int, default=3, help='timed steps')
    parser.add_argument('--warm-up', type=int, default=2, help='untimed steps first (the first two touch new memory)')
    parser.add_argument('--no-malloc-tuning', dest='malloc_tuning', action='store_false')
    args = parser.parse_args(argv)
    tuned = tune_malloc() if args.malloc_tuning else False
    torch.manual_seed(0)
    if args.framework == 'openpifpaf':
        network, total_loss, n_fields, n_channels = openpifpaf_step()
    else:
        network, total_loss, n_fields, n_channels = openfields_step(args.framework == 'openfields')
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
    images = torch.randn(args.batch_size, 3, args.square_edge, args.square_edge)
    with torch.no_grad():
        shapes = [o.shape[-2:] for o in network(images[:1])]
    generator = torch.Generator().manual_seed(1)
    targets = [random_targets(f, c, args.batch_size, hw, generator)
               for f, c, hw in zip(n_fields, n_channels, shapes)]
    seconds = []
    for i in range(args.warm_up + args.steps):
        start = time.perf_counter()
        total = total_loss(network(images), targets)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if i >= args.warm_up:
            seconds.append(round(time.perf_counter() - start, 4))
    print(json.dumps({'framework': args.framework, 'malloc_tuning': tuned, 'threads': torch.get_num_threads(),
                      'batch_size': args.batch_size, 'square_edge': args.square_edge, 'field_shapes':
                      [list(s) for s in shapes], 'seconds_per_step': seconds}))


if __name__ == '__main__':
    main()
