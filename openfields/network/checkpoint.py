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
      'training_state': dict | None,                  # what --resume needs (openfields/training/resume.py)
    }

Writes go through :func:`openfields.outputs.atomic_write`, so a run killed at any moment leaves the
previous checkpoint intact.
"""

import os
import pickle

import torch

from .. import headmeta, outputs
from ..errors import first_line
from . import model_folder, openpifpaf_checkpoint

FORMAT = 'openfields.checkpoint'
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing or not an openfields checkpoint."""


def model_description(model) -> dict:
    """The ``model`` entry of a checkpoint for a :class:`~openfields.network.nets.Shell`; other models
    (the detectors of top-down mode) describe themselves (``checkpoint_description()``)."""
    if hasattr(model, 'checkpoint_description'):
        return model.checkpoint_description()
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


def payload(model, *, epoch: int, meta: dict, training_state: dict | None = None) -> dict:
    """What a checkpoint file holds (plain tensors and types: loadable with ``weights_only``)."""
    return {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'model': model_description(model),
        'epoch': int(epoch),
        'meta': meta,
        'training_state': training_state,
    }


def write(path: str | os.PathLike, data: dict) -> None:
    """``torch.save`` atomically: a reader (``eval --watch``) never sees half a checkpoint."""
    with outputs.atomic_write(path, 'wb') as f:
        torch.save(data, f)


def save(path, model, *, epoch: int, meta: dict, training_state: dict | None = None) -> None:
    write(path, payload(model, epoch=epoch, meta=meta, training_state=training_state))


def load(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint (on the CPU, ``weights_only=True``); ``path`` may also be the name of
    a model in the model folders (:func:`openfields.network.model_folder.resolve`). A file of pickled classes
    (an OpenPifPaf checkpoint) is read by :mod:`.openpifpaf_checkpoint`: only its allow-listed classes, converted
    to this dict; anything else in it is refused in one line."""
    try:
        path = model_folder.resolve(path)
    except model_folder.ModelNotFound as error:
        raise CheckpointError(str(error)) from None
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        if not openpifpaf_checkpoint.names_globals(path):  # a broken stream, not classes weights_only refused
            raise CheckpointError(f'{path}: not a loadable openfields checkpoint ({first_line(error, limit=None)})') from None
        try:  # pickled classes (an OpenPifPaf checkpoint?): read through its allow-list, without running them
            return openpifpaf_checkpoint.load(path)
        except openpifpaf_checkpoint.OpenPifPafError as refused:
            raise CheckpointError(str(refused)) from None
    except Exception as error:  # torch raises several types for foreign or truncated files
        raise CheckpointError(f'{path}: not a loadable openfields checkpoint ({first_line(error, limit=None)})') from None
    if not isinstance(checkpoint, dict) or checkpoint.get('format') != FORMAT:
        raise CheckpointError(f'{path}: not an openfields checkpoint (no "format": "{FORMAT}" entry)')
    if checkpoint.get('format_version', 0) > FORMAT_VERSION:
        raise CheckpointError(f'{path}: checkpoint format {checkpoint["format_version"]} is newer than '
                              f'this openfields understands ({FORMAT_VERSION}); upgrade openfields')
    return checkpoint




def head_metas(checkpoint: dict) -> list[headmeta.Base]:
    return [headmeta.Base.from_dict(d) for d in checkpoint['model']['head_metas']]
