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
  ``r = --lr-cosine-min / --lr``;
* ``torch`` (``--scheduler-class NAME --scheduler-params JSON``, DeepLabCut's way): any class of
  ``torch.optim.lr_scheduler`` or DeepLabCut's ``LRListScheduler`` (:mod:`openfields.training.schedulers`)
  stepped once per epoch, ``lr_n / --lr`` during epoch ``n + 1`` where ``lr_n`` is its learning rate after
  ``n`` steps (replayed on a one-parameter optimizer, so the multiplier is still a function of the epoch
  alone, and a resumed run needs no scheduler history). A params value ``{"type": NAME, "params": {...}}`` (or
  a list of them) is a scheduler built on the same optimizer, for ``SequentialLR`` and ``ChainedScheduler``.
  It is stepped through every epoch of the run when the flags are read, so a scheduler that would fail
  when a nested one takes over stops the run before it starts, naming its key (``--scheduler-params
  schedulers[1]``, or ``runner.scheduler.params.schedulers[1]`` of the DeepLabCut file that gave it).

``--optimizer-class NAME --optimizer-params JSON`` builds any ``torch.optim`` class with ``--lr`` and those
parameters (the class's own defaults for the rest) instead of ``--optimizer``.

Every shape is absolute in epochs, so it can be resumed at any step.
"""

import argparse
import dataclasses
import json
import math

import torch

from . import schedulers

SCHEDULES = ('decay', 'milestones', 'step', 'cosine', 'torch')


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
    group.add_argument('--optimizer-class', default=None, metavar='NAME',
                       help='any torch.optim class by name (e.g. AdamW, RMSprop), built with --lr and '
                            '--optimizer-params; replaces --optimizer and its flags')
    group.add_argument('--optimizer-params', default=None, metavar='JSON',
                       help='--optimizer-class: its keyword arguments as a JSON object, e.g. '
                            '\'{"weight_decay": 0.01}\' (the learning rate is --lr)')
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
    group.add_argument('--scheduler-class', default=None, metavar='NAME',
                       help='torch schedule: any torch.optim.lr_scheduler class by name (e.g. StepLR, '
                            'CosineAnnealingLR, SequentialLR), stepped once per epoch; selects --lr-schedule torch')
    group.add_argument('--scheduler-params', default=None, metavar='JSON',
                       help='--scheduler-class: its keyword arguments as a JSON object; a value '
                            '{"type": NAME, "params": {...}} is a nested scheduler')


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
    torch_class: str = ''  # --scheduler-class
    torch_params: str = '{}'  # --scheduler-params, JSON
    torch_base_lr: float = 1.0  # --lr: some schedulers have absolute rates (eta_min)

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

    def _torch(self, epoch: float) -> float:
        return _replayed_factors(self.torch_class, self.torch_params, self.torch_base_lr,
                                 max(0, math.floor(epoch)))

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
        shape = _shape(getattr(args, 'lr_schedule', 'decay'), getattr(args, 'scheduler_class', None))
        _check_shape_flags(shape, {'decay': bool(args.lr_decay),
                                   'milestones': bool(args.lr_milestones or args.lr_values),
                                   'step': args.lr_step_size is not None, 'cosine': args.lr_cosine_min != 0.0})
        if shape == 'milestones':
            kwargs = _milestones_kwargs(args.lr_milestones, args.lr_values, args.lr)
        elif shape == 'step':
            kwargs = _step_kwargs(args.lr_step_size, args.lr_gamma)
        elif shape == 'torch':
            kwargs = _torch_kwargs(args.scheduler_class, args.scheduler_params, args.lr,
                                   getattr(args, 'epochs', None) or 2, config_source(args, ('--scheduler-class', '--scheduler-params')))
        elif shape == 'cosine':
            kwargs = _cosine_kwargs(args.lr_cosine_min, args.lr, args.epochs)
        else:
            kwargs = {}
        return cls(decay_epochs=tuple(args.lr_decay), decay_factor=args.lr_decay_factor,
                   decay_duration=args.lr_decay_epochs, warm_up_start=args.lr_warm_up_start_epoch,
                   warm_up_epochs=args.lr_warm_up_epochs, warm_up_factor=args.lr_warm_up_factor,
                   shape=shape, **kwargs)


def _shape(schedule: str, scheduler_class: str | None) -> str:
    """``--lr-schedule``; ``--scheduler-class`` selects ``torch`` (with the default or ``torch`` only)."""
    if scheduler_class is None:
        if schedule == 'torch':
            raise ValueError('--lr-schedule torch needs --scheduler-class NAME')
        return schedule
    if schedule not in ('decay', 'torch'):
        raise ValueError(f'--scheduler-class belongs to --lr-schedule torch, but the schedule is {schedule}')
    return 'torch'


def _check_shape_flags(shape: str, given: dict[str, bool]) -> None:
    """Flags of one shape given with another (``given``: shape -> whether its flags are set) are a mistake,
    not something to ignore silently."""
    flags = {'decay': '--lr-decay', 'milestones': '--lr-milestones/--lr-values', 'step': '--lr-step-size',
             'cosine': '--lr-cosine-min'}
    for other, is_given in given.items():
        if is_given and other != shape:
            raise ValueError(f'{flags[other]} belongs to --lr-schedule {other}, but the schedule is {shape}')


def _milestones_kwargs(milestones: list[int], values: list[float], lr: float) -> dict:
    if not milestones or len(milestones) != len(values):
        raise ValueError(f'--lr-schedule milestones needs one --lr-values entry per --lr-milestones epoch, '
                         f'got {len(milestones)} milestones and {len(values)} values')
    if any(b <= a for a, b in zip(milestones, milestones[1:])) or milestones[0] < 0:
        raise ValueError(f'--lr-milestones must be increasing epochs >= 0, got {milestones}')
    if any(v <= 0 for v in values):
        raise ValueError(f'--lr-values must be positive learning rates, got {values}')
    return dict(milestones=tuple(milestones), milestone_factors=tuple(v / lr for v in values))


def _step_kwargs(step_size: int | None, gamma: float) -> dict:
    if step_size is None or step_size < 1:
        raise ValueError(f'--lr-schedule step needs --lr-step-size >= 1 epoch, got {step_size}')
    if not 0 < gamma <= 1:
        raise ValueError(f'--lr-gamma must be in (0, 1], got {gamma}')
    return dict(step_size=step_size, gamma=gamma)


def _torch_kwargs(scheduler_class: str, scheduler_params: str | None, lr: float, epochs: int,
                  source: str | None = None) -> dict:
    """Stepped through the ``epochs`` of the run now (the replay is kept for the run): a scheduler that fails
    at any epoch stops the run before it starts, named where it was written (``source``: the config file
    that gave the flags, None: the command line)."""
    params = json.dumps(parse_params(scheduler_params, '--scheduler-params'), sort_keys=True)
    try:
        _replayed_factors(scheduler_class, params, lr, epochs)
    except schedulers.ParamsError as error:
        error = schedulers.ParamsError(error.key, f'{error.reason} (--epochs {epochs})')
        raise named_error(error, source, DLC_SCHEDULER_KEY, '--scheduler-class', scheduler_class,
                          '--scheduler-params') from None
    return dict(torch_class=scheduler_class, torch_params=params, torch_base_lr=lr)


DLC_SCHEDULER_KEY = 'runner.scheduler'  # a DeepLabCut file's {type, params}: --scheduler-class and -params


def _is_dlc_file(config: str) -> bool:
    """A YAML config or ``--config dlc`` (the project's pytorch_config.yaml): DeepLabCut's form is taken."""
    return config == 'dlc' or config.lower().endswith(('.yaml', '.yml'))


def config_source(args, flags: tuple[str, ...]) -> str | None:
    """The ``--config`` file that gave ``flags`` (None: the command line gave them, or no file did); a YAML
    file is taken for DeepLabCut's (:func:`named_error`)."""
    config = getattr(args, 'config', None)
    given = any(str(a).startswith(flags) for a in getattr(args, 'argv', ()))
    return None if config is None or given else str(config)


def named_error(error: schedulers.ParamsError, source: str | None, dlc_key: str, class_flag: str, name: str,
                params_flag: str) -> ValueError:
    """``error`` of ``class_flag NAME params_flag JSON`` named where it was written: the key under ``dlc_key``
    of a DeepLabCut file (``runner.scheduler.params.schedulers[1]...``), else the flags (after the config file
    that gave them, ``source``)."""
    if source is not None and _is_dlc_file(source):
        return ValueError(f'{source}: key {schedulers.join(dlc_key, error.key)}: {error.reason}')
    message = flag_message(error, class_flag, name, params_flag)
    return ValueError(f'{source}: {message}' if source is not None else message)


def flag_message(error: schedulers.ParamsError, class_flag: str, name: str, params_flag: str) -> str:
    """A :class:`~openfields.training.schedulers.ParamsError` of ``--x-class NAME --x-params JSON`` as the
    command line names it: ``--x-params key: reason`` (the entry itself: ``--x-class NAME: reason``)."""
    key, reason = error.key, error.reason
    if key == schedulers.PARAMS or key.startswith(schedulers.PARAMS + '.'):
        inner = key[len(schedulers.PARAMS) + 1:]
        return f'{params_flag} {inner}: {reason}' if inner else f'{params_flag}: {reason}'
    if not key and reason.startswith(f'{name} '):
        return f'{class_flag} {reason}'  # '--scheduler-class OneCycleLR fails when ...'
    return f'{class_flag} {name}: ' + (f'{key}: {reason}' if key else reason)


def _cosine_kwargs(cosine_min: float, lr: float, epochs: int) -> dict:
    if not 0 <= cosine_min <= lr:
        raise ValueError(f'--lr-cosine-min must be in [0, --lr {lr}], got {cosine_min}')
    return dict(cosine_epochs=float(epochs), cosine_min_factor=cosine_min / lr)


def parse_params(text: str | None, flag: str) -> dict:
    """The JSON object of ``--optimizer-params`` / ``--scheduler-params`` (None: no parameters)."""
    if text is None:
        return {}
    try:
        params = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as error:
        raise ValueError(f'{flag}: not a JSON object ({error.msg})') from None
    if not isinstance(params, dict):
        raise ValueError(f'{flag}: must be a JSON object of keyword arguments, got {text!r}')
    return params


def optimizer_class(name: str) -> type:
    cls = getattr(torch.optim, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)) or cls is torch.optim.Optimizer:
        raise ValueError(f'torch.optim has no optimizer class {name!r}')
    return cls


def build_optimizer(name: str, params: dict, lr: float, parameters) -> torch.optim.Optimizer:
    """``torch.optim.<name>(parameters, lr=lr, **params)``; a :class:`~openfields.training.schedulers.ParamsError`
    (a ValueError keyed in ``{type, params}``) for a class torch does not have or parameters it rejects."""
    try:
        cls = optimizer_class(name)
    except ValueError as error:
        raise schedulers.ParamsError('', str(error)) from None
    if 'lr' in params:
        raise schedulers.ParamsError(f'{schedulers.PARAMS}.lr', f'{name}: give the learning rate as --lr (config '
                                                                 'key lr), not in its params')
    schedulers.check_params(cls, params, reserved=('params',))
    try:
        return cls(parameters, lr=lr, **params)
    except (TypeError, ValueError) as error:
        raise schedulers.ParamsError('', f'{name} rejects its params {params}: {error}') from None


def check_optimizer(name: str, params: dict, lr: float) -> None:
    """Build ``name`` on a throw-away parameter: a bad name or params stop the run before any data."""
    build_optimizer(name, params, lr, [torch.nn.Parameter(torch.zeros(1))])


_REPLAYS: dict[tuple, list[float]] = {}  # (name, params, base lr) -> the factor after 0, 1, ... steps


def _replayed_factors(name: str, params_json: str, base_lr: float, epochs: int) -> float:
    """The learning rate of the scheduler after ``epochs`` steps, divided by ``base_lr`` (replays are
    cached and extended by doubling, so a whole run costs a few replays)."""
    factors = _REPLAYS.get((name, params_json, base_lr), [])
    if len(factors) <= epochs:
        rates = schedulers.learning_rates(name, json.loads(params_json), base_lr, max(epochs, 2 * len(factors)))
        factors = [rate / base_lr for rate in rates]
        _REPLAYS[(name, params_json, base_lr)] = factors
    return factors[epochs]


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """The optimizer of a run: ``--optimizer`` and its flags, or ``--optimizer-class`` with its params (JSON,
    sorted keys); checked when built from the flags, so a bad value stops the run before any data."""

    name: str = 'sgd'
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    beta2: float = 0.999
    adam_eps: float = 1e-6
    weight_decay: float = 0.0
    torch_class: str | None = None  # --optimizer-class
    torch_params: str = '{}'  # --optimizer-params, JSON

    @classmethod
    def from_args(cls, args) -> 'OptimizerSettings':
        torch_class = getattr(args, 'optimizer_class', None)
        if torch_class is None and getattr(args, 'optimizer_params', None) is not None:
            raise ValueError('--optimizer-params needs --optimizer-class NAME')
        params = parse_params(getattr(args, 'optimizer_params', None), '--optimizer-params')
        return cls(name=args.optimizer, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                   beta2=args.beta2, adam_eps=args.adam_eps, weight_decay=args.weight_decay,
                   torch_class=torch_class, torch_params=json.dumps(params, sort_keys=True))

    def __post_init__(self):
        """One line naming the flag for a value the optimizer cannot take."""
        if self.lr <= 0:
            raise ValueError(f'--lr must be positive, got {self.lr}')
        if self.torch_class is not None:
            try:
                check_optimizer(self.torch_class, json.loads(self.torch_params), self.lr)
            except schedulers.ParamsError as error:
                raise ValueError(flag_message(error, '--optimizer-class', self.torch_class,
                                              '--optimizer-params')) from None
            return
        if self.weight_decay < 0:
            raise ValueError(f'--weight-decay must be >= 0, got {self.weight_decay}')
        if self.name == 'sgd':
            if self.nesterov and self.momentum <= 0:
                raise ValueError('--nesterov needs --momentum > 0 (or pass --no-nesterov)')
        elif not (0 <= self.momentum < 1 and 0 <= self.beta2 < 1):
            raise ValueError('--momentum (beta1) and --beta2 must be in [0, 1) for Adam(W)')

    def build(self, parameters) -> torch.optim.Optimizer:
        """The optimizer of ``parameters``."""
        if self.torch_class is not None:
            try:
                return build_optimizer(self.torch_class, json.loads(self.torch_params), self.lr, parameters)
            except schedulers.ParamsError as error:
                raise ValueError(flag_message(error, '--optimizer-class', self.torch_class,
                                              '--optimizer-params')) from None
        if self.name == 'sgd':
            return torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov,
                                   weight_decay=self.weight_decay)
        adam = torch.optim.Adam if self.name == 'adam' else torch.optim.AdamW
        return adam(parameters, lr=self.lr, betas=(self.momentum, self.beta2), eps=self.adam_eps,
                    weight_decay=self.weight_decay)


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
