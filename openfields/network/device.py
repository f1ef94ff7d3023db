"""The device the network runs on: ``--device auto|cpu|cuda|cuda:N|mps`` of every CLI."""

import torch


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA, else MPS, else the CPU; a named device that is not there is a ValueError naming
    ``--device``."""
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f'--device {name!r} is not a device (auto, cpu, cuda, cuda:N, mps)') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {name}: CUDA is not available on this machine')
    return device


def check_one_gpu_is_meant(device: str, visible_gpus: int, ddp: bool, batch_size: int | None = None) -> None:
    """A ValueError naming ``--ddp`` for a single process that would train on one of several visible GPUs.

    OpenPifPaf's ``CUDA_VISIBLE_DEVICES=0,1 python3 -m openpifpaf.train ...`` (no ``--ddp``) splits each batch
    over the visible GPUs (``torch.nn.DataParallel``); openfields runs one process per GPU instead
    (``torchrun ... --ddp``, where ``--batch-size`` is per GPU), so ``--device auto`` or ``cuda`` with several
    visible GPUs and no ``--ddp`` is refused rather than leaving all GPUs but one idle. ``--device cpu``,
    ``cuda:N`` (one chosen GPU), ``mps`` and ``--ddp`` runs pass. ``visible_gpus``:
    ``torch.cuda.device_count()``, which honours ``CUDA_VISIBLE_DEVICES``."""
    if ddp or visible_gpus < 2 or device not in ('auto', 'cuda'):
        return
    per_gpu = ''
    if batch_size is not None and batch_size >= visible_gpus:
        per_gpu = (f'; --batch-size is per GPU there: {batch_size // visible_gpus} for about the total of '
                   f'{batch_size} that DataParallel would split')
    raise ValueError(f'--device {device}: {visible_gpus} GPUs are visible but one process without --ddp trains on '
                     f'one (openfields has no DataParallel batch split as OpenPifPaf does): run one process per GPU '
                     f'with torchrun --nproc_per_node {visible_gpus} -m openfields.train --ddp ...{per_gpu}; or '
                     'train on one GPU with --device cuda:0 (or CUDA_VISIBLE_DEVICES=0)')
