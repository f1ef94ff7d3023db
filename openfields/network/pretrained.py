"""ImageNet weights of the basenets: where each is published, its download into the standard cache, the
record of what was loaded (source, sha256), and the load.

One source per basenet (:func:`spec`), the file the library that defines it publishes:

* ``resnet18/50/101/152``: torchvision's IMAGENET1K_V1, cached as ``torch.hub.get_dir()/checkpoints/<file>``
  (``TORCH_HOME``), fetched with torch.hub's download;
* ``resnet50_gn``, ``hrnet_w18/32/48``: timm's default pretrained tag, what ``timm.create_model(name,
  pretrained=True)`` loads (as DeepLabCut does): ``model.safetensors`` of ``timm/<name>.<tag>`` on the
  Hugging Face hub, cached and fetched by huggingface_hub (``HF_HOME``) as timm does;
* ``cspnext_s/m/x``: DeepLabCut's ``<name>.pt`` of ``DeepLabCut/DeepLabCut-Backbones`` on the hub.

``source='timm'`` takes timm's default tag for the BatchNorm ResNets too (what DeepLabCut loads for them;
the keys are torchvision's). ``'auto'`` and ``'timm'`` take the cached file and download it into the cache
when missing; without a network (or with ``HF_HUB_OFFLINE=1``, which keeps every download here off)
:class:`PretrainedWeightsMissing` says in one line which file is missing, where it goes, and how to train
from scratch. Any other source is a path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import urllib.parse
from pathlib import Path

import torch
import torchvision
from torch import nn

from ..errors import first_line

LOG = logging.getLogger(__name__)

# basenet name -> torchvision weights enum entry (only the url is used)
IMAGENET_WEIGHTS = {
    'resnet18': 'ResNet18_Weights.IMAGENET1K_V1',
    'resnet50': 'ResNet50_Weights.IMAGENET1K_V1',
    'resnet101': 'ResNet101_Weights.IMAGENET1K_V1',
    'resnet152': 'ResNet152_Weights.IMAGENET1K_V1',
}
TIMM_WEIGHTS = ('resnet50_gn', 'hrnet_w18', 'hrnet_w32', 'hrnet_w48')  # timm's default tag on the hub
DLC_REPOSITORY = 'DeepLabCut/DeepLabCut-Backbones'
DLC_WEIGHTS = ('cspnext_s', 'cspnext_m', 'cspnext_x')  # <name>.pt: {'state_dict': ...}
HUB_HOST = 'huggingface.co'

# ImageNet keys that the ResNet basenets lack on purpose: the classifier, and the last block when it is
# removed (``--resnet-remove-last-block``).
DROPPED_PREFIXES = ('fc.', 'layer4.')
# Basenet keys without an ImageNet counterpart: the optional extra input conv stays randomly initialised.
NEW_PREFIXES = ('input_conv2.',)
# timm HRNet keys the basenet lacks on purpose: the classification head (incre blocks, downsampling, final
# layer, classifier) and the fusions into the coarse branches it does not compute (see hrnet.py)
HRNET_DROPPED = ('incre_modules.', 'downsamp_modules.', 'final_layer.', 'classifier.', 'stage4.')


class PretrainedWeightsMissing(RuntimeError):
    """The weights file is not on disk; the message says where to put it and where to get it."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """Where a basenet's ImageNet weights are published and how their keys fit the basenet."""

    url: str  # the published file
    hub: tuple[str, str] | None = None  # (repository, file) on the Hugging Face hub; None: a torchvision url
    state_key: str | None = None  # the file holds {state_key: state dict}
    prefix: str = ''  # where the file's keys sit in the basenet
    dropped: tuple[str, ...] = DROPPED_PREFIXES  # file keys the basenet lacks on purpose
    new: tuple[str, ...] = NEW_PREFIXES  # basenet keys without a counterpart in the file


@dataclasses.dataclass(frozen=True)
class Weights:
    """The weights file a run loads: ``source`` as given ('auto', 'timm' or a path), the ``url`` it is
    published at (None for a path), its ``path`` on disk and ``sha256``; :meth:`record` is what the run's log
    keeps."""

    basenet: str
    source: str  # 'auto', 'timm' or a path
    url: str | None
    path: Path
    sha256: str

    def record(self) -> dict:
        return {'basenet': self.basenet, 'source': self.source, 'url': self.url, 'path': str(self.path),
                'sha256': self.sha256}


