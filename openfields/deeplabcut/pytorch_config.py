"""DeepLabCut 3's ``pytorch_config.yaml`` read as it is: nested sections in, flat flag values out.

``--config pytorch_config.yaml`` (or ``--config dlc``: the file DeepLabCut wrote for ``--dlc-project`` and
``--dlc-shuffle``) is recognised by its sections (:data:`SECTIONS`) and translated by :func:`translate`
into the config-file form of :mod:`openfields.config` (``{long flag name: value}``), which then converts
and checks the values like any config file. :data:`DLC_KEYS` is the one table behind both the translation
and the "Coming from DeepLabCut" table of ``docs/configuration.md``: each entry names the yaml paths it
reads, the flags it sets and how the meaning differs.

Keys without a counterpart are collected (``Translation.ignored``, one ``path (why)`` each) and reported in
one line by the caller; ``--strict-config`` makes them an error. ``null`` is always accepted: it is
DeepLabCut's "unset". Data transforms go to the flags of every dataset being trained (``--dlc-affine`` for
``--dataset dlc``, the default a DeepLabCut file implies).
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import json
import logging
import os
import pathlib
import typing

from ..network import basenets, cspnext
from ..training import loggers, optimize, schedulers

SECTIONS = ('data', 'runner', 'train_settings', 'method', 'net_type', 'model', 'metadata', 'inference',
            'detector', 'logger', 'resume_training_from', 'with_center_keypoints')

_LOG = logging.getLogger(__name__)

# DeepLabCut's model.backbone type -> its model_names openfields builds: timm's names, which the basenets have
BASENETS = {'ResNet': ('resnet18', 'resnet50', 'resnet50_gn', 'resnet101', 'resnet152'),
            'HRNet': ('hrnet_w18', 'hrnet_w32', 'hrnet_w48'),
            'CSPNeXt': tuple(cspnext.VARIANTS)}  # named by deepen_factor and widen_factor
# DeepLabCut's net_type -> the model.backbone DeepLabCut writes for it (its config/backbones, dekr and rtmpose
# files); top_down_<net type> has the backbone of <net type>
NET_TYPES = {
    'resnet_50': {'type': 'ResNet', 'model_name': 'resnet50_gn', 'output_stride': 16, 'freeze_bn_stats': True,
                  'freeze_bn_weights': False},
    'resnet_101': {'type': 'ResNet', 'model_name': 'resnet101', 'output_stride': 16, 'freeze_bn_stats': True,
                   'freeze_bn_weights': False},
    **{f'hrnet_w{w}': {'type': 'HRNet', 'model_name': f'hrnet_w{w}', 'freeze_bn_stats': True,
                       'freeze_bn_weights': False} for w in (18, 32, 48)},
    **{f'dekr_w{w}': {'type': 'HRNet', 'model_name': f'hrnet_w{w}', 'interpolate_branches': True,
                      'freeze_bn_stats': False, 'freeze_bn_weights': False} for w in (18, 32, 48)},
    **{f'{family}_{size}': {'type': 'CSPNeXt', 'model_name': f'cspnext_{size}', 'freeze_bn_stats': False,
                            'freeze_bn_weights': False} for family in ('cspnext', 'rtmpose') for size in 'smx'},
}


class DlcConfigError(ValueError):
    """A ``pytorch_config.yaml`` that cannot be used; the message names the file and the key."""


@dataclasses.dataclass
class Translation:
    values: dict  # {long flag name with {p} for each dataset prefix resolved: value}
    ignored: list[str]  # 'path (why)' of the keys without a counterpart


class _Context:
    """What a translator needs: where it is (for messages), the dataset prefixes, the ignored list."""

    def __init__(self, source: str, prefixes: list[str]):
        self.source, self.prefixes, self.ignored = source, prefixes, []

    def ignore(self, path: str, why: str) -> dict:
        self.ignored.append(f'{path} ({why})')
        return {}

    def error(self, path: str, message: str) -> DlcConfigError:
        return DlcConfigError(f'{self.source}: key {path}: {message}')

    def data(self, **values) -> dict:
        """``{<prefix>-<name>: value}`` for every dataset prefix."""
        return {f'{p}-{name.replace("_", "-")}': v for p in self.prefixes for name, v in values.items()}


class DlcKey(typing.NamedTuple):
    """A ``pytorch_config.yaml`` key (``key``, as the docs show it), the openfields flags that do its job
    (none: no equivalent) and how they differ; ``paths`` are the yaml paths it reads (a path reads its
    whole subtree) and ``translate(value, path, context)`` returns their flag values. Without ``translate``
    the key is listed as ignored (unless null)."""

    key: str
    flags: tuple[str, ...]
    note: str
    paths: tuple[str, ...] = ()
    translate: typing.Callable | None = None


# --- translators ------------------------------------------------------------------------------------------

def _mapping(value, path: str, ctx: _Context) -> dict:
    if not isinstance(value, dict):
        raise ctx.error(path, f'must be a mapping, got {type(value).__name__} {value!r}')
    return value


def _number(value, path: str, ctx: _Context, minimum=None):
    """A number (YAML 1.2's, as DeepLabCut reads it: ``1e-4`` is one, see :func:`openfields.config.read`);
    a quoted one is a string and is refused as such."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.error(path, f'must be a number, got {schedulers.described(value)}')
    if minimum is not None and value < minimum:
        raise ctx.error(path, f'must be >= {minimum}, got {value!r}')
    return value


def _probability(value, path: str, ctx: _Context, default_p: float = 0.5) -> float:
    """DeepLabCut's ``true`` (p 0.5), ``false``, a probability, or ``{p: ...}``."""
    if isinstance(value, dict):
        value = value.get('p', default_p)
    if isinstance(value, bool):
        return default_p if value else 0.0
    value = _number(value, path, ctx)
    if not 0 <= value <= 1:
        raise ctx.error(path, f'a probability in [0, 1], got {value!r}')
    return float(value)


def _only(value, path: str, ctx: _Context, known: set[str]) -> dict:
    """The mapping ``value``; its keys outside ``known`` are listed as ignored."""
    value = _mapping(value, path, ctx)
    for key in value:
        if key not in known and value[key] is not None:
            ctx.ignore(f'{path}.{key}', 'no counterpart')
    return value


def _switch(name: str, accepted=True):
    """A key whose only supported value is ``accepted`` (what openfields always does)."""
    def translate(value, path, ctx):
        return {} if value == accepted else ctx.ignore(path, f'openfields always does {name}')
    return translate


def _affine(value, path, ctx):
    if isinstance(value, bool):
        return ctx.data(affine=0.9 if value else 0.0)
    value = _only(value, path, ctx, {'p', 'rotation', 'scaling', 'translation'})
    values = {'affine': _probability(value.get('p', 0.9), f'{path}.p', ctx)}
    if value.get('rotation') is not None:
        values['affine_rotation'] = _number(value['rotation'], f'{path}.rotation', ctx, 0)
    if value.get('scaling') is not None:
        scaling = value['scaling']
        if not (isinstance(scaling, list) and len(scaling) == 2):
            raise ctx.error(f'{path}.scaling', f'must be [min, max], got {scaling!r}')
        values['affine_scaling'] = [_number(s, f'{path}.scaling', ctx) for s in scaling]
    if value.get('translation') is not None:
        values['affine_translation'] = _number(value['translation'], f'{path}.translation', ctx, 0)
    return ctx.data(**values)


def _hflip(value, path, ctx):
    values = {'hflip': _probability(value, path, ctx)}
    if isinstance(value, dict) and value.get('symmetries') is not None:
        values['hflip_pairs'] = _symmetries(value['symmetries'], f'{path}.symmetries', ctx)
    return ctx.data(**values)


def _symmetries(value, path, ctx) -> list[str]:
    """DeepLabCut's ``[[i, j], ...]`` (0-based body part indices) as ``--<dataset>-hflip-pairs i:j ...``."""
    pairs = value if isinstance(value, list) else [None]
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in pair)):
            raise ctx.error(path, f'must be a list of [i, j] body part index pairs, got {value!r}')
    if not pairs:
        raise ctx.error(path, 'is empty: list the [i, j] pairs a flip swaps, or leave symmetries out')
    return [f'{i}:{j}' for i, j in pairs]


def _probability_flag(name: str):
    def translate(value, path, ctx):
        return ctx.data(**{name: _probability(value, path, ctx)})
    return translate


def _gaussian_noise(value, path, ctx):
    if isinstance(value, bool):
        return ctx.data(gaussian_noise=12.75 if value else 0.0)
    return ctx.data(gaussian_noise=_number(value, path, ctx, 0))


def _resize(value, path, ctx):
    value = _only(value, path, ctx, {'height', 'width', 'keep_ratio'})
    size = [_number(value.get(k), f'{path}.{k}', ctx, 1) for k in ('width', 'height')]
    keep_ratio = value.get('keep_ratio', True)
    if not isinstance(keep_ratio, bool):
        raise ctx.error(f'{path}.keep_ratio', f'must be true or false, got {keep_ratio!r}')
    return ctx.data(resize=[int(s) for s in size], resize_keep_ratio=keep_ratio)


def _aligned_edge(side: int) -> int:
    """openfields crops k * 16 + 1 pixels (field cells on the first and last pixel): 448 -> 449."""
    return side + 1 if side % 16 == 0 else side


def _crop_sampling(value, path, ctx):
    value = _only(value, path, ctx, {'width', 'height', 'max_shift', 'method'})
    width = int(_number(value.get('width', 448), f'{path}.width', ctx, 16))
    height = int(_number(value.get('height', width), f'{path}.height', ctx, 16))
    values = {'crop_sampling': value.get('method', 'hybrid')}
    if width == height:
        values['square_edge'] = _aligned_edge(width)
    else:
        values['crop_size'] = [_aligned_edge(width), _aligned_edge(height)]
    if value.get('max_shift') is not None:
        values['crop_max_shift'] = _number(value['max_shift'], f'{path}.max_shift', ctx, 0)
    return ctx.data(**values)


AUTO_PADDING_KEYS = {'pad_width_divisor', 'pad_height_divisor', 'min_width', 'min_height', 'border_mode',
                     'position', 'border_value', 'border_mask_value'}
