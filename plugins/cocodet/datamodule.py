"""``cocodet``: object detection on a COCO-format json (COCO's ``instances_*.json`` by default).

One CifDet head with a field per json category. Boxes whose side is at most 4 pixels after augmentation
and boxes of which the training crop kept less than 75 % are ignore regions (like crowd boxes): the
network is neither taught to find them nor to call them background. Evaluation: pycocotools box AP.
The flags mirror ``cocokp``'s with the ``--cocodet-`` prefix; ``--coco-eval-long-edge`` and
``--coco-no-eval-annotation-filter`` are shared with the other COCO-style datasets.
"""

import argparse

import torch

from openfields import encoder, headmeta, transforms
from openfields.datasets import DataModule, LoaderSettings
from openfields.datasets.coco import load_json
from openfields.datasets.collate import collate_images_anns_meta, collate_images_targets_meta
from openfields.datasets.augmentation import Augmentation
from openfields.datasets.evaluation import EvalSettings

from . import transforms as det_transforms
from .dataset import CocoDetections, detection_categories
from .metric import CocoBoxes


class CocoDet(DataModule):
    """COCO-format boxes of every category: one CifDet head."""

    name = 'cocodet'
    default_square_edge = 513

    def __init__(self, *, train_annotations, val_annotations, train_image_dir, val_image_dir,
                 augmentation: Augmentation, base_stride: int, upsample: int = 1, bmin: float = 1.0, min_anns: int = 1,
                 encoder_settings: encoder.EncoderSettings, eval_settings: EvalSettings | None = None):
        self.train_annotations = str(train_annotations)
        self.val_annotations = str(val_annotations)
        self.train_image_dir = str(train_image_dir)
        self.val_image_dir = str(val_image_dir)
        self.augmentation = augmentation
        self.upsample = upsample
        self.bmin = bmin
        self.min_anns = min_anns
        self.encoder_settings = encoder_settings
        self.eval_settings = eval_settings or EvalSettings()
        self._train_data = load_json(self.train_annotations, self.flag('train-annotations'))
        self.category_ids, names = detection_categories(self._train_data, self.train_annotations)
        self.head_metas = [headmeta.CifDet(name='cifdet', dataset=self.name, categories=names,
                                           upsample_stride=upsample, base_stride=base_stride)]

    @classmethod
    def flag(cls, name: str) -> str:
        return f'--{cls.name}-{name}'

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        prefix = cls.name
        group = parser.add_argument_group(f'dataset {prefix}')
        group.add_argument(f'--{prefix}-train-annotations', default='data-mscoco/annotations/instances_train2017.json',
                           help='COCO-format json with boxes ("bbox") of the training set')
        group.add_argument(f'--{prefix}-val-annotations', default='data-mscoco/annotations/instances_val2017.json',
                           help='COCO-format json with boxes of the validation set (same categories)')
        group.add_argument(f'--{prefix}-train-image-dir', default='data-mscoco/images/train2017/',
                           help='folder of the training images (json file names are relative to it)')
        group.add_argument(f'--{prefix}-val-image-dir', default='data-mscoco/images/val2017/',
                           help='folder of the validation images')
        group.add_argument(f'--{prefix}-min-anns', type=int, default=1,
                           help='train only on images with at least this many (non-crowd) boxes')
        Augmentation.cli(group, prefix, cls.default_square_edge)
        group.add_argument(f'--{prefix}-upsample', type=int, default=1,
                           help='pixel-shuffle upsampling of the head (2 halves the head stride)')
        group.add_argument(f'--{prefix}-bmin', type=float, default=1.0,
                           help='b_min in pixels: the smallest localisation uncertainty (grows with the box)')
        EvalSettings.cli(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, base_stride: int) -> 'CocoDet':
        get = lambda name: getattr(args, f'{cls.name}_{name}')  # noqa: E731
        if get('upsample') < 1:
            raise ValueError(f'{cls.flag("upsample")} must be >= 1, got {get("upsample")}')
        if get('bmin') <= 0:
            raise ValueError(f'{cls.flag("bmin")} must be positive, got {get("bmin")}')
        return cls(train_annotations=get('train_annotations'), val_annotations=get('val_annotations'),
                   train_image_dir=get('train_image_dir'), val_image_dir=get('val_image_dir'),
                   augmentation=Augmentation.from_args(args, cls.name), base_stride=base_stride,
                   upsample=get('upsample'),
                   bmin=get('bmin'), min_anns=get('min_anns'),
                   encoder_settings=encoder.EncoderSettings.from_args(args),
                   eval_settings=EvalSettings.from_args(args))

    def describe(self) -> dict:
        return {'categories': self.head_metas[0].categories, 'train_annotations': self.train_annotations,
                'val_annotations': self.val_annotations}

    def _encoders(self):
        return encoder.factory(self.head_metas, self.encoder_settings, bmin=self.bmin)

    def _preprocess(self, batch_resize: bool = False):
        return det_transforms.train_pipeline(self.augmentation, self._encoders(), batch_resize=batch_resize)

    def _dataset(self, data, annotations, image_dir, split, preprocess, min_anns) -> CocoDetections:
        return CocoDetections(data, annotations, image_dir, self.category_ids, preprocess,
                              dataset_name=self.name, min_anns=min_anns,
                              image_dir_flag=self.flag(f'{split}-image-dir'))

    def _val_data(self) -> dict:
        data = load_json(self.val_annotations, self.flag('val-annotations'))
        ids, _ = detection_categories(data, self.val_annotations)
        if ids != self.category_ids:
            raise ValueError(f'{self.flag("val-annotations")} {self.val_annotations}: category ids {ids} differ '
                             f'from the training json\'s {self.category_ids}')
        return data

    def _loader(self, dataset, loader: LoaderSettings, shuffle: bool, collate_fn=collate_images_targets_meta):
        if len(dataset) // loader.world_size < loader.batch_size:
            processes = f' x {loader.world_size} processes' if loader.world_size > 1 else ''
            raise ValueError(f'{self.name}: {len(dataset)} usable images, fewer than --batch-size '
                             f'{loader.batch_size}{processes} (full batches only)')
        generator = torch.Generator()  # seeds the worker processes
        generator.manual_seed(loader.worker_seed)
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, sampler=loader.sampler(len(dataset), shuffle=shuffle),
            num_workers=loader.workers, pin_memory=loader.pin_memory, drop_last=True,
            collate_fn=collate_fn, generator=generator, persistent_workers=loader.workers > 0)

    def train_loader(self, loader: LoaderSettings):
        batch_resize = self.augmentation.batch_resize is not None
        dataset = self._dataset(self._train_data, self.train_annotations, self.train_image_dir, 'train',
                                self._preprocess(batch_resize), self.min_anns)
        collate = self.augmentation.train_collate(self._encoders(), self.head_metas[0].base_stride, self.name,
                                                  finish_before=[det_transforms.IgnoreTinyBoxes()])
        return self._loader(dataset, loader, shuffle=True, collate_fn=collate)

    def val_loader(self, loader: LoaderSettings):
        dataset = self._dataset(self._val_data(), self.val_annotations, self.val_image_dir, 'val',
                                self._preprocess(), self.min_anns)
        return self._loader(dataset, loader, shuffle=False)

    def eval_loader(self, loader: LoaderSettings, long_edge: int | None = -1):
        """Validation images without augmentation: ``(images, annotations, metas)`` batches; the
        annotations are the boxes in network-input coordinates (for oracle fields). ``long_edge=-1`` takes
        ``--coco-eval-long-edge``."""
        long_edge = self.eval_settings.long_edge if long_edge == -1 else long_edge
        pad = 'tight' if loader.batch_size == 1 else 'center'
        if pad == 'center' and long_edge is None:
            raise ValueError('batches of several evaluation images need --coco-eval-long-edge (or --long-edge)')
        dataset = self._dataset(self._val_data(), self.val_annotations, self.val_image_dir, 'val',
                                transforms.eval_pipeline(long_edge, pad=pad, multiple=16),
                                min_anns=1 if self.eval_settings.annotation_filter else 0)
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, shuffle=False, num_workers=loader.workers,
            pin_memory=loader.pin_memory, collate_fn=collate_images_anns_meta)

    def metrics(self) -> list:
        return [CocoBoxes(self.val_annotations, self.category_ids)]
