"""``--device``: what ``auto`` picks, and a single training process never leaves visible GPUs idle unasked."""

import pytest
import torch

from openfields.network.device import check_one_gpu_is_meant, resolve_device


@pytest.mark.parametrize('device', ['auto', 'cuda'])
def test_several_visible_gpus_without_ddp_are_refused_naming_ddp_and_torchrun(device):
    with pytest.raises(ValueError) as refused:
        check_one_gpu_is_meant(device, visible_gpus=2, ddp=False, batch_size=32)
    message = str(refused.value)
    assert '\n' not in message and message.startswith(f'--device {device}: 2 GPUs are visible')
    assert 'torchrun --nproc_per_node 2 -m openfields.train --ddp' in message
    assert '--batch-size is per GPU there: 16 for about the total of 32' in message
    assert '--device cuda:0' in message


@pytest.mark.parametrize('device, visible_gpus, ddp', [
    ('auto', 2, True),      # one process per GPU: torchrun ... --ddp
    ('cuda', 4, True),
    ('cuda:1', 2, False),   # the user chose one GPU
    ('cpu', 2, False),      # the user chose the CPU
    ('auto', 1, False),     # one GPU: nothing idle
    ('cuda', 1, False),
    ('auto', 0, False),     # no GPU (this machine): the CPU
])
def test_a_chosen_device_one_gpu_or_ddp_passes(device, visible_gpus, ddp):
    assert check_one_gpu_is_meant(device, visible_gpus, ddp, batch_size=8) is None


def test_eight_gpus_and_a_batch_smaller_than_them_names_no_per_gpu_batch():
    with pytest.raises(ValueError, match='--nproc_per_node 8 ') as refused:
        check_one_gpu_is_meant('auto', 8, False, batch_size=4)
    assert '--batch-size' not in str(refused.value)


def test_auto_without_cuda_or_mps_is_the_cpu():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip('an accelerator is present')
    assert resolve_device('auto') == torch.device('cpu')
