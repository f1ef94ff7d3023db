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
from openfields.datasets.collate import (BatchResize, BatchResizeCollate, collate_images_anns_meta,
                                         collate_images_targets_meta)

from . import constants

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation of a COCO-style dataset; every part has its own flag."""

    enabled: bool = True
    square_edge: int = 385
    extended_scale: bool = False
    rescale_images: float = 1.0
    hflip: float | None = None  # probability; None: 0.5 when the keypoints have a flip map, else 0
    rotate: float = 0.4  # probability of a uniform rotation within +-30 degrees
    orientation_invariant: float = 0.0  # probability of a rotation by a multiple of 90 degrees
    blur: float = 0.0  # probability
    color_jitter: bool = True
    extras: transforms.ExtraAugmentation = transforms.ExtraAugmentation()  # DeepLabCut's, all off
    batch_resize: BatchResize | None = None  # variable-size training batches (the collate function)

    def hflip_probability(self, flip_map: dict | None, flag: str, keypoints: list[str] | None = None) -> float:
        """The flip probability for keypoints with ``flip_map`` (None for boxes: always flippable); a
        requested flip of keypoints without left/right pairs is refused (it would teach mirrored labels)."""
        if keypoints is not None and not flip_map:
            if self.hflip:
                raise ValueError(f'{flag} {self.hflip}: the keypoints {keypoints} have no left/right pairs to swap '
                                 'when the image is flipped (pairs are found by name: left_x/right_x, leftx/rightx, '
                                 'l_x/r_x, x_l/x_r); a flip without the swap teaches mirrored labels. Rename the '
                                 f'keypoints or pass {flag} 0')
            return 0.0
        return 0.5 if self.hflip is None else self.hflip

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
        group.add_argument(f'--{prefix}-hflip', type=float, default=None,
                           help='probability of a horizontal flip, left/right keypoints swapped by the head\'s '
                                'flip map (default: 0.5 with a flip map, 0 without; non-zero without one is '
                                'refused)')
        group.add_argument(f'--{prefix}-rotate', type=float, default=0.4,
                           help='probability of a rotation by up to +-30 degrees')
        group.add_argument(f'--{prefix}-orientation-invariant', type=float, default=0.0,
                           help='probability of a rotation by a multiple of 90 degrees')
        group.add_argument(f'--{prefix}-blur', type=float, default=0.0, help='probability of a blur')
        group.add_argument(f'--{prefix}-no-color-jitter', dest=f'{prefix}_color_jitter', default=True,
                           action='store_false', help='no colour jitter, JPEG artefacts or grayscale')
        Augmentation.extras_cli(group, prefix)
        BatchResize.cli(group, prefix)

    @staticmethod
    def extras_cli(group, prefix: str):
        """DeepLabCut's augmentations (all off by default)."""
        defaults = transforms.ExtraAugmentation()
        group.add_argument(f'--{prefix}-resize', type=int, nargs=2, default=None, metavar=('WIDTH', 'HEIGHT'),
                           help='first resize to fit inside WIDTH x HEIGHT keeping the aspect ratio, padded at '
                                'the bottom and right to exactly that size')
        group.add_argument(f'--{prefix}-affine', type=float, default=0.0,
                           help='probability of an affine transform on a canvas of the same size (keypoints '
                                'pushed out become unlabelled)')
        group.add_argument(f'--{prefix}-affine-rotation', type=float, default=defaults.affine_rotation,
                           metavar='DEGREES', help='affine: rotation uniform in +-DEGREES')
        group.add_argument(f'--{prefix}-affine-scaling', type=float, nargs=2, default=list(defaults.affine_scaling),
                           metavar=('MIN', 'MAX'), help='affine: scale factor uniform in [MIN, MAX]')
        group.add_argument(f'--{prefix}-affine-translation', type=float, default=defaults.affine_translation,
                           metavar='PIXELS', help='affine: translation uniform in +-PIXELS per axis')
        group.add_argument(f'--{prefix}-crop-sampling', default=defaults.crop_sampling,
                           choices=('people', *transforms.CROP_SAMPLING_METHODS),
                           help='where the square-edge crop goes: people (around the annotations), uniform, '
                                'keypoints (a random keypoint), density (keypoints in crowded places more often) '
                                'or hybrid (uniform or density)')
        group.add_argument(f'--{prefix}-crop-max-shift', type=float, default=defaults.crop_max_shift,
                           help='keypoints/density/hybrid crops: a random shift of up to this fraction of the '
                                'crop (in [0, 0.4])')
        group.add_argument(f'--{prefix}-auto-padding', type=int, default=0, metavar='N',
                           help='pad each side up to the next k * N + 1 pixels, at a random position (0: off)')
        group.add_argument(f'--{prefix}-hist-eq', type=float, default=0.0,
                           help='probability of a histogram equalisation')
        group.add_argument(f'--{prefix}-motion-blur', type=float, default=0.0,
                           help='probability of a motion blur (a line of 3 to 7 pixels at a random angle)')
        group.add_argument(f'--{prefix}-covering', type=float, default=0.0,
                           help='probability of covering 1 to 10 rectangles of 1-5%% of the image sides '
                                '(keypoints under them become unlabelled)')
        group.add_argument(f'--{prefix}-gaussian-noise', type=float, default=0.0, metavar='STD',
                           help='with probability 0.5, add noise of a standard deviation up to STD (0-255 units)')

    @classmethod
    def from_args(cls, args, prefix: str) -> 'Augmentation':
        get = lambda name: getattr(args, f'{prefix}_{name}')  # noqa: E731
        for name in ('hflip', 'rotate', 'orientation_invariant', 'blur'):
            if get(name) is not None and not 0.0 <= get(name) <= 1.0:
                raise ValueError(f'--{prefix}-{name.replace("_", "-")} is a probability in [0, 1], '
                                 f'got {get(name)}')
        if get('square_edge') < 16:
            raise ValueError(f'--{prefix}-square-edge must be at least 16, got {get("square_edge")}')
        extras, batch_resize = cls.extras_from_args(args, prefix), BatchResize.from_args(args, prefix)
        if batch_resize is not None and extras.crop_sampling != 'people':
            raise ValueError(f'--{prefix}-crop-sampling {extras.crop_sampling} and --{prefix}-collate-scale: '
                             'variable-size batches replace the crop; choose one')
        if batch_resize is not None and extras.auto_padding:
            raise ValueError(f'--{prefix}-auto-padding and --{prefix}-collate-scale: variable-size batches set the '
                             f'size (aligned with --{prefix}-collate-multiple); choose one')
        return cls(enabled=get('augmentation'), square_edge=get('square_edge'),
                   extended_scale=get('extended_scale'), rescale_images=get('rescale_images'),
                   hflip=get('hflip'), rotate=get('rotate'),
                   orientation_invariant=get('orientation_invariant'), blur=get('blur'),
                   color_jitter=get('color_jitter'), extras=extras, batch_resize=batch_resize)

    def train_collate(self, encoders, stride: int, prefix: str, finish_before=()):
        """The training ``collate_fn``: fixed-size stacking, or :class:`BatchResizeCollate` that resizes each
        batch and then runs ``finish_before``, the tensor conversion and the ``encoders``."""
        if self.batch_resize is None:
            return collate_images_targets_meta
        finish = transforms.Compose([*finish_before, transforms.ImageToTensor(), transforms.Normalize(),
                                     transforms.Encoders(encoders)])
        return BatchResizeCollate(self.batch_resize.with_multiple(stride, f'--{prefix}-collate-multiple'), finish)

    @staticmethod
    def extras_from_args(args, prefix: str) -> transforms.ExtraAugmentation:
        get = lambda name: getattr(args, f'{prefix}_{name}')  # noqa: E731
        flag = lambda name: f'--{prefix}-{name.replace("_", "-")}'  # noqa: E731
        for name in ('affine', 'hist_eq', 'motion_blur', 'covering'):
            if not 0.0 <= get(name) <= 1.0:
                raise ValueError(f'{flag(name)} is a probability in [0, 1], got {get(name)}')
        low, high = get('affine_scaling')
        checks = [('affine_scaling', 0 < low <= high, 'must be 0 < MIN <= MAX'),
                  ('affine_rotation', get('affine_rotation') >= 0, 'must be >= 0'),
                  ('affine_translation', get('affine_translation') >= 0, 'must be >= 0'),
                  ('crop_max_shift', 0.0 <= get('crop_max_shift') <= 0.4, 'must be in [0, 0.4]'),
                  ('auto_padding', get('auto_padding') >= 0, 'must be >= 0'),
                  ('gaussian_noise', get('gaussian_noise') >= 0, 'must be >= 0'),
                  ('resize', get('resize') is None or min(get('resize')) >= 1, 'must be positive')]
        for name, ok, requirement in checks:
            if not ok:
                raise ValueError(f'{flag(name)} {requirement}, got {get(name)}')
        return transforms.ExtraAugmentation(
            resize=tuple(get('resize')) if get('resize') is not None else None, affine=get('affine'),
            affine_rotation=get('affine_rotation'), affine_scaling=(low, high),
            affine_translation=get('affine_translation'), crop_sampling=get('crop_sampling'),
            crop_max_shift=get('crop_max_shift'), auto_padding=get('auto_padding'), hist_eq=get('hist_eq'),
            motion_blur=get('motion_blur'), covering=get('covering'), gaussian_noise=get('gaussian_noise'))


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
        cif = self.head_metas[0]
        augmentation.hflip_probability(cif.hflip, self.flag('hflip'), cif.keypoints)  # refused up front

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

    def _encoders(self):
        return encoder.factory(self.head_metas, self.encoder_settings, bmin=self.bmin)

    def _preprocess(self, batch_resize: bool = False):
        """The per-sample pipeline; with ``batch_resize`` it stops before sizing and encoding (the collate
        function resizes each batch, then encodes)."""
        cif = self.head_metas[0]
        encoders = self._encoders()
        a = self.augmentation
        return transforms.train_pipeline(
            a.square_edge, encoders=encoders, augmentation=a.enabled, extended_scale=a.extended_scale,
            rescale_images=a.rescale_images, keypoints=cif.keypoints, hflip=cif.hflip,
            hflip_probability=a.hflip_probability(cif.hflip, self.flag('hflip'), cif.keypoints),
            upright_rotation=a.rotate, orientation_invariant=a.orientation_invariant, blur=a.blur,
            color_jitter=a.color_jitter, jpeg=0.1 if a.color_jitter else 0.0,
            grayscale=0.01 if a.color_jitter else 0.0, extras=a.extras, batch_resize=batch_resize)

    def _dataset(self, data, annotations, image_dir, split, batch_resize: bool = False) -> CocoKeypoints:
        return CocoKeypoints(data, annotations, image_dir, self.category, self._preprocess(batch_resize),
                             dataset_name=self.name, min_kp_anns=self.min_kp_anns,
                             image_dir_flag=self.flag(f'{split}-image-dir'))

    def _loader(self, dataset, loader: LoaderSettings, shuffle: bool, collate_fn=collate_images_targets_meta):
        generator = torch.Generator()  # seeds the worker processes
        generator.manual_seed(loader.worker_seed)
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, sampler=loader.sampler(len(dataset), shuffle=shuffle),
            num_workers=loader.workers, pin_memory=loader.pin_memory, drop_last=True,
            collate_fn=collate_fn, generator=generator,
            persistent_workers=loader.workers > 0)

    def train_loader(self, loader: LoaderSettings):
        if self._train_data is None:
            self._train_data = load_json(self.train_annotations, self.flag('train-annotations'))
        batch_resize = self.augmentation.batch_resize is not None
        dataset = self._dataset(self._train_data, self.train_annotations, self.train_image_dir, 'train',
                                batch_resize)
        self._check_batches(dataset, loader, 'train')
        collate = self.augmentation.train_collate(self._encoders(), self.head_metas[0].base_stride, self.name)
        return self._loader(dataset, loader, shuffle=True, collate_fn=collate)

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
