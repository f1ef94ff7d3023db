"""How fast the training step runs on its hardware: mixed precision, memory layout, compilation and the
cuDNN / determinism switches (``--amp``, ``--channels-last``, ``--compile``, ``--cudnn-benchmark``,
``--deterministic``). None of them changes what is trained, only how the arithmetic is carried out.

* ``--amp fp16|bf16``: the network's forward pass runs under ``torch.autocast`` (matrix products and
  convolutions in half precision, reductions and normalisations in float32). The losses always run in float32:
  :class:`~openfields.network.losses.CompositeLoss` upcasts half-precision head outputs, because the Laplace
  term ``d / b`` with ``b = 2 exp(ls2 / 2)`` and the focal-as-Gaussian term ``(x - t2)^2 / 2`` with a
  gradient-sized step would lose their small differences in 10 (fp16) or 7 (bf16) mantissa bits. fp16 also
  scales the loss (:class:`torch.amp.GradScaler`): gradients below 6e-8 would flush to zero otherwise, and a
  step whose scaled gradients overflow is skipped while the scale halves. bf16 has float32's range: no scaler.
* ``--channels-last``: the network's weights and each batch of images in NHWC memory order, which the tensor
  cores of recent GPUs (and oneDNN on CPUs) prefer for convolutions; same values, other strides.
* ``--compile``: ``torch.compile`` of what trains (the network, or its DDP wrapper). The saved network is the
  uncompiled one, so checkpoints keep their keys (no ``_orig_mod.`` prefix). Validation runs uncompiled.
* ``--cudnn-benchmark``: cuDNN times its convolution algorithms for each new input shape and keeps the
  fastest (fixed-size batches gain; variable sizes re-time often).
* ``--deterministic``: ``torch.use_deterministic_algorithms(True)`` and deterministic cuDNN; an operation
  without a deterministic implementation then raises instead of silently differing between runs. The CPU
  thread count stays the one chosen at start-up (it does not follow the machine's load: sums depend on it).
  On CUDA, cuBLAS also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, set here when the environment has none.
"""

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil

import torch

from ..network import cpu_threads

LOG = logging.getLogger(__name__)

AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
CUBLAS_DETERMINISTIC = ':4096:8'
CXX_COMPILERS = ('g++', 'c++', 'clang++')


