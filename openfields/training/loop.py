"""The training loop: epochs of batches, validation, evaluation, EMA and checkpoints.

``Trainer.loop`` runs epochs ``start_epoch + 1 .. epochs``. After each epoch the weights used for
validation, evaluation and checkpoints are the exponential moving average of the parameters when
``--ema`` > 0 (``ema <- (1 - ema) * ema + ema * theta`` after every optimizer step, kept across epochs);
training continues from the raw parameters. At the end of an epoch, in this order and each on its own
schedule (see :class:`TrainerSettings`): BatchNorm recalibration, validation losses (``val-epoch`` records),
the datasets' metrics in eval mode (``--eval-interval``, ``test`` records; rank 0 scores, every rank gets
the scores), then the checkpointer's ``save_epoch`` (regular and/or best snapshot, see
:mod:`openfields.training.checkpointer`).

A batch's samples name their dataset (``meta['dataset']``) and the network positions of its targets
(``meta['head_indices']``), so one loader may interleave several datasets (``--dataset a-b``): the heads of
the other datasets get no target, are skipped by the network and get no gradient. Validation runs per dataset.

Under ``--ddp`` every rank runs this loop in lockstep: ``model`` is the DistributedDataParallel wrapper
that trains, ``network`` the model itself that is averaged, validated and saved; logged losses are means
over the ranks. After each step the ranks agree whether a stop signal arrived; if so, a checkpoint of the
position is written and :class:`Interrupted` is raised (see :mod:`openfields.training.resume`).
"""

import argparse
import dataclasses
import logging
import math
import time
import warnings

import torch

from ..datasets import sampler
from ..network import cpu_threads
from ..show.progress import format_duration
from .accelerate import Precision, float32_precision
from .distributed import Context, Launch
from .resume import rng_state, set_rng_state
from .run_files import Position
from .log import TrainingLog