BORDER_MODES = {'constant': 'constant', 'reflect_101': 'reflect_101', 'reflect101': 'reflect_101'}


def _size_key(value: dict, key: str, path: str, ctx) -> int:
    """A positive whole number of pixels at ``value[key]``; 0 when absent."""
    return int(_number(value[key], f'{path}.{key}', ctx, 1)) if value.get(key) is not None else 0


def _auto_padding(value, path, ctx):
    value = _only(value, path, ctx, AUTO_PADDING_KEYS)
    divisors = [_size_key(value, key, path, ctx) for key in ('pad_width_divisor', 'pad_height_divisor')]
    minimum = [_size_key(value, key, path, ctx) for key in ('min_width', 'min_height')]
    if not any(divisors) and not any(minimum):
        return ctx.ignore(path, 'neither a divisor nor a minimum size')
    values = {'auto_padding': divisors if divisors[0] != divisors[1] else divisors[:1]}
    if any(minimum):
        values['auto_padding_min'] = minimum
    border = value.get('border_mode', 'constant')
    if str(border).lower() not in BORDER_MODES:
        raise ctx.error(f'{path}.border_mode', f'{border!r} is not one of {", ".join(sorted(BORDER_MODES))}')
    values['auto_padding_border'] = BORDER_MODES[str(border).lower()]
    if value.get('position', 'random') != 'random':
        ctx.ignore(f'{path}.position', 'openfields places the image at random')
    for key in ('border_value', 'border_mask_value'):
        if value.get(key) not in (None, 0):
            ctx.ignore(f'{path}.{key}', 'a constant border is a random gray in openfields')
    return ctx.data(**values)


COLLATE_KEYS = {'min_scale': None, 'max_scale': None, 'min_short_side': None, 'max_short_side': None,
                'max_ratio': 'collate_max_ratio', 'multiple_of': 'collate_multiple',
                'to_square': 'collate_to_square', 'max_shift': 'collate_max_shift', 'max_size': 'collate_max_size'}


def _collate(value, path, ctx):
    value = _mapping(value, path, ctx)
    kind = value.get('type')
    if kind not in ('ResizeFromDataSizeCollate', 'ResizeFromListCollate'):
        return ctx.ignore(path, f'{kind}: only ResizeFromDataSizeCollate and ResizeFromListCollate have a '
                                'counterpart')
    params = {k: v for k, v in value.items() if k != 'type'}
    params.update(params.pop('params', None) or {})
    if kind == 'ResizeFromListCollate':
        return _list_collate(params, path, ctx)
    params = _only(params, path, ctx, set(COLLATE_KEYS))
    values = {'collate_scale': [params.get('min_scale', 1.0), params.get('max_scale', 1.0)],
              'collate_short_side': [params.get('min_short_side', 128), params.get('max_short_side', 1152)]}
    for key, name in COLLATE_KEYS.items():
        if name is not None and params.get(key) is not None:
            values[name] = params[key]
    return ctx.data(**values)


def _list_collate(params: dict, path: str, ctx) -> dict:
    """``scales``: an int is a square, ``[h, w]`` a rectangle: ``--<dataset>-collate-sizes N WxH ...``."""
    params = _only(params, path, ctx, {'scales', 'max_shift', 'max_size', 'seed'})
    scales = params.get('scales')
    if not isinstance(scales, list) or not scales:
        raise ctx.error(f'{path}.scales', f'must be a non-empty list of sizes (N or [height, width]), got {scales!r}')
    sizes = []
    for scale in scales:
        sides = scale if isinstance(scale, list) else [scale]
        if len(sides) not in (1, 2) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 16
                                               for s in sides):
            raise ctx.error(f'{path}.scales', f'{scale!r} is neither N nor [height, width] (sides >= 16)')
        sizes.append(str(sides[0]) if len(sides) == 1 else f'{sides[1]}x{sides[0]}')
    values = {'collate_sizes': sizes}
    for key in ('max_shift', 'max_size'):
        if params.get(key) is not None:
            values[f'collate_{key}'] = int(_number(params[key], f'{path}.{key}', ctx, 0))
    if params.get('seed') is not None:
        ctx.ignore(f'{path}.seed', 'each loader worker draws its own sizes from --seed')
    return ctx.data(**values)


def _inference(value, path, ctx):
    value = _only(value, path, ctx, {'normalize_images'})
    return _switch('normalize_images')(value.get('normalize_images', True), f'{path}.normalize_images', ctx)


def _device(value, path, ctx):
    return {'device': str(value)}


def _method(value, path, ctx):
    if value in ('bu', 'td'):
        return {'method': value}
    return ctx.ignore(path, f'{value}: conditional top-down has no counterpart; the pose model trains bottom-up')


AVAILABLE = '; '.join(f'{kind}: {", ".join(names)}' for kind, names in BASENETS.items())
BACKBONE_KEYS = {'type', 'model_name', 'pretrained', 'freeze_bn_stats', 'freeze_bn_weights'}
FAMILY_KEYS = {'ResNet': {'output_stride', 'drop_path_rate', 'drop_block_rate'},
               'HRNet': {'interpolate_branches', 'increased_channel_count', 'stride'},
               'CSPNeXt': {'arch', 'expand_ratio', 'deepen_factor', 'widen_factor', 'channel_attention',
                           'norm_layer', 'activation_fn', 'out_indices'}}
RESNET_OUTPUT_STRIDES = {32: 1, 16: 2}  # DeepLabCut's ResNet output_stride -> dilation of the last block
# every flag a backbone sets, at its default: a backbone sets them all, so that model.backbone also replaces
# what a net_type earlier in the file set
BACKBONE_FLAGS = {'basenet-freeze-bn-stats': False, 'basenet-freeze-bn-weights': False, 'resnet-pool0-stride': 0,
                  'resnet-block5-dilation': 1, 'hrnet-interpolate-branches': False,
                  'hrnet-increased-channel-count': False}


def _basenet(backbone: dict, path: str, ctx) -> tuple[str, str]:
    """``(type, basenet)`` of a DeepLabCut backbone: its ``type`` (else the family its ``model_name`` starts
    with) and ``model_name`` (a CSPNeXt by its deepen and widen factors); one that openfields does not build
    is refused, listing what it builds."""
    name = str(backbone.get('model_name'))
    kind = backbone.get('type') or next((k for k in BASENETS if name.startswith(k.lower())), None)
    if kind not in BASENETS:
        raise ctx.error(f'{path}.type', f'{kind!r} has no openfields basenet; openfields builds {AVAILABLE}')
    if kind != 'CSPNeXt':
        if name not in BASENETS[kind]:
            raise ctx.error(f'{path}.model_name', f'{name!r} has no openfields basenet; openfields builds {AVAILABLE}')
        return kind, name
    default = cspnext.VARIANTS.get(name, cspnext.VARIANTS['cspnext_m'])  # DeepLabCut's CSPNeXt defaults: m's
    factors = tuple(_number(backbone.get(key, d), f'{path}.{key}', ctx)
                    for key, d in zip(('deepen_factor', 'widen_factor'), default))
    variant = next((v for v, f in cspnext.VARIANTS.items() if f == factors), None)
    if variant is None:
        variants = ', '.join(f'{v} ({d}, {w})' for v, (d, w) in cspnext.VARIANTS.items())
        raise ctx.error(path, f'deepen_factor {factors[0]} and widen_factor {factors[1]} ({name}) make no CSPNeXt '
                              f'openfields builds: {variants}')
    return kind, variant


def _model(value, path, ctx):
    """``model.backbone``: see :func:`_backbone`. Noted on the context (keys are read in the file's order):
    a ``net_type`` after it is only checked."""
    vars(ctx)['backbone_read'] = True
    return _backbone(value, path, ctx)


def _backbone(value, path, ctx) -> dict:
    """A DeepLabCut backbone as the basenet flags (all of :data:`BACKBONE_FLAGS`); what openfields cannot
    build is refused in one line naming the key. ImageNet weights unless ``pretrained: false``: timm's as in
    DeepLabCut (DeepLabCut's own for CSPNeXt)."""
    backbone = _mapping(value, path, ctx)
    kind, basenet = _basenet(backbone, path, ctx)
    _only(backbone, path, ctx, BACKBONE_KEYS | FAMILY_KEYS[kind])
    pretrained = ('auto' if kind == 'CSPNeXt' else 'timm') if _bool(backbone, 'pretrained', True, path, ctx) else False
    return {'basenet': basenet, 'basenet-pretrained': pretrained, **BACKBONE_FLAGS,
            **_FAMILIES[kind](backbone, basenet, path, ctx)}


def _bool(backbone: dict, key: str, default: bool, path: str, ctx) -> bool:
    value = backbone.get(key, default)
    if not isinstance(value, bool):
        raise ctx.error(f'{path}.{key}', f'must be true or false, got {value!r}')
    return value


def _freezing(backbone: dict, path: str, ctx) -> dict:
    """DeepLabCut freezes BatchNorm statistics and weights unless told not to (its BaseBackbone defaults)."""
    return {f'basenet-{key.replace("_", "-")}': _bool(backbone, key, True, path, ctx)
            for key in ('freeze_bn_stats', 'freeze_bn_weights')}


def _only_value(backbone: dict, key: str, accepted: tuple, path: str, ctx, why: str) -> None:
    if backbone.get(key, accepted[0]) not in accepted:
        raise ctx.error(f'{path}.{key}', f'{backbone[key]!r}: {why}')


def _resnet_backbone(backbone, basenet, path, ctx) -> dict:
    stride = backbone.get('output_stride', 32)  # DeepLabCut's ResNet default (its resnet_* files say 16)
    if stride not in RESNET_OUTPUT_STRIDES:
        raise ctx.error(f'{path}.output_stride', f'{stride!r}: openfields ResNets have output stride 32 (max-pool '
                                                 'after the input conv) or 16 (the last block dilated), no other')
    for key in ('drop_path_rate', 'drop_block_rate'):
        _only_value(backbone, key, (0, 0.0), path, ctx, 'openfields has no stochastic depth or DropBlock (0 only)')
    values = {'resnet-pool0-stride': 2, 'resnet-block5-dilation': RESNET_OUTPUT_STRIDES[stride]}
    freezing = _freezing(backbone, path, ctx)
    if basenets.RESNETS[basenet][1] is None:  # BatchNorm; a GroupNorm ResNet has nothing to freeze, in DLC neither
        values.update(freezing)
    return values


