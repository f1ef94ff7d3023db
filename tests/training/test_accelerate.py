"""``--amp``, ``--channels-last``, ``--compile``, ``--cudnn-benchmark``, ``--deterministic``: what the CPU can
show (same arithmetic in another layout, finite mixed-precision losses, clear refusals), and the CUDA paths,
which run only where a GPU is (``make gpu-check``) and are skipped with a reason elsewhere."""

import argparse
import shutil

import pytest
import torch

from openfields import headmeta
from openfields.datasets import coco_person
from openfields.network import factory as network_factory
from openfields.network.losses import CompositeLoss, LossSettings, MultiHeadLoss
from openfields.training import accelerate, loop as trainer
from openfields.training.accelerate import AccelerateSettings, Precision
from openfields.training.log import TrainingLog

from gpu import cuda_only

CPU = torch.device('cpu')
EDGE = 65  # input pixels: fields of 5 x 5 cells at stride 16


def coco_metas():
    common = dict(dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS, sigmas=coco_person.COCO_PERSON_SIGMAS)
    return [headmeta.Cif(name='cif', **common),
            headmeta.Caf(name='caf', skeleton=coco_person.COCO_PERSON_SKELETON, **common)]


def network_and_loss(device=CPU):
    torch.manual_seed(0)
    metas = coco_metas()
    network = network_factory.build('shufflenetv2k16', {}, metas).to(device).train()
    return network, MultiHeadLoss([CompositeLoss(meta, LossSettings()) for meta in metas]).to(device)


