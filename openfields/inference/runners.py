"""Network runners: a torch checkpoint, an ONNX file (onnxruntime) or a TorchScript file behind one
interface, so that predict and video decode them the same way.

A runner has ``head_metas`` (every head of the model, in output order), ``basenet`` (its name), ``decoders`` (the decoders each
training dataset asked for: ``{dataset: [name, ...] | None}``), ``source`` (the file), ``device``, ``topdown`` (a
top-down model's crop settings and detector, ``meta['topdown']`` of its checkpoint; None: bottom-up) and
``fields(images, head_indices)``: normalised images ``(B, 3, H, W)`` in, one float32 array
``(B, F, C, h, w)`` per requested head out, eval-mode values (network/heads.py). Which runner a file gets
is decided from its contents (:func:`load`); a checkpoint's network runs in the arithmetic ``--precision``
asks for (:mod:`openfields.network.precision`), an export in float32.
"""

from __future__ import annotations

import logging
import pathlib
import time
import zipfile
from typing import Protocol

import numpy as np
import torch

from .. import headmeta
from ..errors import first_line
from ..export import metadata
from ..network import checkpoint, cpu_threads, factory as network_factory, model_folder
from ..network import precision as network_precision

LOG = logging.getLogger(__name__)


class Runner(Protocol):
    head_metas: list[headmeta.Base]
    basenet: str
    decoders: dict
    source: pathlib.Path
    device: torch.device
    topdown: dict | None
    base_stride: int | None  # of the basenet; None: an export whose heads do not say

    def fields(self, images: torch.Tensor, head_indices: list[int]) -> list[np.ndarray]:
        """``(B, 3, H, W)`` -> one ``(B, F, C, h, w)`` array per index of ``head_indices``."""


class TorchRunner:
    """A checkpoint's network in eval mode on ``device``, its basenet in ``precision`` (``--precision``); heads not
    asked for are not computed.

    On the CPU the weights and the images are channels_last (NHWC): the network alone ran 1.2-1.5x faster so on
    this 2-core CPU (docs/benchmarks.md, 2026-12-07: batches of 4 images of 640 x 480, timm's resnet50_gn 550 ->
    400 ms an image, shufflenetv2k16 900 -> 730 ms, resnet50 2400 -> 1600 ms), the whole video command 1.1x;
    the fields differ from the default layout's in the last bits only (another summation order)."""

    def __init__(self, saved: dict, source: pathlib.Path, device: torch.device, precision: str = 'float32'):
        network_precision.check(precision, device, source)
        self.saved = saved  # the checkpoint as loaded (what an export records of it)
        self.model = network_factory.from_checkpoint(saved).to(device).eval()
        self.memory_format = torch.channels_last if device.type == 'cpu' else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.head_metas = self.model.head_metas
        self.basenet = self.model.basenet.name
        self.decoders = (saved.get('meta') or {}).get('decoders', {})
        self.topdown = (saved.get('meta') or {}).get('topdown')  # a top-down model: its crops and detector
        # how its images are resized (transforms.scale.IMAGE_RESIZES: an OpenPifPaf checkpoint's are OpenPifPaf's)
        self.image_resize = (saved.get('meta') or {}).get('image_resize', 'openfields')
        self.base_stride = network_factory.checkpoint_stride(saved)
        self.source, self.device, self.precision = source, device, precision

    def fields(self, images, head_indices):
        cpu_threads.follow_load()
        mask = [i in head_indices for i in range(len(self.head_metas))]
        with torch.inference_mode():
            outputs = self.model(images.to(self.device, memory_format=self.memory_format), head_mask=mask,
                                 precision=self.precision)
            return [outputs[i].cpu().numpy() for i in head_indices]


class TorchScriptRunner:
    """A file of ``python -m openfields.export_torchscript``."""

    def __init__(self, source: pathlib.Path, device: torch.device):
        from ..export import torchscript  # pylint: disable=import-outside-toplevel
        self.module, text = torchscript.load(str(source), device)
        described = metadata.from_json(text, source)
        self.head_metas = metadata.head_metas(described)
        self.basenet = described.get('basenet', '?')
        self.decoders = described.get('decoders') or {}
        self.topdown = exported_topdown(described, source)
        self.image_resize = described.get('image_resize', 'openfields')
        self.base_stride = exported_base_stride(self.head_metas)
        self.source, self.device = source, device

    def fields(self, images, head_indices):
        cpu_threads.follow_load()
        with torch.inference_mode():
            outputs = self.module(images.to(self.device))
            return [outputs[i].cpu().numpy() for i in head_indices]


