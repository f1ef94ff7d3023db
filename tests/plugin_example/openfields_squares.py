"""``openfields_squares``: a complete openfields plugin in one file (the worked example of docs/plugins.md).

It adds the dataset ``--dataset squares`` (light squares on a gray background, drawn on the fly, found
by one CifDet head), the basenet ``--basenet squarenet`` (three strided convolutions) and the decoder
``--decoder bestbox`` (the single most confident box of each category). Any module
named ``openfields_*`` on the Python path is a plugin: openfields imports it and calls ``register()``.
"""

import argparse

import numpy as np
import PIL.Image
import torch
from torch import nn

from openfields import encoder, headmeta, transforms
from openfields.datasets import DataModule, LoaderSettings, register_datamodule
from openfields.datasets.collate import collate_images_targets_meta
from openfields.decoder.cifdet import CifDet
from openfields.decoder.factory import Candidate, register_decoder
from openfields.network.basenets import register_basenet

__version__ = '1.0'  # listed by `python -m openfields.plugins`, recorded in logs and checkpoints


class SquareImages(torch.utils.data.Dataset):
    """``n_images`` gray images of ``size x size`` pixels with one to three light squares each; image
    ``i`` is drawn from the seed ``seed + i``, so a dataset is the same on every run."""

    def __init__(self, n_images: int, size: int, seed: int, preprocess):
        self.n_images, self.size, self.seed, self.preprocess = n_images, size, seed, preprocess

    def __len__(self):
        return self.n_images

    def __getitem__(self, index):
        rng = np.random.default_rng(self.seed + index)
        pixels = np.full((self.size, self.size, 3), 60, dtype=np.uint8)
        anns = []
        for _ in range(rng.integers(1, 4)):
            side = int(rng.integers(self.size // 8, self.size // 3))
            x, y = (int(v) for v in rng.integers(0, self.size - side, size=2))
            pixels[y:y + side, x:x + side] = 200
            # pixel centres: the square covers [x - 0.5, x + side - 0.5]
            anns.append({'bbox': [x - 0.5, y - 0.5, side, side], 'category_id': 1, 'iscrowd': 0})
        meta = {'dataset': 'squares', 'image_id': index, 'file_name': f'square-{self.seed + index}'}
        return self.preprocess(PIL.Image.fromarray(pixels), anns, meta)


class Squares(DataModule):
    """The DataModule: flags prefixed with its name, built by ``from_args``, one head meta per head."""

    name = 'squares'

    def __init__(self, *, train_images: int, val_images: int, image_size: int, seed: int,
                 encoder_settings: encoder.EncoderSettings, base_stride: int):
        self.train_images, self.val_images = train_images, val_images
        self.image_size, self.seed = image_size, seed
        self.encoder_settings = encoder_settings
        # the basenet's stride is known before the network exists (frozen metas are created with it)
        self.head_metas = [headmeta.CifDet(name='cifdet', dataset=self.name, categories=['square'],
                                           base_stride=base_stride)]

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group('dataset squares')
        group.add_argument('--squares-train-images', type=int, default=64, help='training images per epoch')
        group.add_argument('--squares-val-images', type=int, default=16, help='validation images')
        group.add_argument('--squares-image-size', type=int, default=97, help='image side in pixels')
        group.add_argument('--squares-seed', type=int, default=0, help='seed of the drawn images')

    @classmethod
    def from_args(cls, args: argparse.Namespace, base_stride: int) -> 'Squares':
        if args.squares_image_size < 24:
            raise ValueError(f'--squares-image-size must be at least 24, got {args.squares_image_size}')
        return cls(train_images=args.squares_train_images, val_images=args.squares_val_images,
                   image_size=args.squares_image_size, seed=args.squares_seed,
                   encoder_settings=encoder.EncoderSettings.from_args(args), base_stride=base_stride)

    def describe(self) -> dict:
        return {'image_size': self.image_size, 'seed': self.seed}

    def _loader(self, n_images: int, seed: int, loader: LoaderSettings, shuffle: bool):
        encoders = encoder.factory(self.head_metas, self.encoder_settings, bmin=1.0)
        preprocess = transforms.Compose([transforms.NormalizeAnnotations(), transforms.ImageToTensor(),
                                         transforms.Normalize(), transforms.Encoders(encoders)])
        return torch.utils.data.DataLoader(
            SquareImages(n_images, self.image_size, seed, preprocess), batch_size=loader.batch_size,
            sampler=loader.sampler(n_images, shuffle=shuffle), num_workers=loader.workers, drop_last=True,
            collate_fn=collate_images_targets_meta)

    def train_loader(self, loader: LoaderSettings):
        return self._loader(self.train_images, self.seed, loader, shuffle=True)

    def val_loader(self, loader: LoaderSettings):
        return self._loader(self.val_images, self.seed + 1_000_000, loader, shuffle=False)


class SquareNet(nn.Module):
    """A basenet: ``(B, 3, H, W) -> (B, 32, (H - 1) // 8 + 1, (W - 1) // 8 + 1)``; ``name``, ``stride``,
    ``out_features`` and a plain ``config`` are what the network and checkpoints need."""

    def __init__(self, config: dict):
        super().__init__()
        self.name, self.stride, self.out_features = 'squarenet', 8, 32
        self.config = {'width': int(config.get('width', 16))}
        width = self.config['width']
        layers, channels = [], 3
        for out_channels in (width, width, self.out_features):
            layers += [nn.Conv2d(channels, out_channels, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def best_box_per_category(boxes):
    """The most confident box of each category."""
    best = {}
    for box in boxes:
        if box.category_id not in best or box.score > best[box.category_id].score:
            best[box.category_id] = box
    return list(best.values())


def bestbox_candidates(head_metas, settings):
    """A decoder kind: for every CifDet head, its CIFdet boxes reduced to the best one per category.
    The priority (below the built-in decoders) keeps it from being chosen without ``--decoder``."""
    found = []
    for index, meta in enumerate(head_metas):
        if isinstance(meta, headmeta.CifDet):
            def build(meta=meta):
                decode = CifDet(meta, settings)
                return lambda fields: best_box_per_category(decode(fields))
            found.append(Candidate(name='', head_indices=(index,), priority=-2.0, build=build))
    return found


def register():
    register_datamodule(Squares)
    register_basenet('squarenet', SquareNet)
    register_decoder('bestbox', bestbox_candidates)
