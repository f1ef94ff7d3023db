"""``python -m openfields.video``: one JSON line per frame with predict's poses, frame selection, outputs
written only on completion, bad sources as one line."""

import json
import subprocess
import sys

import av
import numpy as np
import PIL.Image
import pytest

from openfields import predict
from openfields.deeplabcut import prediction_table as dlc_table
from openfields.video import command

N_FRAMES, SIZE, FPS = 6, (96, 72), 10
LOW_THRESHOLDS = ['--seed-threshold', '0.1', '--instance-threshold', '0']  # a random network's poses


def synthetic_frames(n=N_FRAMES):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8) for _ in range(n)]


def write_video(path, frames, codec='ffv1'):
    """Lossless FFV1 in Matroska by default: the decoded frames are the frames, bit for bit."""
    with av.open(str(path), 'w') as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = 'bgr0' if codec == 'ffv1' else 'yuv420p'
        container.start_encoding()  # the header, even without frames
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format='rgb24')))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp('clip')
    frames = synthetic_frames()
    for i, pixels in enumerate(frames):
        PIL.Image.fromarray(pixels).save(folder / f'{i:03d}.png')
    return write_video(folder.parent / 'clip.mkv', frames), folder


def run_video(*argv):
    return command.run(command.parser().parse_args([*map(str, argv), '-q', *LOW_THRESHOLDS]))


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_line_per_frame_with_the_poses_predict_finds_on_the_frames(clip, tiny_checkpoint, tmp_path):
    video, frames = clip
    out = tmp_path / 'poses.jsonl'
    assert run_video(video, '--checkpoint', tiny_checkpoint, '--json-output', out, '--batch-size', 4) == N_FRAMES
    got = lines(out)
    assert [(g['frame'], g['time']) for g in got] == [(i, i / FPS) for i in range(N_FRAMES)]
    assert predict.run(predict.parser().parse_args(
        [str(frames), '--checkpoint', str(tiny_checkpoint), '--json-output', str(tmp_path / 'images'), '-q',
         *LOW_THRESHOLDS])) == 0
    for i, g in enumerate(got):
        expected = json.loads((tmp_path / 'images' / f'{i:03d}.png.predictions.json').read_text())
        assert g['annotations'] == expected and len(expected) > 0


def test_start_end_stride_pick_frames_of_a_folder_and_an_onnx_model_runs_it(clip, tiny_onnx, tmp_path):
    _, frames = clip
    out = tmp_path / 'poses.jsonl'
    assert run_video(frames, '--checkpoint', tiny_onnx, '--json-output', out, '--start', 1, '--end', 6,
                     '--stride', 2, '--fps', 5) == 3
    assert [(g['frame'], g['time']) for g in lines(out)] == [(1, 0.2), (3, 0.6), (5, 1.0)]


def test_drawn_video_and_dlc_table_have_one_frame_and_one_row_per_frame(clip, tiny_checkpoint, tmp_path):
    video, _ = clip
    drawn, table = tmp_path / 'drawn.mp4', tmp_path / 'table.csv'
    run_video(video, '--checkpoint', tiny_checkpoint, '--json-output', tmp_path / 'p.jsonl',
              '--video-output', drawn, '--dlc-table', table, '--dlc-individuals', 2)
    with av.open(str(drawn)) as container:
        assert sum(1 for _ in container.decode(video=0)) == N_FRAMES
    read = dlc_table.read_csv(table)
    assert read.index == [str(i) for i in range(N_FRAMES)] and read.individuals == ['individual1', 'individual2']
    assert read.values.shape == (N_FRAMES, 2, 17, 3) and read.bodyparts[0] == 'nose'
    best = max(lines(tmp_path / 'p.jsonl')[0]['annotations'], key=lambda a: a['score'])
    found = np.array(best['keypoints']).reshape(17, 3)
    visible = found[:, 2] > 0
    assert np.abs(read.values[0, 0, visible, :2] - found[visible, :2]).max() <= 0.006  # json rounds to 0.01


