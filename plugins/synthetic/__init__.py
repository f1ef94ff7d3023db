"""Plugin ``synthetic``: the embedded, procedurally rendered multi-person dataset."""

from openfields.datasets import register_datamodule

from .datamodule import Synthetic


def register():
    register_datamodule(Synthetic)
