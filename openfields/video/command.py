"""Poses on every frame of a video file or a folder of frames: ``python -m openfields.video SOURCE``.

One JSON line per frame (``{"frame": index, "time": seconds, "annotations": [...]}``, annotations as
predict writes them, in the frame's pixels) to ``--json-output`` (default ``SOURCE.predictions.jsonl``);
optionally the drawn video (``--video-output``) and DeepLabCut's table (``--dlc-table x.csv|x.h5``).
Frames run through the network ``--batch-size`` at a time, read ahead in a thread and, bottom-up, decoded
while the network runs the next batch (:mod:`.pipelined`); ``--start``/``--end``/``--stride`` pick frame
indices. The model is a checkpoint, an ONNX or a TorchScript file, or a named model, bottom-up or top-down
(:func:`openfields.inference.pipeline.open_model`): each frame gets exactly the poses ``predict`` gives
the same image.

Every output is written under a temporary name and renamed when the last frame is done: a run that fails
or is interrupted part-way leaves no file that looks complete. A source that stops giving frames part-way
(:class:`~.frames.FrameFailure`, or a frame the exported model refuses) ends the run with exit code 1 and one
line naming the frame; the JSON lines of the frames before it are kept as ``<json-output>.partial``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import pathlib
import time

from .. import cli_setup, config, outputs, plugin
from ..decoder import factory as decoder_factory
from ..export.metadata import ExportedModelError
from ..inference import pipeline as inference_pipeline
from ..network import checkpoint, cpu_threads, precision as network_precision
from ..deeplabcut import prediction_table as dlc_table
from ..show.painters import draw_annotations
from ..version import version
from . import box_tracking, frames as frames_module, pipelined
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
                   help='multi-animal table with the N best poses per frame (default: single-animal, the best; '
                        'with --dlc-project of a multi-animal project: its individuals)')
    p.add_argument('--dlc-project', default=None, metavar='PATH',
                   help='DeepLabCut project folder (holding config.yaml): the table takes its body parts (the '
                        'model must have them) and individuals')
    p.add_argument('--start', type=int, default=0, help='first frame index')
    p.add_argument('--end', type=int, default=None, help='stop before this frame index')
    p.add_argument('--stride', type=int, default=1, help='every n-th frame from --start')
    p.add_argument('--fps', type=float, default=None, help='frame rate of a folder of frames (default 30)')
    p.add_argument('--long-edge', type=int, default=None, help='rescale frames to this long edge (default: keep)')
    p.add_argument('--batch-size', type=int, default=4, help='frames per network call')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N, mps (ONNX: always the CPU)')
    network_precision.cli(p)
    p.add_argument('--detect-every', type=int, default=1, metavar='N',
                   help='top-down models: the detector on every N-th frame only, boxes around the previous '
                        'frame\'s poses in between (as pose trackers do; openfields/video/box_tracking.py)')
    p.add_argument('--tracked-box-scale', type=float, default=None, metavar='S',
                   help='with --detect-every: the box around a pose\'s keypoints grown S times for the next '
                        f'frame (default {box_tracking.DEFAULT_BOX_SCALE})')
    p.add_argument('-q', '--quiet', action='store_true')
    decoder_factory.cli(p)
    inference_pipeline.cli(p)
    return p


@dataclasses.dataclass(frozen=True)
class VideoOutputs:
    """What a video run writes, checked before the model or the video is opened: the JSON lines, the drawn
    video, DeepLabCut's table (of ``dlc_project``'s body parts and individuals, or ``dlc_individuals`` N)."""

    json_lines: pathlib.Path
    drawn_video: pathlib.Path | None = None
    dlc_table: pathlib.Path | None = None
    dlc_project: str | None = None
    dlc_individuals: int | None = None

    def __post_init__(self):
        if self.dlc_individuals is not None and self.dlc_individuals < 1:
            raise ValueError(f'--dlc-individuals must be >= 1, got {self.dlc_individuals}')
        if self.dlc_project is not None and self.dlc_table is None:
            raise ValueError('--dlc-project is for --dlc-table (the table\'s body parts and individuals)')
        outputs.check_output_path(self.json_lines, '--json-output')
        outputs.check_output_path(self.drawn_video, '--video-output')
        outputs.check_output_path(self.dlc_table, '--dlc-table')
        if self.dlc_table is not None and self.dlc_table.suffix == '.h5':
            dlc_table.require_pandas()

    @classmethod
    def from_args(cls, args) -> 'VideoOutputs':
        path = lambda value: None if value is None else pathlib.Path(value)  # noqa: E731
        return cls(json_lines=pathlib.Path(args.json_output or f'{str(args.source).rstrip("/")}.predictions.jsonl'),
                   drawn_video=path(args.video_output), dlc_table=path(args.dlc_table), dlc_project=args.dlc_project,
                   dlc_individuals=args.dlc_individuals)


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
    """Lists of ``size`` items (the last may be shorter); an error of ``iterable`` comes after the items
    before it, as a shorter batch."""
    iterator = iter(iterable)
    while True:
        batch = []
        try:
            for item in iterator:
                batch.append(item)
                if len(batch) == size:
                    break
        except Exception:
            if batch:
                yield batch
            raise
        if not batch:
            return
        yield batch


def run(args) -> int:
    """Predict every selected frame; returns how many."""
    if args.batch_size < 1:
        raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}')
    written = VideoOutputs.from_args(args)
    selection = frames_module.Selection(args.start, args.end, args.stride)
    source = frames_module.open_source(args.source, args.fps)
    model = with_box_tracking(inference_pipeline.open_model(
        args.checkpoint, inference_pipeline.PipelineSettings.from_args(args, pad='tight')), args)
    LOG.info('%s', model.describe())
    cpu_threads.log_choice()
    return predict_frames(model, source, selection, args.batch_size, written, TableLayout.of(written, model))


def with_box_tracking(model, args):
    """``model``, or with ``--detect-every`` > 1 the top-down model with its detector on every n-th frame."""
    if args.detect_every < 1:
        raise ValueError(f'--detect-every must be >= 1, got {args.detect_every}')
    if args.detect_every == 1 and args.tracked_box_scale is None:
        return model
    if not isinstance(model, inference_pipeline.TopDown):
        flag = '--detect-every' if args.detect_every != 1 else '--tracked-box-scale'
        raise ValueError(f'{flag} is for top-down models; {args.checkpoint} is bottom-up (no detector)')
    if args.detect_every == 1:
        raise ValueError('--tracked-box-scale is for --detect-every N > 1 (with 1 every frame has the detector\'s '
                         'boxes)')
    return box_tracking.DetectEvery(model, args.detect_every,
                                    args.tracked_box_scale or box_tracking.DEFAULT_BOX_SCALE)


def predict_frames(model, source, selection: frames_module.Selection, batch_size: int, written: VideoOutputs,
                   table: 'TableLayout | None') -> int:
    """The selected frames of ``source`` through ``model``, ``batch_size`` at a time, into ``written``;
    returns how many frames were done."""
    progress = Progress(selection.count(source.n_frames))
    table_poses, table_index = [], []
    try:
        with outputs.atomic_write(written.json_lines, partial_on=(frames_module.FrameFailure,)) as lines, \
                drawn_video(written.drawn_video, (source.fps or 30.0) / selection.stride) as drawn:
            prepared = pipelined.prefetched(source.frames(selection), lambda frame: model.prepare(frame.image, {}),
                                            depth=2 * batch_size)
            try:
                for batch, batch_poses in pipelined.predicted(model, batches(prepared, batch_size)):
                    for (frame, _), poses in zip(batch, batch_poses):
                        lines.write(frame_line(frame, poses))
                        if drawn is not None:
                            drawn.add(draw_annotations(frame.image, poses))
                        if table is not None:
                            table_poses.append(poses)
                            table_index.append(str(frame.index))
                    progress.update(len(batch))
            except ExportedModelError as error:  # the model refused a frame it was given (its input size rules)
                raise frames_module.FrameFailure(
                    f'frame {selection.start + progress.done * selection.stride}: {error}') from None
    except frames_module.FrameFailure as failure:
        raise frames_module.FrameFailure(f'{failure}; the poses of the {progress.done} frames before it are in '
                                         f'{outputs.partial_path(written.json_lines)}') from None
    if table is not None:
        table.write(written.dlc_table, table_poses, table_index)
    LOG.info('%s; %s%s', progress.line(time.perf_counter()), ', '.join(
        f'{stage} {1000 * seconds / max(progress.done, 1):.1f} ms' for stage, seconds in model.seconds.items()),
        f'; the detector ran on {model.n_detected} of them' if isinstance(model, box_tracking.DetectEvery) else '')
    return progress.done


@dataclasses.dataclass(frozen=True)
class TableLayout:
    """DeepLabCut's table of a video: the model's body parts (with ``--dlc-project``: the project's, which
    the model must have, in its order) and the individuals (the project's, or ``--dlc-individuals`` N)."""

    bodyparts: tuple[str, ...]
    scorer: str
    n_individuals: int | None
    individual_names: tuple[str, ...] | None

    @classmethod
    def of(cls, written: VideoOutputs, model) -> 'TableLayout | None':
        """None without ``--dlc-table``; checked before any frame is read or file written."""
        if written.dlc_table is None:
            return None
        keypoints = tuple(model.head_metas[0].keypoints)
        scorer = f'openfields_{model.source.name.split(".")[0]}'
        if written.dlc_project is None:
            return cls(keypoints, scorer, written.dlc_individuals, None)
        from openfields.plugins.dlc import project  # pylint: disable=import-outside-toplevel
        config = project.load_config(project.project_root(written.dlc_project))
        if keypoints != tuple(config.bodyparts):
            raise ValueError(f'--checkpoint {model.source}: its keypoints {list(keypoints)} are not the body parts of '
                             f'--dlc-project {config.root} ({list(config.bodyparts)})')
        if config.multi_animal and written.dlc_individuals is None:
            return cls(keypoints, scorer, None, tuple(config.individuals))
        return cls(keypoints, scorer, written.dlc_individuals, None)

    def write(self, path, poses: list[list], index: list[str]) -> None:
        table = dlc_table.from_poses(poses, list(self.bodyparts), self.scorer, index, self.n_individuals,
                                     individual_names=list(self.individual_names) if self.individual_names else None)
        dlc_table.write(path, table)
        LOG.info('wrote %s', path)


def main(argv=None):
    def video(args):
        run(args)  # the number of frames done

    cli_setup.run_cli('openfields.video', parser(), video, (ValueError, checkpoint.CheckpointError, ExportedModelError),
                      argv=argv, interrupted='no output written',
                      failures=[cli_setup.Failure((frames_module.FrameFailure,), status=1)])
