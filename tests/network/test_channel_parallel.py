"""over_channels: every channel once, in chunks on torch's thread count, also in a forked child."""

import multiprocessing

import numpy as np
import torch

from openfields.network.channel_parallel import over_channels


def record_chunk(seen, first, end):
    seen[first:end] += 1
    seen[first:end, 1] = first


def chunks_seen(n_channels, n_threads):
    threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        seen = np.zeros((n_channels, 2), dtype=np.int64)
        over_channels(record_chunk, n_channels, seen)
    finally:
        torch.set_num_threads(threads)
    return seen


def test_every_channel_once_in_contiguous_chunks_one_per_thread():
    seen = chunks_seen(10, 3)
    assert seen[:, 0].tolist() == [1] * 10
    assert sorted(set(seen[:, 1].tolist())) == [0, 3, 6]  # chunks [0, 3), [3, 6), [6, 10)


def test_fewer_chunks_than_threads_when_there_are_few_channels():
    seen = chunks_seen(2, 4)
    assert seen[:, 0].tolist() == [1, 1] and seen[:, 1].tolist() == [0, 1]


def _in_child(queue):
    queue.put(chunks_seen(8, 2)[:, 0].tolist())


def test_a_forked_child_runs_its_own_helper_threads():
    """The parent's helper threads do not exist in a forked child: it must not wait on them forever."""
    chunks_seen(8, 2)  # the parent's pool exists
    context = multiprocessing.get_context('fork')
    queue = context.Queue()
    child = context.Process(target=_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == [1] * 8
