"""Optimizer and learning-rate schedule.

The schedule is a multiplier of ``--lr`` evaluated per batch, in epochs ``e = step / batches_per_epoch``
(epoch ``n``, counted from 1, covers ``n - 1 <= e < n``). It is the product of the warm-up and of the
shape chosen by ``--lr-schedule``:

* warm-up (every shape): ``f_w`` before ``--lr-warm-up-start-epoch`` ``s``, then ``f_w ** (1 - (e - s) / E_w)``
  for ``s < e < s + E_w`` (a geometric ramp from ``f_w = --lr-warm-up-factor`` to 1 over
  ``E_w = --lr-warm-up-epochs``; 0 turns it off);
* ``decay`` (default, OpenPifPaf's): for each epoch ``d`` in ``--lr-decay``, a factor
  ``f_d ** min(1, max(0, (e - d) / E_d))`` with ``f_d = --lr-decay-factor`` and ``E_d = --lr-decay-epochs``
  (a smooth geometric step);
* ``milestones`` (DeepLabCut's LRListScheduler): ``v_k / lr`` from epoch ``m_k + 1`` on, for the largest
  ``k`` with ``e >= m_k`` (``m = --lr-milestones``, absolute learning rates ``v = --lr-values``), else 1;
* ``step`` (torch's StepLR): ``gamma ** floor(e / S)`` with ``gamma = --lr-gamma``, ``S = --lr-step-size``;
* ``cosine``: ``r + (1 - r) (1 + cos(pi min(e, T) / T)) / 2`` with ``T = --epochs`` and
  ``r = --lr-cosine-min / --lr``.

Every shape is absolute in epochs, so it can be resumed at any step.
"""

import argparse
import dataclasses
import math

import torch

SCHEDULES = ('decay', 'milestones', 'step', 'cosine')


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('optimizer')
    group.add_argument('--optimizer', default='sgd', choices=('sgd', 'adam', 'adamw'),
                       help='SGD (OpenPifPaf\'s default), Adam or AdamW (decoupled weight decay)')
    group.add_argument('--lr', type=float, default=1e-3, help='learning rate')
    group.add_argument('--momentum', type=float, default=0.9, help='SGD momentum; beta1 for Adam(W)')
    group.add_argument('--nesterov', default=True, action=argparse.BooleanOptionalAction,
                       help='Nesterov momentum (SGD)')
    group.add_argument('--beta2', type=float, default=0.999, help='Adam(W) beta2')
    group.add_argument('--adam-eps', type=float, default=1e-6, help='Adam(W) epsilon')
    group.add_argument('--weight-decay', type=float, default=0.0, help='L2 weight decay')
    group = parser.add_argument_group('learning rate schedule')
    group.add_argument('--lr-schedule', default='decay', choices=SCHEDULES,
                       help='shape after the warm-up: decay (OpenPifPaf\'s smooth steps at --lr-decay), '
                            'milestones (--lr-values from --lr-milestones on), step (StepLR: --lr-gamma '
                            'every --lr-step-size epochs) or cosine (to --lr-cosine-min at --epochs)')
    group.add_argument('--lr-decay', type=float, nargs='*', default=[],
                       help='epochs at which the learning rate decays by --lr-decay-factor')
    group.add_argument('--lr-decay-factor', type=float, default=0.1)
    group.add_argument('--lr-decay-epochs', type=float, default=1.0,
                       help='epochs over which each decay is spread')
    group.add_argument('--lr-warm-up-start-epoch', type=float, default=0.0)
    group.add_argument('--lr-warm-up-epochs', type=float, default=1.0)
    group.add_argument('--lr-warm-up-factor', type=float, default=0.001,
                       help='learning rate multiplier at the start of the warm-up')
    group.add_argument('--lr-milestones', type=int, nargs='*', default=[],
                       help='milestones schedule: epochs after which the learning rate becomes the '
                            'matching --lr-values entry')
    group.add_argument('--lr-values', type=float, nargs='*', default=[],
                       help='milestones schedule: absolute learning rates, one per --lr-milestones epoch')
    group.add_argument('--lr-step-size', type=int, default=None,
                       help='step schedule: epochs between two multiplications by --lr-gamma')
    group.add_argument('--lr-gamma', type=float, default=0.1, help='step schedule: the factor per step')
    group.add_argument('--lr-cosine-min', type=float, default=0.0,
                       help='cosine schedule: the learning rate reached at --epochs')


