"""``python -m openfields.models import PATH NAME``: a checkpoint from elsewhere (an OpenPifPaf ``.pkl``, read through
:mod:`openfields.network.openpifpaf_checkpoint`, or an openfields checkpoint) written as ``NAME.pkl`` into the first
model folder, an openfields checkpoint that loads with ``torch.load(..., weights_only=True)``."""

from __future__ import annotations

import logging
import pathlib
import re

from ..network import checkpoint
from ..network import model_folder as folder

LOG = logging.getLogger(__name__)

NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.+-]*')


def target(name: str) -> pathlib.Path:
    """Where model ``name`` is written: ``NAME.pkl`` in the first model folder."""
    if not NAME.fullmatch(name) or name.endswith(folder.SUFFIXES):
        raise ValueError(f'model name {name!r}: letters, digits and _ . + - only, without a file suffix')
    return folder.model_folders()[0] / f'{name}.pkl'


def import_model(path: str, name: str, *, force: bool = False) -> pathlib.Path:
    """Read and convert ``path`` (nothing is written when it is refused), then write it as model ``name``."""
    destination = target(name)
    if destination.exists() and not force:
        raise ValueError(f'{destination} exists; give another NAME or --force to replace it')
    source = pathlib.Path(path).expanduser()
    if not source.is_file():
        raise checkpoint.CheckpointError(f'{source}: file not found')
    saved = checkpoint.load(source)
    if 'detector' in saved['model']:
        raise checkpoint.CheckpointError(f'{source}: a detector, not a pose model')
    destination.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write(destination, saved)
    metas = checkpoint.head_metas(saved)
    LOG.info('wrote %s: %s with heads %s; use it as --checkpoint %s', destination,
             saved['model']['basenet']['name'], ', '.join(m.full_name for m in metas), name)
    return destination
