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
set replaced (:meth:`DetectorRunSettings.run_settings`). Its optimizer and schedule are built as the pose
run's (:mod:`openfields.training.optimize`, :mod:`openfields.training.schedulers`): ``--detector-optimizer`` or
any ``torch.optim`` class (``--detector-optimizer-class``, ``--detector-optimizer-params``), and
``--detector-lr-decay`` or any ``torch.optim.lr_scheduler`` class, nested ones and DeepLabCut's
LRListScheduler included (``--detector-scheduler-class``, ``--detector-scheduler-params``: stepped once per
epoch, checked through every epoch of the run at start-up). ``--detector-max-snapshots``,
``--detector-save-epochs``, ``--detector-save-optimizer-state``, ``--detector-load-scheduler-state``,
``--detector-loader-workers`` and ``--detector-display-interval`` default to the pose run's flags; the other
settings of the pose run (``--clip-grad-norm``, ``--amp``, ``--channels-last``, ``--compile``, ``--ddp`` and
``--ddp-sync-bn`` ...) apply to both. Its training images are augmented by
:class:`~openfields.topdown.detector_data.DetectorAugmentation` (``--detector-hflip``, ``--detector-affine``,
...), recorded in its log's ``process`` record and checkpoints (``augmentation``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
from ..training import optimize, schedulers
from ..training.optimize import LearningRateSchedule
from ..training.recipe import Recipe
from ..training.run_files import RunFiles
from ..training.run_settings import RunSettings
from ..training.snapshots import key_metric as find_key_metric
from ..version import version
from . import cifdet_detector, detectors
from .boxes import BoxSettings
from .detector_data import (CifDetSamples, DetectionSamples, DetectorAugmentation, DetectorTestSet, cifdet_pipeline,
                            collate_detections)

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
    group.add_argument('--detector-optimizer-class', default=None, metavar='NAME',
                       help='any torch.optim class by name for the detector, built with --detector-lr and '
                            '--detector-optimizer-params; replaces --detector-optimizer')
    group.add_argument('--detector-optimizer-params', default=None, metavar='JSON',
                       help='--detector-optimizer-class: its keyword arguments as a JSON object')
    group.add_argument('--detector-lr-decay', type=float, nargs='*', default=[], metavar='EPOCH',
                       help='epochs at which the detector\'s learning rate is multiplied by --lr-decay-factor')
    group.add_argument('--detector-scheduler-class', default=None, metavar='NAME',
                       help='the detector\'s schedule: any torch.optim.lr_scheduler class or LRListScheduler '
                            '(DeepLabCut\'s) by name, stepped once per epoch; replaces --detector-lr-decay')
    group.add_argument('--detector-scheduler-params', default=None, metavar='JSON',
                       help='--detector-scheduler-class: its keyword arguments as a JSON object; a value '
                            '{"type": NAME, "params": {...}} is a nested scheduler')
    group.add_argument('--detector-eval-interval', type=int, default=10, metavar='N',
                       help='score the detector (box mAP) every N epochs and after the last; the best by '
                            'test.mAP@50:95 is kept as <run>.detector.best.pkl (0: never)')
    group.add_argument('--detector-save-epochs', type=int, default=None, metavar='N',
                       help='a regular detector snapshot every N epochs and after the last (default: with every '
                            'validation)')
    group.add_argument('--detector-max-snapshots', type=int, default=None, metavar='K',
                       help='keep the K newest regular detector snapshots (default: --max-snapshots)')
    group.add_argument('--detector-save-optimizer-state', default=None, action=argparse.BooleanOptionalAction,
                       help='keep the optimizer state in the newest detector snapshot (default: '
                            '--save-optimizer-state)')
    group.add_argument('--detector-load-scheduler-state', default=None, action=argparse.BooleanOptionalAction,
                       help='a resumed detector run continues its saved schedule; the no- form follows this '
                            'run\'s --detector-* schedule flags (default: --load-scheduler-state)')
    group.add_argument('--detector-loader-workers', type=int, default=None,
                       help='loader workers of the detector run (default: --loader-workers)')
    group.add_argument('--detector-display-interval', type=int, default=None, metavar='N',
                       help='a detector progress line every N batches (default: --display-interval)')
    group.add_argument('--detector-train-batches', type=int, default=None, help='batches per detector epoch (cap)')
    DetectorAugmentation.cli(group)
    group.add_argument('--detector-checkpoint', default=None, metavar='PATH',
                       help='a trained detector to use instead of training one')
    group.add_argument('--detector-resume', default=None, metavar='PATH|auto',
                       help='continue a detector run (default: auto when --resume auto)')