def _hrnet_backbone(backbone, basenet, path, ctx) -> dict:
    _only_value(backbone, 'stride', (4,), path, ctx, 'the HRNet basenets have stride 4, the first branch\'s')
    return {'hrnet-interpolate-branches': _bool(backbone, 'interpolate_branches', False, path, ctx),
            'hrnet-increased-channel-count': _bool(backbone, 'increased_channel_count', False, path, ctx),
            **_freezing(backbone, path, ctx)}


def _cspnext_backbone(backbone, basenet, path, ctx) -> dict:
    for key, accepted, why in (('arch', ('P5',), 'openfields builds the P5 CSPNeXts'),
                               ('expand_ratio', (0.5,), 'openfields\' CSP layers split the channels in halves'),
                               ('channel_attention', (True,), 'openfields\' CSPNeXts have channel attention'),
                               ('norm_layer', ('SyncBN', 'BN'), 'openfields\' CSPNeXts have BatchNorm (synchronised '
                                                                'across processes with --ddp)'),
                               ('activation_fn', ('SiLU',), 'openfields\' CSPNeXts use SiLU'),
                               ('out_indices', (-1,), 'openfields\' CSPNeXts give their last stage')):
        _only_value(backbone, key, accepted, path, ctx, why)
    return _freezing(backbone, path, ctx)


_FAMILIES = {'ResNet': _resnet_backbone, 'HRNet': _hrnet_backbone, 'CSPNeXt': _cspnext_backbone}


def _keyed(error: schedulers.ParamsError, path: str, ctx: _Context) -> DlcConfigError:
    """A ``{type, params}`` entry's error at ``path``, its key as the file writes it."""
    return ctx.error(schedulers.join(path, error.key), error.reason)


def _optimizer(value, path, ctx):
    """Any ``torch.optim`` class; ``params.lr`` is ``--lr``, every other value is checked against the
    class's signature, named by its key."""
    value = _only(value, path, ctx, {'type', 'params'})
    params = dict(_mapping(value.get('params') or {}, f'{path}.params', ctx))
    lr = params.pop('lr', None)
    if lr is not None and _number(lr, f'{path}.params.lr', ctx) <= 0:
        raise ctx.error(f'{path}.params.lr', f'must be > 0, got {lr!r}')
    name = value.get('type')
    try:
        optimize.check_optimizer(name, params, lr if lr is not None else 1e-3)
    except schedulers.ParamsError as error:
        raise _keyed(error, path, ctx) from None
    values = {'optimizer-class': name, 'optimizer-params': json.dumps(params)}
    if lr is not None:
        values['lr'] = lr
    return values


def _scheduler(value, path, ctx):
    """``LRListScheduler`` at the top is ``--lr-schedule milestones``; any other scheduler, nested ones
    included, is ``--lr-schedule torch``. Either is built and stepped here until every nested scheduler has
    run, so a bad value is named by its key in this file (``runner.scheduler.params.schedulers[1].params.
    eta_min``); the run steps it again through all of its epochs when it starts."""
    name, params = _checked_scheduler(value, path, ctx)
    if name == 'LRListScheduler':
        return _milestone_flags(params)
    return {'lr-schedule': 'torch', 'scheduler-class': name, 'scheduler-params': json.dumps(params, sort_keys=True),
            'lr-warm-up-epochs': 0}


def _checked_scheduler(value, path, ctx, epochs: int = 0) -> tuple[str, dict]:
    """A ``{type, params}`` scheduler's name and params, built and stepped through ``epochs`` (at least until
    every nested scheduler has run); a bad value is one error naming its key."""
    value = _only(value, path, ctx, {'type', 'params'})
    params = _mapping(value.get('params') or {}, f'{path}.params', ctx)
    name = value.get('type')
    try:
        schedulers.learning_rates(name, params, 1e-3, max(schedulers.epochs_until_every_part_ran(params), epochs))
    except schedulers.ParamsError as error:
        raise _keyed(error, path, ctx) from None
    return name, params


def _milestone_flags(params: dict) -> dict:
    """A checked LRListScheduler as ``--lr-milestones`` / ``--lr-values`` (one parameter group: each
    ``lr_list`` entry holds one rate); none: the learning rate stays ``--lr``."""
    if not params['milestones']:
        return {'lr-warm-up-epochs': 0}
    rates = [rate[0] if isinstance(rate, list) else rate for rate in params['lr_list']]
    return {'lr-schedule': 'milestones', 'lr-milestones': params['milestones'], 'lr-values': rates,
            'lr-warm-up-epochs': 0}


def _key_metric_asc(value, path, ctx):
    if not isinstance(value, bool):
        raise ctx.error(path, f'must be true or false, got {value!r}')
    return {'key-metric-asc': True} if value else {'key-metric-desc': True}


def _flag(name: str, kind=None):
    def translate(value, path, ctx):
        if kind is bool and not isinstance(value, bool):
            raise ctx.error(path, f'must be true or false, got {value!r}')
        if kind is int:
            value = int(_number(value, path, ctx))
        return {name: value}
    return translate


WEIGHT_INIT_KEYS = {'snapshot_path', 'detector_snapshot_path', 'dataset', 'with_decoder', 'memory_replay',
                    'conversion_array', 'bodyparts'}


def _weight_init(value, path, ctx):
    """DeepLabCut's ``WeightInitialization``: a snapshot's backbone (and, ``with_decoder``, its heads) as the
    starting weights; what only SuperAnimal models use is refused."""
    if value is None:
        return {}
    init = _only(value, path, ctx, WEIGHT_INIT_KEYS)
    for key in ('dataset', 'memory_replay', 'conversion_array', 'detector_snapshot_path'):
        if init.get(key) not in (None, False):
            raise ctx.error(f'{path}.{key}', f'{init[key]!r}: SuperAnimal fine-tuning and detector weights are not '
                            'available in openfields; start from a snapshot with snapshot_path alone')
    if init.get('snapshot_path') is None:
        raise ctx.error(f'{path}.snapshot_path', 'missing: weight_init names the snapshot to start from')
    with_decoder = _bool(init, 'with_decoder', False, path, ctx)
    return {'dlc-snapshot': str(init['snapshot_path']), 'dlc-snapshot-backbone-only': not with_decoder}


def _resume_training_from(value, path, ctx):
    """A DeepLabCut snapshot (``.pt``, as its runner names them) starts the run from its weights; another
    path is an openfields checkpoint to continue."""
    value = str(value)
    return {'dlc-snapshot': value} if value.endswith('.pt') else {'resume': value}


def _runner_type(value, path, ctx):
    return {} if value == 'PoseTrainingRunner' else ctx.ignore(path, f'{value}: only PoseTrainingRunner')


def _gpus(value, path, ctx):
    return ctx.ignore(path, 'one process per GPU with --ddp (torchrun, srun) instead of DataParallel')


LOGGERS = {'WandbLogger': 'wandb', 'CSVLogger': 'csv', 'TensorboardLogger': 'tensorboard'}


LOGGER_KEYS = {'type', 'project_name', 'run_name', 'image_log_interval'}


def _logger(value, path, ctx):
    """The logger; a WandbLogger's other keys (and its ``wandb_kwargs`` mapping) are what DeepLabCut passes
    to ``wandb.init``: ``--wandb-init-kwargs``, each checked against wandb.init and refused naming its key."""
    value = _mapping(value, path, ctx)
    kind = LOGGERS.get(value.get('type'))
    if kind is None:
        raise ctx.error(f'{path}.type', f'{value.get("type")!r} is not one of {", ".join(LOGGERS)}')
    extra = {key: v for key, v in value.items() if key not in LOGGER_KEYS and v is not None}
    values = {'logger': [kind]}
    if kind == 'wandb' and extra:
        values['wandb-init-kwargs'] = _wandb_init_kwargs(extra, path, ctx)
    for key in extra if kind != 'wandb' else ():
        ctx.ignore(f'{path}.{key}', 'no counterpart')
    if value.get('project_name') is not None:
        values['wandb-project'] = str(value['project_name'])
    if value.get('run_name') is not None:
        values['wandb-run-name'] = str(value['run_name'])
    if value.get('image_log_interval') is not None:
        values['image-log-interval'] = int(_number(value['image_log_interval'], f'{path}.image_log_interval',
                                                   ctx, 1))
    return values


def _wandb_init_kwargs(extra: dict, path: str, ctx) -> str:
    """The ``wandb.init`` arguments of a WandbLogger: its keys beyond :data:`LOGGER_KEYS` and those of its
    ``wandb_kwargs`` mapping, as ``--wandb-init-kwargs`` JSON; checked where the wandb package is installed
    (without it ``--logger wandb`` stops the run anyway)."""
    places = {key: f'{path}.{key}' for key in extra if key != 'wandb_kwargs'}
    nested = _mapping(extra.get('wandb_kwargs') or {}, f'{path}.wandb_kwargs', ctx)
    for key in nested:
        if key in places:
            raise ctx.error(f'{path}.wandb_kwargs.{key}', f'given twice, also as {places[key]}')
        places[key] = f'{path}.wandb_kwargs.{key}'
    kwargs = {key: v for key, v in {**extra, **nested}.items() if key != 'wandb_kwargs'}
    if importlib.util.find_spec('wandb') is not None:
        try:
            loggers.check_wandb_init_kwargs(kwargs)
        except schedulers.ParamsError as error:
            name = error.key.split('[')[0].split('.')[0]
            raise ctx.error(places[name] + error.key[len(name):], error.reason) from None
    return json.dumps(kwargs, sort_keys=True)


def _project_path(value, path, ctx):
    if 'dlc' not in ctx.prefixes or not value:
        return {}
    return {'dlc-project': str(value)}


def _pcutoff(value, path, ctx):
    if 'dlc' not in ctx.prefixes or isinstance(value, (list, dict)):
        return ctx.ignore(path, 'one --dlc-pcutoff for every body part') if isinstance(value, (list, dict)) else {}
    return {'dlc-pcutoff': _number(value, path, ctx)}


def _consumed(value, path, ctx):
    return {}


def _bbox_margin(value, path, ctx):
    return {'topdown-bbox-margin': float(_number(value, path, ctx, minimum=0))}


