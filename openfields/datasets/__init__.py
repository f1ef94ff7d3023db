"""Datasets: the DataModule interface, COCO-format reading, collation and the ``--dataset`` factory."""

from .module import DataModule, LoaderSettings
from .registry import DATAMODULES, register_datamodule
