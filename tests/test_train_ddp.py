"""``--ddp``: real processes on the CPU (gloo) train exactly like one process with the global batch."""

import pytest

from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.network import factory as network_factory
from openfields.training_log import read

from distributed_runs import TINY_DDP, TRAIN_FLOAT64, relative_difference, state_of, torchrun
from train_float64 import float64


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('synthetic-cache')


def initial_state(argv):
    """The weights a run of ``argv`` starts from (seeded, then built like train.run builds them)."""
    args = train.cli(argv)
    train.seed_everything(args.seed)
    datamodule = datasets_factory.datamodule_from_args(args)
    network = network_factory.factory(args, datamodule.head_metas)
    return {k: v.detach().double() for k, v in network.state_dict().items() if v.dtype.is_floating_point}


def test_two_processes_of_batch_2_train_like_one_process_of_batch_4(tmp_path, cache_dir):
    # float64 (see tests/train_float64.py): float32 rounding alone makes two single-process runs that
    # differ only in their thread count drift apart by 1e-4 within four steps of this tiny setup
    common = TINY_DDP + ['--synthetic-cache-dir', str(cache_dir), '--epochs', '2', '--lr', '1e-4']
    single = tmp_path / 'single.pkl'
    with float64():
        train.run(train.cli(common + ['--batch-size', '4', '--output', str(single)]))  # renders the images
    ddp = tmp_path / 'ddp.pkl'
    result = torchrun(common + ['--batch-size', '2', '--output', str(ddp)], script=TRAIN_FLOAT64)
    assert result.returncode == 0, result.stderr[-3000:]

    records = read(f'{ddp}.log')
    assert (records[0]['world_size'], records[0]['global_batch_size']) == (2, 4)
    # 2 epochs x 2 optimizer steps, each over the same 4 images in both runs
    assert [(r['epoch'], r['batch']) for r in records if r['type'] == 'train'] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert relative_difference(state_of(ddp), state_of(single)) <= 1e-5
    # ... which is not trivial: training moved the weights a thousand times further
    assert relative_difference(state_of(single), initial_state(common)) > 1e-2