def _top_down_crop(value, path, ctx):
    crop = _only(value, path, ctx, {'width', 'height', 'margin', 'crop_with_context'})
    values = {f'topdown-crop-{side}': int(_number(crop[side], f'{path}.{side}', ctx, minimum=1))
              for side in ('width', 'height') if crop.get(side) is not None}
    if crop.get('crop_with_context') is False:
        values['topdown-crop-padding'] = 1.0  # the box itself, grown to the crop's aspect ratio only
    return values


def _random_bbox_transform(value, path, ctx):
    jitter = _only(value, path, ctx, {'shift_factor', 'shift_prob', 'scale_factor', 'scale_prob', 'p'})
    values = {}
    if jitter.get('shift_factor') is not None:
        values['topdown-jitter-shift'] = float(_number(jitter['shift_factor'], f'{path}.shift_factor', ctx, 0))
    if jitter.get('shift_prob') is not None:
        values['topdown-jitter-shift-prob'] = _probability(jitter['shift_prob'], f'{path}.shift_prob', ctx)
    if jitter.get('scale_factor') is not None:
        scale = jitter['scale_factor']
        if not isinstance(scale, (list, tuple)) or len(scale) != 2:
            raise ctx.error(f'{path}.scale_factor', f'must be [min, max], got {scale!r}')
        values['topdown-jitter-scale'] = [float(_number(v, f'{path}.scale_factor', ctx, 0)) for v in scale]
    for key in ('scale_prob', 'p'):
        if jitter.get(key) not in (None, 1, 1.0):
            ctx.ignore(f'{path}.{key}', 'the crop is always rescaled in the --topdown-jitter-scale range')
    return values


# DeepLabCut's detector model types (detector.model.type) without a variant -> torchvision's model
DETECTOR_TYPES = {'SSDLite': 'ssdlite320_mobilenet_v3_large', 'FasterRCNN': 'fasterrcnn_mobilenet_v3_large_fpn'}
DETECTOR_EPOCHS = 10  # --detector-epochs' default: a scheduler is checked through at least these epochs


def _detector(value, path, ctx):
    """The detector of top-down mode: its training augmentation, model, training settings, runner
    (optimizer, scheduler, snapshots, evaluation interval, scheduler state on resume) and resume; what has
    no counterpart is listed as ignored."""
    section = _only(value, path, ctx, {'data', 'model', 'train_settings', 'runner', 'resume_training_from'})
    settings = section.get('train_settings')
    epochs = settings.get('epochs') if isinstance(settings, dict) else None
    runner = lambda runner, runner_path, ctx: _detector_runner(runner, runner_path, ctx, epochs)  # noqa: E731
    values = {}
    for key, translate in (('data', _detector_data), ('model', _detector_model),
                           ('train_settings', _detector_train_settings), ('runner', runner)):
        if section.get(key) is not None:
            values.update(translate(section[key], f'{path}.{key}', ctx))
    if section.get('resume_training_from') is not None:
        values['detector-resume'] = str(section['resume_training_from'])
    return values


def _detector_context(ctx: _Context) -> _Context:
    """A context whose data transforms set the detector's flags (``--detector-affine``, ...), sharing the
    ignored list."""
    child = _Context(ctx.source, ['detector'])
    child.ignored = ctx.ignored
    return child


# detector.data.train keys -> their translators, as the pose model's data.train (flags --detector-<name>)
DETECTOR_TRANSFORMS = {'affine': _affine, 'hist_eq': _probability_flag('hist_eq'),
                       'motion_blur': _probability_flag('motion_blur'), 'covering': _probability_flag('covering'),
                       'gaussian_noise': _gaussian_noise}
DETECTOR_WHOLE_IMAGES = ('collate', 'crop_sampling', 'auto_padding', 'resize')  # sizing: the detector's own


def _detector_data(value, path, ctx):
    data = _only(value, path, ctx, {'colormode', 'inference', 'train'})
    if data.get('colormode') not in (None, 'RGB'):
        ctx.ignore(f'{path}.colormode', 'openfields reads RGB')
    if data.get('inference') is not None:
        _inference(data['inference'], f'{path}.inference', ctx)
    train = _mapping(data.get('train') or {}, f'{path}.train', ctx)
    values, detector = {}, _detector_context(ctx)
    for key, setting in train.items():
        key_path = f'{path}.train.{key}'
        if setting is None:
            continue
        if key in DETECTOR_TRANSFORMS:
            values.update(DETECTOR_TRANSFORMS[key](setting, key_path, detector))
        elif key == 'hflip':
            values.update(_detector_hflip(setting, key_path, ctx))
        elif key == 'normalize_images':
            _normalize(setting, key_path, ctx)
        elif key in DETECTOR_WHOLE_IMAGES:
            ctx.ignore(key_path, 'the detector trains on whole images resized to its own input size')
        else:
            ctx.ignore(key_path, 'no counterpart')
    return values


def _detector_hflip(value, path, ctx):
    if isinstance(value, dict) and value.get('symmetries') is not None:
        ctx.ignore(f'{path}.symmetries', 'a box has no keypoints to swap')
        value = {k: v for k, v in value.items() if k != 'symmetries'}
    return {'detector-hflip': _probability(value, path, ctx)}


def _detector_model(value, path, ctx):
    model = _only(value, path, ctx, {'type', 'variant', 'pretrained', 'box_score_thresh'})
    name = model.get('variant') or DETECTOR_TYPES.get(model.get('type'))
    if name is None:
        raise ctx.error(path, f'detector type {model.get("type")!r} without a variant; known types: '
                              f'{", ".join(DETECTOR_TYPES)}')
    values = {'detector': name}
    if 'pretrained' in model:
        values['detector-pretrained'] = 'auto' if model['pretrained'] else 'none'
    if model.get('box_score_thresh') is not None:
        values['detector-score-threshold'] = float(_number(model['box_score_thresh'], f'{path}.box_score_thresh', ctx))
    return values


# detector.train_settings keys -> the detector's flags (minimum value)
DETECTOR_TRAIN_SETTINGS = {'epochs': ('detector-epochs', 0), 'batch_size': ('detector-batch-size', 1),
                           'dataloader_workers': ('detector-loader-workers', 0),
                           'display_iters': ('detector-display-interval', 1)}


def _detector_train_settings(value, path, ctx):
    settings = _only(value, path, ctx, {*DETECTOR_TRAIN_SETTINGS, 'dataloader_pin_memory', 'seed'})
    if settings.get('seed') is not None:
        ctx.ignore(f'{path}.seed', 'the detector run is seeded by --seed, the pose model\'s train_settings.seed')
    return {flag: int(_number(settings[key], f'{path}.{key}', ctx, minimum=minimum))
            for key, (flag, minimum) in DETECTOR_TRAIN_SETTINGS.items() if settings.get(key) is not None}


DETECTOR_RUNNER_KEYS = {'type', 'optimizer', 'scheduler', 'eval_interval', 'key_metric', 'key_metric_asc',
                        'snapshots', 'load_scheduler_state_dict', 'device', 'gpus', 'snapshot_prefix'}


def _detector_runner(value, path, ctx, epochs=None):
    """The detector's runner; ``epochs``: the section's ``train_settings.epochs`` (a scheduler is stepped
    through them when the file is read)."""
    runner = _only(value, path, ctx, DETECTOR_RUNNER_KEYS)
    _detector_runner_ignored(runner, path, ctx)
    values = {}
    if runner.get('eval_interval') is not None:
        values['detector-eval-interval'] = int(_number(runner['eval_interval'], f'{path}.eval_interval', ctx, 0))
    if runner.get('optimizer') is not None:
        renamed = {'optimizer-class': 'detector-optimizer-class', 'optimizer-params': 'detector-optimizer-params',
                   'lr': 'detector-lr'}  # the pose model's translation of the same {type, params}
        values.update({renamed[k]: v for k, v in _optimizer(runner['optimizer'], f'{path}.optimizer', ctx).items()})
    if runner.get('scheduler') is not None:
        values.update(_detector_scheduler(runner['scheduler'], f'{path}.scheduler', ctx, epochs))
    if runner.get('snapshots') is not None:
        values.update(_detector_snapshots(runner['snapshots'], f'{path}.snapshots', ctx))
    if runner.get('load_scheduler_state_dict') is not None:
        values.update(_flag('detector-load-scheduler-state', bool)(
            runner['load_scheduler_state_dict'], f'{path}.load_scheduler_state_dict', ctx))
    return values


def _detector_runner_ignored(runner: dict, path: str, ctx) -> None:
    if runner.get('type') not in (None, 'DetectorTrainingRunner'):
        ctx.ignore(f'{path}.type', f'{runner["type"]}: only DetectorTrainingRunner')
    if runner.get('key_metric') not in (None, 'test.mAP@50:95') or runner.get('key_metric_asc') not in (None, True):
        ctx.ignore(f'{path}.key_metric', 'the best detector snapshot is picked by test.mAP@50:95, larger is better')
    if runner.get('device') not in (None, 'auto'):
        ctx.ignore(f'{path}.device', 'the detector trains on the pose run\'s device (device, runner.device)')
    if runner.get('gpus') is not None:
        _gpus(runner['gpus'], f'{path}.gpus', ctx)
    if runner.get('snapshot_prefix') not in (None, 'snapshot-detector'):
        ctx.ignore(f'{path}.snapshot_prefix', 'the detector\'s snapshots are <run>.detector.pkl.epochNNN')


def _detector_scheduler(value, path, ctx, epochs=None):
    """Any scheduler, LRListScheduler and nested ones included, as ``--detector-scheduler-class`` and
    ``--detector-scheduler-params``: built and stepped through the detector's epochs (at least until every
    nested scheduler has run) now, so a bad value is named by its key in this file."""
    name, params = _checked_scheduler(value, path, ctx, epochs if isinstance(epochs, int) else DETECTOR_EPOCHS)
    return {'detector-scheduler-class': name, 'detector-scheduler-params': json.dumps(params, sort_keys=True)}


