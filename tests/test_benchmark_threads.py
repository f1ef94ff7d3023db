"""tools/benchmark_threads.py: the fair share, and the timing from the command's threads line to its end with
spinning neighbours started at that line."""

import sys
import time

from tools import benchmark_threads


def test_the_fair_share_is_the_cpus_left_then_an_equal_part():
    assert benchmark_threads.fair_share(2, 0) == 2
    assert benchmark_threads.fair_share(2, 1) == 1
    assert benchmark_threads.fair_share(2, 2) == 2 / 3
    assert benchmark_threads.fair_share(8, 3) == 5


def test_a_command_is_timed_from_its_threads_line_with_the_neighbours_running_meanwhile(tmp_path):
    code = ('import sys, time; time.sleep(1.0); '
            'print("12:00:00 INFO openfields.network.cpu_threads: threads: 2 CPU threads", file=sys.stderr, '
            'flush=True); time.sleep(0.5)')
    start = time.perf_counter()
    seconds = benchmark_threads.timed([sys.executable, '-c', code], 'following', 1, tmp_path / 'log')
    total = time.perf_counter() - start
    assert 0.4 <= seconds < 1.4 and total >= 1.5  # the second before the line is not counted (0.05 s polls)
    assert 'threads: 2 CPU threads' in (tmp_path / 'log').read_text()
