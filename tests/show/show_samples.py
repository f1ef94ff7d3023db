"""A synthetic training sample (rendered people, encoder targets) shared by the show tests."""

import argparse
import dataclasses

import numpy as np
import PIL.Image

from openfields import encoder, plugin
from openfields.datasets import factory as datasets_factory
from openfields.datasets.module import LoaderSettings

BASE_STRIDE = 16  # of every basenet; with --synthetic-upsample 2 the fields have stride 8


@dataclasses.dataclass
class Sample:
    """One augmentation-free training image: ``image`` (3, H, W) normalised, ``targets`` one per head,
    ``meta`` (with the ground truth in ``meta['annotations']``) and the head metas."""

    image: object
    targets: list
    meta: dict
    head_metas: list


def synthetic_datamodule(cache_dir, *extra: str):
    plugin.register_all()
    parser = argparse.ArgumentParser()
    datasets_factory.cli(parser)
    encoder.cli(parser)
    args = parser.parse_args(['--dataset', 'synthetic', '--synthetic-train-images', '2', '--synthetic-val-images', '1',
                              '--synthetic-image-size', '97', '--synthetic-square-edge', '97',
                              '--synthetic-upsample', '2', '--synthetic-no-augmentation',
                              '--synthetic-cache-dir', str(cache_dir), *extra])
    return datasets_factory.datamodule_from_args(args, base_stride=BASE_STRIDE)


def synthetic_sample(cache_dir) -> Sample:
    datamodule = synthetic_datamodule(cache_dir)
    images, targets, metas = next(iter(datamodule.train_loader(LoaderSettings(shuffle=False))))
    return Sample(image=images[0], targets=[t[0] for t in targets], meta=metas[0], head_metas=datamodule.head_metas)


def png_pixels(path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image.convert('RGB'), dtype=np.float64)