def _detector_snapshots(value, path, ctx):
    snapshots = _only(value, path, ctx, {'max_snapshots', 'save_epochs', 'save_optimizer_state'})
    values = {}
    for key, minimum in (('max_snapshots', 0), ('save_epochs', 1)):
        if snapshots.get(key) is not None:
            values[f'detector-{key.replace("_", "-")}'] = int(_number(snapshots[key], f'{path}.{key}', ctx, minimum))
    if snapshots.get('save_optimizer_state') is not None:
        values.update(_flag('detector-save-optimizer-state', bool)(
            snapshots['save_optimizer_state'], f'{path}.save_optimizer_state', ctx))
    return values


# --- model.heads ----------------------------------------------------------------------------------------------

# DeepLabCut head types openfields does not have -> what they are (the refusal names it)
FOREIGN_HEADS = {'DEKRHead': 'DEKR (disentangled keypoint regression)',
                 'DLCRNetHead': 'part affinity fields (PAF: DLCRNet\'s multi-animal head)',
                 'RTMCCHead': 'RTMPose\'s SimCC head (RTMCC)'}
HEADS_INSTEAD = ('`--{p}-heads cif` trains CIF + CAF instead (several animals, OpenPifPaf\'s composite fields), '
                 '`--{p}-heads heatmap` DeepLabCut\'s heatmap head (one animal per image or crop); with either flag '
                 'the file\'s heads section is replaced')
HEAD_KEYS = {'type', 'weight_init', 'predictor', 'target_generator', 'criterion', 'heatmap_config', 'locref_config'}
HEATMAP_TARGETS = {'HeatmapGaussianGenerator': 'gaussian', 'HeatmapPlateauGenerator': 'plateau'}
HEATMAP_CRITERIA = {'WeightedMSECriterion': 'mse', 'WeightedBCECriterion': 'bce'}
LOCREF_CRITERIA = {'WeightedHuberCriterion': 'huber', 'WeightedMSECriterion': 'mse'}


def _heads(value, path, ctx):
    """``model.heads``: a ``bodypart`` HeatmapHead is ``--<dataset>-heads heatmap`` with its flags; a head
    openfields does not have (DEKR, PAF, RTMCC, ``unique_bodypart``, ``identity``, ...) is refused in one line
    saying which openfields heads train instead. ``--<dataset>-heads`` on the command line replaces the
    section (one info line)."""
    heads = _mapping(value, path, ctx)
    asked = [p for p in ctx.prefixes if f'{p}-heads' in getattr(ctx, 'given', ())]
    if asked:
        _LOG.info('%s: %s replaced by the heads of %s on the command line', ctx.source, path,
                  ', '.join(f'--{p}-heads' for p in asked))
        return {}
    for name, head in heads.items():
        if name != 'bodypart' and head is not None:
            kind = head.get('type') if isinstance(head, dict) else head
            raise ctx.error(f'{path}.{name}', f'{kind}: openfields trains the body parts\' head only, it has no '
                                              f'{name} head; ' + _instead(ctx))
    if heads.get('bodypart') is None:
        raise ctx.error(f'{path}.bodypart', 'missing: the body parts\' head; ' + _instead(ctx))
    return _heatmap_head(_mapping(heads['bodypart'], f'{path}.bodypart', ctx), f'{path}.bodypart', ctx)


def _instead(ctx) -> str:
    return HEADS_INSTEAD.format(p=ctx.prefixes[0])


def _heatmap_head(head: dict, path: str, ctx) -> dict:
    """A DeepLabCut HeatmapHead as the ``--<dataset>-heatmap-*`` flags; a PAF predictor or another head type is
    refused naming it."""
    kind = head.get('type')
    predictor = head.get('predictor') or {}
    if kind == 'HeatmapHead' and isinstance(predictor, dict) and 'PartAffinity' in str(predictor.get('type')):
        kind = 'DLCRNetHead'  # a heatmap head with part affinity fields
    if kind != 'HeatmapHead':
        what = FOREIGN_HEADS.get(kind, 'a head openfields does not have')
        raise ctx.error(f'{path}.type', f'{kind}: {what}; openfields has no such head: ' + _instead(ctx))
    _only(head, path, ctx, HEAD_KEYS)
    if head.get('weight_init') not in (None, 'normal'):
        ctx.ignore(f'{path}.weight_init', 'openfields starts the heatmap head from normal(0, 0.001) weights')
    values = {'heads': 'heatmap'}
    values.update(_predictor(_mapping(predictor, f'{path}.predictor', ctx), f'{path}.predictor', ctx))
    values.update(_target_generator(_mapping(head.get('target_generator') or {}, f'{path}.target_generator', ctx),
                                    f'{path}.target_generator', ctx, values))
    values.update(_criteria(_mapping(head.get('criterion') or {}, f'{path}.criterion', ctx), f'{path}.criterion', ctx))
    values.update(_deconvolutions(head, path, ctx, values.get('heatmap_locref', True)))
    return ctx.data(**values)


def _bool_key(section: dict, key: str, default: bool, path: str, ctx) -> bool:
    value = section.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ctx.error(f'{path}.{key}', f'must be true or false, got {value!r}')
    return value


def _predictor(predictor: dict, path: str, ctx) -> dict:
    _only(predictor, path, ctx, {'type', 'apply_sigmoid', 'clip_scores', 'location_refinement', 'locref_std'})
    if predictor.get('type', 'HeatmapPredictor') != 'HeatmapPredictor':
        raise ctx.error(f'{path}.type', f'{predictor["type"]}: a HeatmapHead\'s predictor openfields has is '
                                        'HeatmapPredictor; ' + _instead(ctx))
    values = {'heatmap_sigmoid': _bool_key(predictor, 'apply_sigmoid', False, path, ctx),
              'heatmap_clip_scores': _bool_key(predictor, 'clip_scores', True, path, ctx),
              'heatmap_locref': _bool_key(predictor, 'location_refinement', True, path, ctx)}
    if predictor.get('locref_std') is not None:
        values['heatmap_locref_std'] = float(_number(predictor['locref_std'], f'{path}.locref_std', ctx, 1e-9))
    return values


def _target_generator(generator: dict, path: str, ctx, predicted: dict) -> dict:
    """The targets; locref generated but not used (or used but not generated), or two different locref_std,
    are refused: openfields has one switch and one value for both."""
    _only(generator, path, ctx, {'type', 'num_heatmaps', 'pos_dist_thresh', 'heatmap_mode', 'generate_locref',
                                 'locref_std', 'gradient_masking', 'background_weight', 'learned_id_target'})
    kind = generator.get('type', 'HeatmapGaussianGenerator')
    if kind not in HEATMAP_TARGETS:
        raise ctx.error(f'{path}.type', f'{kind!r}: openfields generates {", ".join(HEATMAP_TARGETS)} targets')
    if str(generator.get('heatmap_mode', 'KEYPOINT')).upper() != 'KEYPOINT':
        raise ctx.error(f'{path}.heatmap_mode', f'{generator["heatmap_mode"]!r}: openfields makes one map per '
                                                'keypoint (KEYPOINT)')
    if generator.get('learned_id_target'):
        raise ctx.error(f'{path}.learned_id_target', 'openfields has no identity targets')
    values = {'heatmap_target': HEATMAP_TARGETS[kind]}
    if generator.get('pos_dist_thresh') is not None:
        values['heatmap_pos_dist_thresh'] = float(_number(generator['pos_dist_thresh'], f'{path}.pos_dist_thresh',
                                                          ctx, 1e-9))
    generate = _bool_key(generator, 'generate_locref', True, path, ctx)
    if generate != predicted['heatmap_locref']:
        raise ctx.error(f'{path}.generate_locref', f'{generate} but the predictor\'s location_refinement is '
                                                   f'{predicted["heatmap_locref"]}: openfields trains and uses '
                                                   'location refinement together (--<dataset>-heatmap-locref)')
    std = generator.get('locref_std')
    if std is not None and predicted.get('heatmap_locref_std', std) != std:
        raise ctx.error(f'{path}.locref_std', f'{std} but the predictor\'s locref_std is '
                                              f'{predicted["heatmap_locref_std"]}: openfields has one')
    if std is not None:
        values['heatmap_locref_std'] = float(_number(std, f'{path}.locref_std', ctx, 1e-9))
    if generator.get('gradient_masking'):
        ctx.ignore(f'{path}.gradient_masking', 'openfields learns the map of an unlabelled keypoint as empty')
    if generator.get('background_weight') not in (None, 0, 1, 0.0, 1.0):
        ctx.ignore(f'{path}.background_weight', 'every heatmap cell weighs 1 in openfields')
    return values


def _criteria(criterion: dict, path: str, ctx) -> dict:
    _only(criterion, path, ctx, {'heatmap', 'locref'})
    values = {}
    for key, kinds, flag in (('heatmap', HEATMAP_CRITERIA, 'heatmap'), ('locref', LOCREF_CRITERIA, 'heatmap_locref')):
        section = _only(criterion.get(key) or {}, f'{path}.{key}', ctx, {'type', 'weight'})
        if section.get('type') is not None:
            if section['type'] not in kinds:
                raise ctx.error(f'{path}.{key}.type', f'{section["type"]!r}: openfields\' {key} losses are '
                                                      f'{", ".join(kinds)}')
            values[f'{flag}_loss'] = kinds[section['type']]
        if section.get('weight') is not None:
            values[f'{flag}_weight'] = float(_number(section['weight'], f'{path}.{key}.weight', ctx, 0))
    return values


def _deconvolutions(head: dict, path: str, ctx, locref: bool) -> dict:
    """``heatmap_config`` as ``--<dataset>-heatmap-deconv-*`` / ``-final-conv``; ``locref_config`` must have the
    same layout (openfields builds both branches alike). The first channel count (the backbone's) and the
    last (the maps) are openfields' own: the basenet's and the keypoints'."""
    layout = _layout(head.get('heatmap_config'), f'{path}.heatmap_config', ctx)
    if locref and head.get('locref_config') is not None:
        if _layout(head['locref_config'], f'{path}.locref_config', ctx) != layout:
            raise ctx.error(f'{path}.locref_config', 'differs from heatmap_config in its kernel sizes, strides or '
                                                     'hidden channels: openfields builds the locref branch like '
                                                     'the heatmap branch')
    if layout is None:
        return {}
    hidden, kernels, strides, final = layout
    return {'heatmap_deconv_channels': hidden, 'heatmap_deconv_kernels': kernels,
            'heatmap_deconv_strides': strides, 'heatmap_final_conv': final}