LOG = logging.getLogger(__name__)


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('trainer')
    group.add_argument('--epochs', type=int, default=10, help='total number of epochs')
    group.add_argument('--train-batches', type=int, default=None, help='batches per training epoch (cap)')
    group.add_argument('--val-batches', type=int, default=None, help='batches per validation (cap)')
    group.add_argument('--val-interval', type=int, default=1,
                       help='validate every N epochs and after the last (and write a checkpoint, unless '
                            '--save-epochs says otherwise)')
    group.add_argument('--eval-interval', type=int, default=0, metavar='N',
                       help='every N epochs and after the last, score the averaged weights with the datasets\' '
                            'metrics (COCO AP, pixel error, ...) on their evaluation images, in eval mode after '
                            'BatchNorm recalibration, and log them as test records (0: off); they select the '
                            'best snapshot, see --key-metric')
    group.add_argument('--clip-grad-norm', type=float, default=0.0,
                       help='clip the L2 norm of all gradients to this value (0: off)')
    group.add_argument('--clip-grad-value', type=float, default=0.0,
                       help='clamp every gradient element to +-value (0: off)')
    group.add_argument('--ema', type=float, default=0.01,
                       help='decay of the exponential moving average of the weights used for '
                            'validation and checkpoints (0: off)')
    group.add_argument('--display-interval', type=int, default=10,
                       help='print progress and write a train log record every N batches')
    group.add_argument('--bn-recalibration-batches', type=int, default=0, metavar='N',
                       help='before each validation and checkpoint, recompute the BatchNorm statistics of the '
                            '(averaged) weights on the first N training batches (0: keep the running ones); '
                            'short runs need it, their running statistics lag the weights')


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    epochs: int = 10
    train_batches: int | None = None
    val_batches: int | None = None
    val_interval: int = 1
    clip_grad_norm: float = 0.0
    clip_grad_value: float = 0.0
    ema: float = 0.01
    display_interval: int = 10
    bn_recalibration_batches: int = 0
    eval_interval: int = 0  # 0: no evaluation
    save_epochs: int | None = None  # --save-epochs (openfields.training.snapshots); None: with every validation

    def validates(self, epoch: int) -> bool:
        return epoch % self.val_interval == 0 or epoch == self.epochs

    def evaluates(self, epoch: int) -> bool:
        return self.eval_interval > 0 and (epoch % self.eval_interval == 0 or epoch == self.epochs)

    def snapshots(self, epoch: int) -> bool:
        """A regular (resumable) snapshot after ``epoch``: by default with every validation (an overfitting run
        of 1000 one-batch epochs with ``--val-interval 100`` writes 10 checkpoints, not 1000)."""
        if self.save_epochs is None:
            return self.validates(epoch)
        return epoch % self.save_epochs == 0 or epoch == self.epochs

    @classmethod
    def from_args(cls, args) -> 'TrainerSettings':
        checks = [('--epochs', args.epochs, 1), ('--val-interval', args.val_interval, 1),
                  ('--display-interval', args.display_interval, 1)]
        for flag, value, minimum in checks:
            if value < minimum:
                raise ValueError(f'{flag} must be >= {minimum}, got {value}')
        for flag, value in (('--train-batches', args.train_batches), ('--val-batches', args.val_batches)):
            if value is not None and value < 1:
                raise ValueError(f'{flag} must be >= 1, got {value}')
        if args.clip_grad_norm < 0 or args.clip_grad_value < 0:
            raise ValueError('--clip-grad-norm and --clip-grad-value must be >= 0')
        if not 0.0 <= args.ema < 1.0:
            raise ValueError(f'--ema must be in [0, 1), got {args.ema}')
        if args.bn_recalibration_batches < 0:
            raise ValueError(f'--bn-recalibration-batches must be >= 0, got {args.bn_recalibration_batches}')
        if args.eval_interval < 0:
            raise ValueError(f'--eval-interval must be >= 0, got {args.eval_interval}')
        if args.save_epochs is not None and args.save_epochs < 1:
            raise ValueError(f'--save-epochs must be >= 1, got {args.save_epochs}')
        return cls(epochs=args.epochs, train_batches=args.train_batches, val_batches=args.val_batches,
                   val_interval=args.val_interval, clip_grad_norm=args.clip_grad_norm,
                   clip_grad_value=args.clip_grad_value, ema=args.ema,
                   display_interval=args.display_interval,
                   bn_recalibration_batches=args.bn_recalibration_batches,
                   eval_interval=args.eval_interval, save_epochs=args.save_epochs)


class Interrupted(Exception):
    """A stop signal ended training after a checkpoint to resume from was written."""


class ExponentialMovingAverage:
    """EMA of floating-point parameters and buffers; ``swap()`` exchanges them with the model's."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        # state_dict() tensors alias the live parameters and buffers: keep them to avoid lookups per step
        self.live = [v for v in model.state_dict().values() if v.dtype.is_floating_point]
        self.shadow = [v.detach().clone() for v in self.live]
        self.swapped = False  # True while the model holds the averages

    @torch.no_grad()
    def update(self):
        torch._foreach_lerp_(self.shadow, self.live, self.decay)

    @torch.no_grad()
    def swap(self):
        for live, shadow in zip(self.live, self.shadow):
            current = live.clone()
            live.copy_(shadow)
            shadow.copy_(current)
        self.swapped = not self.swapped

    def state_dict(self) -> dict:
        return {'shadow': list(self.shadow), 'swapped': self.swapped}

    @torch.no_grad()
    def load_state_dict(self, state: dict):
        """Restore the averages; when saved swapped, the model's weights are the averages: swap back."""
        if len(state['shadow']) != len(self.shadow):
            raise ValueError(f'EMA state of {len(state["shadow"])} tensors for a model with {len(self.shadow)}')
        for shadow, saved in zip(self.shadow, state['shadow']):
            shadow.copy_(saved)
        self.swapped = state['swapped']
        if self.swapped:
            self.swap()


def _floats(total, components: dict):
    """Python floats (None stays None) of the total and per-component losses, for logging."""
    def value(v):
        return float(v.detach()) if v is not None else None
    return value(total), {name: value(v) for name, v in components.items()}


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _or_nan(value: float | None) -> float:
    """For printing: a missing loss reads nan, a loss of exactly 0.0 stays 0.0."""
    return math.nan if value is None else value


