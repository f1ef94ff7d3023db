"""``cocokp``: any COCO-format keypoint dataset (a json file and an image folder).

Keypoint names, skeleton and sigmas come from the json's category, so CrowdPose, animal sets or a lab's
own data train without code: COCO's 17 published sigmas (and reference pose and score weights) are used
for the COCO person category, a category's own ``sigmas`` field when it has one, and
``constants.DEFAULT_SIGMA`` for every keypoint otherwise. Horizontal flips swap left/right keypoints
found by name; when no pairs are found, flipping is off (and the log says so).
"""

import argparse
import dataclasses
import logging
import pathlib

import torch

from openfields import encoder, headmeta, transforms
from openfields.datasets import DataModule, LoaderSettings
from openfields.datasets.coco import CocoKeypoints, KeypointCategory, keypoint_category, load_json
from openfields.datasets.skeleton import chain_skeleton
from openfields.datasets.collate import collate_images_anns_meta, collate_images_targets_meta

from . import constants

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation of a COCO-style dataset; every part has its own flag."""

    enabled: bool = True
    square_edge: int = 385
    extended_scale: bool = False
    rescale_images: float = 1.0
    hflip: float = 0.5  # probability
    rotate: float = 0.4  # probability of a uniform rotation within +-30 degrees
    orientation_invariant: float = 0.0  # probability of a rotation by a multiple of 90 degrees
    blur: float = 0.0  # probability
    color_jitter: bool = True

    @staticmethod
    def cli(group, prefix: str, square_edge: int):
        group.add_argument(f'--{prefix}-square-edge', type=int, default=square_edge,
                           help='side of the square training crop in pixels')
        group.add_argument(f'--{prefix}-no-augmentation', dest=f'{prefix}_augmentation', default=True,
                           action='store_false', help='turn every augmentation off')
        group.add_argument(f'--{prefix}-extended-scale', default=False, action='store_true',
                           help='rescale images by a factor in [0.25, 2.0] instead of [0.4, 2.0]')
        group.add_argument(f'--{prefix}-rescale-images', type=float, default=1.0,
                           help='overall image rescaling factor applied on top of the scale jitter')
        group.add_argument(f'--{prefix}-hflip', type=float, default=0.5,
                           help='probability of a horizontal flip (left/right keypoints swapped)')
        group.add_argument(f'--{prefix}-rotate', type=float, default=0.4,
                           help='probability of a rotation by up to +-30 degrees')
        group.add_argument(f'--{prefix}-orientation-invariant', type=float, default=0.0,
                           help='probability of a rotation by a multiple of 90 degrees')
        group.add_argument(f'--{prefix}-blur', type=float, default=0.0, help='probability of a blur')
        group.add_argument(f'--{prefix}-no-color-jitter', dest=f'{prefix}_color_jitter', default=True,
                           action='store_false', help='no colour jitter, JPEG artefacts or grayscale')

    @classmethod
    def from_args(cls, args, prefix: str) -> 'Augmentation':
        get = lambda name: getattr(args, f'{prefix}_{name}')  # noqa: E731
        for name in ('hflip', 'rotate', 'orientation_invariant', 'blur'):
            if not 0.0 <= get(name) <= 1.0:
                raise ValueError(f'--{prefix}-{name.replace("_", "-")} is a probability in [0, 1], '
                                 f'got {get(name)}')
        if get('square_edge') < 16:
            raise ValueError(f'--{prefix}-square-edge must be at least 16, got {get("square_edge")}')
        return cls(enabled=get('augmentation'), square_edge=get('square_edge'),
                   extended_scale=get('extended_scale'), rescale_images=get('rescale_images'),
                   hflip=get('hflip'), rotate=get('rotate'),
                   orientation_invariant=get('orientation_invariant'), blur=get('blur'),
                   color_jitter=get('color_jitter'))


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How COCO-style datasets are evaluated (shared by cocokp and the datasets built on it)."""

    long_edge: int | None = 641
    annotation_filter: bool = True  # only images with annotated people

    @staticmethod
    def cli(parser):
        group = parser.add_argument_group('COCO-style evaluation')
        group.add_argument('--coco-eval-long-edge', type=int, default=641,
                           help='rescale evaluation images so their long edge has this size (0: keep)')
        group.add_argument('--coco-no-eval-annotation-filter', dest='coco_eval_annotation_filter',
                           default=True, action='store_false',
                           help='evaluate every image, also those without annotated people')

    @classmethod
    def from_args(cls, args) -> 'EvalSettings':
        if args.coco_eval_long_edge < 0:
            raise ValueError(f'--coco-eval-long-edge must be >= 0, got {args.coco_eval_long_edge}')
        return cls(long_edge=args.coco_eval_long_edge or None,
                   annotation_filter=args.coco_eval_annotation_filter)