CACHED_SOURCES = ('auto', 'timm')  # --basenet-pretrained values that name a published file, not a path
# how to go without: every message about weights a basenet does not have ends with it
NO_PRETRAINED = ('give --no-basenet-pretrained (a DeepLabCut pytorch_config.yaml asks for ImageNet weights unless '
                 '`pretrained: false` under model.backbone)')
# how to go without a missing file: every PretrainedWeightsMissing ends with it
FROM_SCRATCH = ('To train from scratch instead: --no-basenet-pretrained (OpenPifPaf\'s --resnet-no-pretrain), or '
                '`pretrained: false` under model.backbone of a DeepLabCut pytorch_config.yaml')


def default_source(name: str) -> str | None:
    """What a fresh basenet ``name`` starts from when no flag says: its published ImageNet weights ('auto'), as
    OpenPifPaf's ResNets and DeepLabCut's backbones start; None (from scratch) for basenets without such weights,
    ShuffleNetV2K included, as in OpenPifPaf."""
    return 'auto' if name in (*IMAGENET_WEIGHTS, *TIMM_WEIGHTS, *DLC_WEIGHTS) else None


def resolve_source(name: str, flag: str | bool | None) -> str | None:
    """The weights source of ``--basenet-pretrained`` for basenet ``name``: None when not given (the basenet's
    :func:`default_source`), False for ``--no-basenet-pretrained`` (from scratch: None), else the flag."""
    if flag is None:
        return default_source(name)
    return None if flag is False else flag


def spec(name: str, source: str = 'auto') -> Spec:
    """The :class:`Spec` of basenet ``name`` for ``source`` ('timm': timm's weights, else the basenet's own
    source); no network access; a ValueError for basenets without one."""
    if name.startswith('shufflenetv2k'):
        raise ValueError(f'basenet {name!r} has no ImageNet weights: ShuffleNetV2K basenets are trained from '
                         f'scratch; {NO_PRETRAINED}')
    available = [*IMAGENET_WEIGHTS, *TIMM_WEIGHTS, *DLC_WEIGHTS]
    if name not in available:
        raise ValueError(f'basenet {name!r} has no ImageNet weights (available for: {", ".join(available)}); '
                         f'{NO_PRETRAINED}')
    if source == 'timm' and name in DLC_WEIGHTS:
        raise ValueError(f'--basenet-pretrained timm: timm has no ImageNet weights for basenet {name!r} (it has for: '
                         f'{", ".join([*IMAGENET_WEIGHTS, *TIMM_WEIGHTS])}); use --basenet-pretrained alone')
    if name in IMAGENET_WEIGHTS and source != 'timm':
        return Spec(url=torchvision.models.get_weight(IMAGENET_WEIGHTS[name]).url)
    if name in DLC_WEIGHTS:
        hub = (DLC_REPOSITORY, f'{name}.pt')
        return Spec(url=_hub_url(*hub), hub=hub, state_key='state_dict', dropped=(), new=())
    hub = (_timm_repository(name), 'model.safetensors')
    if name.startswith('hrnet'):
        return Spec(url=_hub_url(*hub), hub=hub, prefix='hrnet.', dropped=HRNET_DROPPED, new=())
    return Spec(url=_hub_url(*hub), hub=hub)


def _timm_repository(name: str) -> str:
    """``timm/<name>.<tag>``: the hub repository of timm's default pretrained tag of ``name``."""
    from .hrnet import require_timm  # pylint: disable=import-outside-toplevel
    return require_timm(name).models.get_pretrained_cfg(name).hf_hub_id


def _hub_url(repository: str, filename: str) -> str:
    return f'https://{HUB_HOST}/{repository}/resolve/main/{filename}'


def weights_url(name: str) -> str:
    """Where the ImageNet weights of basenet ``name`` are published (no network access)."""
    return spec(name).url


def hub_cache_path(name: str) -> Path:
    """Where torchvision caches the ImageNet weights of ``name``: ``<hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(urllib.parse.urlparse(spec(name).url).path)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment says now (huggingface_hub reads it once, at import):
    ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get('HF_HUB_CACHE'):
        return Path(os.environ['HF_HUB_CACHE']).expanduser()
    home = os.environ.get('HF_HOME') or os.path.join(os.environ.get('XDG_CACHE_HOME', '~/.cache'), 'huggingface')
    return Path(home).expanduser() / 'hub'


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (huggingface_hub's switch) keeps every download off, torchvision's too."""
    return os.environ.get('HF_HUB_OFFLINE', '').strip().lower() in ('1', 'true', 'yes', 'on')