def cli(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('accelerate (precision, memory layout, compilation)')
    group.add_argument('--amp', choices=('off', 'fp16', 'bf16'), default='off',
                       help='mixed precision of the forward pass (autocast; the losses stay in float32); fp16 '
                            'scales the loss with a GradScaler')
    group.add_argument('--channels-last', action='store_true',
                       help='weights and images in channels-last (NHWC) memory order')
    group.add_argument('--compile', action='store_true',
                       help='torch.compile the training forward and backward (the first steps compile: '
                            'minutes; on the CPU it needs a C++ compiler)')
    group.add_argument('--cudnn-benchmark', action='store_true',
                       help='let cuDNN time and pick its fastest convolution algorithms (CUDA only)')
    group.add_argument('--deterministic', action='store_true',
                       help='deterministic algorithms only (torch.use_deterministic_algorithms): the same run '
                            'gives the same weights, usually a little slower')


@dataclasses.dataclass(frozen=True)
class AccelerateSettings:
    amp: str = 'off'  # 'off', 'fp16' or 'bf16'
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False
    deterministic: bool = False

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return AMP_DTYPES.get(self.amp)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @classmethod
    def from_args(cls, args, device: torch.device) -> 'AccelerateSettings':
        """The settings for training on ``device``; a ValueError (one line) for what cannot run there."""
        settings = cls(amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                       cudnn_benchmark=args.cudnn_benchmark, deterministic=args.deterministic)
        settings.check(device)
        return settings

    def check(self, device: torch.device) -> None:
        if self.amp not in ('off', *AMP_DTYPES):
            raise ValueError(f'--amp {self.amp}: choose off, fp16 or bf16')
        if self.deterministic and self.cudnn_benchmark:
            raise ValueError('--deterministic and --cudnn-benchmark exclude each other: cuDNN\'s benchmark '
                             'may pick a different algorithm in every run')
        if self.amp != 'off':
            _check_autocast(self.amp, device)
        if self.compile and device.type == 'cpu' and not _cxx_compiler():
            raise ValueError('--compile on the CPU needs a C++ compiler (g++ or clang++, or $CXX) and none is '
                             'on PATH: install one (apt-get install g++) or train without --compile')
        if self.cudnn_benchmark and device.type != 'cuda':
            LOG.warning('--cudnn-benchmark has no effect on %s: cuDNN runs on CUDA only', device)

    def describe(self) -> str:
        """One line for the console: what this run's step uses."""
        return (f'precision {"float32" if self.amp == "off" else self.amp + " autocast, float32 losses"}'
                f'{", GradScaler" if self.amp == "fp16" else ""}, memory '
                f'{"channels_last" if self.channels_last else "contiguous"}, '
                f'{"torch.compile" if self.compile else "eager"}'
                f'{", cudnn benchmark" if self.cudnn_benchmark else ""}'
                f'{", deterministic" if self.deterministic else ""}')


def _check_autocast(amp: str, device: torch.device) -> None:
    if not torch.amp.is_autocast_available(device.type):
        raise ValueError(f'--amp {amp}: torch {torch.__version__} has no autocast on {device.type}; '
                         'train with --amp off')
    if amp == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise ValueError(f'--amp bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; '
                         'use --amp fp16')


def _cxx_compiler() -> str | None:
    if os.environ.get('CXX') and shutil.which(os.environ['CXX'].split()[0]):
        return os.environ['CXX']
    return next((name for name in CXX_COMPILERS if shutil.which(name)), None)


@contextlib.contextmanager
def backend_switches(settings: AccelerateSettings):
    """``--cudnn-benchmark`` and ``--deterministic`` while the run trains; torch's previous switches after
    (they are process-wide: a second run in the same process must not inherit them)."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             os.environ.get('CUBLAS_WORKSPACE_CONFIG'))
    if settings.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if settings.deterministic:
        # cuBLAS reads it when its first handle is made: before any CUDA matrix product of this process
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', CUBLAS_DETERMINISTIC)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True)
        # float sums depend on torch's thread count: it must not follow the machine's load
        cpu_threads.stop_following('--deterministic')
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
        if saved[4] is None:
            os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)


def to_memory_format(network: torch.nn.Module, settings: AccelerateSettings) -> torch.nn.Module:
    """``network`` with its 4D weights in the settings' memory order (the parameters stay the same objects,
    so an optimizer built before or after sees them)."""
    if settings.channels_last:
        network.to(memory_format=torch.channels_last)
    return network


def compiled(model: torch.nn.Module, settings: AccelerateSettings) -> torch.nn.Module:
    """What trains: ``torch.compile(model)`` with ``--compile`` (it shares ``model``'s parameters), else
    ``model``."""
    if not settings.compile:
        return model
    return torch.compile(model)


class Precision:
    """The autocast context and, for fp16, the gradient scaler of a training step on ``device``.

    A step: ``with precision.autocast(): outputs = model(images)``; the loss (float32);
    ``precision.backward(loss)``; ``precision.unscale(optimizer)`` before clipping gradients;
    ``precision.step(optimizer)``.
    """

    def __init__(self, settings: AccelerateSettings, device: torch.device):
        self.settings = settings
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type) if settings.amp == 'fp16' else None

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.settings.amp_dtype or torch.float32,
                              enabled=self.settings.amp != 'off')

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """A batch on the device in the network's memory order (from pinned memory: without waiting)."""
        return images.to(self.device, non_blocking=True, memory_format=self.settings.memory_format)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """The true gradients in ``.grad`` (clipping thresholds are in their units)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's step; with fp16 skipped when the gradients overflowed (the scale then halves)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        """A resumed run's loss scale (none saved, or another --amp: the scaler starts afresh)."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def float32_precision(device: torch.device) -> Precision:
    """What the trainer uses when it is given no settings: plain float32, contiguous."""
    return Precision(AccelerateSettings(), device)
