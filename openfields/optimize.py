"""Optimizer and learning-rate schedule.

The schedule is a multiplier of ``--lr`` evaluated per batch, in epochs ``e = step / batches_per_epoch``:

* warm-up: ``f_w`` before ``--lr-warm-up-start-epoch`` ``s``, then ``f_w ** (1 - (e - s) / E_w)`` for
  ``s < e < s + E_w`` (a geometric ramp from ``f_w = --lr-warm-up-factor`` to 1 over
  ``E_w = --lr-warm-up-epochs``);
* decay: for each epoch ``d`` in ``--lr-decay``, a factor ``f_d ** min(1, max(0, (e - d) / E_d))`` with
  ``f_d = --lr-decay-factor`` and ``E_d = --lr-decay-epochs`` (a smooth geometric step).

The schedule is absolute in epochs, so it can be resumed at any step.
"""

import argparse
import dataclasses
import math

import torch


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
    group.add_argument('--lr-decay', type=float, nargs='*', default=[],
                       help='epochs at which the learning rate decays by --lr-decay-factor')
    group.add_argument('--lr-decay-factor', type=float, default=0.1)
    group.add_argument('--lr-decay-epochs', type=float, default=1.0,
                       help='epochs over which each decay is spread')
    group.add_argument('--lr-warm-up-start-epoch', type=float, default=0.0)
    group.add_argument('--lr-warm-up-epochs', type=float, default=1.0)
    group.add_argument('--lr-warm-up-factor', type=float, default=0.001,
                       help='learning rate multiplier at the start of the warm-up')


@dataclasses.dataclass(frozen=True)
class LearningRateSchedule:
    """The multiplier of the base learning rate as a function of the (fractional) epoch."""

    decay_epochs: tuple[float, ...] = ()
    decay_factor: float = 0.1
    decay_duration: float = 1.0
    warm_up_start: float = 0.0
    warm_up_epochs: float = 1.0
    warm_up_factor: float = 0.001

    def __call__(self, epoch: float) -> float:
        factor = 1.0
        if self.warm_up_epochs > 0:
            progress = (epoch - self.warm_up_start) / self.warm_up_epochs
            if progress < 1.0:
                factor *= self.warm_up_factor ** (1.0 - max(0.0, progress))
        for decay_epoch in self.decay_epochs:
            progress = (epoch - decay_epoch) / self.decay_duration if self.decay_duration > 0 else math.inf
            factor *= self.decay_factor ** min(1.0, max(0.0, progress))
        return factor

    @classmethod
    def from_args(cls, args) -> 'LearningRateSchedule':
        if args.lr_decay_epochs < 0 or args.lr_warm_up_epochs < 0:
            raise ValueError('--lr-decay-epochs and --lr-warm-up-epochs must be >= 0')
        if not 0 < args.lr_warm_up_factor <= 1:
            raise ValueError(f'--lr-warm-up-factor must be in (0, 1], got {args.lr_warm_up_factor}')
        if not 0 < args.lr_decay_factor <= 1:
            raise ValueError(f'--lr-decay-factor must be in (0, 1], got {args.lr_decay_factor}')
        return cls(decay_epochs=tuple(args.lr_decay), decay_factor=args.lr_decay_factor,
                   decay_duration=args.lr_decay_epochs, warm_up_start=args.lr_warm_up_start_epoch,
                   warm_up_epochs=args.lr_warm_up_epochs, warm_up_factor=args.lr_warm_up_factor)


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
