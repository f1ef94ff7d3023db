"""Plugin ``cocokp``: COCO-format keypoint datasets."""

from openfields.datasets import register_datamodule

from .datamodule import CocoKp


def register():
    register_datamodule(CocoKp)