def _layout(config, path: str, ctx) -> tuple | None:
    """``(hidden channels, kernel sizes, strides, final conv kernel)`` of a ``heatmap_config`` / ``locref_config``."""
    if config is None:
        return None
    config = _only(config, path, ctx, {'channels', 'kernel_size', 'strides', 'final_conv'})
    lists = {}
    for key in ('channels', 'kernel_size', 'strides'):
        items = config.get(key) or []
        if not isinstance(items, list):
            raise ctx.error(f'{path}.{key}', f'must be a list, got {items!r}')
        lists[key] = items
    kernels = [int(_number(k, f'{path}.kernel_size', ctx, 1)) for k in lists['kernel_size']]
    strides = [int(_number(s, f'{path}.strides', ctx, 1)) for s in lists['strides']]
    final = config.get('final_conv')
    final_kernel = 0
    if final is not None:
        final = _only(final, f'{path}.final_conv', ctx, {'out_channels', 'kernel_size'})
        final_kernel = int(_number(final.get('kernel_size', 1), f'{path}.final_conv.kernel_size', ctx, 1))
    hidden = lists['channels'][1:] if final_kernel else lists['channels'][1:-1]
    if len(kernels) != len(strides) or len(hidden) != len(kernels) - (0 if final_kernel else 1):
        raise ctx.error(path, f'channels {lists["channels"]}, kernel_size {kernels} and strides {strides} do not '
                              'describe one deconvolution per kernel size (channels: the input, then each output)')
    return [int(_number(c, f'{path}.channels', ctx, 1)) for c in hidden], kernels, strides, final_kernel


# --- the table --------------------------------------------------------------------------------------------

