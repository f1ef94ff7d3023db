"""Learning-rate schedulers configured by name, the way DeepLabCut configures them.

A scheduler is ``{type: NAME, params: {...}}``: NAME is any class of ``torch.optim.lr_scheduler`` or
:class:`LRListScheduler` (DeepLabCut's own), built on the optimizer with ``params`` as keyword arguments. A
params value that is itself ``{type, params}`` (or a list of them) is a scheduler on the same optimizer:
``SequentialLR``'s and ``ChainedScheduler``'s ``schedulers``, as in DeepLabCut's rtmpose configs.

Why everything is checked before training: a scheduler inside ``SequentialLR`` only runs from its milestone
on, so a bad value (``eta_min: "5e-05"``, a string) would otherwise crash the run at that epoch, hours in.
:func:`check_params` compares every value with the class's signature (a number where it annotates ``int``
or ``float``, ...), and :func:`learning_rates` steps the whole scheduler once per epoch, as DeepLabCut steps
it, on a throw-away one-parameter optimizer. A failure is a :class:`ParamsError` whose ``key`` says where
in the ``{type, params}`` entry it is (``params.schedulers[1].params.eta_min``), so that each caller names
it as its user wrote it: a DeepLabCut file as ``runner.scheduler.params.schedulers[1].params.eta_min``, the
command line as ``--scheduler-params schedulers[1].params.eta_min``. Optimizers configured by name
(:func:`openfields.training.optimize.build_optimizer`) have their params checked by :func:`check_params` too.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings

import torch

PARAMS = 'params'


class ParamsError(ValueError):
    """A ``{type, params}`` entry its class cannot run; ``key``: where in the entry ('' the entry itself,
    ``params.eta_min`` one value), ``reason``: why."""

    def __init__(self, key: str, reason: str):
        super().__init__(f'{key}: {reason}' if key else reason)
        self.key, self.reason = key, reason

    def under(self, prefix: str) -> ParamsError:
        """The same error, ``key`` placed under ``prefix``."""
        return ParamsError(join(prefix, self.key), self.reason)


def join(prefix: str, key: str) -> str:
    """``prefix.key``; ``[i]`` keys and empty parts join without a dot."""
    if not prefix or not key:
        return prefix or key
    return prefix + key if key.startswith('[') else f'{prefix}.{key}'


class LRListScheduler(torch.optim.lr_scheduler.LRScheduler):
    """DeepLabCut's default scheduler: after ``milestones[k]`` steps the learning rate becomes ``lr_list[k]``
    (absolute; one value per parameter group, or one number for all), and between milestones it is left as it
    is. So inside ``SequentialLR`` its milestones count from the epoch it takes over, and until its first
    milestone it keeps the rate the scheduler before it left."""

    def __init__(self, optimizer, milestones: list[int], lr_list: list[float | list[float]], last_epoch: int = -1):
        _check_milestones(milestones)
        if len(lr_list) != len(milestones):
            raise ParamsError('lr_list', f'one entry per milestone: {len(milestones)} milestones, '
                                         f'{len(lr_list)} entries')
        groups = len(optimizer.param_groups)
        self.rates = {m: _group_rates(rates, groups, f'lr_list[{i}]')
                      for i, (m, rates) in enumerate(zip(milestones, lr_list))}
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return list(self.rates.get(self.last_epoch) or (group['lr'] for group in self.optimizer.param_groups))


def _check_milestones(milestones: list[int]) -> None:
    for i, milestone in enumerate(milestones):
        if not isinstance(milestone, int) or isinstance(milestone, bool) or milestone < 0:
            raise ParamsError(f'milestones[{i}]', f'must be a whole number of epochs >= 0, got {milestone!r}')
    if any(b <= a for a, b in zip(milestones, milestones[1:])):
        raise ParamsError('milestones', f'must increase, got {milestones}')


def _group_rates(rates, groups: int, key: str) -> list[float]:
    rates = rates if isinstance(rates, list) else [rates] * groups
    if len(rates) != groups:
        raise ParamsError(key, f'one learning rate per parameter group ({groups}), got {rates!r}')
    if not all(r > 0 and math.isfinite(r) for r in rates):
        raise ParamsError(key, f'learning rates must be positive, got {rates!r}')
    return [float(r) for r in rates]


OWN_CLASSES = {'LRListScheduler': LRListScheduler}


def scheduler_class(name) -> type:
    cls = OWN_CLASSES.get(str(name)) or getattr(torch.optim.lr_scheduler, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.lr_scheduler.LRScheduler)):
        raise ParamsError('', f'torch.optim.lr_scheduler has no scheduler class {name!r} (nor is it '
                              f'{" or ".join(OWN_CLASSES)})')
    if issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise ParamsError('', f'{name} steps on a metric; schedulers are stepped once per epoch without one')
    return cls


# --- params against the class's signature ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Expected:
    """What a parameter takes: kinds among number, bool, string, null, list, scheduler; ``item``: what a
    list's items take (None: not checked)."""

    kinds: frozenset
    item: _Expected | None = None

    def describe(self, plural: bool = False) -> str:
        """'a number or a list of numbers'."""
        one = {'number': 'a number', 'bool': 'true or false', 'string': 'a string', 'null': 'null',
               'scheduler': 'a scheduler {type, params}', 'list': 'a list'}
        many = {'number': 'numbers', 'bool': 'true or false values', 'string': 'strings', 'null': 'nulls',
                'scheduler': 'schedulers {type, params}', 'list': 'lists'}
        words = dict(many if plural else one)
        if self.item is not None:
            words['list'] = f'{words["list"]} of {self.item.describe(plural=True)}'
        return ' or '.join(words[k] for k in sorted(self.kinds, key=list(one).index))


