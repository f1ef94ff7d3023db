"""Keypoint datasets in COCO's format: CIF + CAF heads of one category (or, with ``--<dataset>-heads heatmap``,
DeepLabCut's heatmap head with location refinement), trained through the transforms, encoders and collate
functions of the core.

:class:`KeypointDataModule` holds what every keypoint dataset shares: its category, augmentation, head
metas, encoders, training pipeline and loader flags. :class:`CocoKeypointModule` adds the COCO json files
(a training and a validation json, two image folders): keypoint names, skeleton and sigmas come from the
json's category, so CrowdPose, animal sets or a lab's own data train without code. COCO's 17 published
sigmas (and reference pose and score weights) are used for the COCO person category, a category's own
``sigmas`` field when it has one, and :data:`DEFAULT_SIGMA` for every keypoint otherwise. Horizontal flips
swap left/right keypoints found by name; when no pairs are found, flipping is off (and the log says so).

Plugins register subclasses under their own name (``cocokp``, ``crowdpose``, ``synthetic``, ``dlc``); every
flag is prefixed with that name.
"""

import argparse
import dataclasses
import logging
import math
import pathlib
from typing import ClassVar

import torch

from openfields import encoder, headmeta, transforms
from . import coco_person
from .augmentation import Augmentation
from .coco import CocoKeypoints, KeypointCategory, keypoint_category, load_json
from .collate import collate_images_anns_meta, collate_images_targets_meta
from .evaluation import EvalSettings
from .module import DataModule, LoaderSettings
from .skeleton import chain_skeleton

LOG = logging.getLogger(__name__)

# Sigma used for every keypoint of a COCO-format category without published sigmas (the mean of COCO's
# person sigmas, rounded).
DEFAULT_SIGMA = 0.05


def as_loaded(image, anns, meta):
    """The preprocess of :meth:`KeypointDataModule.raw_dataset`: samples as read (a function, not a lambda:
    DataLoader workers may pickle it)."""
    return image, anns, meta


def head_metas_for(category: KeypointCategory, dataset: str, upsample: int, *, base_stride: int,
                   hflip: dict[str, str] | None = None) -> list[headmeta.Base]:
    """CIF and CAF metas from a json category (COCO person defaults where they apply), for a basenet of
    stride ``base_stride``; ``hflip``: the flip map (default: left/right pairs found by name)."""
    is_coco_person = category.keypoints == coco_person.COCO_KEYPOINTS
    if category.sigmas is not None:
        sigmas = category.sigmas
    elif is_coco_person:
        sigmas = coco_person.COCO_PERSON_SIGMAS
    else:
        sigmas = [DEFAULT_SIGMA] * len(category.keypoints)
        LOG.info('%s: category %r has no sigmas; using %.3f for every keypoint',
                 dataset, category.name, DEFAULT_SIGMA)
    skeleton = category.skeleton
    if not skeleton:  # a category built in code; one read from a json has a derived skeleton
        skeleton = chain_skeleton(len(category.keypoints))
        LOG.info('%s: category %r has no skeleton; connecting keypoints in order: %s',
                 dataset, category.name, skeleton)
    if hflip is None:
        hflip = headmeta.hflip_from_names(category.keypoints)
    if not hflip:
        LOG.info('%s: no left/right keypoint pairs found by name; horizontal flips are off', dataset)
    common = dict(dataset=dataset, keypoints=category.keypoints, sigmas=list(sigmas),
                  pose=coco_person.COCO_UPRIGHT_POSE if is_coco_person else None,
                  hflip=hflip or None, upsample_stride=upsample, base_stride=base_stride)
    cif = headmeta.Cif(name='cif', draw_skeleton=skeleton,
                       score_weights=coco_person.COCO_PERSON_SCORE_WEIGHTS if is_coco_person else None,
                       **common)
    caf = headmeta.Caf(name='caf', skeleton=skeleton, **common)
    return [cif, caf]


