"""Progress lines: count, rate and time left, one line per interval."""

import logging

import pytest

from openfields.show.progress import Progress, StageTimes


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_line_per_interval_with_rate_and_eta(caplog):
    clock = Clock()
    caplog.set_level('INFO')
    progress = Progress('evaluating x', 10, interval_s=5.0, clock=clock, log=logging.getLogger('p'))
    for _ in range(4):
        clock.now += 2.0  # 0.5 images/s
        progress.update()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ['evaluating x: 3/10 images (30%), 0.50 images/s, ETA 0:00:14']  # at t = 6 s only


def test_an_unknown_total_reports_count_and_rate():
    clock = Clock()
    progress = Progress('predicting', None, clock=clock)
    clock.now += 4.0
    progress.update(2)
    assert progress.line() == 'predicting: 2 images, 0.50 images/s'


def test_a_negative_interval_never_logs(caplog):
    caplog.set_level('INFO')
    progress = Progress('x', 3, interval_s=-1, clock=Clock(), log=logging.getLogger('p'))
    progress.update(3)
    assert caplog.records == []


def test_stage_times_sum_per_stage_and_report_ms_per_image():
    clock = Clock()
    stages = StageTimes(clock=clock)

    def arriving():
        for item in 'ab':
            clock.now += 0.5  # each item takes 0.5 s to arrive
            yield item

    for _ in stages.timed(arriving(), 'load'):
        with stages.stage('network'):
            clock.now += 0.02
    assert stages.seconds == pytest.approx({'load': 1.0, 'network': 0.04})
    assert stages.line(2) == 'load 500.0 ms, network 20.0 ms per image'