_SCALARS = {'int': 'number', 'float': 'number', 'Tensor': 'number', 'bool': 'bool', 'str': 'string',
            'Literal': 'string', 'None': 'null', 'NoneType': 'null', 'LRScheduler': 'scheduler'}
_SEQUENCES = ('list', 'List', 'tuple', 'Tuple', 'Sequence', 'Iterable')


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == '[') - (char == ']')
        if char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p.strip() for p in parts + [text[start:]] if p.strip() and p.strip() != '...']


def _from_annotation(annotation: str) -> _Expected | None:
    """``'float | list[float]'`` -> number or a list of numbers; None for a type not read from a config
    (a callable, an optimizer): torch decides."""
    kinds, items = set(), []
    for alternative in _split(annotation, '|'):
        head, _, inner = alternative.partition('[')
        head, inner = head.strip().rsplit('.', 1)[-1], inner[:-1]
        if head in ('Optional', 'Union'):
            inner_expected = [_from_annotation(part) for part in _split(inner, ',')]
            if None in inner_expected:
                return None
            kinds.update(*(e.kinds for e in inner_expected))
            items.extend(e.item for e in inner_expected if e.item is not None)
        elif head in _SCALARS:
            kinds.add(_SCALARS[head])
        elif head in _SEQUENCES:
            kinds.add('list')
            items.append(_from_annotation(' | '.join(_split(inner, ','))) if inner else None)
        else:
            return None
    item = None
    if len(items) == 1:
        item = items[0]
    elif items and None not in items:
        item = _Expected(frozenset().union(*(i.kinds for i in items)))
    return _Expected(frozenset(kinds), item)


def _expected(parameter: inspect.Parameter) -> _Expected | None:
    """From the annotation, else from the default's type; None when neither says."""
    annotation = parameter.annotation
    expected = None
    if annotation is not inspect.Parameter.empty:
        expected = _from_annotation(annotation if isinstance(annotation, str)
                                    else inspect.formatannotation(annotation))
    elif parameter.default not in (inspect.Parameter.empty, None):
        kind = _kind(parameter.default)
        expected = _Expected(frozenset({kind})) if kind in _SCALARS.values() else None
    if expected is not None and parameter.default is None:
        expected = dataclasses.replace(expected, kinds=expected.kinds | {'null'})
    return expected


def _kind(value) -> str:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (int, float)):
        return 'number'
    if isinstance(value, (list, tuple)):
        return 'list'
    if isinstance(value, dict):
        return 'scheduler' if 'type' in value else 'mapping'
    return {str: 'string', type(None): 'null'}.get(type(value), type(value).__name__)