class FieldObjective:
    """What a composite-field network trains on: its head outputs against the encoders' target fields.

    A batch's ``targets`` hold one tensor ``(B, F, C, h, w)`` per head of the batch's dataset, placed at the
    network positions ``metas[0]['head_indices']``; the heads of other datasets get None (they are skipped
    by the network and get no gradient). Other objectives (the torchvision detectors of top-down mode,
    :mod:`openfields.topdown.detector_training`) answer the same three calls.
    """

    def __init__(self, loss, n_heads: int):
        self.loss = loss
        self.n_heads = n_heads

    @property
    def component_names(self) -> list[str]:
        return self.loss.field_names

    def targets(self, targets, metas, device) -> list:
        """The batch's targets on ``device`` at their head indices; None for heads of other datasets."""
        indices = metas[0].get('head_indices', list(range(len(targets))))
        full = [None] * self.n_heads
        for index, target in zip(indices, targets):
            full[index] = target.to(device, non_blocking=True)
        return full

    def forward(self, model, images, targets, precision: Precision):
        """The outputs of the heads that have targets (under the precision's autocast)."""
        with precision.autocast():
            return model(precision.images(images), head_mask=[t is not None for t in targets])

    def __call__(self, model, images, targets, precision: Precision):
        """``(total, {component: loss})`` of one batch; the loss outside autocast, in float32."""
        return self.loss(self.forward(model, images, targets, precision), targets)


def batch_size_of(images) -> int:
    """Images in a batch: a tensor ``(B, 3, H, W)`` or a list of ``(3, H, W)`` tensors (detectors)."""
    return len(images)


class NoCheckpoints:
    """A checkpointer that writes nothing (unit tests of the loop)."""

    def save_epoch(self, position, state, *, snapshot, scores=None):
        pass

    def save_interrupted(self, position, state):
        pass


