"""What an export format is (:class:`Exporter`) and how an export fails: the export modules and the command
that drives them all take these from here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


class ExportMismatch(ValueError):
    """The exported model's fields differ from torch's by more than the tolerance."""


class MissingDependency(ValueError):
    """An optional package is not installed; the message is the install hint."""


@dataclasses.dataclass(frozen=True)
class Exporter:
    """One export format: ``export(module, sample, names, metadata_json) -> bytes`` and
    ``run(bytes, images) -> list of arrays``, one per head."""
    name: str
    suffix: str
    export: Callable[..., bytes]
    run: Callable[[bytes, np.ndarray], list[np.ndarray]]
