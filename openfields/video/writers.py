"""The drawn video: frames with their poses, encoded by PyAV into a temporary file that is renamed
over the output only when the run completes."""

from __future__ import annotations

import contextlib
import pathlib

import PIL.Image

from .. import outputs
from .frames import require_av

# container format by suffix; H.264 where the container takes it, else MPEG-4 part 2
CODECS = {'.mp4': 'libx264', '.mkv': 'libx264', '.mov': 'libx264', '.avi': 'mpeg4'}


class DrawnVideo:
    """``add(image)`` per frame; :meth:`close` finishes and renames, :meth:`abort` removes the file."""

    def __init__(self, path: pathlib.Path, fps: float):
        av = require_av()
        if path.suffix.lower() not in CODECS:
            raise ValueError(f'--video-output {path}: suffix must be one of {", ".join(CODECS)}')
        self.path, self.tmp = path, outputs.temp_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.tmp), mode='w', format=path.suffix[1:].replace('mkv', 'matroska'))
        self.fps = max(1, round(fps))
        self.stream = None

    def add(self, image: PIL.Image.Image) -> None:
        av = require_av()
        if self.stream is None:
            self.stream = self.container.add_stream(CODECS[self.path.suffix.lower()], rate=self.fps)
            # yuv420p wants even sizes: the encoder gets frames cropped by at most one pixel
            self.stream.width, self.stream.height = image.width // 2 * 2, image.height // 2 * 2
            self.stream.pix_fmt = 'yuv420p'
        image = image.crop((0, 0, self.stream.width, self.stream.height))
        for packet in self.stream.encode(av.VideoFrame.from_image(image)):
            self.container.mux(packet)

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        self.tmp.unlink(missing_ok=True)