@dataclasses.dataclass(frozen=True)
class DetectorRunSettings:
    """The detector run's own flags; None: the pose run's setting (see :meth:`run_settings`)."""

    epochs: int = 10
    batch_size: int = 2
    lr: float = 1e-4
    optimizer: str = 'adamw'
    optimizer_class: str | None = None  # --detector-optimizer-class
    optimizer_params: str = '{}'  # JSON, sorted keys
    lr_decay: tuple[float, ...] = ()
    scheduler_class: str | None = None  # --detector-scheduler-class
    scheduler_params: str = '{}'  # JSON, sorted keys
    eval_interval: int = 10
    save_epochs: int | None = None  # None: with every validation
    max_snapshots: int | None = None
    save_optimizer_state: bool | None = None
    load_scheduler_state: bool | None = None
    loader_workers: int | None = None
    display_interval: int | None = None
    train_batches: int | None = None
    checkpoint: str | None = None
    resume: str | None = None

    @classmethod
    def from_args(cls, args) -> 'DetectorRunSettings':
        """The detector's flags, checked: a value that cannot run (an optimizer or scheduler that fails in
        any epoch of the run included) is one line naming the flag, or the key of the DeepLabCut file that
        gave it."""
        _check_minimums(args)
        if not args.detector_lr > 0:
            raise ValueError(f'--detector-lr must be positive, got {args.detector_lr}')
        resume = args.detector_resume if args.detector_resume is not None else \
            ('auto' if args.resume == 'auto' else None)
        return cls(epochs=args.detector_epochs, batch_size=args.detector_batch_size, lr=args.detector_lr,
                   optimizer=args.detector_optimizer, **_optimizer_flags(args), lr_decay=tuple(args.detector_lr_decay),
                   **_scheduler_flags(args), eval_interval=args.detector_eval_interval,
                   save_epochs=args.detector_save_epochs, max_snapshots=args.detector_max_snapshots,
                   save_optimizer_state=args.detector_save_optimizer_state,
                   load_scheduler_state=args.detector_load_scheduler_state,
                   loader_workers=args.detector_loader_workers, display_interval=args.detector_display_interval,
                   train_batches=args.detector_train_batches, checkpoint=args.detector_checkpoint, resume=resume)

    def run_settings(self, pose: RunSettings, output: pathlib.Path) -> RunSettings:
        """How the detector run trains into ``output``: the pose run's settings with this run's epochs,
        evaluation, batches, loader workers, progress interval, optimizer, learning rate and schedule (no
        warm-up), snapshots (every validation unless ``save_epochs``; number kept and optimizer state as the
        pose run's unless set), no weight averaging or BatchNorm recalibration, the best snapshot by
        :data:`KEY_METRIC`, no ``--logger`` and its own resume (scheduler state as the pose run's unless
        set); acceleration, ``--ddp-sync-bn``, seed and the rest as the pose run's."""
        trainer = dataclasses.replace(pose.trainer, epochs=self.epochs, eval_interval=self.eval_interval,
                                      train_batches=self.train_batches, ema=0.0, bn_recalibration_batches=0,
                                      save_epochs=self.save_epochs,
                                      display_interval=_or(self.display_interval, pose.trainer.display_interval))
        snapshot_settings = dataclasses.replace(
            pose.snapshots, key_metric=KEY_METRIC if self.eval_interval else None, larger_is_better=None,
            max_snapshots=_or(self.max_snapshots, pose.snapshots.max_snapshots),
            save_optimizer_state=_or(self.save_optimizer_state, pose.snapshots.save_optimizer_state))
        resume = dataclasses.replace(
            pose.resume, resume=self.resume, output=str(output),
            load_scheduler_state=_or(self.load_scheduler_state, pose.resume.load_scheduler_state))
        return dataclasses.replace(
            pose, trainer=trainer, snapshots=snapshot_settings, schedule=self.schedule(pose.schedule),
            optimizer=self.optimizer_settings(pose.optimizer), loggers=LoggerSettings(), resume=resume,
            loader=dataclasses.replace(pose.loader, batch_size=self.batch_size,
                                       workers=_or(self.loader_workers, pose.loader.workers)))

    def schedule(self, pose: LearningRateSchedule) -> LearningRateSchedule:
        """``--detector-scheduler-class`` stepped once per epoch, else a ``decay`` schedule at
        ``--detector-lr-decay`` with the pose run's decay factor and duration; no warm-up either way."""
        if self.scheduler_class is not None:
            return LearningRateSchedule(warm_up_epochs=0.0, shape='torch', torch_class=self.scheduler_class,
                                        torch_params=self.scheduler_params, torch_base_lr=self.lr)
        return LearningRateSchedule(decay_epochs=self.lr_decay, decay_factor=pose.decay_factor,
                                    decay_duration=pose.decay_duration, warm_up_start=pose.warm_up_start,
                                    warm_up_epochs=0.0, warm_up_factor=pose.warm_up_factor)

    def optimizer_settings(self, pose: optimize.OptimizerSettings) -> optimize.OptimizerSettings:
        """``--detector-optimizer-class`` with its params, else ``--detector-optimizer`` with the pose run's
        momentum, betas, epsilon and weight decay; the learning rate ``--detector-lr``."""
        return dataclasses.replace(pose, name=self.optimizer, lr=self.lr, torch_class=self.optimizer_class,
                                   torch_params=self.optimizer_params)