def dense_head_meta(caf: headmeta.Caf, dense_pairs: list[tuple[int, int]], flag: str) -> headmeta.Caf:
    """A dense Caf head beside the sparse ``caf``: the ``dense_pairs`` it does not already have, named
    ``caf<N>`` after their number (OpenPifPaf's ``caf25`` for COCO persons). As OpenPifPaf's, it learns an
    edge only where both joints are in the image, and not where both already have a short sparse
    connection (``dense_to_sparse_radius``): the dense head adds what the sparse skeleton cannot reach."""
    sparse = {frozenset(pair) for pair in caf.skeleton}
    extra = [tuple(pair) for pair in dense_pairs if frozenset(pair) not in sparse]
    if not extra:
        raise ValueError(f'{flag}: every dense connection is already in the skeleton {caf.skeleton}')
    return dataclasses.replace(caf, name=f'caf{len(extra)}', skeleton=extra, sparse_skeleton=list(caf.skeleton),
                               only_in_field_of_view=True, draw_skeleton=None)


HEAD_FAMILIES = ('cif', 'heatmap')


@dataclasses.dataclass(frozen=True)
class HeadSettings:
    """Which heads a keypoint dataset trains (``--<dataset>-heads``) and the heatmap head's layout, targets,
    loss and read-out (``--<dataset>-heatmap-*``, DeepLabCut's HeatmapHead; see :class:`headmeta.Heatmap`).
    Defaults are the flag defaults: DeepLabCut's resnet_50 head."""

    family: str = 'cif'
    target: str = 'gaussian'
    pos_dist_thresh: float = 17.0
    locref: bool = True
    locref_std: float = 7.2801
    apply_sigmoid: bool = False
    clip_scores: bool = True
    heatmap_loss: str = 'mse'
    locref_loss: str = 'huber'
    heatmap_weight: float = 1.0
    locref_weight: float = 0.05
    deconv_channels: tuple[int, ...] = ()
    deconv_kernels: tuple[int, ...] = (3,)
    deconv_strides: tuple[int, ...] = (2,)
    final_conv_kernel: int = 0

    @staticmethod
    def cli(group, prefix: str) -> None:
        d = HeadSettings()
        group.add_argument(f'--{prefix}-heads', choices=HEAD_FAMILIES, default=None,
                           help='the heads to train: cif (CIF + CAF, composite fields; the default) or heatmap '
                                '(DeepLabCut\'s heatmap head with location refinement, one pose per image: single '
                                'animal or top-down crops); eval takes the checkpoint\'s unless given')
        group.add_argument(f'--{prefix}-heatmap-target', choices=('gaussian', 'plateau'), default=d.target,
                           help='heatmap targets: a Gaussian of sigma 2/3 of the keypoint radius (pos-dist-thresh '
                                'below), or 1 within it (DeepLabCut\'s HeatmapGaussianGenerator / '
                                'HeatmapPlateauGenerator)')
        group.add_argument(f'--{prefix}-heatmap-pos-dist-thresh', type=float, default=d.pos_dist_thresh,
                           metavar='PX', help='heatmap keypoint radius in input pixels (DeepLabCut pos_dist_thresh)')
        group.add_argument(f'--{prefix}-heatmap-locref', action=argparse.BooleanOptionalAction, default=d.locref,
                           help='location refinement: offset maps from each cell to the keypoint')
        group.add_argument(f'--{prefix}-heatmap-locref-std', type=float, default=d.locref_std, metavar='PX',
                           help='locref targets are offsets in pixels divided by this (DeepLabCut locref_std)')
        group.add_argument(f'--{prefix}-heatmap-sigmoid', action=argparse.BooleanOptionalAction,
                           default=d.apply_sigmoid,
                           help='the heatmaps are logits: a sigmoid gives the scores (DeepLabCut apply_sigmoid; '
                                f'use with --{prefix}-heatmap-loss bce)')
        group.add_argument(f'--{prefix}-heatmap-clip-scores', action=argparse.BooleanOptionalAction,
                           default=d.clip_scores, help='clip the decoded scores to [0, 1] (DeepLabCut clip_scores)')
        group.add_argument(f'--{prefix}-heatmap-loss', choices=('mse', 'bce'), default=d.heatmap_loss,
                           help='heatmap loss: squared error, or binary cross-entropy on logits')
        group.add_argument(f'--{prefix}-heatmap-locref-loss', choices=('huber', 'mse'), default=d.locref_loss,
                           help='locref loss: Huber (delta 1) or squared error')
        group.add_argument(f'--{prefix}-heatmap-weight', type=float, default=d.heatmap_weight,
                           help='weight of the heatmap loss')
        group.add_argument(f'--{prefix}-heatmap-locref-weight', type=float, default=d.locref_weight,
                           help='weight of the locref loss')
        group.add_argument(f'--{prefix}-heatmap-deconv-channels', type=int, nargs='*',
                           default=list(d.deconv_channels), metavar='N',
                           help='output channels of every deconvolution but the last (which gives the maps)')
        group.add_argument(f'--{prefix}-heatmap-deconv-kernels', type=int, nargs='*',
                           default=list(d.deconv_kernels), metavar='K', help='odd kernel size per deconvolution')
        group.add_argument(f'--{prefix}-heatmap-deconv-strides', type=int, nargs='*',
                           default=list(d.deconv_strides), metavar='S',
                           help='stride per deconvolution; their product divides the basenet stride')
        group.add_argument(f'--{prefix}-heatmap-final-conv', type=int, default=d.final_conv_kernel, metavar='K',
                           help='kernel size of a final convolution giving the maps (0: the last deconvolution '
                                'gives them)')

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str) -> 'HeadSettings':
        get = lambda name: getattr(args, f'{prefix}_{name}')  # noqa: E731
        return cls(family=get('heads') or cls.family, target=get('heatmap_target'),
                   pos_dist_thresh=get('heatmap_pos_dist_thresh'), locref=get('heatmap_locref'),
                   locref_std=get('heatmap_locref_std'), apply_sigmoid=get('heatmap_sigmoid'),
                   clip_scores=get('heatmap_clip_scores'), heatmap_loss=get('heatmap_loss'),
                   locref_loss=get('heatmap_locref_loss'), heatmap_weight=get('heatmap_weight'),
                   locref_weight=get('heatmap_locref_weight'),
                   deconv_channels=tuple(get('heatmap_deconv_channels')),
                   deconv_kernels=tuple(get('heatmap_deconv_kernels')),
                   deconv_strides=tuple(get('heatmap_deconv_strides')),
                   final_conv_kernel=get('heatmap_final_conv'))