def head_metas_for(category: KeypointCategory, dataset: str, upsample: int) -> list[headmeta.Base]:
    """CIF and CAF metas from a json category (COCO person defaults where they apply)."""
    is_coco_person = category.keypoints == constants.COCO_KEYPOINTS
    if category.sigmas is not None:
        sigmas = category.sigmas
    elif is_coco_person:
        sigmas = constants.COCO_PERSON_SIGMAS
    else:
        sigmas = [constants.DEFAULT_SIGMA] * len(category.keypoints)
        LOG.info('%s: category %r has no sigmas; using %.3f for every keypoint',
                 dataset, category.name, constants.DEFAULT_SIGMA)
    skeleton = category.skeleton
    if not skeleton:  # a category built in code; one read from a json has a derived skeleton
        skeleton = chain_skeleton(len(category.keypoints))
        LOG.info('%s: category %r has no skeleton; connecting keypoints in order: %s',
                 dataset, category.name, skeleton)
    hflip = headmeta.hflip_from_names(category.keypoints)
    if not hflip:
        LOG.info('%s: no left/right keypoint pairs found by name; horizontal flips are off', dataset)
    common = dict(dataset=dataset, keypoints=category.keypoints, sigmas=list(sigmas),
                  pose=constants.COCO_UPRIGHT_POSE if is_coco_person else None,
                  hflip=hflip or None, upsample_stride=upsample)
    cif = headmeta.Cif(name='cif', draw_skeleton=skeleton,
                       score_weights=constants.COCO_PERSON_SCORE_WEIGHTS if is_coco_person else None,
                       **common)
    caf = headmeta.Caf(name='caf', skeleton=skeleton, **common)
    return [cif, caf]