@dataclasses.dataclass(frozen=True)
class LearningRateSchedule:
    """The multiplier of the base learning rate as a function of the (fractional) epoch."""

    decay_epochs: tuple[float, ...] = ()
    decay_factor: float = 0.1
    decay_duration: float = 1.0
    warm_up_start: float = 0.0
    warm_up_epochs: float = 1.0
    warm_up_factor: float = 0.001
    shape: str = 'decay'
    milestones: tuple[int, ...] = ()
    milestone_factors: tuple[float, ...] = ()  # --lr-values / --lr
    step_size: int = 1
    gamma: float = 0.1
    cosine_epochs: float = 1.0
    cosine_min_factor: float = 0.0  # --lr-cosine-min / --lr

    def __call__(self, epoch: float) -> float:
        return self.warm_up(epoch) * getattr(self, f'_{self.shape}')(epoch)

    def to_dict(self) -> dict:
        """Plain values, for a checkpoint's training state."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> 'LearningRateSchedule':
        return cls(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()})

    def differences(self, other: 'LearningRateSchedule') -> list[str]:
        """``name: this -> other`` for every field that differs."""
        return [f'{f.name} {getattr(self, f.name)} -> {getattr(other, f.name)}' for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)]

    def warm_up(self, epoch: float) -> float:
        if self.warm_up_epochs > 0:
            progress = (epoch - self.warm_up_start) / self.warm_up_epochs
            if progress < 1.0:
                return self.warm_up_factor ** (1.0 - max(0.0, progress))
        return 1.0

    def _decay(self, epoch: float) -> float:
        factor = 1.0
        for decay_epoch in self.decay_epochs:
            progress = (epoch - decay_epoch) / self.decay_duration if self.decay_duration > 0 else math.inf
            factor *= self.decay_factor ** min(1.0, max(0.0, progress))
        return factor

    def _milestones(self, epoch: float) -> float:
        factor = 1.0
        for milestone, milestone_factor in zip(self.milestones, self.milestone_factors):
            if epoch >= milestone:
                factor = milestone_factor
        return factor

    def _step(self, epoch: float) -> float:
        return self.gamma ** math.floor(epoch / self.step_size)

    def _cosine(self, epoch: float) -> float:
        progress = min(max(epoch, 0.0), self.cosine_epochs) / self.cosine_epochs
        return self.cosine_min_factor + (1.0 - self.cosine_min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    @classmethod
    def from_args(cls, args) -> 'LearningRateSchedule':
        if args.lr <= 0:
            raise ValueError(f'--lr must be positive, got {args.lr}')
        if args.lr_decay_epochs < 0 or args.lr_warm_up_epochs < 0:
            raise ValueError('--lr-decay-epochs and --lr-warm-up-epochs must be >= 0')
        if not 0 < args.lr_warm_up_factor <= 1:
            raise ValueError(f'--lr-warm-up-factor must be in (0, 1], got {args.lr_warm_up_factor}')
        if not 0 < args.lr_decay_factor <= 1:
            raise ValueError(f'--lr-decay-factor must be in (0, 1], got {args.lr_decay_factor}')
        shape = getattr(args, 'lr_schedule', 'decay')
        _check_shape_flags(args, shape)
        return cls(decay_epochs=tuple(args.lr_decay), decay_factor=args.lr_decay_factor,
                   decay_duration=args.lr_decay_epochs, warm_up_start=args.lr_warm_up_start_epoch,
                   warm_up_epochs=args.lr_warm_up_epochs, warm_up_factor=args.lr_warm_up_factor,
                   **_shape_kwargs(args, shape))


def _check_shape_flags(args, shape: str) -> None:
    """Flags of one shape given with another are a mistake, not something to ignore silently."""
    given = {'decay': bool(args.lr_decay), 'milestones': bool(args.lr_milestones or args.lr_values),
             'step': args.lr_step_size is not None, 'cosine': args.lr_cosine_min != 0.0}
    flags = {'decay': '--lr-decay', 'milestones': '--lr-milestones/--lr-values', 'step': '--lr-step-size',
             'cosine': '--lr-cosine-min'}
    for other, is_given in given.items():
        if is_given and other != shape:
            raise ValueError(f'{flags[other]} belongs to --lr-schedule {other}, but the schedule is {shape}')


def _shape_kwargs(args, shape: str) -> dict:
    if shape == 'milestones':
        if not args.lr_milestones or len(args.lr_milestones) != len(args.lr_values):
            raise ValueError(f'--lr-schedule milestones needs one --lr-values entry per --lr-milestones epoch, '
                             f'got {len(args.lr_milestones)} milestones and {len(args.lr_values)} values')
        if any(b <= a for a, b in zip(args.lr_milestones, args.lr_milestones[1:])) or args.lr_milestones[0] < 0:
            raise ValueError(f'--lr-milestones must be increasing epochs >= 0, got {args.lr_milestones}')
        if any(v <= 0 for v in args.lr_values):
            raise ValueError(f'--lr-values must be positive learning rates, got {args.lr_values}')
        return dict(shape=shape, milestones=tuple(args.lr_milestones),
                    milestone_factors=tuple(v / args.lr for v in args.lr_values))
    if shape == 'step':
        if args.lr_step_size is None or args.lr_step_size < 1:
            raise ValueError(f'--lr-schedule step needs --lr-step-size >= 1 epoch, got {args.lr_step_size}')
        if not 0 < args.lr_gamma <= 1:
            raise ValueError(f'--lr-gamma must be in (0, 1], got {args.lr_gamma}')
        return dict(shape=shape, step_size=args.lr_step_size, gamma=args.lr_gamma)
    if shape == 'cosine':
        if not 0 <= args.lr_cosine_min <= args.lr:
            raise ValueError(f'--lr-cosine-min must be in [0, --lr {args.lr}], got {args.lr_cosine_min}')
        return dict(shape=shape, cosine_epochs=float(args.epochs), cosine_min_factor=args.lr_cosine_min / args.lr)
    return dict(shape=shape)


def optimizer_from_args(args, parameters) -> torch.optim.Optimizer:
    if args.lr <= 0:
        raise ValueError(f'--lr must be positive, got {args.lr}')
    if args.weight_decay < 0:
        raise ValueError(f'--weight-decay must be >= 0, got {args.weight_decay}')
    if args.optimizer == 'sgd':
        if args.nesterov and args.momentum <= 0:
            raise ValueError('--nesterov needs --momentum > 0 (or pass --no-nesterov)')
        return torch.optim.SGD(parameters, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                               weight_decay=args.weight_decay)
    if not (0 <= args.momentum < 1 and 0 <= args.beta2 < 1):
        raise ValueError('--momentum (beta1) and --beta2 must be in [0, 1) for Adam(W)')
    adam = torch.optim.Adam if args.optimizer == 'adam' else torch.optim.AdamW
    return adam(parameters, lr=args.lr, betas=(args.momentum, args.beta2), eps=args.adam_eps,
                weight_decay=args.weight_decay)


def scheduler(optimizer, schedule: LearningRateSchedule, batches_per_epoch: int, start_epoch: int = 0
              ) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-batch LambdaLR; ``start_epoch`` places it on the absolute schedule."""
    for group in optimizer.param_groups:
        group.setdefault('initial_lr', group['lr'])
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule(step / batches_per_epoch),
        last_epoch=start_epoch * batches_per_epoch - 1)


def fast_forward(scheduler: torch.optim.lr_scheduler.LambdaLR, steps: int) -> None:
    """Place a new per-batch scheduler after ``steps`` steps and set the learning rates it gives there
    (the schedule is a function of the step, so no history is needed)."""
    scheduler.last_epoch = steps
    rates = [base * function(steps) for base, function in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, rate in zip(scheduler.optimizer.param_groups, rates):
        group['lr'] = rate
    scheduler._last_lr = rates