# ---------------------------------------------------------------------------------------------- locate

def locate(name: str, source: str = 'auto') -> Weights:
    """The weights file of ``name`` for ``source`` ('auto' or 'timm': the cache, downloaded there when
    missing; else a path) with its sha256; raises PretrainedWeightsMissing."""
    weights_spec = spec(name, source)
    if source not in CACHED_SOURCES:
        path = Path(source).expanduser()
        if not path.is_file():
            raise PretrainedWeightsMissing(
                f'ImageNet weights for {name} are missing: there is no file {path} (the path given to '
                f'--basenet-pretrained); the weights are published at {weights_spec.url}. ' + FROM_SCRATCH)
        return Weights(name, source, None, path, _sha256(path))
    fetch = _from_hub if weights_spec.hub else _from_torch_hub
    path = fetch(name, weights_spec)
    return Weights(name, source, weights_spec.url, path, _sha256(path))


def resolve_weights_path(name: str, source: str) -> Path:
    """The weights file for ``source`` (see :func:`locate`); raises PretrainedWeightsMissing."""
    return locate(name, source).path


def _from_torch_hub(name: str, weights_spec: Spec) -> Path:
    """torchvision's file in the torch hub cache, downloaded there (checked against the hash prefix in its
    name, as torchvision checks it) when missing."""
    path = hub_cache_path(name)
    if path.is_file():
        return path
    reason = 'HF_HUB_OFFLINE is set'
    if not offline():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            match = torch.hub.HASH_REGEX.search(path.name)
            torch.hub.download_url_to_file(weights_spec.url, str(path), match.group(1) if match else None)
            return path
        except (OSError, RuntimeError) as error:  # no network (URLError), a full disk, a wrong hash
            reason = _first_line(error)
    raise PretrainedWeightsMissing(
        f'ImageNet weights for {name} are missing: there is no file {path} (the torch hub cache, TORCH_HOME) '
        f'and the download of {weights_spec.url} failed ({reason}). On a machine with internet access, download '
        f'it and copy it to {path}, or give it at any other place with --basenet-pretrained PATH. '
        + FROM_SCRATCH)


def _from_hub(name: str, weights_spec: Spec) -> Path:
    """The file in the Hugging Face hub cache, downloaded there by huggingface_hub (as timm and DeepLabCut
    download it) when missing. Without a network the download is not tried: huggingface_hub would retry
    for half a minute and log every retry."""
    repository, filename = weights_spec.hub
    cache = hf_cache_dir()
    huggingface_hub = _require_hub(name)
    from huggingface_hub import errors as hub_errors  # pylint: disable=import-outside-toplevel
    cached = huggingface_hub.try_to_load_from_cache(repository, filename, cache_dir=cache)
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    reason = 'HF_HUB_OFFLINE is set' if offline() else _unreachable(HUB_HOST)
    if reason is None:
        hub_logger = logging.getLogger('huggingface_hub')
        level = hub_logger.level
        hub_logger.setLevel(logging.ERROR)  # its retries would be lines of their own
        try:
            return Path(huggingface_hub.hf_hub_download(repository, filename, cache_dir=cache,
                                                        library_name='openfields'))
        except (OSError, ValueError, hub_errors.EntryNotFoundError) as error:  # HTTP errors are OSErrors
            reason = _first_line(error)
        finally:
            hub_logger.setLevel(level)
    folder = cache / f'models--{repository.replace("/", "--")}'
    raise PretrainedWeightsMissing(
        f'ImageNet weights for {name} are missing: {filename} of {repository} is not in the Hugging Face cache '
        f'{cache} (HF_HOME) and the download of {weights_spec.url} failed ({reason}). On a machine with internet '
        f'access, download it and give it with --basenet-pretrained PATH, or copy the folder {folder.name} of '
        f'that machine\'s Hugging Face cache to {folder}. ' + FROM_SCRATCH)


def _require_hub(name: str):
    try:
        import huggingface_hub  # pylint: disable=import-outside-toplevel
    except ImportError:
        from .basenet_parts import BasenetDependencyMissing  # pylint: disable=import-outside-toplevel
        raise BasenetDependencyMissing(f'the ImageNet weights of basenet {name} come from the Hugging Face hub '
                                       'through huggingface_hub, which is not installed: pip install '
                                       'openfields[timm]') from None
    return huggingface_hub