def heatmap_head_meta(cif: headmeta.Cif, settings: HeadSettings, flag: str) -> headmeta.Heatmap:
    """The heatmap head of the keypoints of ``cif`` (names, sigmas, flips, drawing); a ValueError naming
    ``flag`` (``--<dataset>-heads``) for a layout the head cannot have."""
    layout = dict(target=settings.target, pos_dist_thresh=settings.pos_dist_thresh, locref=settings.locref,
                  locref_std=settings.locref_std, apply_sigmoid=settings.apply_sigmoid,
                  clip_scores=settings.clip_scores, heatmap_loss=settings.heatmap_loss,
                  locref_loss=settings.locref_loss, heatmap_weight=settings.heatmap_weight,
                  locref_weight=settings.locref_weight, deconv_channels=list(settings.deconv_channels),
                  deconv_kernels=list(settings.deconv_kernels), deconv_strides=list(settings.deconv_strides),
                  final_conv_kernel=settings.final_conv_kernel)
    upsample = math.prod(settings.deconv_strides)
    if cif.base_stride and cif.base_stride % upsample:
        raise ValueError(f'{flag} heatmap: the deconvolution strides {list(settings.deconv_strides)} upsample by '
                         f'{upsample}, which does not divide the basenet stride {cif.base_stride}')
    try:
        return headmeta.Heatmap(name='heatmap', dataset=cif.dataset, keypoints=cif.keypoints, sigmas=cif.sigmas,
                                pose=cif.pose, draw_skeleton=cif.draw_skeleton, score_weights=cif.score_weights,
                                hflip=cif.hflip, upsample_stride=upsample, base_stride=cif.base_stride, **layout)
    except ValueError as error:  # a value of the --<dataset>-heatmap-* flags
        raise ValueError(f'{flag} heatmap, {flag.removesuffix("heads")}heatmap-*: {error}') from None


