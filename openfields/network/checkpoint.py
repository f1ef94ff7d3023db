"""Checkpoints: tensors plus plain metadata, written atomically.

A checkpoint is a dict that ``torch.load(path, weights_only=True)`` accepts (no pickled classes, so a
checkpoint from elsewhere cannot run code, and old checkpoints survive refactors)::

    {
      'format': 'openfields.checkpoint', 'format_version': 1,
      'model': {'basenet': {'name': str, 'config': dict},
                'head_metas': [dict, ...],           # headmeta.Base.to_dict()
                'head_dropout': float,
                'batchnorm': {'eps': float, 'momentum': float},
                'state_dict': {name: tensor}},
      'epoch': int,                                   # epochs completed
      'meta': {'args': dict, 'argv': list, 'version': str, 'plugin_versions': dict},
      'training_state': dict | None,                  # what --resume needs (openfields/resume.py)
    }

Writes go to a temporary file in the same folder that is renamed over the target, so a run killed at
any moment leaves the previous checkpoint intact.
"""

import os
import pathlib
import tempfile

import torch

from .. import headmeta

FORMAT = 'openfields.checkpoint'
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing or not an openfields checkpoint."""


def model_description(model) -> dict:
    """The ``model`` entry of a checkpoint for a :class:`~openfields.network.nets.Shell`."""
    basenet = model.basenet
    bn = next((m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)), None)
    return {
        'basenet': {'name': basenet.name, 'config': dict(basenet.config)},
        'head_metas': [meta.to_dict() for meta in model.head_metas],
        'head_dropout': next((float(h.dropout.p) for h in model.heads if h.dropout is not None), 0.0),
        'batchnorm': {'eps': float(bn.eps) if bn is not None else 1e-4,
                      'momentum': float(bn.momentum) if bn is not None else 0.01},
        'state_dict': {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary sibling, fsync, then rename over ``path``."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(path, model, *, epoch: int, meta: dict, training_state: dict | None = None) -> None:
    atomic_torch_save({
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'model': model_description(model),
        'epoch': int(epoch),
        'meta': meta,
        'training_state': training_state,
    }, path)


def load(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint (on the CPU, ``weights_only=True``)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f'--checkpoint: file not found: {path}')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises several types for foreign or truncated files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f'{path}: not a loadable openfields checkpoint ({first_line})') from None
    if not isinstance(checkpoint, dict) or checkpoint.get('format') != FORMAT:
        raise CheckpointError(f'{path}: not an openfields checkpoint (no "format": "{FORMAT}" entry)')
    if checkpoint.get('format_version', 0) > FORMAT_VERSION:
        raise CheckpointError(f'{path}: checkpoint format {checkpoint["format_version"]} is newer than '
                              f'this openfields understands ({FORMAT_VERSION}); upgrade openfields')
    return checkpoint


def head_metas(checkpoint: dict) -> list[headmeta.Base]:
    return [headmeta.Base.from_dict(d) for d in checkpoint['model']['head_metas']]
