"""ImageNet weights for the ResNet basenets, from local files only (never downloaded).

``source='auto'`` looks in the torch hub cache, where torchvision itself would store the file
(``torch.hub.get_dir()/checkpoints/<file name of the weights url>``); any other source is a path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torchvision
from torch import nn

LOG = logging.getLogger(__name__)

# basenet name -> torchvision weights enum entry (only the url is used)
IMAGENET_WEIGHTS = {
    'resnet18': 'ResNet18_Weights.IMAGENET1K_V1',
    'resnet50': 'ResNet50_Weights.IMAGENET1K_V1',
    'resnet101': 'ResNet101_Weights.IMAGENET1K_V1',
    'resnet152': 'ResNet152_Weights.IMAGENET1K_V1',
}

# ImageNet keys that the basenets lack on purpose: the classifier, and the last block when it is
# removed (``--resnet-remove-last-block``).
DROPPED_PREFIXES = ('fc.', 'layer4.')
# Basenet keys without an ImageNet counterpart: the optional extra input conv stays randomly initialised.
NEW_PREFIXES = ('input_conv2.',)


class PretrainedWeightsMissing(RuntimeError):
    """The weights file is not on disk; the message says where to put it and where to get it."""


def weights_url(name: str) -> str:
    """URL of torchvision's IMAGENET1K_V1 weights for basenet ``name`` (no network access)."""
    if name not in IMAGENET_WEIGHTS:
        if name.startswith('shufflenetv2k'):
            raise ValueError(f'basenet {name!r} has no ImageNet weights: ShuffleNetV2K basenets are '
                             'trained from scratch; remove --basenet-pretrained')
        raise ValueError(f'basenet {name!r} has no ImageNet weights (available for: '
                         f'{", ".join(IMAGENET_WEIGHTS)}); remove --basenet-pretrained')
    return torchvision.models.get_weight(IMAGENET_WEIGHTS[name]).url


def hub_cache_path(name: str) -> Path:
    """Where torchvision caches the ImageNet weights of ``name``: ``<hub dir>/checkpoints/<file>``."""
    url = weights_url(name)
    return Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(url)


def resolve_weights_path(name: str, source: str) -> Path:
    """Existing weights file for ``source`` ('auto' or a path); raises PretrainedWeightsMissing."""
    url = weights_url(name)
    path = hub_cache_path(name) if source == 'auto' else Path(source).expanduser()
    if path.is_file():
        return path
    where = ('the torch hub cache (--basenet-pretrained without a path)' if source == 'auto'
             else 'the path given to --basenet-pretrained')
    raise PretrainedWeightsMissing(
        f'ImageNet weights for {name} are missing: there is no file {path} in {where}, and openfields '
        f'never downloads weights. On a machine with internet access, download {url} and copy it to '
        f'{path}; alternatively, --basenet-pretrained PATH accepts the downloaded .pth file at any '
        'other location.')


def load_imagenet_weights(module: nn.Module, name: str, source: str = 'auto') -> dict:
    """Load the ImageNet state dict of ``name`` into ``module`` in place.

    Keys the basenet lacks on purpose (``fc.*``; ``layer4.*`` when removed) are skipped; keys only the
    basenet has (``input_conv2.*``) keep their initialisation. Any other missing or unexpected key,
    or a shape mismatch, raises a RuntimeError. Returns ``{'path', 'skipped', 'not_pretrained'}`` (key lists).
    """
    path = resolve_weights_path(name, source)
    state_dict = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{path} is not a state dict (a dict of tensors)')

    own_state = module.state_dict()
    skipped = sorted(k for k in state_dict if k not in own_state and k.startswith(DROPPED_PREFIXES))
    kept = {k: v for k, v in state_dict.items() if k not in skipped}
    mismatched = [f'{k} {tuple(v.shape)} vs {tuple(own_state[k].shape)}' for k, v in kept.items()
                  if k in own_state and v.shape != own_state[k].shape]
    if mismatched:
        raise RuntimeError(f'ImageNet weights {path} do not fit basenet {name}: {len(mismatched)} '
                           f'tensors differ in shape (file vs network), e.g. {mismatched[:3]}')
    result = module.load_state_dict(kept, strict=False)
    not_pretrained = sorted(k for k in result.missing_keys if k.startswith(NEW_PREFIXES))
    missing = sorted(set(result.missing_keys) - set(not_pretrained))
    if missing or result.unexpected_keys:
        raise RuntimeError(f'ImageNet weights {path} do not fit basenet {name}: '
                           f'missing keys {missing}, unexpected keys {sorted(result.unexpected_keys)}')
    LOG.info('loaded ImageNet weights for %s from %s (skipped %d keys, %d keys not pretrained)',
             name, path, len(skipped), len(not_pretrained))
    return {'path': str(path), 'skipped': skipped, 'not_pretrained': not_pretrained}
