"""The detector run of top-down mode, on the shared training package (:mod:`openfields.training.fit`):
the same lock, log, snapshots, best snapshot, ``--eval-interval`` scoring, exact resume, stop signals and
``--ddp`` as a pose run; only the model (:mod:`openfields.topdown.detectors`), its data and its objective
differ. A torchvision detector trains on resized images with torchvision's own losses
(:class:`DetectorObjective`); ``--detector cifdet`` (:mod:`.cifdet_detector`) trains on squares of
``--detector-image-size`` pixels with CifDet targets and the composite-field losses of the loss flags
(``--lambdas`` and ``--component-lambdas`` are the pose run's: not applied to its one head).

``--method td`` first trains the detector into ``<run>.detector.pkl`` (``<run>``: the pose run's ``--output``
without ``.pkl``), as DeepLabCut's ``snapshot-detector-NNN``, then the pose model. ``--detector-checkpoint
PATH`` (or ``--detector-epochs 0`` with an existing ``<run>.detector.pkl``) reuses a trained detector.
The run's best snapshot is picked by ``test.mAP@50:95`` (pycocotools box AP of the validation images).
The detector run is a second :class:`~openfields.training.recipe.Recipe` (:class:`DetectorChoice`: what it
trains) under the pose run's :class:`~openfields.training.run_settings.RunSettings` with the parts its own flags
set replaced (:meth:`DetectorRunSettings.run_settings`). Settings of the pose run that the detector run does
not set itself (``--clip-grad-norm``, ``--loader-workers``, ``--max-snapshots``, ``--save-optimizer-state``,
``--amp``, ``--channels-last``, ``--compile``, ``--ddp`` and ``--ddp-sync-bn`` ...) apply to both.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import pathlib
import socket

import torch

from .. import encoder
from ..datasets import sampler
from ..datasets.collate import collate_images_targets_meta
from ..network import checkpoint, factory as network_factory, losses
from ..training import fit
from ..training.log import TrainingLog
from ..training.loggers import LoggerSettings
from ..training.optimize import LearningRateSchedule
from ..training.recipe import Recipe
from ..training.run_files import RunFiles
from ..training.run_settings import RunSettings
from ..training.snapshots import key_metric as find_key_metric
from ..version import version
from . import cifdet_detector, detectors
from .boxes import BoxSettings
from .detector_data import CifDetSamples, DetectionSamples, DetectorTestSet, cifdet_pipeline, collate_detections

LOG = logging.getLogger(__name__)

KEY_METRIC = 'test.mAP@50:95'  # the detector run's best snapshot: box AP of the validation images


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('detector training (top-down mode)')
    group.add_argument('--detector-epochs', type=int, default=10,
                       help='epochs of the detector run (0: use an already trained detector, see '
                            '--detector-checkpoint)')
    group.add_argument('--detector-batch-size', type=int, default=2, help='images per detector batch')
    group.add_argument('--detector-lr', type=float, default=1e-4, help='learning rate of the detector')
    group.add_argument('--detector-optimizer', default='adamw', choices=('sgd', 'adam', 'adamw'),
                       help='optimizer of the detector (DeepLabCut: AdamW 1e-4)')
    group.add_argument('--detector-lr-decay', type=float, nargs='*', default=[], metavar='EPOCH',
                       help='epochs at which the detector\'s learning rate is multiplied by --lr-decay-factor')
    group.add_argument('--detector-eval-interval', type=int, default=10, metavar='N',
                       help='score the detector (box mAP) every N epochs and after the last; the best by '
                            'test.mAP@50:95 is kept as <run>.detector.best.pkl (0: never)')
    group.add_argument('--detector-train-batches', type=int, default=None, help='batches per detector epoch (cap)')
    group.add_argument('--detector-hflip', type=float, default=0.5, help='probability of a horizontal flip')
    group.add_argument('--detector-checkpoint', default=None, metavar='PATH',
                       help='a trained detector to use instead of training one')
    group.add_argument('--detector-resume', default=None, metavar='PATH|auto',
                       help='continue a detector run (default: auto when --resume auto)')


@dataclasses.dataclass(frozen=True)
class DetectorRunSettings:
    epochs: int = 10
    batch_size: int = 2
    lr: float = 1e-4
    optimizer: str = 'adamw'
    lr_decay: tuple[float, ...] = ()
    eval_interval: int = 10
    train_batches: int | None = None
    hflip: float = 0.5
    checkpoint: str | None = None
    resume: str | None = None

    @classmethod
    def from_args(cls, args) -> 'DetectorRunSettings':
        checks = [('--detector-epochs', args.detector_epochs, 0), ('--detector-batch-size', args.detector_batch_size, 1),
                  ('--detector-eval-interval', args.detector_eval_interval, 0)]
        for flag, value, minimum in checks:
            if value < minimum:
                raise ValueError(f'{flag} must be >= {minimum}, got {value}')
        if not args.detector_lr > 0:
            raise ValueError(f'--detector-lr must be positive, got {args.detector_lr}')
        if args.detector_train_batches is not None and args.detector_train_batches < 1:
            raise ValueError(f'--detector-train-batches must be >= 1, got {args.detector_train_batches}')
        if not 0.0 <= args.detector_hflip <= 1.0:
            raise ValueError(f'--detector-hflip must be in [0, 1], got {args.detector_hflip}')
        resume = args.detector_resume if args.detector_resume is not None else \
            ('auto' if args.resume == 'auto' else None)
        return cls(epochs=args.detector_epochs, batch_size=args.detector_batch_size, lr=args.detector_lr,
                   optimizer=args.detector_optimizer, lr_decay=tuple(args.detector_lr_decay),
                   eval_interval=args.detector_eval_interval, train_batches=args.detector_train_batches,
                   hflip=args.detector_hflip, checkpoint=args.detector_checkpoint, resume=resume)

    def run_settings(self, pose: RunSettings, output: pathlib.Path) -> RunSettings:
        """How the detector run trains into ``output``: the pose run's settings with this run's epochs,
        evaluation, batches, optimizer and learning rate (a ``decay`` schedule at ``--detector-lr-decay`` with
        the pose run's decay factor and duration, no warm-up), no weight averaging or BatchNorm recalibration,
        snapshots with every validation, the best by :data:`KEY_METRIC`, no ``--logger`` and its own resume;
        acceleration, ``--ddp-sync-bn``, seed and the rest as the pose run's."""
        trainer = dataclasses.replace(pose.trainer, epochs=self.epochs, eval_interval=self.eval_interval,
                                      train_batches=self.train_batches, ema=0.0, bn_recalibration_batches=0,
                                      save_epochs=None)
        snapshot_settings = dataclasses.replace(pose.snapshots, key_metric=KEY_METRIC if self.eval_interval else None,
                                                larger_is_better=None)
        schedule = LearningRateSchedule(decay_epochs=self.lr_decay, decay_factor=pose.schedule.decay_factor,
                                        decay_duration=pose.schedule.decay_duration,
                                        warm_up_start=pose.schedule.warm_up_start, warm_up_epochs=0.0,
                                        warm_up_factor=pose.schedule.warm_up_factor)
        optimizer = dataclasses.replace(pose.optimizer, name=self.optimizer, lr=self.lr, torch_class=None,
                                        torch_params='{}')
        return dataclasses.replace(
            pose, trainer=trainer, snapshots=snapshot_settings, schedule=schedule, optimizer=optimizer,
            loader=dataclasses.replace(pose.loader, batch_size=self.batch_size), loggers=LoggerSettings(),
            resume=dataclasses.replace(pose.resume, resume=self.resume, output=str(output)))


@dataclasses.dataclass(frozen=True)
class DetectorChoice:
    """What the detector run trains, from the flags: its run flags, the detector, the ground-truth boxes,
    and for ``--detector cifdet`` its network (the pose run's basenet and flags, never ``--checkpoint``),
    encoders and losses (without the pose run's ``--lambdas`` and ``--component-lambdas``); ``flags`` and
    ``argv`` are what its checkpoints record of the command."""

    run: DetectorRunSettings
    detector: detectors.DetectorSettings
    boxes: BoxSettings
    flags: dict
    argv: tuple[str, ...] = ()
    network: network_factory.NetworkChoice | None = None  # cifdet only
    encoder: encoder.EncoderSettings | None = None  # cifdet only
    loss: losses.LossSettings | None = None  # cifdet only
    eval_n_images: int | None = None  # --eval-n-images: the test set's first images only

    @property
    def fields(self) -> bool:
        """A composite-field detector (cifdet), trained with the composite-field losses."""
        return self.detector.name == cifdet_detector.NAME

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'DetectorChoice':
        """The choice of the (resolved) flags; a ValueError naming the flag for a value that cannot run."""
        run = DetectorRunSettings.from_args(args)
        detector = detectors.DetectorSettings.from_args(args)  # an unknown --detector: before anything is written
        choice = cls(run=run, detector=detector, boxes=BoxSettings.from_args(args),
                     flags={k: v for k, v in vars(args).items() if k != 'argv'},
                     argv=tuple(getattr(args, 'argv', ())), eval_n_images=getattr(args, 'eval_n_images', None))
        if not choice.fields:
            return choice
        network = network_factory.NetworkChoice.from_args(args, with_checkpoint=False)
        if detector.pretrained == 'none':
            network = dataclasses.replace(network, pretrained=None)
        loss = dataclasses.replace(losses.LossSettings.from_args(args), lambdas=None, component_lambdas=None)
        return dataclasses.replace(choice, network=network, encoder=encoder.EncoderSettings.from_args(args),
                                   loss=loss)


def detector_output(pose_output: str | pathlib.Path) -> pathlib.Path:
    """``<run>.detector.pkl`` beside the pose run's ``<run>.pkl`` (named by :mod:`openfields.training.run_files`)."""
    return RunFiles(pose_output).detector_run.out


class DetectorObjective:
    """torchvision's training losses of a detector (its training-mode forward computes them from the
    images and the boxes): the trainer's objective for detector runs."""

    def __init__(self, family: str):
        self.component_names = [f'detector.{name}' for name in detectors.LOSS_NAMES[family]]

    def targets(self, targets, metas, device) -> list[dict]:
        return [{key: value.to(device) for key, value in target.items()} for target in targets]

    def forward(self, model, images, targets, precision):
        with precision.autocast():
            return model([image.to(precision.device, non_blocking=True) for image in images], targets)

    def __call__(self, model, images, targets, precision):
        losses = self.forward(model, images, targets, precision)
        components = {f'detector.{name}': value.float() for name, value in losses.items()}
        return sum(components.values()), components


def detector_for(choice: DetectorChoice, pose: RunSettings, context, device, base_module,
                 pose_output) -> pathlib.Path:
    """The detector of a ``--method td`` run whose settings are ``pose``: ``--detector-checkpoint``, or the
    one this run trains (or trained: ``--detector-epochs 0``, or ``--resume auto`` of a finished detector
    run)."""
    if not hasattr(base_module, 'raw_dataset'):
        raise ValueError(f'--method td: --dataset {base_module.name} has no keypoint annotations to take individuals '
                         'from (top-down needs a keypoint dataset: cocokp, crowdpose, dlc, synthetic, ...)')
    if choice.run.checkpoint is not None:
        check_detector_checkpoint(choice.run.checkpoint, base_module.name)
        return pathlib.Path(choice.run.checkpoint)
    output = detector_output(pose_output)
    if choice.run.epochs == 0:
        if not output.is_file():
            raise ValueError(f'--detector-epochs 0: no trained detector {output}; pass --detector-checkpoint PATH')
        check_detector_checkpoint(output, base_module.name)
        return output
    return train_detector(choice, choice.run.run_settings(pose, output), context, device, base_module)


def check_detector_checkpoint(path, dataset: str) -> dict:
    """A detector checkpoint (not a pose model's) of ``dataset``; a clear line otherwise."""
    saved = checkpoint.load(path)
    if 'detector' not in saved['model']:
        raise checkpoint.CheckpointError(f'--detector-checkpoint {path}: a pose model, not a detector')
    trained_on = saved['meta'].get('dataset')
    if trained_on is not None and trained_on != dataset:
        raise checkpoint.CheckpointError(f'--detector-checkpoint {path}: a detector of --dataset {trained_on}, '
                                         f'not {dataset}')
    if saved['model']['detector'].get('num_classes', detectors.NUM_CLASSES) != detectors.NUM_CLASSES:
        raise checkpoint.CheckpointError(f'--detector-checkpoint {path}: not a one-class detector')
    return saved


def train_detector(choice: DetectorChoice, settings: RunSettings, context, device, base_module) -> pathlib.Path:
    """Train the detector of ``choice`` on ``base_module``'s images into ``settings.resume.output`` under
    ``settings``; its final checkpoint's path."""
    choice = dataclasses.replace(choice, boxes=choice.boxes.for_dataset(base_module.drawn_boxes))
    resumed = fit.resumed_run(settings.resume, context)
    network = _new_detector(choice, base_module) if resumed is None else \
        detectors.from_checkpoint(resumed.checkpoint['model'])
    recipe = _recipe(choice, settings, context, device, base_module, network.to(device))
    files = RunFiles(settings.resume.output)
    with fit.exclusive(files, context):
        log = TrainingLog(files.log if context.is_main else None)
        log.write('process', **recipe.meta, world_size=context.world_size, device=str(device),
                  resumed_from=resumed.path if resumed is not None else None)
        LOG.info('training detector %s on %s; writing %s', choice.detector.name, base_module.name, files.out)
        try:
            return fit.fit(recipe, settings, files, context, device, log, resumed)
        finally:
            log.close()


def _new_detector(choice: DetectorChoice, base_module):
    if choice.fields:
        return cifdet_detector.build(choice.network, choice.detector, base_module.name)
    return detectors.build(choice.detector)


def _training_data(split: str, choice: DetectorChoice, base_module, network):
    """``(dataset, collate function)`` of the ``split`` images ('train': flipped with ``--detector-hflip``)."""
    raw = base_module.raw_dataset(split)
    hflip = choice.run.hflip if split == 'train' else 0.0
    image_size = choice.detector.image_size
    if not choice.fields:
        return DetectionSamples(raw, choice.boxes, image_size, hflip=hflip), collate_detections
    encoders = encoder.factory(network.head_metas, choice.encoder, bmin=cifdet_detector.BMIN)
    return CifDetSamples(raw, choice.boxes, cifdet_pipeline(image_size, encoders, hflip)), collate_images_targets_meta


def _recipe(choice: DetectorChoice, settings: RunSettings, context, device, base_module, network) -> Recipe:
    """What the detector run trains: ``network`` on the images of ``base_module`` with torchvision's losses
    (or cifdet's composite-field losses), scored by box AP with ``--detector-eval-interval``."""
    loader_settings = settings.loader.settings(pin_memory=device.type == 'cuda', shuffle=True,
                                               seed=settings.seed or 0, rank=context.rank,
                                               world_size=context.world_size)
    train_loader = _loader(*_training_data('train', choice, base_module, network), loader_settings, shuffle=True)
    val_loader = _loader(*_training_data('val', choice, base_module, network), loader_settings, shuffle=False)
    sampler.check_sharded(train_loader, context.world_size, f'{base_module.name} detector training')
    key_metric, test_sets = None, {}
    if settings.trainer.eval_interval:
        key_metric = find_key_metric(settings.snapshots, {base_module.name: list(DetectorTestSet.names)})
        if context.is_main:
            test_sets = {base_module.name: DetectorTestSet(base_module.raw_dataset('val'), choice.boxes,
                                                           choice.detector.image_size,
                                                           max_images=choice.eval_n_images)}
    return Recipe(network=network, loss=losses.build(choice.loss, network.head_metas) if choice.fields else None,
                  objective=None if choice.fields else DetectorObjective(choice.detector.family),
                  train_loader=train_loader, val_loaders={base_module.name: val_loader},
                  meta=_meta(choice, settings, base_module), key_metric=key_metric, test_sets=test_sets)


def _loader(dataset, collate, loader_settings, shuffle: bool):
    generator = torch.Generator()
    generator.manual_seed(loader_settings.worker_seed)
    if shuffle and len(dataset) // loader_settings.world_size < loader_settings.batch_size:
        # training uses full batches only; validation keeps a smaller last one (DeepLabCut test sets are small)
        raise ValueError(f'--detector-batch-size {loader_settings.batch_size}: only {len(dataset)} training images')
    return torch.utils.data.DataLoader(
        dataset, batch_size=loader_settings.batch_size,
        sampler=loader_settings.sampler(len(dataset), shuffle=shuffle), num_workers=loader_settings.workers,
        pin_memory=loader_settings.pin_memory, drop_last=shuffle, collate_fn=collate,
        generator=generator, persistent_workers=loader_settings.workers > 0)


def _meta(choice: DetectorChoice, settings: RunSettings, base_module) -> dict:
    """What the detector's checkpoints and log record: the command's flags (``args``, ``argv``), the settings
    this run trained with (``run``), the detector and its boxes."""
    return {'args': choice.flags, 'argv': list(choice.argv), 'version': version(), 'hostname': socket.gethostname(),
            'dataset': base_module.name, 'run': settings.record(), 'detector': dataclasses.asdict(choice.detector),
            'boxes': dataclasses.asdict(choice.boxes)}
