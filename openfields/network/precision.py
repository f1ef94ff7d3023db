"""The arithmetic a network runs in at inference: float32, or bfloat16 through torch's autocast.

On a CPU with AVX512-BF16 (or AMX) oneDNN's bfloat16 convolutions do twice the multiply-adds per instruction of
float32's: here (AMD EPYC, Zen 4) timm's resnet50_gn took 362 ms an image of 640 x 480 in float32 and 193 ms in
bfloat16 (channels_last, batches of 4). Exported models (ONNX, TorchScript) are float32 graphs and refuse it.
"""

from __future__ import annotations

import contextlib
import logging

import torch

LOG = logging.getLogger(__name__)

PRECISIONS = ('float32', 'bfloat16')


def cli(parser) -> None:
    """``--precision``, a flag of every command that runs a model (predict, video, eval)."""
    parser.add_argument('--precision', choices=PRECISIONS, default='float32',
                        help='arithmetic of a checkpoint\'s network and detector: bfloat16 runs convolutions and '
                             'matrix products in bfloat16 (torch autocast; about 2x faster on CPUs with AVX512-BF16 '
                             'or AMX, slower on others); exported models (ONNX, TorchScript) run in float32 only')


def arithmetic(device: torch.device, precision: str):
    """The context a network runs in: float32 as it is; bfloat16 under torch's autocast on ``device``, whose
    op lists decide: convolutions and matrix products take and give bfloat16, ops that need the range or the
    digits run in float32. bfloat16 keeps float32's range with 8 bits of mantissa: a value is rounded to within
    2^-9 of itself, and a deep network's outputs drift by a few of those."""
    if precision == 'float32':
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def run_in(precision: str, module: torch.nn.Module, images: torch.Tensor):
    """``module(images)`` in ``precision``: float32 as it is (under whatever autocast the caller set, as
    training's ``--amp``); else in :func:`arithmetic`, its outputs (a tensor, or a list, tuple or dict of them)
    made float32 for what runs after."""
    if precision == 'float32':
        return module(images)
    with arithmetic(images.device, precision):
        return _float32(module(images))


def _float32(outputs):
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    if isinstance(outputs, dict):
        return type(outputs)((name, _float32(value)) for name, value in outputs.items())
    return type(outputs)(_float32(value) for value in outputs)


def check(precision: str, device: torch.device, source) -> None:
    """Refuse what cannot run as asked (torch's autocast would silently run float32 elsewhere); say when the
    hardware emulates bfloat16 (it runs, slower than float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f'--precision {precision}: one of {", ".join(PRECISIONS)}')
    if precision == 'float32':
        return
    if device.type not in ('cpu', 'cuda'):
        raise ValueError(f'--precision {precision}: runs on the CPU or CUDA, not on {device}; drop the flag')
    native = (torch.ops.mkldnn._is_mkldnn_bf16_supported() if device.type == 'cpu'  # pylint: disable=protected-access
              else torch.cuda.is_bf16_supported())
    if not native:
        LOG.warning('--precision %s: %s has no bfloat16 instructions (AVX512-BF16 or AMX; CUDA: Ampere or '
                    'later); %s runs emulated, likely slower than float32', precision, device, source)
