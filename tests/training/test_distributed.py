"""openfields.training.distributed: launcher environments, rank-0 helpers and collectives on real processes."""

import logging

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from openfields.training import distributed
from openfields.training.distributed import Context, Launch, LaunchError, launch_from_environment

from distributed_runs import free_port

TORCHRUN = {'RANK': '3', 'WORLD_SIZE': '4', 'LOCAL_RANK': '1', 'MASTER_ADDR': 'node7', 'MASTER_PORT': '29500'}
SRUN = {'SLURM_PROCID': '5', 'SLURM_NTASKS': '8', 'SLURM_LOCALID': '1', 'SLURM_JOB_ID': '123456',
        'SLURM_JOB_NODELIST': 'gpu[07-08],cpu1'}


def test_the_torch_launcher_environment_gives_rank_world_size_and_rendezvous():
    assert launch_from_environment(TORCHRUN) == Launch(rank=3, world_size=4, local_rank=1, master_addr='node7',
                                                       master_port=29500, launcher='torch')


def test_the_legacy_launcher_passes_the_local_rank_as_a_flag():
    env = {k: v for k, v in TORCHRUN.items() if k != 'LOCAL_RANK'}
    assert launch_from_environment(env, local_rank_flag=2).local_rank == 2


def test_slurm_gives_rank_and_size_host_from_the_node_list_and_a_port_from_the_job_id():
    launch = launch_from_environment(SRUN)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.launcher) == (5, 8, 1, 'slurm')
    assert launch.master_addr == 'gpu07'
    assert launch.master_port == distributed.default_master_port(123456) == 15000 + 3456


def test_slurm_prefers_exported_master_variables_and_the_port_flag():
    launch = launch_from_environment({**SRUN, 'MASTER_ADDR': 'head', 'MASTER_PORT': '4000'})
    assert (launch.master_addr, launch.master_port) == ('head', 4000)
    assert launch_from_environment({**SRUN, 'MASTER_PORT': '4000'}, master_port=5000).master_port == 5000


def test_torch_launcher_variables_win_inside_a_slurm_allocation():
    assert launch_from_environment({**SRUN, **TORCHRUN}).launcher == 'torch'


@pytest.mark.parametrize('nodelist, host', [('node1', 'node1'), ('gpu[07-09,12]', 'gpu07'),
                                            ('a[3,5],b[1-2]', 'a3'), ('n[01-02]-ib', 'n01-ib'),
                                            ('x1,y2', 'x1')])
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert distributed.first_host(nodelist) == host


def test_no_launcher_environment_names_what_is_missing():
    with pytest.raises(LaunchError) as error:
        launch_from_environment({})
    message = str(error.value)
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID',
                 'SLURM_NTASKS'):
        assert name in message
    assert '\n' not in message


def test_an_incomplete_environment_names_the_missing_variables():
    with pytest.raises(LaunchError, match=r'incomplete: MASTER_ADDR, MASTER_PORT not set'):
        launch_from_environment({'RANK': '0', 'WORLD_SIZE': '2', 'LOCAL_RANK': '0'})
    with pytest.raises(LaunchError, match=r'incomplete: SLURM_LOCALID, SLURM_JOB_NODELIST'):
        launch_from_environment({'SLURM_PROCID': '0', 'SLURM_NTASKS': '2', 'SLURM_JOB_ID': '1'})
    with pytest.raises(LaunchError, match=r'RANK=.x. is not an integer'):
        launch_from_environment({**TORCHRUN, 'RANK': 'x'})
    with pytest.raises(LaunchError, match='rank 4 .* world size of 4'):
        launch_from_environment({**TORCHRUN, 'RANK': '4'})


def test_a_world_of_one_is_a_single_process_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert launch_from_environment({'WORLD_SIZE': '1'}) == Launch()
    assert 'training as a single process' in caplog.text
    assert launch_from_environment({**SRUN, 'SLURM_NTASKS': '1'}) == Launch()


def test_a_single_process_context_is_the_identity():
    context = Context(Launch())
    assert context.is_main and not context.active and context.world_size == 1
    assert context.mean([1.0, None]) == [1.0, None]
    assert context.any(True) and not context.any(False)
    assert context.broadcast_object('x') == 'x' and context.gather_objects(3) == [3]
    context.check_same_arguments({'lr': 1.0})
    context.barrier()