DLC_KEYS = (
    DlcKey('train_settings.batch_size', ('--batch-size',),
           'DLC default 8 (the `batch_size` of DLC\'s `config.yaml` is the inference batch size). openfields '
           'default 1, images per process: with `--ddp` the global batch is that times the number of processes',
           ('train_settings.batch_size',), _flag('batch-size', int)),
    DlcKey('train_settings.epochs', ('--epochs',),
           'DLC default 200. **Resuming differs**: DLC trains `epochs` more epochs after the snapshot\'s '
           'epoch; `--epochs` is always the total, with or without `--resume`',
           ('train_settings.epochs',), _flag('epochs', int)),
    DlcKey('train_settings.seed', ('--seed',),
           'DLC default 42, and it makes cuDNN deterministic. Without `--seed` openfields draws one, logs it '
           'and records it in `<run>.config.json`; cuDNN settings are left as they are',
           ('train_settings.seed',), _flag('seed', int)),
    DlcKey('train_settings.dataloader_workers', ('--loader-workers',),
           'DLC default 0; openfields default min(batch size, CPU count)',
           ('train_settings.dataloader_workers',), _flag('loader-workers', int)),
    DlcKey('train_settings.dataloader_pin_memory', (),
           'no flag: openfields pins memory whenever it trains on CUDA (the key is read and needs nothing)',
           ('train_settings.dataloader_pin_memory',), _consumed),
    DlcKey('train_settings.display_iters', ('--display-interval',),
           'DLC default 500, openfields 10; each progress line is also a `train` record of the JSON-lines log',
           ('train_settings.display_iters',), _flag('display-interval', int)),
    DlcKey('train_settings.weight_init {snapshot_path, with_decoder}',
           ('--dlc-snapshot', '--dlc-snapshot-backbone-only'),
           'DLC starts from the snapshot\'s backbone (and its heads with `with_decoder: true`, default false) in '
           'place of ImageNet weights; so does `--dlc-snapshot PATH` (`--dlc-snapshot-backbone-only` unless '
           '`with_decoder: true`). SuperAnimal fine-tuning (`dataset`, `memory_replay`, `conversion_array`) and '
           '`detector_snapshot_path` are refused in one line',
           ('train_settings.weight_init',), _weight_init),
    DlcKey('runner.optimizer {type, params}', ('--optimizer-class', '--optimizer-params', '--lr'),
           'DLC default AdamW with lr 1e-4 (resnet_50: 5e-4). Any `torch.optim` class by name: '
           '`--optimizer-class AdamW --optimizer-params \'{"weight_decay": 0.01}\'`, `params.lr` is `--lr`; '
           'the class\'s own defaults apply to the rest, as in DLC. Without `--optimizer-class`: `--optimizer` '
           '`sgd` (default, lr 1e-3, Nesterov), `adam`, `adamw` with `--momentum`, `--beta2`, `--adam-eps`, '
           '`--weight-decay`',
           ('runner.optimizer',), _optimizer),
    DlcKey('runner.scheduler: LRListScheduler {milestones, lr_list}',
           ('--lr-schedule', '--lr-milestones', '--lr-values', '--lr-warm-up-epochs'),
           'DLC\'s default is `--lr-schedule milestones --lr-milestones 160 190 --lr-values 1e-5 1e-6` '
           '(resnet_50: 90 120 with 1e-4 1e-5): absolute learning rates from the epoch after each milestone, '
           'one value per milestone (DLC\'s lr_list holds one per parameter group; openfields has one group). '
           'DLC has no warm-up: the translation sets `--lr-warm-up-epochs 0` (openfields\' default is 1 epoch)',
           ('runner.scheduler',), _scheduler),
    DlcKey('runner.scheduler: any torch.optim.lr_scheduler class', ('--scheduler-class', '--scheduler-params'),
           '`--scheduler-class StepLR --scheduler-params \'{"step_size": 30}\'` (selects `--lr-schedule torch`): '
           'stepped once per epoch as in DLC; nested `{type, params}` values build SequentialLR / '
           'ChainedScheduler. Built-in shapes: `--lr-schedule step`, `cosine` (per batch)'),
    DlcKey('runner.snapshots.max_snapshots', ('--max-snapshots',),
           'DLC default 5: the newest regular snapshots kept, the best one not counted',
           ('runner.snapshots.max_snapshots',), _flag('max-snapshots', int)),
    DlcKey('runner.snapshots.save_epochs', ('--save-epochs',),
           'DLC default 25: a regular snapshot every N epochs and after the last',
           ('runner.snapshots.save_epochs',), _flag('save-epochs', int)),
    DlcKey('runner.snapshots.save_optimizer_state', ('--save-optimizer-state', '--no-save-optimizer-state'),
           '**DLC default false**: its snapshots hold no optimizer state, so a resumed AdamW starts its '
           'moments again. openfields\' default is on, so `--resume` continues exactly; '
           '`--no-save-optimizer-state` writes smaller snapshots, and resuming one starts the optimizer afresh',
           ('runner.snapshots.save_optimizer_state',), _flag('save-optimizer-state', bool)),
    DlcKey('runner.key_metric', ('--key-metric',),
           'the metric that decides the best snapshot; DLC default `test.mAP` (or `test.rmse` with '
           '`key_metric_asc: false`). DLC\'s names are read as openfields\' scores: `mAP` is `AP`, `mAR` `AR`, '
           '`rmse` `test_pixel_error`, `rmse_pcutoff` `test_pixel_error_pcutoff`',
           ('runner.key_metric',), _flag('key-metric')),
    DlcKey('runner.key_metric_asc', ('--key-metric-asc', '--key-metric-desc'),
           'DLC default true, which means larger is better', ('runner.key_metric_asc',), _key_metric_asc),
    DlcKey('runner.eval_interval', ('--eval-interval', '--val-interval'),
           'DLC default 10 (its docs say 1): validation loss and metrics every N epochs. `--val-interval` '
           '(default 1) is openfields\' validation-loss interval', ('runner.eval_interval',),
           _flag('eval-interval', int)),
    DlcKey('runner.device, device', ('--device',),
           'both default `auto`; DLC\'s auto uses MPS only for ResNets, openfields\': CUDA, else MPS, else CPU',
           ('runner.device', 'device'), _device),
    DlcKey('runner.gpus', ('--ddp',),
           'DLC wraps the model in DataParallel in one process; openfields runs one process per GPU '
           '(torchrun or srun, see [hpc.md](hpc.md)); listed as ignored unless null', ('runner.gpus',), _gpus),
    DlcKey('runner.type', (), 'PoseTrainingRunner is what openfields.train does', ('runner.type',), _runner_type),
    DlcKey('resume_training_from', ('--dlc-snapshot', '--resume'),
           'DLC loads the snapshot\'s weights, its scheduler state and (only if saved) its optimizer state, '
           'and trains `epochs` more epochs counted on from the snapshot\'s. A DLC snapshot (a `.pt` file) is '
           '`--dlc-snapshot`: its weights only, a new run of `--epochs` epochs from epoch 0 (the schedule from '
           'its start, a new optimizer); the backbone is refused when it does not fit the basenet, the body '
           'part head is loaded where its shapes match the heatmap head (else trained afresh, logged). Any '
           'other path is an openfields '
           'checkpoint, `--resume PATH`: the run continues exactly (optimizer, schedule, EMA, random state, '
           'position in the epoch); `--resume auto` takes the newest checkpoint of `--output`',
           ('resume_training_from',), _resume_training_from),
    DlcKey('runner.load_scheduler_state_dict', ('--load-scheduler-state', '--no-load-scheduler-state'),
           'DLC default true: on resume the scheduler state is restored; so does `--resume` by default. '
           'With `--no-load-scheduler-state` the schedule is built from the new `--lr*` flags and placed at '
           'the resumed step (to change `--lr-milestones` on resume)',
           ('runner.load_scheduler_state_dict', 'load_scheduler_state_dict'), _flag('load-scheduler-state', bool)),
    DlcKey('data.train.affine {p, rotation, scaling, translation}',
           ('--dlc-affine', '--dlc-affine-rotation', '--dlc-affine-scaling', '--dlc-affine-translation'),
           'DLC\'s bottom-up default: p 0.5, rotation 30, scaling [0.5, 1.25], translation 0 (p 0.9 when '
           'omitted). Off by default here, where OpenPifPaf\'s rotation (`--dlc-rotate`) and scale jitter are '
           'on; keypoints pushed out of the image become unlabelled as in DLC', ('data.train.affine',), _affine),
    DlcKey('data.train.hflip {p, symmetries}', ('--dlc-hflip', '--dlc-hflip-pairs'),
           'DLC `true` is p 0.5 and swaps keypoints only when `symmetries` pairs are listed. `symmetries: '
           '[[1, 2]]` is `--dlc-hflip-pairs 1:2` (0-based body part indices, or names): a flip swaps exactly '
           'those pairs, in training and in the checkpoint\'s flip map. Without it openfields swaps body parts '
           'named left.../right... and flips with p 0.5 by default when there are such pairs (`--dlc-hflip 0`: '
           'off); a flip without any pair to swap is refused', ('data.train.hflip',), _hflip),
    DlcKey('data.train.covering', ('--dlc-covering',), 'DLC `true` is p 0.5; the flag is the probability',
           ('data.train.covering',), _probability_flag('covering')),
    DlcKey('data.train.gaussian_noise', ('--dlc-gaussian-noise',),
           'DLC `true` is a standard deviation of 12.75 (the bottom-up default) and a number is the standard '
           'deviation in 0-255 units, as for the flag; openfields default 0 (off)',
           ('data.train.gaussian_noise',), _gaussian_noise),
    DlcKey('data.train.motion_blur', ('--dlc-motion-blur',),
           'DLC `true` (the bottom-up default) is p 0.5; the flag is the probability',
           ('data.train.motion_blur',), _probability_flag('motion_blur')),
    DlcKey('data.train.hist_eq', ('--dlc-hist-eq',), 'DLC `true` is p 0.5; the flag is the probability',
           ('data.train.hist_eq',), _probability_flag('hist_eq')),
    DlcKey('data.train.crop_sampling {width, height, max_shift, method}',
           ('--dlc-square-edge', '--dlc-crop-size', '--dlc-crop-sampling', '--dlc-crop-max-shift'),
           'DLC\'s bottom-up default: 448 x 448, max_shift 0.1, hybrid. A square crop is `--dlc-square-edge` '
           '(default 385), height != width is `--dlc-crop-size WIDTH HEIGHT`; sides of k * 16 + 1 pixels keep '
           'field cells on pixels: 448 is read as 449, 256 x 192 as 257 x 193. Images smaller than the crop '
           'are padded to it as in DLC. openfields\' default method `people` crops around the annotations',
           ('data.train.crop_sampling',), _crop_sampling),
    DlcKey('data.train.auto_padding {pad_width_divisor, pad_height_divisor, min_width, min_height, border_mode}',
           ('--dlc-auto-padding', '--dlc-auto-padding-min', '--dlc-auto-padding-border'),
           'DLC pads to a multiple of each divisor (HRNet: 32); openfields pads each side to k * N + 1 pixels '
           '(`--dlc-auto-padding 32`, or `32 16` for width and height) after padding to at least `min_width` '
           'x `min_height` (`--dlc-auto-padding-min W H`), the image at a random place (DLC\'s `position: '
           'random`). `border_mode: reflect_101` mirrors the image into the padding '
           '(`--dlc-auto-padding-border reflect_101`); `constant` fills it with a random gray, '
           '`border_value` is listed as ignored', ('data.train.auto_padding',), _auto_padding),
    DlcKey('data.train.resize {height, width, keep_ratio}', ('--dlc-resize', '--dlc-resize-keep-ratio',
                                                               '--no-dlc-resize-keep-ratio'),
           'mind the order: `--dlc-resize WIDTH HEIGHT`. `keep_ratio: true` (the default) fits the image '
           'inside and pads, `keep_ratio: false` (`--no-dlc-resize-keep-ratio`) is a plain resize',
           ('data.train.resize',), _resize),
    DlcKey('data.train.collate: ResizeFromDataSizeCollate',
           ('--dlc-collate-scale', '--dlc-collate-short-side', '--dlc-collate-max-ratio',
            '--dlc-collate-multiple', '--dlc-collate-to-square', '--dlc-collate-max-shift',
            '--dlc-collate-max-size'),
           '{min_scale, max_scale} is `--dlc-collate-scale MIN MAX`, {min_short_side, max_short_side} '
           '`--dlc-collate-short-side`; sides are k * N + 1 pixels rather than multiples of `multiple_of`. '
           'Each loader worker draws its own sizes (DLC\'s workers repeat one sequence)',
           ('data.train.collate',), _collate),
    DlcKey('data.train.collate: ResizeFromListCollate {scales, max_shift, max_size}',
           ('--dlc-collate-sizes', '--dlc-collate-max-shift', '--dlc-collate-max-size'),
           'one size drawn per batch from `scales`: an int N is an N x N square (`--dlc-collate-sizes N`), '
           '`[h, w]` a rectangle (`WxH`, mind the order); each side rounded up to k * stride + 1 pixels. '
           '`seed` is listed as ignored (`--seed` seeds every worker)'),
    DlcKey('data.train.normalize_images, data.inference', (),
           'openfields always normalises with the ImageNet mean and std (`false` is listed as ignored); '
           'evaluation sizes are the datasets\' own flags (`--coco-eval-long-edge`), other inference '
           'transforms are listed as ignored',
           ('data.train.normalize_images', 'data.inference'), None),
    DlcKey('data.colormode', (), 'openfields reads RGB; another value is listed as ignored',
           ('data.colormode',), _switch('RGB', 'RGB')),
    DlcKey('net_type', ('--basenet',),
           'the backbone DLC writes for the net type, as `model.backbone` below (which decides when the file has '
           'it): `resnet_50` is resnet50_gn at output stride 16, `resnet_101` resnet101 at 16, `hrnet_w18/32/48` '
           'the HRNets, `dekr_w*` the HRNets with `--hrnet-interpolate-branches`, `cspnext_*` and `rtmpose_*` '
           'the CSPNeXts; `top_down_<net type>` as `<net type>`. Others (DLCRNet, TokenPose, CTD, ...) are '
           'refused naming the ones openfields trains', ('net_type',), None),  # _SPECIAL: _net_type
    DlcKey('model.backbone {type, model_name, pretrained, output_stride, freeze_bn_stats, freeze_bn_weights, '
           'interpolate_branches, increased_channel_count, deepen_factor, widen_factor}',
           ('--basenet', '--basenet-pretrained', '--resnet-pool0-stride', '--resnet-block5-dilation',
            '--basenet-freeze-bn-stats', '--basenet-freeze-bn-weights', '--hrnet-interpolate-branches',
            '--hrnet-increased-channel-count'),
           '`model_name` is `--basenet` of the same name (ResNet resnet18/50/50_gn/101/152, timm\'s architecture; '
           'HRNet hrnet_w18/32/48, built by timm as in DLC) or, for `type: CSPNeXt`, the CSPNeXt of `deepen_factor`/'
           '`widen_factor` (cspnext_s 0.33/0.5, m 0.67/0.75, x 1.33/1.25). ImageNet weights unless `pretrained: '
           'false`: `--basenet-pretrained timm` (timm\'s files, as DLC loads them; CSPNeXt: DLC\'s own), downloaded '
           'into the torch hub or Hugging Face cache; offline, one line says where the file goes. ResNet '
           '`output_stride` 16 (DLC\'s resnet_* files) is `--resnet-pool0-stride 2 --resnet-block5-dilation 2` '
           '(openfields also dilates the first block of layer4, timm does not), 32 (DLC\'s default) the max-pool '
           'alone. `freeze_bn_stats`/`freeze_bn_weights` (DLC default true when absent) are '
           '`--basenet-freeze-bn-stats`/`--basenet-freeze-bn-weights`; resnet50_gn has no BatchNorm to freeze, in '
           'DLC neither. `interpolate_branches`/`increased_channel_count` are `--hrnet-interpolate-branches`/'
           '`--hrnet-increased-channel-count`. A backbone or value '
           'openfields cannot build (DLCRNet, output_stride 8, drop_path_rate, a P6 CSPNeXt, ...) is refused in '
           'one line naming the key',
           ('model.backbone',), _model),
    DlcKey('data.bbox_margin', ('--topdown-bbox-margin',),
           'top-down: pixels around the labelled keypoints of a box derived from them (DLC default 20); a '
           'DeepLabCut project\'s boxes always are', ('data.bbox_margin',), _bbox_margin),
    DlcKey('data.train.top_down_crop {width, height, crop_with_context}',
           ('--topdown-crop-width', '--topdown-crop-height', '--topdown-crop-padding'),
           'DLC default 256 x 256; openfields 192 x 256 (width x height) with the box grown by 1.25 for context '
           '(`crop_with_context: false`: 1.0)', ('data.train.top_down_crop',), _top_down_crop),
    DlcKey('data.train.random_bbox_transform {shift_factor, shift_prob, scale_factor}',
           ('--topdown-jitter-shift', '--topdown-jitter-shift-prob', '--topdown-jitter-scale'),
           'top-down box jitter (DLC default 0.1, 0.25, [0.75, 1.25]; openfields RTMPose\'s 0.16, 0.3, '
           '[0.75, 1.25]); the scale is drawn centred on the middle of the range (DLC\'s leans to its lower end)',
           ('data.train.random_bbox_transform',), _random_bbox_transform),
    DlcKey('method', ('--method',), '`bu` bottom-up, `td` top-down: a detector run first, then the pose model '
           'on crops of the individuals ([topdown.md](topdown.md)); `ctd` (conditional top-down) is listed as '
           'ignored', ('method',), _method),
    DlcKey('detector {model, train_settings, resume_training_from}',
           ('--detector', '--detector-pretrained', '--detector-score-threshold', '--detector-epochs',
            '--detector-batch-size', '--detector-loader-workers', '--detector-display-interval', '--detector-resume'),
           'top-down only. `model.variant` (or `type: SSDLite` / `FasterRCNN`) is `--detector`, `pretrained` '
           '`--detector-pretrained auto|none` (COCO weights from the torch hub cache, never downloaded), '
           '`box_score_thresh` the score a box needs to be cropped; `train_settings` epochs, batch_size, '
           'dataloader_workers and display_iters (`seed` is listed as ignored: the detector run is seeded by '
           '`--seed`); `resume_training_from` continues the detector run',
           ('detector',), _detector),
    DlcKey('detector.data.train {affine, hflip, hist_eq, motion_blur, covering, gaussian_noise}',
           ('--detector-affine', '--detector-affine-rotation', '--detector-affine-scaling',
            '--detector-affine-translation', '--detector-hflip', '--detector-hist-eq', '--detector-motion-blur',
            '--detector-covering', '--detector-gaussian-noise'),
           'the pose model\'s keys with their meaning (`true` is p 0.5, affine p 0.9 when omitted), applied to the '
           'detector\'s training images and boxes: an affine maps a box\'s corners, a covering leaves the boxes. '
           '`hflip` flips image and boxes (`symmetries` is listed as ignored). The detector trains on whole images '
           'resized to its input size: `collate`, `crop_sampling`, `auto_padding` and `resize` are listed as ignored'),
    DlcKey('detector.runner {optimizer, scheduler, snapshots, load_scheduler_state_dict, eval_interval}',
           ('--detector-optimizer-class', '--detector-optimizer-params', '--detector-lr',
            '--detector-scheduler-class', '--detector-scheduler-params', '--detector-max-snapshots',
            '--detector-save-epochs', '--detector-save-optimizer-state', '--detector-load-scheduler-state',
            '--detector-eval-interval'),
           'as the pose model\'s runner: any `torch.optim` class (`params.lr` is `--detector-lr`), any '
           '`torch.optim.lr_scheduler` class or LRListScheduler, nested SequentialLR / ChainedScheduler included, '
           'stepped once per epoch and checked through the detector\'s epochs when the file is read (a bad value '
           'is named by its key, `detector.runner.scheduler.params...`). Snapshots and the scheduler state on '
           'resume default to the pose run\'s flags when the section has none. The best detector snapshot is '
           'picked by `test.mAP@50:95` as in DLC; `device` other than auto is listed as ignored (the detector '
           'trains on `--device`)'),
    DlcKey('model.heads.bodypart: HeatmapHead {predictor, target_generator, criterion, heatmap_config, '
           'locref_config}',
           ('--dlc-heads', '--dlc-heatmap-target', '--dlc-heatmap-pos-dist-thresh', '--dlc-heatmap-locref',
            '--dlc-heatmap-locref-std', '--dlc-heatmap-sigmoid', '--dlc-heatmap-clip-scores', '--dlc-heatmap-loss',
            '--dlc-heatmap-locref-loss', '--dlc-heatmap-weight', '--dlc-heatmap-locref-weight',
            '--dlc-heatmap-deconv-channels', '--dlc-heatmap-deconv-kernels', '--dlc-heatmap-deconv-strides',
            '--dlc-heatmap-final-conv'),
           'a HeatmapHead is `--dlc-heads heatmap`: HeatmapGaussianGenerator / HeatmapPlateauGenerator '
           '`--dlc-heatmap-target gaussian|plateau`, `pos_dist_thresh` (input pixels), `generate_locref` / '
           '`location_refinement` (one switch, `--dlc-heatmap-locref`), `locref_std`, `apply_sigmoid`, '
           '`clip_scores`; criteria WeightedMSECriterion / WeightedBCECriterion and WeightedHuberCriterion with '
           'their `weight`s; `heatmap_config` `channels`/`kernel_size`/`strides`/`final_conv` is the deconvolution '
           'stack (odd kernel sizes; `locref_config` must have the same layout). Heatmap cells sit on pixel '
           '`i * stride` (DLC: `i * stride + stride / 2`). `gradient_masking` is listed as ignored. DEKRHead, PAF '
           '(DLCRNetHead, PartAffinityFieldPredictor), RTMCCHead, `unique_bodypart` and `identity` heads are '
           'refused in one line: `--dlc-heads cif` trains CIF + CAF (OpenPifPaf\'s composite fields; keypoint '
           'size `--dlc-sigma`, head stride 8 with `--dlc-upsample 2`), `--dlc-heads heatmap` the heatmap head; '
           'either flag on the command line replaces the file\'s heads', ('model.heads',), _heads),
    DlcKey('metadata', ('--dlc-project',),
           'body parts, individuals and skeleton come from the project\'s `config.yaml`; `project_path` is '
           '`--dlc-project` unless the command line gives it', ('metadata',), None),
    DlcKey('inference.eval.pcutoff', ('--dlc-pcutoff',),
           'DLC default 0.6 (its metrics during training hard-code 0.6); openfields default: `config.yaml`\'s '
           '`pcutoff`, else 0.6. The other `inference` keys are listed as ignored', ('inference',), None),
    DlcKey('logger: WandbLogger, CSVLogger {project_name, run_name, image_log_interval, ...wandb.init arguments}',
           ('--logger', '--wandb-project', '--wandb-run-name', '--image-log-interval', '--wandb-init-kwargs'),
           '`--logger wandb` (offline unless `WANDB_MODE` says otherwise), `--logger csv` (DLC\'s '
           '`learning_stats.csv`), `--logger tensorboard`; repeatable. A WandbLogger\'s other keys and its '
           '`wandb_kwargs` mapping (`tags`, `group`, `notes`, `job_type`, `entity`, ...) are '
           '`--wandb-init-kwargs`, checked against `wandb.init` (an unknown key is refused naming it). Every run '
           'also writes its JSON-lines log, `<run>.log` ([logs.md](logs.md))', ('logger',), _logger),
    DlcKey('with_center_keypoints', (), 'DEKR only; `true` is listed as ignored', ('with_center_keypoints',),
           _switch('without center keypoints', False)),
)