@pytest.mark.parametrize('content, message', [
    (b'', 'not a readable video'),
    (b'this is a text file, not a video\n' * 50, 'not a readable video'),
])
def test_a_file_that_is_not_a_video_is_one_line_exit_2_and_no_output(content, message, tiny_checkpoint, tmp_path,
                                                                      capsys):
    (tmp_path / 'in.mp4').write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        command.main([str(tmp_path / 'in.mp4'), '--checkpoint', str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count('\n') == 1 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.mp4']


def test_a_truncated_video_keeps_the_frames_before_as_partial_and_says_which_frame_failed(tiny_checkpoint, tmp_path):
    full = write_video(tmp_path / 'full.mkv', synthetic_frames(30), codec='mpeg4')  # Matroska: header first
    data = full.read_bytes()
    (tmp_path / 'cut.mkv').write_bytes(data[:len(data) // 2])
    out = tmp_path / 'out'
    result = subprocess.run([sys.executable, '-m', 'openfields.video', str(tmp_path / 'cut.mkv'), '--checkpoint',
                             str(tiny_checkpoint), '--json-output', str(out / 'p.jsonl'),
                             '--video-output', str(out / 'drawn.mp4')], capture_output=True, text=True)
    last = result.stderr.splitlines()[-1]
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'cut.mkv' in last and 'truncated: frame ' in last and 'of the about 30 frames' in last
    kept = [json.loads(line)['frame'] for line in (out / 'p.jsonl.partial').read_text().splitlines()]
    assert 0 < len(kept) < 30 and kept == list(range(len(kept)))
    assert f'the poses of the {len(kept)} frames before it are in {out / "p.jsonl.partial"}' in last
    assert sorted(p.name for p in out.iterdir()) == ['p.jsonl.partial']  # no drawn video, nothing complete-looking


def transport_stream(path, size, n):
    """An MPEG-TS file of ``n`` grey frames; two such files, byte after byte, are one stream that changes size."""
    with av.open(str(path), 'w', format='mpegts') as container:
        stream = container.add_stream('mpeg2video', rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = 'yuv420p'
        for i in range(n):
            pixels = np.full((size[1], size[0], 3), 20 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format='rgb24')))
        container.mux(stream.encode())
    return path.read_bytes()


def test_a_video_whose_frames_change_size_ends_the_run_naming_the_frame(tiny_checkpoint, tmp_path, capsys):
    joined = transport_stream(tmp_path / 'a.ts', SIZE, 4) + transport_stream(tmp_path / 'b.ts', (128, 96), 4)
    (tmp_path / 'joined.ts').write_bytes(joined)
    out = tmp_path / 'out' / 'p.jsonl'
    with pytest.raises(SystemExit) as exit_info:
        command.main([str(tmp_path / 'joined.ts'), '--checkpoint', str(tiny_checkpoint), '--json-output', str(out),
                      '--batch-size', '2', *LOW_THRESHOLDS])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count('\n') == 1
    assert f'joined.ts: frame 3 is 128x96, the frames before it {SIZE[0]}x{SIZE[1]}' in err
    kept = out.with_name('p.jsonl.partial').read_text().splitlines()
    assert [json.loads(line)['frame'] for line in kept] == [0, 1, 2] and not out.exists()


def test_an_unreadable_image_mid_folder_ends_the_run_naming_it_and_images_may_differ_in_size(clip, tiny_checkpoint,
                                                                                           tmp_path, capsys):
    _, folder = clip
    frames = tmp_path / 'frames'
    frames.mkdir()
    for i, file in enumerate(sorted(folder.glob('*.png'))[:3]):
        (frames / f'{i:03d}.png').write_bytes(file.read_bytes())
    (frames / '003.png').write_bytes(b'not an image')
    out = tmp_path / 'p.jsonl'
    with pytest.raises(SystemExit) as exit_info:
        command.main([str(frames), '--checkpoint', str(tiny_checkpoint), '--json-output', str(out), '--batch-size',
                      '2', *LOW_THRESHOLDS])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count('\n') == 1 and '003.png: frame 3 is not a readable image' in err
    kept = out.with_name('p.jsonl.partial').read_text().splitlines()
    assert [json.loads(line)['frame'] for line in kept] == [0, 1, 2] and not out.exists()
    PIL.Image.new('RGB', (SIZE[0] + 2, SIZE[1])).save(frames / '003.png')  # a folder's images: any sizes
    run_video(frames, '--checkpoint', tiny_checkpoint, '--json-output', out)
    assert len(lines(out)) == 4 and not out.with_name('p.jsonl.partial').exists()  # a stale partial goes


def test_a_video_or_a_folder_without_frames_is_an_error_naming_it(tiny_checkpoint, tmp_path):
    empty = write_video(tmp_path / 'empty.mkv', [])
    with pytest.raises(ValueError, match='empty.mkv: not a readable video .*End of file'):
        run_video(empty, '--checkpoint', tiny_checkpoint, '--json-output', tmp_path / 'p.jsonl')
    (tmp_path / 'frames').mkdir()
    with pytest.raises(ValueError, match='frames: folder holds no frame'):
        run_video(tmp_path / 'frames', '--checkpoint', tiny_checkpoint, '--json-output', tmp_path / 'p.jsonl')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['empty.mkv', 'frames']


@pytest.mark.parametrize('flags, message', [
    (['--detect-every', '2'], '--detect-every is for top-down models; '),
    (['--tracked-box-scale', '1.5'], '--tracked-box-scale is for top-down models; '),
    (['--detect-every', '0'], '--detect-every must be >= 1, got 0'),
])
def test_box_tracking_flags_on_a_bottom_up_model_are_one_line_exit_2(flags, message, clip, tiny_checkpoint, tmp_path,
                                                                      capsys):
    with pytest.raises(SystemExit) as exit_info:
        command.main([str(clip[0]), '--checkpoint', str(tiny_checkpoint), '--json-output', str(tmp_path / 'v.jsonl'),
                      *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count('\n') == 1 and message in err
    assert not list(tmp_path.iterdir())