def described(value) -> str:
    """``value`` in an error message; a string that reads as a number says it is one only unquoted."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return f'the string {value!r}'
        return f'the string {value!r} (quoted in the file? a number is written without quotes)'
    return 'null' if value is None else repr(value)


def _check_value(value, expected: _Expected, key: str, owner: str) -> None:
    kind = _kind(value)
    if kind not in expected.kinds:
        raise ParamsError(key, f'{owner} takes {expected.describe()} here, got {described(value)}')
    if kind == 'list' and expected.item is not None:
        for i, item in enumerate(value):
            _check_value(item, expected.item, f'{key}[{i}]', owner)


def check_params(cls: type, params: dict, reserved: tuple[str, ...] = ()) -> None:
    """Every value of ``params`` against what ``cls`` takes (keys ``params.<name>``): no unknown name, none
    missing, each of the annotated kind. ``reserved``: arguments the caller gives itself (the optimizer)."""
    owner = cls.__name__
    parameters = {name: p for name, p in inspect.signature(cls).parameters.items()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls).parameters.values())
    for name, value in params.items():
        key = join(PARAMS, str(name))
        if name in reserved:
            raise ParamsError(key, f'{owner} rejects its params: {name} is given by openfields, not in params')
        if name not in parameters:
            if takes_any:
                continue
            known = ', '.join(n for n in parameters if n not in reserved)
            raise ParamsError(key, f'{owner} rejects its params: no parameter {name!r} (it takes {known})')
        expected = _expected(parameters[name])
        if expected is not None:
            _check_value(value, expected, key, owner)
    missing = [n for n, p in parameters.items()
               if p.default is inspect.Parameter.empty and n not in reserved and n not in params]
    if missing:
        raise ParamsError(PARAMS, f'{owner} needs {", ".join(missing)}')


# --- building and stepping ---------------------------------------------------------------------------------

class _Built:
    """The schedulers built for one entry, by identity: their key and class name (to name the one that
    fails when stepped)."""

    def __init__(self):
        self.entries: dict[int, tuple[str, str, object]] = {}  # the scheduler kept: its id stays its own

    def add(self, scheduler, key: str):
        self.entries[id(scheduler)] = (key, type(scheduler).__name__, scheduler)
        return scheduler

    def failed(self, error: BaseException) -> tuple[str, str]:
        """The key and class of the innermost scheduler whose method raised ``error`` (the outermost
        scheduler when none did)."""
        found = next(iter(reversed(self.entries.values())))  # built last: the outermost
        frame = error.__traceback__
        while frame is not None:
            found = self.entries.get(id(frame.tb_frame.f_locals.get('self')), found)
            frame = frame.tb_next
        return found[0], found[1]


def build(name, params: dict, optimizer: torch.optim.Optimizer, built: _Built | None = None, key: str = ''):
    """``<name>(optimizer=optimizer, **params)`` with nested ``{type, params}`` values built first on the
    same optimizer; ``key``: the entry's place (for errors)."""
    built = built if built is not None else _Built()
    try:
        cls = scheduler_class(name)
        if not isinstance(params, dict):
            raise ParamsError(PARAMS, f'must be a mapping of {name}\'s arguments, got {params!r}')
        check_params(cls, params, reserved=('optimizer',))
        arguments = {n: _nested(v, optimizer, built, join(PARAMS, str(n))) for n, v in params.items()}
    except ParamsError as error:
        raise error.under(key) from None
    try:
        return built.add(cls(optimizer=optimizer, **arguments), key)
    except ParamsError as error:  # LRListScheduler's own checks, keyed in its params
        raise error.under(join(key, PARAMS)) from None
    except (TypeError, ValueError, KeyError, ArithmeticError) as error:
        raise ParamsError(key, f'{name} rejects its params {params}: {error}') from None


def _nested(value, optimizer, built: _Built, key: str):
    if isinstance(value, dict) and 'type' in value:
        return _entry(value, optimizer, built, key)
    if isinstance(value, list) and value and all(isinstance(v, dict) and 'type' in v for v in value):
        return [_entry(v, optimizer, built, f'{key}[{i}]') for i, v in enumerate(value)]
    return value


def _entry(entry: dict, optimizer, built: _Built, key: str):
    unknown = [k for k in entry if k not in ('type', PARAMS)]
    if unknown:
        raise ParamsError(join(key, str(unknown[0])), 'a nested scheduler is {type, params}')
    return build(entry['type'], entry.get(PARAMS) or {}, optimizer, built, key)


def learning_rates(name, params: dict, base_lr: float, epochs: int) -> list[float]:
    """The learning rate of ``name`` built with ``params`` on an optimizer with rate ``base_lr``, after 0, 1,
    ..., ``epochs`` steps: stepped once per epoch as DeepLabCut steps it, so ``[n]`` is the rate of epoch
    ``n + 1``. A ParamsError names the scheduler that fails and the epoch."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    built = _Built()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # torch's hints on stepping order: a throw-away optimizer
        scheduler = build(name, params, optimizer, built)
        rates = [optimizer.param_groups[0]['lr']]
        for epoch in range(1, epochs + 1):
            try:
                optimizer.step()
                scheduler.step()
            except (TypeError, ValueError, KeyError, IndexError, ArithmeticError, AttributeError) as error:
                key, owner = built.failed(error)
                raise ParamsError(key, f'{owner} fails when stepped after epoch {epoch}: {error}') from None
            rates.append(_checked_rate(optimizer.param_groups[0]['lr'], name, epoch))
    return rates


def _checked_rate(rate, name, epoch: int) -> float:
    rate = float(rate)
    if not (math.isfinite(rate) and rate >= 0):
        raise ParamsError('', f'{name} gives the learning rate {rate} after epoch {epoch}')
    return rate


def epochs_until_every_part_ran(params: dict) -> int:
    """Steps after which every scheduler nested in ``params`` has run at least twice: two past the last
    milestones of the SequentialLRs in it, added up (a nested one counts from its own start)."""
    return 2 + _last_milestone(params)


def _last_milestone(params) -> int:
    if not isinstance(params, dict):
        return 0
    schedulers = params.get('schedulers') if isinstance(params.get('schedulers'), list) else []
    milestones = params.get('milestones') if schedulers and isinstance(params.get('milestones'), list) else []
    last = max((m for m in milestones if isinstance(m, int) and not isinstance(m, bool)), default=0)
    return last + sum(_last_milestone(s.get(PARAMS)) for s in schedulers if isinstance(s, dict))
