"""TorchScript export by tracing (``torch.jit.trace``): the file runs in libtorch (C++) and in Python
without openfields. Sizes are read from the input at run time, so any height and width run.

``torch.jit`` is deprecated in favour of ``torch.export`` but remains what libtorch and many deployment
tools load; its deprecation warnings are silenced here. The metadata goes into ``_extra_files``.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import torch

from .exporter import Exporter
from . import metadata

EXTRA_FILE = metadata.KEY + '.json'


@contextlib.contextmanager
def no_deprecation_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=FutureWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', message='.*deprecated.*')
        yield


def export(module: torch.nn.Module, sample: torch.Tensor, names: list[str], metadata_json: str) -> bytes:
    """The serialised traced module (``names`` are implied by the order: TorchScript outputs a tuple)."""
    del names
    buffer = io.BytesIO()
    with no_deprecation_warnings(), torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(module, sample, check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={EXTRA_FILE: metadata_json})
    return buffer.getvalue()


def load(source: bytes | str, device: str | torch.device = 'cpu') -> tuple[torch.jit.ScriptModule, str]:
    """The module and its metadata text ('' when the file has none)."""
    extra = {EXTRA_FILE: ''}
    with no_deprecation_warnings():
        module = torch.jit.load(io.BytesIO(source) if isinstance(source, bytes) else source,
                                map_location=device, _extra_files=extra)
    text = extra[EXTRA_FILE]
    return module, text.decode() if isinstance(text, bytes) else text


def run(data: bytes, images: np.ndarray) -> list[np.ndarray]:
    module, _ = load(data)
    with torch.inference_mode():
        return [t.numpy() for t in module(torch.from_numpy(images))]


EXPORTER = Exporter(name='TorchScript', suffix='.pt', export=export, run=run)