def random_targets(network, batch_size: int, seed: int, device=CPU) -> list[torch.Tensor]:
    """Per head ``(B, F, C_t, 5, 5)``: a few positive cells with plausible regression targets, the rest
    negative with NaN regression."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for meta in network.head_metas:
        n_channels = 1 + 3 * meta.n_vectors + meta.n_scales
        positive = torch.rand(batch_size, meta.n_fields, 5, 5, generator=generator) < 0.1
        values = torch.rand(batch_size, meta.n_fields, n_channels, 5, 5, generator=generator) + 0.5
        t = torch.where(positive.unsqueeze(2), values, torch.tensor(float('nan')))
        t[:, :, 0] = positive.float()
        targets.append(t.to(device))
    return targets


def images(batch_size: int, seed: int, device=CPU) -> torch.Tensor:
    return torch.randn(batch_size, 3, EDGE, EDGE, generator=torch.Generator().manual_seed(seed)).to(device)


def loss_and_gradients(settings: AccelerateSettings, device=CPU, dtype=torch.float32):
    network, loss = network_and_loss(device)
    accelerate.to_memory_format(network.to(dtype), settings)
    precision = Precision(settings, device)
    with precision.autocast():
        outputs = network(precision.images(images(2, seed=1).to(dtype)))
    total, _ = loss(outputs, [t.to(dtype) for t in random_targets(network, 2, seed=2, device=device)])
    total.backward()
    return total.detach(), {name: p.grad.detach().clone() for name, p in network.named_parameters()}


def args(**flags) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    accelerate.cli(parser)
    return parser.parse_args([f'--{k.replace("_", "-")}' if v is True else f'--{k}={v}'
                              for k, v in flags.items()])


def test_defaults_are_float32_contiguous_eager():
    settings = AccelerateSettings.from_args(args(), CPU)
    assert settings == AccelerateSettings(amp='off', channels_last=False, compile=False, cudnn_benchmark=False,
                                          deterministic=False)
    assert settings.describe() == 'precision float32, memory contiguous, eager'


def test_fp16_and_bf16_autocast_are_accepted_on_the_cpu_of_this_torch():
    assert AccelerateSettings.from_args(args(amp='fp16'), CPU).amp_dtype == torch.float16
    assert AccelerateSettings.from_args(args(amp='bf16'), CPU).amp_dtype == torch.bfloat16
    assert Precision(AccelerateSettings(amp='fp16'), CPU).scaler is not None
    assert Precision(AccelerateSettings(amp='bf16'), CPU).scaler is None  # float32's range: nothing to scale


def test_a_device_without_autocast_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.amp, 'is_autocast_available', lambda device_type: False)
    with pytest.raises(ValueError, match=r'^--amp bf16: torch \S+ has no autocast on cpu; train with --amp off$'):
        AccelerateSettings.from_args(args(amp='bf16'), CPU)


def test_compile_on_a_cpu_without_a_cxx_compiler_is_refused_naming_the_fix(monkeypatch):
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    monkeypatch.delenv('CXX', raising=False)
    with pytest.raises(ValueError, match=r'--compile on the CPU needs a C\+\+ compiler .*\(apt-get install g\+\+'):
        AccelerateSettings.from_args(args(compile=True), CPU)


def test_deterministic_and_cudnn_benchmark_exclude_each_other():
    with pytest.raises(ValueError, match='--deterministic and --cudnn-benchmark exclude each other'):
        AccelerateSettings.from_args(args(deterministic=True, cudnn_benchmark=True), CPU)


def test_cudnn_benchmark_on_the_cpu_says_it_does_nothing(caplog):
    AccelerateSettings.from_args(args(cudnn_benchmark=True), CPU)
    assert '--cudnn-benchmark has no effect on cpu' in caplog.text


def test_backend_switches_hold_during_the_run_and_are_restored_after(monkeypatch):
    monkeypatch.delenv('CUBLAS_WORKSPACE_CONFIG', raising=False)
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
              torch.are_deterministic_algorithms_enabled())
    with accelerate.backend_switches(AccelerateSettings(deterministic=True)):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        assert accelerate.os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
            torch.are_deterministic_algorithms_enabled()) == before
    assert 'CUBLAS_WORKSPACE_CONFIG' not in accelerate.os.environ
    with accelerate.backend_switches(AccelerateSettings(cudnn_benchmark=True)):
        assert torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.benchmark == before[0]


def test_channels_last_gives_the_loss_of_contiguous_memory():
    loss, _ = loss_and_gradients(AccelerateSettings())
    loss_nhwc, _ = loss_and_gradients(AccelerateSettings(channels_last=True))
    assert float(loss) > 1.0
    assert torch.allclose(loss_nhwc, loss, rtol=1e-5)


def test_channels_last_gives_the_gradients_of_contiguous_memory():
    # in float64: BatchNorm over a batch of 2 tiny images amplifies float32's summation-order rounding to
    # 1e-2 in the first layer's gradients (docs/hpc.md), whatever the layout
    loss, gradients = loss_and_gradients(AccelerateSettings(), dtype=torch.float64)
    loss_nhwc, gradients_nhwc = loss_and_gradients(AccelerateSettings(channels_last=True), dtype=torch.float64)
    assert torch.allclose(loss_nhwc, loss, rtol=1e-10)
    largest = max(float(g.abs().max()) for g in gradients.values())
    for name, gradient in gradients.items():
        # a gradient that is zero in exact arithmetic (the bias of a BatchNorm before another) is rounding noise
        scale = max(float(gradient.abs().max()), 1e-6 * largest)
        assert float((gradients_nhwc[name] - gradient).abs().max()) <= 1e-5 * scale, name


def test_channels_last_places_weights_and_images_in_nhwc_order():
    network, _ = network_and_loss()
    accelerate.to_memory_format(network, AccelerateSettings(channels_last=True))
    conv = next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    batch = Precision(AccelerateSettings(channels_last=True), CPU).images(images(2, seed=1))
    assert batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous()


def test_half_precision_head_outputs_give_float32_losses():
    network, loss = network_and_loss()
    targets = random_targets(network, 2, seed=2)
    with torch.no_grad():
        outputs = network(images(2, seed=1))
    reference, _ = loss(outputs, targets)
    for dtype, rtol in ((torch.bfloat16, 2e-2), (torch.float16, 2e-3)):
        total, components = loss([o.to(dtype) for o in outputs], targets)
        assert total.dtype == torch.float32
        assert all(v.dtype == torch.float32 for v in components.values())
        # only the rounding of the predictions themselves: 8 (bf16) or 11 (fp16) significant bits
        assert torch.allclose(total, reference, rtol=rtol)


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_autocast_training_steps_keep_the_losses_and_weights_finite(amp):
    network, loss = network_and_loss()
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    settings = trainer.TrainerSettings(clip_grad_norm=10.0, ema=0.0)
    runner = trainer.Trainer(network, loss, optimizer, scheduler, device=CPU, settings=settings,
                             log=TrainingLog(None), n_heads=2, precision=Precision(AccelerateSettings(amp=amp), CPU))
    losses = [runner.train_batch(images(2, seed=step), random_targets(network, 2, seed=10 + step))[0]
              for step in range(3)]
    assert all(torch.isfinite(torch.tensor(losses))) and min(losses) > 1.0
    assert all(bool(torch.isfinite(p).all()) for p in network.parameters())
    state = runner.state_dict()['grad_scaler']
    if amp == 'fp16':
        assert state['scale'] > 0  # saved for --resume, and restored by load_state_dict
        runner.precision.scaler.update(new_scale=1024.0)
        runner.load_state_dict(runner.state_dict() | {'grad_scaler': state})
        assert runner.precision.scaler.get_scale() == state['scale']
    else:
        assert state is None


@cuda_only
@pytest.mark.parametrize('amp', ['off', 'bf16', 'fp16'])
def test_cuda_autocast_in_channels_last_follows_the_float32_loss_of_the_cpu(amp):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, False  # true float32
    reference, reference_gradients = loss_and_gradients(AccelerateSettings(), CPU)
    loss, gradients = loss_and_gradients(AccelerateSettings(amp=amp, channels_last=True), torch.device('cuda'))
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(reference), rel=1e-4 if amp == 'off' else 3e-2)
    assert all(bool(torch.isfinite(g).all()) for g in gradients.values())
    assert gradients.keys() == reference_gradients.keys()


@cuda_only
def test_cuda_fp16_steps_scale_the_loss_and_keep_the_weights_finite():
    cuda = torch.device('cuda')
    network, loss = network_and_loss(cuda)
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    precision = Precision(AccelerateSettings(amp='fp16', channels_last=True), cuda)
    runner = trainer.Trainer(network, loss, optimizer, scheduler, device=cuda, settings=trainer.TrainerSettings(),
                             log=TrainingLog(None), n_heads=2, precision=precision)
    losses = [runner.train_batch(images(4, seed=step).pin_memory(), random_targets(network, 4, 10 + step, cuda))[0]
              for step in range(4)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert 0 < precision.scaler.get_scale() <= 65536.0
    assert all(bool(torch.isfinite(p).all()) for p in network.parameters())
