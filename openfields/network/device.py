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
