"""Plugin ``cocodet``: COCO-format object detection (one CifDet head, a field per category)."""

from openfields.datasets import register_datamodule

from .datamodule import CocoDet


def register():
    register_datamodule(CocoDet)