class Trainer:
    """Trains ``model`` with ``loss``.

    ``checkpointer`` (:class:`~openfields.training.checkpointer.Checkpointer`) is called on every rank:
    ``save_epoch(position, state, snapshot=..., scores=...)`` after an epoch with a regular snapshot
    (``snapshot=True``) or with evaluation scores (``scores``: {dataset: {score name: value}}, the same on
    every rank; else None), ``save_interrupted(position, state)`` when a stop signal ends training;
    ``state`` is :meth:`state_dict`. ``test_sets`` ({dataset:
    :class:`~openfields.metric.scoring.TestSet`}) are needed on rank 0 only. ``stop_signal()`` returns the
    name of a stop signal this process received, or None. ``precision``
    (:class:`~openfields.training.accelerate.Precision`, default float32) runs the forward passes under its
    autocast, places the images in its memory order and scales the fp16 loss. ``objective`` turns a batch
    into losses (default: :class:`FieldObjective` of ``loss`` over ``n_heads`` heads).
    """

    def __init__(self, model, loss, optimizer, scheduler, *, device, settings: TrainerSettings,
                 log: TrainingLog, checkpointer=None, n_heads: int = 0, batch_hook=None, network=None,
                 distributed: Context | None = None, stop_signal=None, test_sets: dict | None = None,
                 loggers=None, precision: Precision | None = None, objective=None):
        self.model = model
        self.network = network if network is not None else model
        self.objective = objective if objective is not None else FieldObjective(loss, n_heads)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.device = device
        self.settings = settings
        self.log = log
        self.checkpointer = checkpointer if checkpointer is not None else NoCheckpoints()
        self.batch_hook = batch_hook  # debug plots: (epoch, batch_index, images, targets, metas) before a step
        self.distributed = distributed if distributed is not None else Context(Launch())
        self.stop_signal = stop_signal if stop_signal is not None else lambda: None
        self.test_sets = test_sets if test_sets is not None else {}
        self.precision = precision if precision is not None else float32_precision(device)
        self.ema = ExponentialMovingAverage(self.network, settings.ema) if settings.ema > 0 else None
        self.n_clipped = 0
        self.start = Position()
        self.loggers = loggers  # --logger with --image-log-interval (rank 0): images of fields
        self.image_batches: dict[str, tuple] = {}  # 'train' / 'val' -> the epoch's first batch

    def state_dict(self) -> dict:
        """Optimizer, schedule, EMA, fp16 loss scale and counters: what continuing needs besides weights
        and RNG."""
        return {'optimizer': self.optimizer.state_dict(), 'scheduler': self.scheduler.state_dict(),
                'ema': self.ema.state_dict() if self.ema is not None else None, 'n_clipped': self.n_clipped,
                'grad_scaler': self.precision.state_dict()}

    def load_state_dict(self, state: dict, *, scheduler: bool = True):
        """Restore :meth:`state_dict` (the network's weights must already be those of the checkpoint).

        Without an optimizer state (``--no-save-optimizer-state``) the optimizer starts afresh;
        ``scheduler=False`` keeps the new scheduler (``--no-load-scheduler-state``: the caller places it).
        The learning rates are those of the scheduler after this."""
        if (state['ema'] is None) != (self.ema is None):
            raise ValueError('--resume: the checkpoint was trained with' + (' no' if state['ema'] is None else '')
                             + ' EMA of the weights; resume with the same --ema')
        if state['optimizer'] is None:
            LOG.warning('--resume: the checkpoint has no optimizer state (--no-save-optimizer-state); the '
                        'optimizer starts afresh (no momentum or Adam moments)')
        else:
            self.optimizer.load_state_dict(state['optimizer'])
        if scheduler:
            self.scheduler.load_state_dict(state['scheduler'])
            for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
                group['lr'] = lr
        if self.ema is not None:
            self.ema.load_state_dict(state['ema'])
        self.n_clipped = state['n_clipped']
        self.precision.load_state_dict(state.get('grad_scaler'))  # absent in checkpoints before --amp

    def loop(self, train_loader, val_loaders: dict, start: Position = Position()):
        """Epochs ``start.epoch + 1 .. epochs``, validating on each of ``val_loaders`` ({dataset name:
        loader}); the first epoch skips the ``start.batches`` already trained."""
        if start.epoch >= self.settings.epochs:
            raise ValueError(f'--epochs {self.settings.epochs}: nothing to train, the run starts after '
                             f'epoch {start.epoch}')
        self.log.write('config', field_names=self.objective.component_names)
        self.run_start = time.perf_counter()
        self.start = start
        for epoch in range(start.epoch + 1, self.settings.epochs + 1):
            self.train_epoch(train_loader, epoch, start.batches if epoch == start.epoch + 1 else 0)
            saved = self.end_epoch(train_loader, val_loaders, epoch)
            if epoch < self.settings.epochs and self._stop_agreed():
                if not saved:
                    self.checkpointer.save_interrupted(Position(epoch, 0), self.state_dict())
                raise Interrupted(f'stopped after epoch {epoch}')

    def end_epoch(self, train_loader, val_loaders: dict, epoch: int) -> bool:
        """Validation, evaluation and snapshots of the (averaged, recalibrated) weights, each when its
        interval says so; True when a regular snapshot was written."""
        validate, evaluate = self.settings.validates(epoch), self.settings.evaluates(epoch)
        snapshot = self.settings.snapshots(epoch)
        if not (validate or evaluate or snapshot):
            return False
        if self.ema is not None:
            self.ema.swap()  # validate, evaluate and save the averaged weights
        self.recalibrate_batchnorm(train_loader)
        if validate:
            for dataset, val_loader in val_loaders.items():
                self.val_epoch(val_loader, epoch, dataset)
        self.log_images(epoch)
        scores = self.test_epoch(epoch) if evaluate else None
        if snapshot or scores is not None:
            self.checkpointer.save_epoch(Position(epoch, 0), self.state_dict(), snapshot=snapshot, scores=scores)
        if self.ema is not None:
            self.ema.swap()  # back to the raw weights for training
        return snapshot

    def _keep_for_images(self, kind: str, epoch: int, batch) -> None:
        if self.loggers is not None and self.loggers.logs_images(epoch) and kind not in self.image_batches:
            self.image_batches[kind] = batch

    @torch.no_grad()
    def log_images(self, epoch: int) -> None:
        """``--image-log-interval``: the first image of the epoch's first training and validation batch
        with its target and predicted CIF confidence, in eval mode (the weights being validated)."""
        from ..show.field_images import sample_picture  # pylint: disable=import-outside-toplevel
        batches, self.image_batches = self.image_batches, {}
        if not batches or not hasattr(self.network, 'head_metas'):  # pictures of fields only
            return
        was_training = self.network.training
        self.network.eval()
        try:
            for kind, (images, targets, metas) in batches.items():
                index = metas[0].get('head_indices', list(range(len(targets))))[0]
                outputs = self.network(images[:1].to(self.device))
                meta = self.network.head_metas[index]
                picture = sample_picture(images[0], targets[0][0], outputs[index][0], meta.stride,
                                         f'{kind} epoch {epoch}: {metas[0].get("file_name", "")}')
                self.loggers.image(f'images/{kind}', picture, epoch)
        finally:
            self.network.train(was_training)

    def test_epoch(self, epoch: int) -> dict[str, dict[str, float]]:
        """The metrics of ``network`` on every test set ({dataset: {score: value}}): rank 0 scores, every
        rank returns its result; logged as one ``test`` record per dataset."""
        outcome = None
        if self.distributed.is_main:
            try:
                outcome = self._score_test_sets()
            except Exception as error:
                self.distributed.broadcast_object(f'{type(error).__name__}: {error}')
                raise
        outcome = self.distributed.broadcast_object(outcome)
        if isinstance(outcome, str):
            raise RuntimeError(f'rank 0 failed to evaluate epoch {epoch}: {outcome}')
        for dataset, scores in outcome.items():
            self.log.write('test', epoch=epoch, dataset=dataset,
                           metrics={f'test.{name}': value for name, value in scores.items()})
            LOG.info('epoch %d/%d test on %s: %s', epoch, self.settings.epochs, dataset,
                     ' '.join(f'{name} {value:.4f}' for name, value in list(scores.items())[:4]))
        return outcome

    def _score_test_sets(self) -> dict[str, dict[str, float]]:
        """Eval-mode scores; the mode and the random states (loaders draw seeds) are restored after, so
        evaluating does not change what is trained."""
        was_training, random_state = self.network.training, rng_state()
        self.network.eval()
        try:
            return {dataset: test_set.score(self.network, self.device)
                    for dataset, test_set in self.test_sets.items()}
        finally:
            self.network.train(was_training)
            set_rng_state(random_state)

    def recalibrate_batchnorm(self, loader) -> None:
        """``--bn-recalibration-batches N``: the BatchNorm running statistics of the current weights
        recomputed as the plain mean over the first N batches of ``loader`` (train-mode forward passes
        without gradient; every rank runs the same batches count, so synchronised BatchNorm agrees).

        The running statistics follow the weights with a delay of about ``1 / momentum`` steps (and the
        EMA of the weights adds its own): after a few hundred steps of a fast-changing network they
        describe other weights, and eval-mode outputs collapse."""
        n_batches = min(self.settings.bn_recalibration_batches, len(loader))
        norms = [m for m in self.network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if n_batches == 0 or not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        self.network.train()
        with torch.no_grad():
            for batch_index, batch in enumerate(loader):
                if batch_index >= n_batches:
                    break
                if self.distributed.any(batch is None):
                    continue
                images, targets, metas = batch
                cpu_threads.follow_load()
                self.objective.forward(self.network, images, self._full_targets(targets, metas), self.precision)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    def _stop_agreed(self) -> bool:
        """True on every rank when any rank received a stop signal (a collective: all ranks call it)."""
        return self.distributed.any(self.stop_signal() is not None)

    def _n_batches(self, loader, cap):
        return min(len(loader), cap) if cap is not None else len(loader)

    def _full_targets(self, targets, metas):
        """The batch's targets on the device, as the objective wants them."""
        return self.objective.targets(targets, metas, self.device)

    def train_batch(self, images, targets):
        total, components = self.objective(self.model, images, targets, self.precision)
        self.optimizer.zero_grad(set_to_none=True)
        if total is not None:
            self.precision.backward(total)
            self.precision.unscale(self.optimizer)
            self._clip_gradients()
            self.precision.step(self.optimizer)
            if self.ema is not None:
                self.ema.update()
        with warnings.catch_warnings():
            # a step that fp16's GradScaler skipped (overflow) looks to torch like a schedule ahead of its optimizer
            warnings.filterwarnings('ignore', message=r'Detected call of `lr_scheduler\.step\(\)` before')
            self.scheduler.step()
        return _floats(total, components)

    def _clip_gradients(self):
        parameters = [p for p in self.model.parameters() if p.grad is not None]
        if self.settings.clip_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.settings.clip_grad_norm)
            self.n_clipped += int(norm > self.settings.clip_grad_norm)
        if self.settings.clip_grad_value:
            torch.nn.utils.clip_grad_value_(parameters, self.settings.clip_grad_value)

    def train_epoch(self, loader, epoch: int, first_batch: int = 0):
        """Batches ``first_batch ..`` of ``epoch``; raises :class:`Interrupted` after a stop signal."""
        self.model.train()
        sampler.set_epoch(loader, epoch)
        n_batches = self._n_batches(loader, self.settings.train_batches)
        sampler.skip_batches(loader, first_batch)
        losses, components, epoch_start = [], [], time.perf_counter()
        last = time.perf_counter()
        n_images = 0
        batches_per_dataset: dict[str, int] = {}
        for batch_index, batch in enumerate(loader, start=first_batch):
            if batch_index >= n_batches:
                break
            # a batch whose images were all unreadable is skipped by every rank together
            if not self.distributed.any(batch is None):
                self._keep_for_images('train', epoch, batch)
                loss, head_losses, n_images = self._step(epoch, batch_index, n_batches, batch,
                                                         time.perf_counter() - last, n_images, epoch_start)
                losses.append(loss)
                components.append(head_losses)
                dataset = batch[2][0].get('dataset', '')
                batches_per_dataset[dataset] = batches_per_dataset.get(dataset, 0) + 1
            # the last batch of an epoch goes on to validation and the epoch checkpoint instead
            if batch_index + 1 < n_batches and self._stop_agreed():
                LOG.warning('stopping on %s after batch %d of epoch %d',
                            self.stop_signal() or 'another rank\'s signal', batch_index + 1, epoch)
                self.checkpointer.save_interrupted(Position(epoch - 1, batch_index + 1), self.state_dict())
                raise Interrupted(f'stopped after batch {batch_index + 1} of epoch {epoch}')
            last = time.perf_counter()
        self.log.write('train-epoch', epoch=epoch, loss=_mean(losses),
                       head_losses=self._mean_components(components), n_batches=len(losses),
                       batches_per_dataset=batches_per_dataset, n_clipped_grad=self.n_clipped,
                       time=round(time.perf_counter() - epoch_start, 3))
        LOG.info('epoch %d/%d train loss %.4f (%d batches, %s)', epoch, self.settings.epochs,
                 _or_nan(_mean(losses)), len(losses),
                 format_duration(time.perf_counter() - epoch_start))

    def _step(self, epoch, batch_index, n_batches, batch, data_time, n_images, epoch_start):
        """One optimizer step on ``batch``, logged; returns its losses (means over the ranks) and the images
        seen so far in the epoch (by all ranks)."""
        images, targets, metas = batch
        if self.batch_hook is not None:
            self.batch_hook(epoch, batch_index, images, targets, metas)
        threads = cpu_threads.follow_load() or torch.get_num_threads()
        compute_start = time.perf_counter()
        lr = self.optimizer.param_groups[0]['lr']
        loss, head_losses = self._mean_over_ranks(*self.train_batch(images, self._full_targets(targets, metas)))
        compute_time = time.perf_counter() - compute_start
        n_images += batch_size_of(images) * self.distributed.world_size
        if batch_index % self.settings.display_interval == 0 or batch_index == n_batches - 1:
            self.log.write('train', epoch=epoch, batch=batch_index, n_batches=n_batches, lr=lr, loss=loss,
                           head_losses=head_losses, data_time=round(data_time, 4), time=round(compute_time, 4),
                           threads=threads)
            self._print_progress(epoch, batch_index, n_batches, loss, lr, n_images,
                                 time.perf_counter() - epoch_start)
        return loss, head_losses, n_images

    def _mean_over_ranks(self, total, components: dict):
        """The losses averaged over the ranks (for logging; the gradients are averaged by DDP)."""
        values = self.distributed.mean([total, *components.values()])
        return values[0], dict(zip(components, values[1:]))

    def _print_progress(self, epoch, batch_index, n_batches, loss, lr, n_images, elapsed):
        done_batches = (epoch - self.start.epoch - 1) * n_batches + batch_index + 1 - self.start.batches
        total_batches = (self.settings.epochs - self.start.epoch) * n_batches - self.start.batches
        run_elapsed = time.perf_counter() - self.run_start
        eta = run_elapsed / done_batches * (total_batches - done_batches)
        LOG.info('epoch %d/%d batch %d/%d loss %.4f lr %.2e %.1f img/s ETA %s', epoch,
                 self.settings.epochs, batch_index + 1, n_batches, loss if loss is not None else math.nan,
                 lr, n_images / max(elapsed, 1e-9), format_duration(eta))

    @staticmethod
    def _mean_components(components: list[dict]) -> dict:
        names = components[0].keys() if components else []
        return {name: _mean([c[name] for c in components]) for name in names}

    def _eval_batchnorm(self):
        """Train mode (raw head outputs for the loss) but BatchNorm on its running statistics."""
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()

    def val_epoch(self, loader, epoch: int, dataset: str):
        """Mean validation losses of ``network`` on ``loader``, whose batches all come from ``dataset``
        (each rank validates its share of the images)."""
        self._eval_batchnorm()
        n_batches = self._n_batches(loader, self.settings.val_batches)
        losses, components, start, n_images = [], [], time.perf_counter(), 0
        with torch.inference_mode():
            for batch_index, batch in enumerate(loader):
                if batch_index >= n_batches:
                    break
                if batch is None:
                    continue
                self._keep_for_images('val', epoch, batch)
                images, targets, metas = batch
                targets = self._full_targets(targets, metas)
                cpu_threads.follow_load()
                total, head_losses = _floats(*self.objective(self.network, images, targets, self.precision))
                losses.append(total)
                components.append(head_losses)
                n_images += batch_size_of(images)
                if batch_index % self.settings.display_interval == 0 or batch_index == n_batches - 1:
                    elapsed = time.perf_counter() - start
                    eta = elapsed / (batch_index + 1) * (n_batches - batch_index - 1)
                    LOG.info('epoch %d/%d val batch %d/%d loss %.4f %.1f img/s ETA %s', epoch,
                             self.settings.epochs, batch_index + 1, n_batches,
                             total if total is not None else math.nan, n_images / max(elapsed, 1e-9),
                             format_duration(eta))
        loss, head_losses = self._mean_over_ranks(_mean(losses), self._mean_components(components))
        # components are None only for heads without targets: those of the other datasets
        head_losses = {name: value for name, value in head_losses.items() if value is not None}
        self.log.write('val-epoch', epoch=epoch, dataset=dataset, loss=loss, head_losses=head_losses,
                       n_batches=len(losses), time=round(time.perf_counter() - start, 3))
        LOG.info('epoch %d/%d val loss %.4f on %s (%d batches)', epoch, self.settings.epochs,
                 _or_nan(loss), dataset, len(losses))
        self.model.train()
