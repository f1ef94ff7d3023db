"""Frames from a video file (PyAV) or a folder of images, with their index and time.

PyAV (FFmpeg's libraries, wheels that bundle FFmpeg with its decoders) reads every container and codec
FFmpeg does, frame by frame in a few lines; it is actively maintained and decodes on the CPU at FFmpeg's
speed. A file FFmpeg cannot read, a stream whose codec it lacks, or one without any frame is a
:class:`VideoError` with one line naming the file (nothing was read). A source that stops giving frames part-way
(a frame that fails to decode or to read, a video that ends before the frames its container announces, a video
frame of another size than the first; the images of a folder may differ in size) is a :class:`FrameFailure`
naming the frame: the frames before it are good,
and the video command keeps their poses in a ``.partial`` file.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator

import PIL.Image

VIDEO_HINT = 'reading video files needs PyAV: pip install openfields[video]'
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


class VideoError(ValueError):
    """A source that gives no frames."""


class FrameFailure(RuntimeError):
    """A source that stopped giving frames part-way; the frames before the one named were good."""


@dataclasses.dataclass(frozen=True)
class Frame:
    index: int    # position in the source, from 0
    time: float   # seconds from the start
    image: PIL.Image.Image


@dataclasses.dataclass(frozen=True)
class Selection:
    """Frames ``start, start + stride, ...`` before ``end`` (None: to the last)."""
    start: int = 0
    end: int | None = None
    stride: int = 1

    def __post_init__(self):
        if self.start < 0 or self.stride < 1 or (self.end is not None and self.end <= self.start):
            raise ValueError(f'--start {self.start} --end {self.end} --stride {self.stride}: need '
                             '0 <= start < end and stride >= 1')

    def wants(self, index: int) -> bool:
        return index >= self.start and (index - self.start) % self.stride == 0

    def done(self, index: int) -> bool:
        return self.end is not None and index >= self.end

    def count(self, total: int | None) -> int | None:
        """How many frames of ``total`` are selected (None when the total is unknown)."""
        if total is None:
            return None
        stop = total if self.end is None else min(total, self.end)
        return max(0, (stop - self.start + self.stride - 1) // self.stride)


def require_av():
    try:
        import av  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise VideoError(VIDEO_HINT) from None
    return av


class VideoFile:
    """The first video stream of ``path``; ``fps``, ``size`` and ``n_frames`` (None when unknown) known
    once opened."""

    def __init__(self, path: pathlib.Path):
        av = require_av()
        self.path = path
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, UnicodeDecodeError) as error:
            raise VideoError(f'{path}: not a readable video ({first_line(error)})') from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f'{path}: has no video stream')
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = 'AUTO'  # FFmpeg's frame threads: decoding keeps up with the network
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 0) or None
        self.size = (self.stream.codec_context.width, self.stream.codec_context.height)
        self.n_frames = self.stream.frames or None
        # containers that keep no frame count (Matroska, WebM) keep the duration: the count it implies, give or
        # take a frame, still tells a truncated file; not with other streams (a longer sound track)
        self.n_frames_estimated = (self.n_frames is None and len(self.container.streams) == 1
                                   and bool(self.container.duration and self.fps))
        if self.n_frames_estimated:
            self.n_frames = round(self.container.duration / 1e6 * self.fps)

    def frames(self, selection: Selection) -> Iterator[Frame]:
        av = require_av()
        index, first_size = -1, None
        try:
            for index, frame in enumerate(self.container.decode(self.stream)):
                if selection.done(index):
                    return
                first_size = first_size or (frame.width, frame.height)
                if (frame.width, frame.height) != first_size:
                    raise FrameFailure(f'{self.path}: frame {index} is {frame.width}x{frame.height}, the frames '
                                       f'before it {first_size[0]}x{first_size[1]}')
                if selection.wants(index):
                    time = float(frame.time) if frame.time is not None else index / (self.fps or 1.0)
                    yield Frame(index, time, frame.to_image())
        except av.FFmpegError as error:
            if index < 0:
                raise VideoError(f'{self.path}: not a readable video ({first_line(error)})') from None
            raise FrameFailure(f'{self.path}: frame {index + 1} failed to decode ({first_line(error)})') from None
        finally:
            self.container.close()
        self._check_complete(index + 1, selection)

    def _check_complete(self, decoded: int, selection: Selection):
        if decoded == 0:
            raise VideoError(f'{self.path}: the video holds no frame (empty, truncated, or a codec this '
                             f'FFmpeg cannot decode: {self.stream.codec_context.name})')
        wanted = self.n_frames if selection.end is None else min(self.n_frames or 0, selection.end)
        if self.n_frames and decoded < wanted - self.n_frames_estimated:
            announced = (f'about {self.n_frames} frames its container\'s duration implies' if self.n_frames_estimated
                         else f'{self.n_frames} frames its container announces')
            raise FrameFailure(f'{self.path}: truncated: frame {decoded} and later of the {announced} could not be '
                               'decoded')


class FrameFolder:
    """The images of a folder in name order, at ``fps`` frames per second."""

    def __init__(self, path: pathlib.Path, fps: float):
        self.path, self.fps = path, fps
        self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise VideoError(f'{path}: folder holds no frame ({", ".join(IMAGE_EXTENSIONS)})')
        try:
            with PIL.Image.open(self.files[0]) as first:
                self.size = first.size
        except (OSError, PIL.UnidentifiedImageError) as error:
            raise VideoError(f'{self.files[0]}: not a readable image ({first_line(error)})') from None
        self.n_frames = len(self.files)

    def frames(self, selection: Selection) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            if selection.done(index):
                return
            if selection.wants(index):
                try:
                    with PIL.Image.open(file) as image:
                        rgb = image.convert('RGB')
                except (OSError, PIL.UnidentifiedImageError) as error:
                    raise FrameFailure(f'{file}: frame {index} is not a readable image ({first_line(error)})') from None
                yield Frame(index, index / self.fps, rgb)


def open_source(source: str, fps: float | None = None) -> VideoFile | FrameFolder:
    path = pathlib.Path(source)
    if path.is_dir():
        return FrameFolder(path, fps or 30.0)
    if not path.is_file():
        raise VideoError(f'{source}: file not found')
    return VideoFile(path)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
