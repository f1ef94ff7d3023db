"""Top-down training data of a keypoint dataset: :class:`TopDownModule` wraps a
:class:`~openfields.datasets.keypoint_module.KeypointDataModule` (``cocokp``, ``crowdpose``, ``synthetic``,
``dlc``, ...) and serves crops of its individuals instead of whole images.

The wrapped module keeps its name, keypoints, metrics and run files; its CIF head (and its CAF head with
``--topdown-caf``) is trained on ``--topdown-crop-width x --topdown-crop-height`` crops around every
annotated individual's box (:mod:`.boxes`), jittered as MMPose's RTMPose (``--topdown-jitter-*``), flipped
with the wrapped dataset's ``--<name>-hflip`` probability; ``--<name>-no-augmentation`` switches jitter and
flips off. Evaluation during training runs on ground-truth boxes (:mod:`.evaluation`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import torch

from .. import encoder, headmeta
from ..datasets.collate import collate_images_targets_meta
from ..datasets.keypoint_module import KeypointDataModule
from ..datasets.module import DataModule, LoaderSettings
from ..decoder.settings import DecoderSettings
from . import boxes as boxes_module
from .boxes import BoxSettings
from .crop_data import InstanceCrops
from .crops import CropSettings, JitterSettings
from .evaluation import TopDownTestSet

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TopDownSettings:
    """Crop size and context, training jitter, the heads trained, and where boxes come from."""

    crop_width: int = 193  # DeepLabCut's 256 x 256 and MMPose's 192 x 256 are rounded up to k * stride + 1
    crop_height: int = 257
    crop_padding: float = 1.25
    jitter_shift: float = 0.16
    jitter_shift_prob: float = 0.3
    jitter_scale: tuple[float, float] = (0.75, 1.25)
    rotation: float = 0.0
    caf: bool = False
    boxes: BoxSettings = BoxSettings()

    def __post_init__(self):
        checks = [
            (self.crop_width >= 1, f'--topdown-crop-width must be >= 1, got {self.crop_width}'),
            (self.crop_height >= 1, f'--topdown-crop-height must be >= 1, got {self.crop_height}'),
            (self.crop_padding > 0, f'--topdown-crop-padding must be positive, got {self.crop_padding}'),
            (self.jitter_shift >= 0, f'--topdown-jitter-shift must be >= 0, got {self.jitter_shift}'),
            (0 <= self.jitter_shift_prob <= 1,
             f'--topdown-jitter-shift-prob must be in [0, 1], got {self.jitter_shift_prob}'),
            (0 < self.jitter_scale[0] <= self.jitter_scale[1],
             f'--topdown-jitter-scale must be 0 < MIN <= MAX, got {list(self.jitter_scale)}'),
            (0 <= self.rotation <= 180, f'--topdown-rotation must be in [0, 180] degrees, got {self.rotation}'),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'TopDownSettings':
        return cls(crop_width=args.topdown_crop_width, crop_height=args.topdown_crop_height,
                   crop_padding=args.topdown_crop_padding, jitter_shift=args.topdown_jitter_shift,
                   jitter_shift_prob=args.topdown_jitter_shift_prob, jitter_scale=tuple(args.topdown_jitter_scale),
                   rotation=args.topdown_rotation, caf=args.topdown_caf, boxes=BoxSettings.from_args(args))

    @property
    def crop(self) -> CropSettings:
        return CropSettings(self.crop_width, self.crop_height, self.crop_padding)

    @property
    def jitter(self) -> JitterSettings:
        return JitterSettings(shift_factor=self.jitter_shift, shift_prob=self.jitter_shift_prob,
                              scale_range=self.jitter_scale, rotation=self.rotation)

    def plain(self) -> dict:
        """Plain values (the training log, checkpoints)."""
        values = dataclasses.asdict(self)
        values['jitter_scale'] = list(self.jitter_scale)
        return values


def cli(parser: argparse.ArgumentParser) -> None:
    """The 'top-down' group, and the 'top-down boxes' group of :mod:`.boxes`."""
    group = parser.add_argument_group('top-down')
    d = TopDownSettings()
    group.add_argument('--topdown-crop-width', type=int, default=d.crop_width, metavar='PIXELS',
                       help='width of the crop of every individual')
    group.add_argument('--topdown-crop-height', type=int, default=d.crop_height, metavar='PIXELS',
                       help='height of the crop of every individual')
    group.add_argument('--topdown-crop-padding', type=float, default=d.crop_padding,
                       help='the box, grown to the crop\'s aspect ratio, is scaled by this for context')
    group.add_argument('--topdown-jitter-shift', type=float, default=d.jitter_shift,
                       help='training: largest shift of the crop centre, as a fraction of the crop region '
                            '(truncated normal)')
    group.add_argument('--topdown-jitter-shift-prob', type=float, default=d.jitter_shift_prob,
                       help='training: probability of a shift')
    group.add_argument('--topdown-jitter-scale', type=float, nargs=2, default=list(d.jitter_scale),
                       metavar=('MIN', 'MAX'), help='training: the crop region is scaled by a factor in [MIN, MAX] '
                                                    '(truncated normal about the middle)')
    group.add_argument('--topdown-rotation', type=float, default=d.rotation, metavar='DEGREES',
                       help='training: the crop turns by an angle uniform in +-DEGREES')
    group.add_argument('--topdown-caf', dest='topdown_caf', action='store_true', default=d.caf,
                       help='train the CAF head on the crops as well')
    group.add_argument('--no-topdown-caf', dest='topdown_caf', action='store_false',
                       help='train the CIF head only (default: one individual per crop needs no associations)')
    boxes_module.cli(parser)


def aligned_side(side: int, base_stride: int, flag: str) -> int:
    """``side`` rounded up to ``k * base_stride + 1`` pixels: the crops' field cells then sit on pixels and the
    encoders' field size is the network's, with or without upsampling heads (as bottom-up square edges)."""
    if base_stride <= 1:
        return side
    aligned = -(-(side - 1) // base_stride) * base_stride + 1
    if aligned != side:
        LOG.info('%s %d: crops of %d pixels (k * %d + 1, the basenet\'s stride)', flag, side, aligned, base_stride)
    return aligned


class TopDownModule(DataModule):
    """Crops of the individuals of ``wrapped`` for training and validation; its metrics on ground-truth
    boxes for evaluation. ``name`` and the head metas are the wrapped module's (CIF; CAF with ``caf``; or its
    heatmap head with ``--<dataset>-heads heatmap``)."""

    def __init__(self, wrapped: KeypointDataModule, settings: TopDownSettings = TopDownSettings()):
        if not isinstance(wrapped, KeypointDataModule):
            raise ValueError(f'--dataset {wrapped.name}: top-down training needs a keypoint dataset')
        self.wrapped = wrapped
        base_stride = wrapped.head_metas[0].base_stride
        self.settings = dataclasses.replace(
            settings, boxes=settings.boxes.for_dataset(wrapped.drawn_boxes),
            crop_width=aligned_side(settings.crop_width, base_stride, '--topdown-crop-width'),
            crop_height=aligned_side(settings.crop_height, base_stride, '--topdown-crop-height'))
        metas = wrapped.head_metas
        if isinstance(metas[0], headmeta.Heatmap) and settings.caf:
            raise ValueError(f'--topdown-caf: a CAF head needs {wrapped.flag("heads")} cif, not heatmap')
        if not isinstance(metas[0], (headmeta.Cif, headmeta.Heatmap)) or (
                settings.caf and not isinstance(metas[1], headmeta.Caf)):
            raise ValueError(f'--dataset {wrapped.name}: top-down needs the heads CIF (and CAF) or a heatmap head, '
                             f'got {[m.name for m in metas]}')
        if any(isinstance(m, headmeta.Caf) and m.sparse_skeleton is not None for m in metas):
            raise ValueError(f'{wrapped.flag("with-dense")}: a dense Caf head is for bottom-up decoding; top-down '
                             'decodes each crop with cifmax')
        self.head_metas = list(metas[:2 if settings.caf else 1])

    @property
    def name(self) -> str:
        return self.wrapped.name

    # --- crops ------------------------------------------------------------------------------------------

    def crops(self, split: str, *, training: bool) -> InstanceCrops:
        """The crops of the ``split`` ('train', 'val') individuals; jittered and flipped when ``training``
        (unless ``--<name>-no-augmentation``)."""
        w = self.wrapped
        augment = training and w.augmentation.enabled
        cif = self.head_metas[0]
        flip = w.augmentation.hflip_probability(cif.hflip, w.flag('hflip'), cif.keypoints) if augment else 0.0
        encoders = encoder.factory(self.head_metas, w.encoder_settings, bmin=w.bmin)
        return InstanceCrops(w.raw_dataset(split), self.head_metas, encoders, crop=self.settings.crop,
                             boxes=self.settings.boxes, jitter=self.settings.jitter if augment else None,
                             hflip_probability=flip)

    def train_loader(self, loader: LoaderSettings):
        dataset = self.crops('train', training=True)
        if len(dataset) // loader.world_size < loader.batch_size:
            raise ValueError(f'--dataset {self.name}: {len(dataset)} annotated individuals for top-down training, '
                             f'fewer than --batch-size {loader.batch_size} (full batches only)')
        return self.wrapped._loader(dataset, loader, shuffle=True)

    def val_loader(self, loader: LoaderSettings):
        """Validation crops without augmentation; the last batch may be smaller (small validation sets)."""
        dataset = self.crops('val', training=False)
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, sampler=loader.sampler(len(dataset), shuffle=False),
            num_workers=loader.workers, pin_memory=loader.pin_memory, drop_last=False,
            collate_fn=collate_images_targets_meta, persistent_workers=loader.workers > 0)

    # --- evaluation -------------------------------------------------------------------------------------

    def test_set(self, head_indices: list[int], settings, decoder_settings=None, *,
                 loader: LoaderSettings | None = None, names: list[str] | None = None) -> TopDownTestSet:
        """The wrapped dataset's metrics on poses predicted in its ground-truth boxes (validation images in
        their original size; ``loader`` is not used: images are read one by one)."""
        return TopDownTestSet(self.wrapped.raw_dataset('val'), head_indices, self.head_metas, self.metrics,
                              self.metric_names() if names is None else names, crop=self.settings.crop,
                              boxes=self.settings.boxes, decoder_settings=decoder_settings or DecoderSettings(),
                              settings=settings)

    def metrics(self) -> list:
        return self.wrapped.metrics()

    def metric_names(self) -> list[str]:
        return self.wrapped.metric_names()

    def decoder_names(self) -> list[str] | None:
        return self.wrapped.decoder_names()

    # --- run records ------------------------------------------------------------------------------------

    def describe(self) -> dict:
        return {**self.wrapped.describe(), 'top_down': self.settings.plain()}

    def checkpoint_meta(self) -> dict:
        """What a checkpoint records so that inference crops as training did."""
        s = self.settings
        return {'crop_width': s.crop_width, 'crop_height': s.crop_height, 'crop_padding': s.crop_padding,
                'bbox_margin': s.boxes.margin, 'box_source': s.boxes.source}

    def write_run_files(self, checkpoint_path) -> None:
        self.wrapped.write_run_files(checkpoint_path)

    def use_run_files(self, checkpoint_path) -> None:
        self.wrapped.use_run_files(checkpoint_path)