class KeypointDataModule(DataModule):
    """CIF + CAF heads of one keypoint category (or a heatmap head: ``heads``): augmentation, encoders, the
    training pipeline and loaders.

    Subclasses give the images (``train_loader``, ``val_loader``, ``eval_loader``) and ``metrics``; the
    head metas come from :meth:`make_head_metas` (override it for a dataset with its own constants); with
    ``heads.family == 'heatmap'`` one heatmap head of the CIF head's keypoints replaces them.
    """

    default_square_edge: ClassVar[int] = 385
    # False when the annotations' ``bbox`` is only the extent of their keypoints (DeepLabCut projects): top-down
    # boxes then come from the keypoints plus a margin, as DeepLabCut's bbox_margin does
    drawn_boxes: ClassVar[bool] = True

    def __init__(self, *, category: KeypointCategory, augmentation: Augmentation,
                 encoder_settings: encoder.EncoderSettings, base_stride: int, upsample: int = 1,
                 min_kp_anns: int = 1, bmin: float = 0.1, eval_settings: EvalSettings | None = None,
                 with_dense: bool = False, heads: HeadSettings = HeadSettings()):
        """``base_stride``: the stride of the basenet the heads will sit on (see
        :func:`openfields.network.factory.base_stride`); the head metas are created with it. ``with_dense``:
        a third head, dense Caf, with :meth:`dense_connections`."""
        self.category = category
        self.base_stride = base_stride
        self.augmentation = augmentation
        self.encoder_settings = encoder_settings
        self.upsample = upsample
        self.min_kp_anns = min_kp_anns
        self.bmin = bmin
        self.eval_settings = eval_settings or EvalSettings()
        self.heads = heads
        self.head_metas = self.make_head_metas()
        if heads.family == 'heatmap':
            self._check_heatmap_flags(with_dense)
            self.head_metas = [heatmap_head_meta(self.head_metas[0], heads, self.flag('heads'))]
        if with_dense:
            self.head_metas.append(dense_head_meta(self.head_metas[1], self.dense_connections(),
                                                   self.flag('with-dense')))
        cif = self.head_metas[0]
        augmentation.hflip_probability(cif.hflip, self.flag('hflip'), cif.keypoints)  # refused up front

    def _check_heatmap_flags(self, with_dense: bool) -> None:
        """Flags of the CIF + CAF heads that a heatmap head cannot follow are refused, naming them."""
        if with_dense:
            raise ValueError(f'{self.flag("with-dense")}: a dense Caf head needs {self.flag("heads")} cif, not heatmap')
        if self.upsample != 1:
            raise ValueError(f'{self.flag("upsample")} {self.upsample}: the heatmap head upsamples by its '
                             f'deconvolutions ({self.flag("heatmap-deconv-strides")}), not by pixel shuffle')

    def make_head_metas(self) -> list[headmeta.Base]:
        """The CIF and CAF metas of ``self.category`` (:func:`head_metas_for`)."""
        return head_metas_for(self.category, self.name, self.upsample, base_stride=self.base_stride,
                              hflip=self.augmentation.flip_map(self.category.keypoints, self.flag('hflip-pairs')))

    def dense_connections(self) -> list[tuple[int, int]]:
        """The dense head's connections (1-based pairs): OpenPifPaf's 25 for COCO's person keypoints, else the
        category's ``dense_skeleton``; a ValueError naming ``--<dataset>-with-dense`` when there are none."""
        if self.category.keypoints == coco_person.COCO_KEYPOINTS:
            return coco_person.DENSE_COCO_PERSON_CONNECTIONS
        if self.category.dense_skeleton:
            return self.category.dense_skeleton
        raise ValueError(f'{self.flag("with-dense")}: category {self.category.name!r} declares no dense connections '
                         '(a "dense_skeleton" list of 1-based keypoint pairs beside its "skeleton"); COCO\'s 17 '
                         'person keypoints have OpenPifPaf\'s 25')

    @classmethod
    def flag(cls, name: str) -> str:
        return f'--{cls.name}-{name}'

    @classmethod
    def head_cli(cls, group):
        prefix = cls.name
        group.add_argument(f'--{prefix}-upsample', type=int, default=1,
                           help='pixel-shuffle upsampling of the heads (2 halves the head stride)')
        group.add_argument(f'--{prefix}-bmin', type=float, default=0.1,
                           help='b_min in pixels: the smallest localisation uncertainty')
        group.add_argument(f'--{prefix}-with-dense', default=False, action='store_true',
                           help='a third head, dense Caf, with extra connections (OpenPifPaf\'s 25 for COCO '
                                'persons, else the category\'s "dense_skeleton"); decode with --dense-connections')
        HeadSettings.cli(group, prefix)

    @classmethod
    def common_kwargs(cls, args, base_stride: int) -> dict:
        """The constructor arguments every keypoint dataset reads from the same flags."""
        get = lambda name: getattr(args, f'{cls.name}_{name}')  # noqa: E731
        if get('upsample') < 1:
            raise ValueError(f'{cls.flag("upsample")} must be >= 1, got {get("upsample")}')
        if get('bmin') <= 0:
            raise ValueError(f'{cls.flag("bmin")} must be positive, got {get("bmin")}')
        return dict(augmentation=Augmentation.from_args(args, cls.name), base_stride=base_stride,
                    upsample=get('upsample'),
                    bmin=get('bmin'), encoder_settings=encoder.EncoderSettings.from_args(args),
                    eval_settings=EvalSettings.from_args(args), with_dense=get('with_dense'),
                    heads=HeadSettings.from_args(args, cls.name))

    def raw_dataset(self, split: str) -> CocoKeypoints:
        """The ``'train'`` or ``'val'`` images and annotations without any preprocessing: samples are the
        ``(PIL image, anns, meta)`` as read (top-down crops and evaluation on original images start there)."""
        raise NotImplementedError(f'--dataset {self.name} gives no raw dataset')

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

    def _loader(self, dataset, loader: LoaderSettings, shuffle: bool, collate_fn=collate_images_targets_meta):
        generator = torch.Generator()  # seeds the worker processes
        generator.manual_seed(loader.worker_seed)
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, sampler=loader.sampler(len(dataset), shuffle=shuffle),
            num_workers=loader.workers, pin_memory=loader.pin_memory, drop_last=True,
            collate_fn=collate_fn, generator=generator,
            persistent_workers=loader.workers > 0)

    def _check_batches(self, dataset, loader: LoaderSettings, split: str):
        if len(dataset) // loader.world_size < loader.batch_size:
            processes = f' x {loader.world_size} processes' if loader.world_size > 1 else ''
            raise ValueError(f'{self.flag(split + "-annotations")}: {len(dataset)} usable images, fewer '
                             f'than --batch-size {loader.batch_size}{processes} (full batches only)')