def _unreachable(host: str) -> str | None:
    """Why ``host`` cannot be reached (its name does not resolve), or None. A proxy resolves names itself:
    with one configured the download is always tried."""
    if any(os.environ.get(key) for key in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy')):
        return None
    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        return f'no network: {host} does not resolve: {error}'
    return None


def _first_line(error: BaseException) -> str:
    return f'{type(error).__name__}: {first_line(error, limit=None)}'


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ load

def read_state_dict(path: Path, weights_spec: Spec | None = None) -> dict:
    """The state dict in ``path``: safetensors, or a torch file (a state dict, or ``{state_key: state
    dict}`` like DeepLabCut's ``.pt``), read without unpickling code (``weights_only``)."""
    if path.suffix == '.safetensors':
        import safetensors.torch  # pylint: disable=import-outside-toplevel
        state_dict = safetensors.torch.load_file(str(path), device='cpu')
    else:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
    key = weights_spec.state_key if weights_spec else None
    if isinstance(state_dict, dict) and isinstance(state_dict.get(key or 'state_dict'), dict):
        state_dict = state_dict[key or 'state_dict']
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{path} is not a state dict (a dict of tensors)')
    return state_dict


def load_state_dict(module: nn.Module, name: str, state_dict: dict, path, source: str = 'auto') -> dict:
    """Load the ImageNet ``state_dict`` of ``name`` (read from ``path``, for messages) into ``module``.

    File keys the basenet lacks on purpose (:attr:`Spec.dropped`) are skipped; basenet keys without a
    counterpart (:attr:`Spec.new`) keep their initialisation. Any other missing or unexpected key, or a
    shape mismatch, raises a RuntimeError. Returns ``{'skipped', 'not_pretrained'}`` (key lists)."""
    weights_spec = spec(name, source)
    prefix = weights_spec.prefix
    state_dict = {prefix + k: v for k, v in state_dict.items()}
    own_state = module.state_dict()
    skipped = sorted(k for k in state_dict if k not in own_state and k[len(prefix):].startswith(weights_spec.dropped))
    kept = {k: v for k, v in state_dict.items() if k not in skipped}
    mismatched = [f'{k} {tuple(v.shape)} vs {tuple(own_state[k].shape)}' for k, v in kept.items()
                  if k in own_state and v.shape != own_state[k].shape]
    if mismatched:
        raise RuntimeError(f'ImageNet weights {path} do not fit basenet {name}: {len(mismatched)} '
                           f'tensors differ in shape (file vs network), e.g. {mismatched[:3]}')
    result = module.load_state_dict(kept, strict=False)
    not_pretrained = sorted(k for k in result.missing_keys if k.startswith(weights_spec.new))
    missing = sorted(set(result.missing_keys) - set(not_pretrained))
    if missing or result.unexpected_keys:
        raise RuntimeError(f'ImageNet weights {path} do not fit basenet {name}: '
                           f'missing keys {missing[:5]} ({len(missing)}), unexpected keys '
                           f'{sorted(result.unexpected_keys)[:5]} ({len(result.unexpected_keys)})')
    return {'skipped': skipped, 'not_pretrained': not_pretrained}


def load(module: nn.Module, weights: Weights) -> dict:
    """Load the located ``weights`` into ``module`` in place; returns :meth:`Weights.record` with the
    ``skipped`` and ``not_pretrained`` keys of :func:`load_state_dict`."""
    weights_spec = spec(weights.basenet, weights.source)
    report = load_state_dict(module, weights.basenet, read_state_dict(weights.path, weights_spec), weights.path,
                             weights.source)
    LOG.info('loaded ImageNet weights for %s from %s (sha256 %s; skipped %d keys, %d keys not pretrained)',
             weights.basenet, weights.path, weights.sha256, len(report['skipped']), len(report['not_pretrained']))
    return {**weights.record(), **report}


def load_imagenet_weights(module: nn.Module, name: str, source: str = 'auto') -> dict:
    """Locate (see :func:`locate`) and load the ImageNet weights of ``name`` into ``module`` in place;
    returns ``{'basenet', 'source', 'url', 'path', 'sha256', 'skipped', 'not_pretrained'}``."""
    return load(module, locate(name, source))
