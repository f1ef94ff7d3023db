"""What every basenet family shares, apart from the families themselves (which :mod:`.basenets` gathers):
the registry of builders, the plain-typed config check, the optional-package error, and BatchNorm freezing
(DeepLabCut's ``freeze_bn_stats`` / ``freeze_bn_weights``)."""

from __future__ import annotations

import argparse
from typing import Callable

from torch import nn

BasenetBuilder = Callable[[dict], nn.Module]
ConfigFromArgs = Callable[[argparse.Namespace], dict]

BASENETS: dict[str, BasenetBuilder] = {}
CONFIG_FROM_ARGS: dict[str, ConfigFromArgs] = {}

PLAIN_TYPES = (str, int, float, bool, type(None))


class BasenetDependencyMissing(ValueError):
    """A basenet needs an optional package; the message names the basenet and the install command."""


def register_basenet(name: str, builder: BasenetBuilder,
                     config_from_args: ConfigFromArgs | None = None) -> None:
    """Add (or replace) a basenet. ``config_from_args(args) -> dict`` maps CLI flags to its config;
    without it the basenet is built with an empty config (its defaults)."""
    BASENETS[name] = builder
    CONFIG_FROM_ARGS[name] = config_from_args or (lambda args: {})


# flags only some basenets read -> the config key that carries them (in the config of those that do)
FAMILY_FLAGS = {'basenet_freeze_bn_stats': 'freeze_bn_stats', 'basenet_freeze_bn_weights': 'freeze_bn_weights',
                'hrnet_interpolate_branches': 'interpolate_branches',
                'hrnet_increased_channel_count': 'increased_channel_count'}


def freeze_config(args: argparse.Namespace) -> dict:
    """The BatchNorm freezing keys the flags set (only those given: a config without them takes the
    defaults, so configs and checkpoints of basenets trained without freezing stay as they were)."""
    return {key: True for dest, key in FAMILY_FLAGS.items()
            if key.startswith('freeze_bn') and getattr(args, dest, False)}


def batchnorms(module: nn.Module) -> list[nn.Module]:
    """Every BatchNorm in ``module`` (openfields', torch's and the synchronised ones)."""
    batchnorm = nn.modules.batchnorm._BatchNorm  # pylint: disable=protected-access
    return [m for m in module.modules() if isinstance(m, batchnorm)]


FREEZE_BATCHNORM = {'freeze_bn_stats': False, 'freeze_bn_weights': False}


class FreezableBatchNorm(nn.Module):
    """Base of the basenets with BatchNorm, whose ``config`` has the :data:`FREEZE_BATCHNORM` keys
    (DeepLabCut's backbone options; its HRNets freeze the statistics by default).

    ``freeze_bn_stats``: every BatchNorm stays in evaluation mode while training, normalising with the
    running mean and variance it was loaded with (ImageNet's) instead of those of batches of a few images.
    ``freeze_bn_weights``: their scale and shift get no gradient (``requires_grad`` False, so the optimizer
    leaves them out). Subclasses call :meth:`freeze_batchnorm` once their layers exist."""

    config: dict

    def freeze_batchnorm(self) -> None:
        if not self.config['freeze_bn_weights']:
            return
        for norm in batchnorms(self):
            for parameter in (norm.weight, norm.bias):
                if parameter is not None:
                    parameter.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.config['freeze_bn_stats']:
            for norm in batchnorms(self):
                norm.eval()
        return self


def resolve_config(name: str, config: dict, defaults: dict) -> dict:
    """``defaults`` updated by ``config``; rejects unknown keys and non-plain values."""
    unknown = set(config) - set(defaults)
    if unknown:
        raise ValueError(f'basenet {name!r}: unknown config keys {sorted(unknown)}; '
                         f'known: {sorted(defaults)}')
    resolved = {**defaults, **config}
    for key, value in resolved.items():
        if not isinstance(value, PLAIN_TYPES):
            raise ValueError(f'basenet {name!r}: config {key!r} must be a plain type, got {type(value)}')
    return resolved