class CocoKeypointModule(KeypointDataModule):
    """A COCO-format keypoint json and image folder for training and one for validation.

    The category is read from the training json (from the validation json when only that one exists:
    evaluation and prediction need no training set); ``default_paths`` are the path flags' defaults.
    """

    default_paths: ClassVar[dict[str, str]] = {}

    def __init__(self, *, train_annotations, val_annotations, train_image_dir, val_image_dir,
                 category_id: int | None = None, keypoints_key: str | None = None, eval_testdev: bool = False,
                 **kwargs):
        self.keypoints_key = keypoints_key  # the annotations' field holding the keypoints (Human-Art)
        self.eval_testdev = eval_testdev  # the validation json is an image-info json: predict, write a zip
        self.train_annotations = str(train_annotations)
        self.val_annotations = str(val_annotations)
        self.train_image_dir = str(train_image_dir)
        self.val_image_dir = str(val_image_dir)
        self._train_data = None
        super().__init__(category=self._read_category(category_id), **kwargs)

    def _read_category(self, category_id: int | None) -> KeypointCategory:
        """The category (keypoints, skeleton, sigmas) from the training json; from the validation json
        when only that one exists (evaluation and prediction need no training set)."""
        if pathlib.Path(self.train_annotations).is_file() or not pathlib.Path(self.val_annotations).is_file():
            self._train_data = self._load(self.train_annotations, self.flag('train-annotations'))
            return keypoint_category(self._train_data, self.train_annotations, category_id)
        LOG.info('%s: %s not found; keypoints and skeleton from %s', self.name, self.train_annotations,
                 self.val_annotations)
        data = self._load(self.val_annotations, self.flag('val-annotations'))
        if self.eval_testdev and not any(c.get('keypoints') for c in data['categories']):
            return coco_person.person_category(data, self.val_annotations, category_id)
        return keypoint_category(data, self.val_annotations, category_id)

    def _check_val_category(self, data: dict) -> None:
        """The category being trained exists in the validation json (an image-info json's ``person`` may
        declare no keypoints: COCO's 17 are its)."""
        if self.eval_testdev and not any(c.get('keypoints') for c in data['categories']):
            coco_person.person_category(data, self.val_annotations, self.category.id)
        else:
            keypoint_category(data, self.val_annotations, self.category.id)

    def _load(self, path: str, flag: str) -> dict:
        image_info = self.eval_testdev and flag == self.flag('val-annotations')
        return load_json(path, flag, self.keypoints_key, image_info=image_info)

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(f'dataset {cls.name}')
        cls.path_cli(group)
        Augmentation.cli(group, cls.name, cls.default_square_edge)
        cls.head_cli(group)
        EvalSettings.cli(parser)

    @classmethod
    def path_cli(cls, group):
        prefix, default = cls.name, cls.default_paths.get
        group.add_argument(f'--{prefix}-train-annotations', default=default('train_annotations'),
                           help='COCO-format keypoint json of the training set')
        group.add_argument(f'--{prefix}-val-annotations', default=default('val_annotations'),
                           help='COCO-format keypoint json of the validation set')
        group.add_argument(f'--{prefix}-train-image-dir', default=default('train_image_dir'),
                           help='folder of the training images (json file names are relative to it)')
        group.add_argument(f'--{prefix}-val-image-dir', default=default('val_image_dir'),
                           help='folder of the validation images')
        group.add_argument(f'--{prefix}-category-id', type=int, default=None,
                           help='category to train (default: the first category with keypoints)')
        group.add_argument(f'--{prefix}-keypoints-key', default=None, metavar='FIELD',
                           help='the annotations\' field that holds the keypoints, e.g. keypoints_21 (Human-Art; '
                                'default: "keypoints", or a keypoints_N field matching the category\'s N names '
                                'when "keypoints" does not)')
        group.add_argument(f'--{prefix}-eval-testdev', default=False, action='store_true',
                           help='the validation json is an image-info json (COCO test-dev style: images and '
                                'categories, no annotations): openfields.eval predicts every image and writes '
                                'the submission zip PREFIX.zip; no metrics')
        group.add_argument(f'--{prefix}-min-kp-anns', type=int, default=1,
                           help='train only on images with at least this many annotated people')

    @classmethod
    def from_args(cls, args: argparse.Namespace, base_stride: int) -> 'CocoKeypointModule':
        get = lambda name: getattr(args, f'{cls.name}_{name}')  # noqa: E731
        return cls(train_annotations=get('train_annotations'), val_annotations=get('val_annotations'),
                   train_image_dir=get('train_image_dir'), val_image_dir=get('val_image_dir'),
                   category_id=get('category_id'), min_kp_anns=get('min_kp_anns'),
                   keypoints_key=getattr(args, f'{cls.name}_keypoints_key', None),
                   eval_testdev=getattr(args, f'{cls.name}_eval_testdev', False),
                   **cls.common_kwargs(args, base_stride))

    def describe(self) -> dict:
        return {'category': self.category.name, 'keypoints': self.category.keypoints,
                'train_annotations': self.train_annotations, 'val_annotations': self.val_annotations}

    def _dataset(self, data, annotations, image_dir, split, batch_resize: bool = False) -> CocoKeypoints:
        return CocoKeypoints(data, annotations, image_dir, self.category, self._preprocess(batch_resize),
                             dataset_name=self.name, min_kp_anns=self.min_kp_anns,
                             image_dir_flag=self.flag(f'{split}-image-dir'))

    def raw_dataset(self, split: str) -> CocoKeypoints:
        """``'train'`` (images with at least ``--<name>-min-kp-anns`` annotated individuals) or ``'val'``
        (every image) of the json files, as read."""
        if split == 'train':
            if self._train_data is None:
                self._train_data = self._load(self.train_annotations, self.flag('train-annotations'))
            return CocoKeypoints(self._train_data, self.train_annotations, self.train_image_dir, self.category,
                                 as_loaded, dataset_name=self.name, min_kp_anns=self.min_kp_anns,
                                 image_dir_flag=self.flag('train-image-dir'))
        if split == 'val':
            data = self._load(self.val_annotations, self.flag('val-annotations'))
            keypoint_category(data, self.val_annotations, self.category.id)  # same category must exist
            return CocoKeypoints(data, self.val_annotations, self.val_image_dir, self.category, as_loaded,
                                 dataset_name=self.name, min_kp_anns=0, image_dir_flag=self.flag('val-image-dir'))
        raise ValueError(f'--dataset {self.name}: no split {split!r} (train, val)')

    def train_loader(self, loader: LoaderSettings):
        if self._train_data is None:
            self._train_data = self._load(self.train_annotations, self.flag('train-annotations'))
        batch_resize = self.augmentation.batch_resize is not None
        dataset = self._dataset(self._train_data, self.train_annotations, self.train_image_dir, 'train',
                                batch_resize)
        self._check_batches(dataset, loader, 'train')
        collate = self.augmentation.train_collate(self._encoders(), self.head_metas[0].base_stride, self.name)
        return self._loader(dataset, loader, shuffle=True, collate_fn=collate)

    def val_loader(self, loader: LoaderSettings):
        data = self._load(self.val_annotations, self.flag('val-annotations'))
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
        data = self._load(self.val_annotations, self.flag('val-annotations'))
        self._check_val_category(data)
        dataset = CocoKeypoints(data, self.val_annotations, self.val_image_dir, self.category,
                                transforms.eval_pipeline(long_edge, pad=pad, multiple=16),
                                dataset_name=self.name,
                                min_kp_anns=int(self.eval_settings.annotation_filter and not self.eval_testdev),
                                image_dir_flag=self.flag('val-image-dir'))
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, shuffle=False, num_workers=loader.workers,
            pin_memory=loader.pin_memory, collate_fn=collate_images_anns_meta)

    def metrics(self) -> list:
        """:meth:`scoring_metrics`; with ``--<dataset>-eval-testdev`` the submission of every image instead."""
        if not self.eval_testdev:
            return self.scoring_metrics()
        from openfields.metric.submission import Submission
        data = self._load(self.val_annotations, self.flag('val-annotations'))
        return [Submission(self.val_annotations, [image['id'] for image in data['images']],
                           category_id=self.category.id, n_keypoints=len(self.category.keypoints))]

    def scoring_metrics(self) -> list:
        """COCO keypoint AP with this dataset's sigmas."""
        from openfields.metric.coco import Coco
        cif = self.head_metas[0]
        # the loaded json: its keypoints may come from another field (--<dataset>-keypoints-key)
        annotations = self._load(self.val_annotations, self.flag('val-annotations'))
        return [Coco(annotations, iou_type='keypoints', category_id=self.category.id,
                     sigmas=cif.sigmas, keypoint_names=cif.keypoints)]