def _or(value, default):
    return default if value is None else value


def _check_minimums(args) -> None:
    checks = [('--detector-epochs', args.detector_epochs, 0), ('--detector-batch-size', args.detector_batch_size, 1),
              ('--detector-eval-interval', args.detector_eval_interval, 0),
              ('--detector-train-batches', args.detector_train_batches, 1),
              ('--detector-save-epochs', args.detector_save_epochs, 1),
              ('--detector-max-snapshots', args.detector_max_snapshots, 0),
              ('--detector-loader-workers', args.detector_loader_workers, 0),
              ('--detector-display-interval', args.detector_display_interval, 1)]
    for flag, value, minimum in checks:
        if value is not None and value < minimum:
            raise ValueError(f'{flag} must be >= {minimum}, got {value}')


DLC_OPTIMIZER_KEY = 'detector.runner.optimizer'  # the {type, params} a DeepLabCut file gives these flags as
DLC_SCHEDULER_KEY = 'detector.runner.scheduler'


def _optimizer_flags(args) -> dict:
    """``optimizer_class`` and ``optimizer_params`` of the flags, the class built with its params once."""
    name = args.detector_optimizer_class
    if name is None:
        if args.detector_optimizer_params is not None:
            raise ValueError('--detector-optimizer-params needs --detector-optimizer-class NAME')
        return {}
    params = optimize.parse_params(args.detector_optimizer_params, '--detector-optimizer-params')
    try:
        optimize.check_optimizer(name, params, args.detector_lr)
    except schedulers.ParamsError as error:
        raise _named(error, args, 'optimizer', name) from None
    return {'optimizer_class': name, 'optimizer_params': json.dumps(params, sort_keys=True)}


def _scheduler_flags(args) -> dict:
    """``scheduler_class`` and ``scheduler_params`` of the flags, stepped through every epoch of the run
    (at least until every nested scheduler has run)."""
    name = args.detector_scheduler_class
    if name is None:
        if args.detector_scheduler_params is not None:
            raise ValueError('--detector-scheduler-params needs --detector-scheduler-class NAME')
        return {}
    if args.detector_lr_decay:
        raise ValueError('--detector-lr-decay and --detector-scheduler-class are two schedules: choose one')
    params = optimize.parse_params(args.detector_scheduler_params, '--detector-scheduler-params')
    epochs = max(args.detector_epochs, schedulers.epochs_until_every_part_ran(params))
    try:
        schedulers.learning_rates(name, params, args.detector_lr, epochs)
    except schedulers.ParamsError as error:
        raise _named(schedulers.ParamsError(error.key, f'{error.reason} (--detector-epochs {args.detector_epochs})'),
                     args, 'scheduler', name) from None
    return {'scheduler_class': name, 'scheduler_params': json.dumps(params, sort_keys=True)}


def _named(error: schedulers.ParamsError, args, part: str, name: str) -> ValueError:
    """``error`` of ``--detector-<part>-class`` / ``-params`` named as written: the key of the DeepLabCut
    file that gave the flags (``detector.runner.scheduler.params.schedulers[1]...``), else the flags."""
    class_flag, params_flag = f'--detector-{part}-class', f'--detector-{part}-params'
    key = DLC_SCHEDULER_KEY if part == 'scheduler' else DLC_OPTIMIZER_KEY
    return optimize.named_error(error, optimize.config_source(args, (class_flag, params_flag)), key, class_flag,
                                name, params_flag)


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
    augmentation: DetectorAugmentation = DetectorAugmentation()
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
                     augmentation=DetectorAugmentation.from_args(args),
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
    """``(dataset, collate function)`` of the ``split`` images ('train': augmented as ``choice.augmentation``
    says; 'val' as they are)."""
    raw = base_module.raw_dataset(split)
    augmentation = choice.augmentation if split == 'train' else DetectorAugmentation(hflip=0.0)
    image_size = choice.detector.image_size
    if not choice.fields:
        return DetectionSamples(raw, choice.boxes, image_size, augmentation=augmentation), collate_detections
    encoders = encoder.factory(network.head_metas, choice.encoder, bmin=cifdet_detector.BMIN)
    preprocess = cifdet_pipeline(image_size, encoders, augmentation.hflip)
    return CifDetSamples(raw, choice.boxes, preprocess, augmentation.image_steps()), collate_images_targets_meta


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
    this run trained with (``run``), the detector, its boxes and its training augmentation."""
    return {'args': choice.flags, 'argv': list(choice.argv), 'version': version(), 'hostname': socket.gethostname(),
            'dataset': base_module.name, 'run': settings.record(), 'detector': dataclasses.asdict(choice.detector),
            'boxes': dataclasses.asdict(choice.boxes), 'augmentation': choice.augmentation.record()}