def test_argument_digests_ignore_the_rank_specific_arguments():
    a = distributed.arguments_digest({'lr': 0.1, 'local_rank': 0, 'argv': ['a']})
    assert a == distributed.arguments_digest({'lr': 0.1, 'local_rank': 1, 'argv': ['b']})
    assert a != distributed.arguments_digest({'lr': 0.2, 'local_rank': 0})


def collectives(rank, port, queue):
    torch.set_num_threads(1)
    launch = Launch(rank=rank, world_size=2, local_rank=rank, master_addr='127.0.0.1', master_port=port,
                    launcher='torch')
    context = Context(launch)
    context.start(torch.device('cpu'), timeout_s=60)
    try:
        results = {
            'mean': context.mean([1.0 + rank, None, float('nan') if rank else 4.0]),
            'any': (context.any(rank == 1), context.any(False)),
            'broadcast': context.broadcast_object(f'from rank {rank}'),
            'gather': context.gather_objects(rank * 10),
        }
        try:
            context.check_same_arguments({'lr': 0.1, 'epochs': 5 + rank, 'local_rank': rank})
            results['mismatch'] = None
        except ValueError as error:
            results['mismatch'] = str(error)
        context.check_same_arguments({'lr': 0.1, 'local_rank': rank})  # must not raise
        queue.put((rank, results))
    finally:
        context.close()
        assert not dist.is_initialized()


def test_collectives_of_two_real_processes():
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    port = free_port()
    processes = [ctx.Process(target=collectives, args=(rank, port, queue)) for rank in range(2)]
    for p in processes:
        p.start()
    results = dict(queue.get(timeout=120) for _ in processes)
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank in range(2):
        r = results[rank]
        assert r['mean'] == [1.5, None, 4.0]  # None and NaN are left out of the mean
        assert r['any'] == (True, False)
        assert r['broadcast'] == 'from rank 0' and r['gather'] == [0, 10]
        assert r['mismatch'] == ("--ddp: the ranks were started with different arguments (--epochs: rank 0 5, "
                                 "rank 1 6); start every rank with the same command line")


def test_start_is_a_no_op_for_a_single_process():
    context = Context(Launch())
    context.start(torch.device('cpu'))
    assert not dist.is_initialized()
    context.close()


def test_each_process_takes_the_device_of_its_local_rank():
    launch = Launch(rank=1, world_size=2, local_rank=1)
    assert distributed.device_for(launch, torch.device('cpu')) == torch.device('cpu')
    assert distributed.device_for(Launch(), torch.device('cpu')) == torch.device('cpu')
    with pytest.raises(ValueError, match='--device mps with --ddp'):
        distributed.device_for(launch, torch.device('mps'))


def test_without_ddp_a_launcher_environment_is_ignored_and_bad_timeouts_are_refused():
    from openfields import train
    assert distributed.launch_from_args(train.cli([]), environ=TORCHRUN) == Launch()
    with pytest.raises(ValueError, match='--ddp-timeout must be positive'):
        distributed.launch_from_args(train.cli(['--ddp', '--ddp-timeout', '0']), environ=TORCHRUN)


def test_ddp_backend_auto_is_nccl_on_cuda_and_gloo_elsewhere():
    assert distributed.backend_for('auto', torch.device('cuda', 0)) == 'nccl'
    assert distributed.backend_for('auto', torch.device('cpu')) == 'gloo'
    assert distributed.backend_for('gloo', torch.device('cuda', 0)) == 'gloo'
    with pytest.raises(ValueError, match='--ddp-backend nccl needs CUDA devices, not cpu'):
        distributed.backend_for('nccl', torch.device('cpu'))


def test_gloo_on_cuda_lets_the_processes_share_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    second = Launch(rank=1, world_size=2, local_rank=1, master_addr='h', master_port=1, launcher='torch')
    assert distributed.device_for(second, torch.device('cuda'), 'gloo') == torch.device('cuda', 0)
    with pytest.raises(ValueError, match='local rank 1 but only 1 CUDA devices'):
        distributed.device_for(second, torch.device('cuda'), 'nccl')
