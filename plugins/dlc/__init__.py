"""Plugin ``dlc``: DeepLabCut project folders (config.yaml plus labeled-data CSVs) as datasets."""

from openfields.datasets import register_datamodule

from .datamodule import Dlc


def register():
    register_datamodule(Dlc)
