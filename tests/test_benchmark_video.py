"""``python -m tools.benchmark_video``: the videos it makes are what openfields.video reads, and the command's
last line is found in its output."""

import subprocess

import pytest

from openfields.video import frames as frames_module
from tools import benchmark_video

pytest.importorskip('av')


def test_the_people_video_holds_its_frames_at_640x480(tmp_path):
    path = tmp_path / 'people.mp4'
    assert benchmark_video.write_video(path, benchmark_video.people_frames(3)) == 3
    source = frames_module.open_source(str(path))
    assert source.size == (640, 480) and source.fps == benchmark_video.FPS
    read = list(source.frames(frames_module.Selection(0, None, 1)))
    assert [frame.index for frame in read] == [0, 1, 2] and read[0].image.size == (640, 480)


def test_the_stage_line_is_the_last_frames_per_second_line():
    done = subprocess.CompletedProcess([], 0, stdout='', stderr=(
        '12:00:00 INFO openfields.video: 8/16 frames (50%), 2.0 frames/s, ETA 0:04\n'
        '12:00:04 INFO openfields.video: 16/16 frames (100%), 2.1 frames/s, ETA 0:00; network 400.0 ms, '
        'decoder 3.0 ms\n'))
    assert benchmark_video.stage_line(done) == '16/16 frames (100%), 2.1 frames/s, ETA 0:00; network 400.0 ms, ' \
                                               'decoder 3.0 ms'


def test_the_race_alone_needs_deeplabcut_s_python(capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_video.main(['--race-only'])
    assert exit_info.value.code == 2 and '--race-only needs --dlc-python' in capsys.readouterr().err