def _net_type(value, path, ctx):
    """DeepLabCut's ``net_type``: the backbone DeepLabCut writes for it (:data:`NET_TYPES`), unless
    ``model.backbone`` was read already (it decides: for DeepLabCut the net type is a label once the file
    exists); a net type without an openfields basenet is refused either way."""
    name = str(value)
    backbone = NET_TYPES.get(name.removeprefix('top_down_'))
    if backbone is None:
        raise ctx.error(path, f'{name!r} has no openfields basenet; net types openfields trains: '
                              f'{", ".join(NET_TYPES)}, each also as top_down_<net type>')
    return {} if vars(ctx).get('backbone_read') else _backbone(backbone, path, ctx)


def _metadata(value, path, ctx):
    value = _mapping(value, path, ctx)
    return _project_path(value.get('project_path'), f'{path}.project_path', ctx)


def _inference_section(value, path, ctx):
    value = _only(value, path, ctx, {'eval'})
    evaluation = _only(value.get('eval') or {}, f'{path}.eval', ctx, {'pcutoff'})
    if evaluation.get('pcutoff') is None:
        return {}
    return _pcutoff(evaluation['pcutoff'], f'{path}.eval.pcutoff', ctx)


def _normalize(value, path, ctx):
    return _switch('normalize_images')(value, path, ctx)


# paths whose translator is not the entry's single one (an entry with several paths or none)
_SPECIAL = {'net_type': _net_type, 'metadata': _metadata, 'inference': _inference_section,
            'data.inference': _inference, 'data.train.normalize_images': _normalize}


def _handlers() -> dict[str, typing.Callable | None]:
    handlers = {}
    for entry in DLC_KEYS:
        for path in entry.paths:
            handlers[path] = _SPECIAL.get(path, entry.translate)
    return handlers


def is_dlc_config(mapping: dict, flag_names=()) -> bool:
    """A DeepLabCut file: one of DeepLabCut's sections (no openfields flag has these names) and no key that
    is an openfields flag (``flag_names``) other than ``device``, ``logger``, ``method`` and ``detector``, which both
    have (a mix of the two forms is read as flags: its DeepLabCut sections are then unknown keys)."""
    flags = set(flag_names) - {'device', 'logger', 'method', 'detector'}
    return any(key in mapping for key in SECTIONS) and not any(
        str(key).lstrip('-').replace('_', '-') in flags for key in mapping)


def translate(mapping: dict, source: str, prefixes: list[str], given=()) -> Translation:
    """Flag values of a ``pytorch_config.yaml`` mapping; ``prefixes``: the datasets whose augmentation
    flags the data transforms set. The dataset is ``dlc`` unless the caller trains another. ``given``: the
    flags (long names or dests) the command line sets; ``--<dataset>-heads`` there replaces ``model.heads``."""
    ctx = _Context(source, prefixes)
    ctx.given = frozenset(str(name).lstrip('-').replace('_', '-') for name in given)
    values = {'dataset': '-'.join(prefixes)}
    _walk(mapping, '', _handlers(), ctx, values)
    return Translation(values=values, ignored=ctx.ignored)


def _walk(mapping: dict, prefix: str, handlers: dict, ctx: _Context, values: dict) -> None:
    sections = {path.rsplit('.', 1)[0] for path in handlers if '.' in path}
    sections |= {'.'.join(path.split('.')[:i]) for path in sections for i in range(1, path.count('.') + 1)}
    for key, value in mapping.items():
        path = f'{prefix}{key}'
        if value is None:
            continue  # DeepLabCut's "unset"
        if path in handlers:
            translator = handlers[path]
            values.update(translator(value, path, ctx) if translator is not None else ctx.ignore(path, 'no counterpart'))
        elif path in sections:
            _walk(_mapping(value, path, ctx), f'{path}.', handlers, ctx, values)
        else:
            ctx.ignore(path, 'no counterpart')


def find_pytorch_config(project: str | os.PathLike, shuffle: int) -> pathlib.Path:
    """The ``pytorch_config.yaml`` DeepLabCut 3 wrote for ``shuffle`` of ``project`` (the newest iteration):
    ``<project>/dlc-models-pytorch/iteration-<i>/<Task><date>-trainset<pct>shuffle<N>/train/``."""
    root = pathlib.Path(project)
    if root.name == 'config.yaml':
        root = root.parent
    pattern = str(root / 'dlc-models-pytorch' / 'iteration-*' / f'*shuffle{int(shuffle)}' / 'train'
                  / 'pytorch_config.yaml')
    found = sorted(glob.glob(pattern), key=lambda p: _iteration(p))
    if not found:
        raise DlcConfigError(f'--config dlc: no pytorch_config.yaml for --dlc-shuffle {shuffle} under '
                             f'{root / "dlc-models-pytorch"} (looked for {pattern})')
    return pathlib.Path(found[-1])


def _iteration(path: str) -> int:
    part = next((p for p in pathlib.Path(path).parts if p.startswith('iteration-')), 'iteration-0')
    try:
        return int(part.split('-', 1)[1])
    except ValueError:
        return -1