class OnnxRunner:
    """A file of ``python -m openfields.export_onnx``, run by onnxruntime on the CPU."""

    def __init__(self, source: pathlib.Path, threads: int | None = None):
        from ..export import onnx as onnx_export  # pylint: disable=import-outside-toplevel
        try:
            self.session = onnx_export.session(str(source), threads)
        except Exception as error:  # pylint: disable=broad-except  # onnxruntime's own types, from Exception
            raise metadata.ExportedModelError(f'{source}: not a loadable ONNX model ({first_line(error)})') from None
        described = metadata.from_json(self.session.get_modelmeta().custom_metadata_map.get(metadata.KEY),
                                       source)
        self.head_metas = metadata.head_metas(described)
        self.basenet = described.get('basenet', '?')
        self.decoders = described.get('decoders') or {}
        self.topdown = exported_topdown(described, source)
        self.image_resize = described.get('image_resize', 'openfields')
        self.base_stride = exported_base_stride(self.head_metas)
        self.source, self.device = source, torch.device('cpu')
        self._check_signature()

    def _check_signature(self):
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != ['image'] or len(outputs) != len(self.head_metas):
            raise metadata.ExportedModelError(
                f'{self.source}: its graph (inputs {[i.name for i in inputs]}, {len(outputs)} outputs) is not '
                f'the one its metadata describes (input image, {len(self.head_metas)} heads)')

    def fields(self, images, head_indices):
        names = [self.session.get_outputs()[i].name for i in head_indices]
        try:
            return self.session.run(names, {'image': images.cpu().numpy()})
        except Exception as error:  # pylint: disable=broad-except  # onnxruntime's own types, from Exception
            raise metadata.ExportedModelError(f'{self.source}: its graph does not take an image batch of shape '
                                              f'{tuple(images.shape)} ({first_line(error)})') from None


def timed_fields(runner: Runner, head_indices: list[int]):
    """``images (B, 3, H, W) -> (per image, per head of head_indices: (F, C, h, w); seconds)``."""
    def fields(images: torch.Tensor) -> tuple[list[list[np.ndarray]], float]:
        start = time.perf_counter()
        heads = runner.fields(images, head_indices)
        return [[h[b] for h in heads] for b in range(images.shape[0])], time.perf_counter() - start
    return fields


def exported_base_stride(head_metas: list[headmeta.Base]) -> int | None:
    """The basenet stride the heads of an exported model were trained with (every head carries it; None when
    they do not agree)."""
    strides = {meta.base_stride for meta in head_metas} - {0}
    return strides.pop() if len(strides) == 1 else None


def exported_topdown(described: dict, source: pathlib.Path) -> dict | None:
    """A top-down export's crop settings, its detector (a file name beside ``source``) made a path."""
    topdown = described.get('topdown')
    if topdown is None:
        return None
    return {**topdown, 'detector': str(source.parent / pathlib.Path(topdown['detector']).name)}


def is_torchscript(path: pathlib.Path) -> bool:
    """TorchScript archives hold ``<name>/constants.pkl``; ``torch.save`` checkpoints do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith('/constants.pkl') for name in archive.namelist())


def load(name_or_path: str, device: torch.device | str = 'cpu', precision: str = 'float32') -> Runner:
    """The runner for a checkpoint, an ``.onnx`` file or a TorchScript file (a path or a named model); a
    checkpoint runs in ``precision``, an exported model in float32 only."""
    try:
        path = model_folder.resolve(name_or_path)
    except model_folder.ModelNotFound as error:
        raise checkpoint.CheckpointError(str(error)) from None
    device = torch.device(device)
    exported = 'onnx' if path.suffix.lower() == '.onnx' else 'torchscript' if is_torchscript(path) else None
    if exported and precision != 'float32':
        raise ValueError(f'--precision {precision}: {path} is an exported model, which runs in float32 only; '
                         'run its checkpoint, or drop the flag')
    if exported == 'onnx':
        if device.type != 'cpu':
            LOG.info('%s: ONNX models run on the CPU (onnxruntime), not on %s', path, device)
        return OnnxRunner(path)
    if exported == 'torchscript':
        return TorchScriptRunner(path, device)
    saved = checkpoint.load(path)
    if 'detector' in saved['model']:
        raise checkpoint.CheckpointError(f'{path}: a detector, not a pose model; give the pose checkpoint of the '
                                         'top-down run (it records its detector)')
    return TorchRunner(saved, path, device, precision)
