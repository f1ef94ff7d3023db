"""Where named models live and how ``--checkpoint NAME`` finds one.

A model named ``NAME`` is a file ``NAME`` or ``NAME.<suffix>`` (``.pkl`` checkpoint, ``.onnx``, ``.pt``
TorchScript) in the model folder (``$OPENFIELDS_MODELS``, default ``~/.cache/openfields/models``) or in
torch hub's ``checkpoints/`` folder (``torch.hub.get_dir()``), searched in that order. Nothing is ever
downloaded: a missing name is an error that lists what is there and where to put the file.

This module imports no other openfields module: ``network.checkpoint`` calls :func:`resolve`.
"""

from __future__ import annotations

import os
import pathlib

import torch

ENV = 'OPENFIELDS_MODELS'
DEFAULT_FOLDER = '~/.cache/openfields/models'
SUFFIXES = ('.pkl', '.onnx', '.pt')


class ModelNotFound(ValueError):
    """``--checkpoint`` names neither a file nor a model in the model folders."""


def model_folders() -> list[pathlib.Path]:
    """The folders searched for named models, first match wins."""
    own = pathlib.Path(os.environ.get(ENV) or DEFAULT_FOLDER).expanduser()
    return [own, pathlib.Path(torch.hub.get_dir()) / 'checkpoints']


def model_name(path: pathlib.Path) -> str | None:
    """The name a file in a model folder answers to, or None for files that are not models."""
    if path.suffix in SUFFIXES:
        return path.stem
    return None


def named_models() -> dict[str, pathlib.Path]:
    """Name -> file of every model in the folders; a name in an earlier folder hides a later one."""
    found: dict[str, pathlib.Path] = {}
    for folder in model_folders():
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            name = model_name(path)
            if name is not None and path.is_file():
                found.setdefault(name, path)
    return found


def resolve(name_or_path: str | os.PathLike) -> pathlib.Path:
    """An existing file as it is; otherwise the model of that name; otherwise :class:`ModelNotFound`."""
    path = pathlib.Path(name_or_path).expanduser()
    if path.is_file():
        return path
    text = str(name_or_path)
    if os.sep in text or (os.altsep and os.altsep in text):  # a path, not a name
        raise ModelNotFound(f'--checkpoint: file not found: {path}')
    models = named_models()
    for candidate in (text, pathlib.Path(text).stem):
        if candidate in models:
            return models[candidate]
    raise ModelNotFound(not_found_message(text, models))


def not_found_message(name: str, models: dict[str, pathlib.Path]) -> str:
    own, hub = model_folders()
    there = ', '.join(sorted(models)) if models else 'none'
    return (f'--checkpoint {name}: file not found, and no model named {name!r} in {own} (${ENV}) or {hub} '
            f'(models there: {there}); openfields never downloads: put the file at '
            f'{own / (pathlib.Path(name).stem + ".pkl")} (or .onnx, .pt)')
