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
Flags of the pose run that the detector run does not set itself (``--clip-grad-norm``, ``--loader-workers``,
``--max-snapshots``, ``--save-optimizer-state``, ``--ddp`` ...) apply to both.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import pathlib
import socket

import torch

from .. import encoder
from ..datasets import factory as datasets_factory, sampler
from ..datasets.collate import collate_images_targets_meta
from ..network import checkpoint, losses
from ..training import fit, optimize, snapshots
from ..training.log import TrainingLog
from ..training.loop import TrainerSettings
from ..training.run_files import RunFiles
from ..version import version
from . import cifdet_detector, detectors
from .boxes import BoxSettings
from .detector_data import CifDetSamples, DetectionSamples, DetectorTestSet, cifdet_pipeline, collate_detections

LOG = logging.getLogger(__name__)


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


def detector_output(pose_output: str | pathlib.Path) -> pathlib.Path:
    """``<run>.detector.pkl`` beside the pose run's ``<run>.pkl`` (named by :mod:`openfields.training.run_files`)."""
    return RunFiles(pose_output).detector_run.out


def run_args(args, run: DetectorRunSettings, output: pathlib.Path) -> argparse.Namespace:
    """The pose run's flags with the detector run's own: what the shared training package reads."""
    detector_args = copy.copy(args)
    overrides = dict(
        epochs=run.epochs, batch_size=run.batch_size, lr=run.lr, optimizer=run.optimizer,
        optimizer_class=None, optimizer_params=None, scheduler_class=None, scheduler_params=None,
        lr_schedule='decay', lr_decay=list(run.lr_decay), lr_warm_up_epochs=0.0,
        eval_interval=run.eval_interval, train_batches=run.train_batches,
        key_metric='test.mAP@50:95' if run.eval_interval else None,  # scored by the evaluation only
        key_metric_asc=False, key_metric_desc=False, resume=run.resume, checkpoint=None, output=str(output),
        ema=0.0, bn_recalibration_batches=0, save_epochs=None, lambdas=None, component_lambdas=None)
    for name, value in overrides.items():
        setattr(detector_args, name, value)
    return detector_args


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


def trained_detector(args, context, device, base_module, pose_output) -> pathlib.Path:
    """The detector of a ``--method td`` run: ``--detector-checkpoint``, or the one this run trains (or
    trained: ``--detector-epochs 0``, or ``--resume auto`` of a finished detector run)."""
    run = DetectorRunSettings.from_args(args)
    detectors.DetectorSettings.from_args(args)  # an unknown --detector: before anything is written
    if not hasattr(base_module, 'raw_dataset'):
        raise ValueError(f'--method td: --dataset {base_module.name} has no keypoint annotations to take individuals '
                         'from (top-down needs a keypoint dataset: cocokp, crowdpose, dlc, synthetic, ...)')
    if run.checkpoint is not None:
        check_detector_checkpoint(run.checkpoint, base_module.name)
        return pathlib.Path(run.checkpoint)
    output = detector_output(pose_output)
    if run.epochs == 0:
        if not output.is_file():
            raise ValueError(f'--detector-epochs 0: no trained detector {output}; pass --detector-checkpoint PATH')
        check_detector_checkpoint(output, base_module.name)
        return output
    return train_detector(run_args(args, run, output), run, context, device, base_module)


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


def train_detector(args, run: DetectorRunSettings, context, device, base_module) -> pathlib.Path:
    """Train a detector on ``base_module``'s images into ``args.output``; its final checkpoint's path."""
    settings = detectors.DetectorSettings.from_args(args)
    box_settings = BoxSettings.from_args(args).for_dataset(base_module.drawn_boxes)
    resumed = fit.resumed_run(args, context)
    network = _new_detector(args, settings, base_module) if resumed is None else \
        detectors.from_checkpoint(resumed.checkpoint['model'])
    network = network.to(device)
    plan = _plan(args, run, context, device, base_module, network, resumed, settings, box_settings)
    files = RunFiles(args.output)
    with fit.exclusive(files, context):
        log = TrainingLog(files.log if context.is_main else None)
        log.write('process', **plan.meta, world_size=context.world_size, device=str(device),
                  resumed_from=resumed.path if resumed is not None else None)
        LOG.info('training detector %s on %s; writing %s', settings.name, base_module.name, files.out)
        try:
            return fit.fit(plan, files, context, device, log, resumed, load_scheduler_state=args.load_scheduler_state,
                           resume_auto=args.resume == 'auto')
        finally:
            log.close()


