"""Poses on every frame of a video file or a folder of frames: ``python -m openfields.video SOURCE``.

One JSON line per frame (``{"frame": index, "time": seconds, "annotations": [...]}``, annotations as
predict writes them, in the frame's pixels) to ``--json-output`` (default ``SOURCE.predictions.jsonl``);
optionally the drawn video (``--video-output``) and DeepLabCut's table (``--dlc-table x.csv|x.h5``).
Frames run through the network ``--batch-size`` at a time; ``--start``/``--end``/``--stride`` pick frame
indices. The model is a checkpoint, an ONNX or a TorchScript file, or a named model.

Every output is written under a temporary name and renamed when the last frame is done: a run that fails
or is interrupted part-way leaves no file that looks complete.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import pathlib
import time

import torch

from .. import cli_setup, config, outputs, plugin, transforms
from ..decoder import factory as decoder_factory
from ..export.metadata import ExportedModelError
from ..inference import runners
from ..inference.predictor import Predictor
from ..network import checkpoint
from ..network.device import resolve_device
from ..predictions import dlc_table
from ..show.painters import draw_annotations
from ..version import version
from . import frames as frames_module
from .writers import DrawnVideo

LOG = logging.getLogger('openfields.video')
PROGRESS_SECONDS = 5.0


def parser() -> argparse.ArgumentParser:
    plugin.register_all()
    p = config.ArgumentParser(prog='python -m openfields.video', description=__doc__.splitlines()[0])
    p.add_argument('--version', action='version', version=f'openfields {version()}')
    p.add_argument('source', help='a video file (anything FFmpeg reads) or a folder of frames (name order)')
    p.add_argument('--checkpoint', required=True,
                   help='checkpoint, .onnx or TorchScript file, or the name of a model in the model folder')
    p.add_argument('--dataset', default=None, help='decode only the heads trained on this dataset')
    p.add_argument('--json-output', default=None, metavar='PATH',
                   help='JSON lines, one per frame (default: SOURCE.predictions.jsonl)')
    p.add_argument('--video-output', default=None, metavar='PATH', help='the video with the poses drawn '
                   '(.mp4, .mkv, .mov: H.264; .avi: MPEG-4)')
    p.add_argument('--dlc-table', default=None, metavar='PATH',
                   help="DeepLabCut's prediction table: .csv, or .h5 (needs pandas and PyTables)")
    p.add_argument('--dlc-individuals', type=int, default=None, metavar='N',
                   help='multi-animal table with the N best poses per frame (default: single-animal, the best)')
    p.add_argument('--start', type=int, default=0, help='first frame index')
    p.add_argument('--end', type=int, default=None, help='stop before this frame index')
    p.add_argument('--stride', type=int, default=1, help='every n-th frame from --start')
    p.add_argument('--fps', type=float, default=None, help='frame rate of a folder of frames (default 30)')
    p.add_argument('--long-edge', type=int, default=None, help='rescale frames to this long edge (default: keep)')
    p.add_argument('--batch-size', type=int, default=4, help='frames per network call')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N, mps (ONNX: always the CPU)')
    p.add_argument('-q', '--quiet', action='store_true')
    decoder_factory.cli(p)
    return p


def json_output_path(args) -> pathlib.Path:
    return pathlib.Path(args.json_output or f'{str(args.source).rstrip("/")}.predictions.jsonl')


def check_args(args) -> None:
    """Flags and output paths, before the model or the video is opened."""
    if args.batch_size < 1:
        raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.dlc_individuals is not None and args.dlc_individuals < 1:
        raise ValueError(f'--dlc-individuals must be >= 1, got {args.dlc_individuals}')
    outputs.check_output_path(json_output_path(args), '--json-output')
    outputs.check_output_path(args.video_output, '--video-output')
    outputs.check_output_path(args.dlc_table, '--dlc-table')
    if args.dlc_table and pathlib.Path(args.dlc_table).suffix == '.h5':
        dlc_table.require_pandas()


class Progress:
    """Logs frames done, frames/s and the time left every ``PROGRESS_SECONDS``."""

    def __init__(self, total: int | None):
        self.total, self.done = total, 0
        self.start = self.last = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            LOG.info('%s', self.line(now))

    def line(self, now: float) -> str:
        rate = self.done / max(now - self.start, 1e-9)
        if not self.total:
            return f'{self.done} frames, {rate:.1f} frames/s'
        left = max(self.total - self.done, 0) / max(rate, 1e-9)
        return (f'{self.done}/{self.total} frames ({100 * self.done / self.total:.0f}%), {rate:.1f} frames/s, '
                f'ETA {int(left // 60)}:{int(left % 60):02d}')


def predict_batch(predictor: Predictor, preprocess, batch: list[frames_module.Frame]) -> list[list]:
    """The poses of each frame of ``batch``, in the frame's pixels."""
    samples = [preprocess(frame.image, [], {'dataset_index': frame.index}) for frame in batch]
    images = torch.stack([image for image, _, _ in samples])
    return [predictor.poses(fields, meta) for (_, _, meta), fields in zip(samples, predictor.fields(images))]


def frame_line(frame: frames_module.Frame, poses: list) -> str:
    return json.dumps({'frame': frame.index, 'time': round(frame.time, 6),
                       'annotations': [a.json_data() for a in poses]}) + '\n'


@contextlib.contextmanager
def drawn_video(path: str | None, fps: float):
    """The drawn-video writer (None without ``--video-output``): renamed into place on success only."""
    if path is None:
        yield None
        return
    writer = DrawnVideo(pathlib.Path(path), fps)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.close()


def batches(iterable, size: int):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def run(args) -> int:
    """Predict every selected frame; returns how many."""
    check_args(args)
    selection = frames_module.Selection(args.start, args.end, args.stride)
    source = frames_module.open_source(args.source, args.fps)
    runner = runners.load(args.checkpoint, resolve_device(args.device))
    predictor = Predictor(runner, decoder_factory.DecoderSettings.from_args(args), args.dataset, args.decoder)
    LOG.info('%s: decoding with %s', runner.source, ', '.join(predictor.decode.names))
    preprocess = transforms.eval_pipeline(args.long_edge, pad='tight', multiple=16)
    progress = Progress(selection.count(source.n_frames))
    table_poses, table_index = [], []
    with outputs.atomic_write(json_output_path(args)) as lines, \
            drawn_video(args.video_output, (source.fps or 30.0) / args.stride) as drawn:
        for batch in batches(source.frames(selection), args.batch_size):
            for frame, poses in zip(batch, predict_batch(predictor, preprocess, batch)):
                lines.write(frame_line(frame, poses))
                if drawn is not None:
                    drawn.add(draw_annotations(frame.image, poses))
                if args.dlc_table:
                    table_poses.append(poses)
                    table_index.append(str(frame.index))
            progress.update(len(batch))
    if args.dlc_table:
        write_table(args, predictor, runner, table_poses, table_index)
    LOG.info('%s', progress.line(time.perf_counter()))
    return progress.done


def write_table(args, predictor: Predictor, runner, poses, index) -> None:
    bodyparts = list(predictor.head_metas[0].keypoints)
    table = dlc_table.from_poses(poses, bodyparts, f'openfields_{runner.source.stem}', index,
                                 args.dlc_individuals)
    dlc_table.write(args.dlc_table, table)
    LOG.info('wrote %s', args.dlc_table)


def main(argv=None):
    def video(args):
        run(args)  # the number of frames done

    cli_setup.run_cli('openfields.video', parser(), video, (ValueError, checkpoint.CheckpointError, ExportedModelError),
                      argv=argv, interrupted='no output written')