class CocoKp(DataModule):
    """COCO-format keypoints: CIF + CAF heads of one category."""

    name = 'cocokp'
    default_square_edge = 385

    def __init__(self, *, train_annotations, val_annotations, train_image_dir, val_image_dir,
                 augmentation: Augmentation, upsample: int = 1, min_kp_anns: int = 1, bmin: float = 0.1,
                 category_id: int | None = None, encoder_settings: encoder.EncoderSettings,
                 eval_settings: 'EvalSettings | None' = None):
        self.train_annotations = str(train_annotations)
        self.val_annotations = str(val_annotations)
        self.train_image_dir = str(train_image_dir)
        self.val_image_dir = str(val_image_dir)
        self.augmentation = augmentation
        self.upsample = upsample
        self.min_kp_anns = min_kp_anns
        self.bmin = bmin
        self.encoder_settings = encoder_settings
        self.eval_settings = eval_settings or EvalSettings()
        self._train_data = None
        self.category = self._read_category(category_id)
        self.head_metas = head_metas_for(self.category, self.name, upsample)

    def _read_category(self, category_id: int | None) -> KeypointCategory:
        """The category (keypoints, skeleton, sigmas) from the training json; from the validation json
        when only that one exists (evaluation and prediction need no training set)."""
        if pathlib.Path(self.train_annotations).is_file() or not pathlib.Path(self.val_annotations).is_file():
            self._train_data = load_json(self.train_annotations, self.flag('train-annotations'))
            return keypoint_category(self._train_data, self.train_annotations, category_id)
        LOG.info('%s: %s not found; keypoints and skeleton from %s', self.name, self.train_annotations,
                 self.val_annotations)
        return keypoint_category(load_json(self.val_annotations, self.flag('val-annotations')),
                                 self.val_annotations, category_id)

    @classmethod
    def flag(cls, name: str) -> str:
        return f'--{cls.name}-{name}'

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(f'dataset {cls.name}')
        cls.path_cli(group)
        Augmentation.cli(group, cls.name, cls.default_square_edge)
        cls.head_cli(group)
        EvalSettings.cli(parser)

    @classmethod
    def path_cli(cls, group):
        prefix = cls.name
        group.add_argument(f'--{prefix}-train-annotations',
                           default='data-mscoco/annotations/person_keypoints_train2017.json',
                           help='COCO-format keypoint json of the training set')
        group.add_argument(f'--{prefix}-val-annotations',
                           default='data-mscoco/annotations/person_keypoints_val2017.json',
                           help='COCO-format keypoint json of the validation set')
        group.add_argument(f'--{prefix}-train-image-dir', default='data-mscoco/images/train2017/',
                           help='folder of the training images (json file names are relative to it)')
        group.add_argument(f'--{prefix}-val-image-dir', default='data-mscoco/images/val2017/',
                           help='folder of the validation images')
        group.add_argument(f'--{prefix}-category-id', type=int, default=None,
                           help='category to train (default: the first category with keypoints)')
        group.add_argument(f'--{prefix}-min-kp-anns', type=int, default=1,
                           help='train only on images with at least this many annotated people')

    @classmethod
    def head_cli(cls, group):
        prefix = cls.name
        group.add_argument(f'--{prefix}-upsample', type=int, default=1,
                           help='pixel-shuffle upsampling of the heads (2 halves the head stride)')
        group.add_argument(f'--{prefix}-bmin', type=float, default=0.1,
                           help='b_min in pixels: the smallest localisation uncertainty')

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'CocoKp':
        get = lambda name: getattr(args, f'{cls.name}_{name}')  # noqa: E731
        return cls(train_annotations=get('train_annotations'), val_annotations=get('val_annotations'),
                   train_image_dir=get('train_image_dir'), val_image_dir=get('val_image_dir'),
                   category_id=get('category_id'), min_kp_anns=get('min_kp_anns'),
                   **cls.common_kwargs(args))

    @classmethod
    def common_kwargs(cls, args) -> dict:
        get = lambda name: getattr(args, f'{cls.name}_{name}')  # noqa: E731
        if get('upsample') < 1:
            raise ValueError(f'{cls.flag("upsample")} must be >= 1, got {get("upsample")}')
        if get('bmin') <= 0:
            raise ValueError(f'{cls.flag("bmin")} must be positive, got {get("bmin")}')
        return dict(augmentation=Augmentation.from_args(args, cls.name), upsample=get('upsample'),
                    bmin=get('bmin'), encoder_settings=encoder.EncoderSettings.from_args(args),
                    eval_settings=EvalSettings.from_args(args))

    def describe(self) -> dict:
        return {'category': self.category.name, 'keypoints': self.category.keypoints,
                'train_annotations': self.train_annotations, 'val_annotations': self.val_annotations}

    def _preprocess(self):
        cif = self.head_metas[0]
        encoders = encoder.factory(self.head_metas, self.encoder_settings, bmin=self.bmin)
        a = self.augmentation
        return transforms.train_pipeline(
            a.square_edge, encoders=encoders, augmentation=a.enabled, extended_scale=a.extended_scale,
            rescale_images=a.rescale_images, keypoints=cif.keypoints, hflip=cif.hflip,
            hflip_probability=a.hflip if cif.hflip else 0.0, upright_rotation=a.rotate,
            orientation_invariant=a.orientation_invariant, blur=a.blur, color_jitter=a.color_jitter,
            jpeg=0.1 if a.color_jitter else 0.0, grayscale=0.01 if a.color_jitter else 0.0)

    def _dataset(self, data, annotations, image_dir, split) -> CocoKeypoints:
        return CocoKeypoints(data, annotations, image_dir, self.category, self._preprocess(),
                             dataset_name=self.name, min_kp_anns=self.min_kp_anns,
                             image_dir_flag=self.flag(f'{split}-image-dir'))

    def _loader(self, dataset, loader: LoaderSettings, shuffle: bool):
        generator = torch.Generator()  # seeds the worker processes
        generator.manual_seed(loader.worker_seed)
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, sampler=loader.sampler(len(dataset), shuffle=shuffle),
            num_workers=loader.workers, pin_memory=loader.pin_memory, drop_last=True,
            collate_fn=collate_images_targets_meta, generator=generator,
            persistent_workers=loader.workers > 0)

    def train_loader(self, loader: LoaderSettings):
        if self._train_data is None:
            self._train_data = load_json(self.train_annotations, self.flag('train-annotations'))
        dataset = self._dataset(self._train_data, self.train_annotations, self.train_image_dir, 'train')
        self._check_batches(dataset, loader, 'train')
        return self._loader(dataset, loader, shuffle=True)

    def val_loader(self, loader: LoaderSettings):
        data = load_json(self.val_annotations, self.flag('val-annotations'))
        keypoint_category(data, self.val_annotations, self.category.id)  # same category must exist
        dataset = self._dataset(data, self.val_annotations, self.val_image_dir, 'val')
        self._check_batches(dataset, loader, 'val')
        return self._loader(dataset, loader, shuffle=False)

    def eval_loader(self, loader: LoaderSettings, long_edge: int | None = -1):
        """Validation images without augmentation: ``(images, annotations, metas)`` batches.

        ``annotations`` are the ground truth in the coordinates of the network input (for oracle fields);
        metrics compare predictions mapped back to the original images with the json itself.
        ``long_edge=-1`` takes ``--coco-eval-long-edge``.
        """
        long_edge = self.eval_settings.long_edge if long_edge == -1 else long_edge
        pad = 'tight' if loader.batch_size == 1 else 'center'
        if pad == 'center' and long_edge is None:
            raise ValueError('batches of several evaluation images need --coco-eval-long-edge (or --long-edge)')
        data = load_json(self.val_annotations, self.flag('val-annotations'))
        keypoint_category(data, self.val_annotations, self.category.id)
        dataset = CocoKeypoints(data, self.val_annotations, self.val_image_dir, self.category,
                                transforms.eval_pipeline(long_edge, pad=pad, multiple=16),
                                dataset_name=self.name,
                                min_kp_anns=1 if self.eval_settings.annotation_filter else 0,
                                image_dir_flag=self.flag('val-image-dir'))
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, shuffle=False, num_workers=loader.workers,
            pin_memory=loader.pin_memory, collate_fn=collate_images_anns_meta)

    def metrics(self) -> list:
        """COCO keypoint AP with this dataset's sigmas."""
        from openfields.metric.coco import Coco
        cif = self.head_metas[0]
        return [Coco(self.val_annotations, iou_type='keypoints', category_id=self.category.id,
                     sigmas=cif.sigmas, keypoint_names=cif.keypoints)]

    def _check_batches(self, dataset, loader: LoaderSettings, split: str):
        if len(dataset) // loader.world_size < loader.batch_size:
            processes = f' x {loader.world_size} processes' if loader.world_size > 1 else ''
            raise ValueError(f'{self.flag(split + "-annotations")}: {len(dataset)} usable images, fewer '
                             f'than --batch-size {loader.batch_size}{processes} (full batches only)')