def _new_detector(args, settings: detectors.DetectorSettings, base_module):
    if settings.name == cifdet_detector.NAME:
        return cifdet_detector.build(args, settings, base_module.name)
    return detectors.build(settings)


def _training_data(split: str, args, run, settings, base_module, box_settings, network):
    """``(dataset, collate function)`` of the ``split`` images ('train': flipped with ``--detector-hflip``)."""
    raw = base_module.raw_dataset(split)
    hflip = run.hflip if split == 'train' else 0.0
    if settings.name != cifdet_detector.NAME:
        return DetectionSamples(raw, box_settings, settings.image_size, hflip=hflip), collate_detections
    encoders = encoder.factory(network.head_metas, encoder.EncoderSettings.from_args(args),
                               bmin=cifdet_detector.BMIN)
    return CifDetSamples(raw, box_settings, cifdet_pipeline(settings.image_size, encoders, hflip)), \
        collate_images_targets_meta


def _plan(args, run, context, device, base_module, network, resumed, settings, box_settings) -> fit.Plan:
    loader_settings = dataclasses.replace(
        datasets_factory.loader_settings_from_args(args, pin_memory=device.type == 'cuda', shuffle=True),
        rank=context.rank, world_size=context.world_size)
    train_loader = _loader(*_training_data('train', args, run, settings, base_module, box_settings, network),
                           loader_settings, shuffle=True)
    val_loader = _loader(*_training_data('val', args, run, settings, base_module, box_settings, network),
                         loader_settings, shuffle=False)
    sampler.check_sharded(train_loader, context.world_size, f'{base_module.name} detector training')
    trainer_settings = TrainerSettings.from_args(args)
    snapshot_settings = snapshots.SnapshotSettings.from_args(args)
    key_metric, test_sets = None, {}
    if run.eval_interval:
        key_metric = snapshots.key_metric(snapshot_settings, {base_module.name: list(DetectorTestSet.names)})
        if context.is_main:
            test_sets = {base_module.name: DetectorTestSet(base_module.raw_dataset('val'), box_settings,
                                                           settings.image_size,
                                                           max_images=getattr(args, 'eval_n_images', None))}
    model = network if not context.active else torch.nn.parallel.DistributedDataParallel(
        network, device_ids=[device.index] if device.type == 'cuda' else None)
    fields = settings.name == cifdet_detector.NAME  # composite fields: the trainer's own objective
    return fit.Plan(network=network, model=model, loss=losses.factory(args, network.head_metas) if fields else None,
                    objective=None if fields else DetectorObjective(settings.family),
                    optimizer=optimize.optimizer_from_args(args, [p for p in network.parameters() if p.requires_grad]),
                    schedule=fit.schedule_for(args, resumed), train_loader=train_loader,
                    val_loaders={base_module.name: val_loader}, settings=trainer_settings,
                    snapshot_settings=snapshot_settings, seed=args.seed, batch_size=run.batch_size,
                    meta=_meta(args, base_module, settings, box_settings), key_metric=key_metric, test_sets=test_sets,
                    train_batches=run.train_batches)


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


def _meta(args, base_module, settings, box_settings) -> dict:
    return {'args': {k: v for k, v in vars(args).items() if k != 'argv'}, 'argv': getattr(args, 'argv', []),
            'version': version(), 'hostname': socket.gethostname(), 'dataset': base_module.name,
            'detector': dataclasses.asdict(settings), 'boxes': dataclasses.asdict(box_settings)}
