"""The video's three stages overlapped: frames are read and prepared in a thread ahead of the network, and a
bottom-up model's decoder works on batch ``i`` while the network runs batch ``i + 1``.

Why threads suffice: FFmpeg decodes, PIL resizes, torch convolves and numpy/numba decode with Python's lock
released for most of their time. Results come out in frame order; an error of any stage is raised in the
caller's thread at its place in the stream (the frames before it are done), and an early exit stops the
reader.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from typing import Callable, Iterable, Iterator

from ..inference import pipeline as inference_pipeline

DONE = object()
POLL_SECONDS = 0.1


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetched(items: Iterable, prepare: Callable, depth: int) -> Iterator[tuple]:
    """``(item, prepare(item))`` of ``items`` in order, at most ``depth`` ahead, computed in a reader thread."""
    ready: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put((item, prepare(item))):
                    return
            put(DONE)
        except BaseException as error:  # pylint: disable=broad-except  # raised in the caller's thread
            put(_Failed(error))

    reader = threading.Thread(target=read, name='openfields-video-reader', daemon=True)
    reader.start()
    try:
        while True:
            value = ready.get()
            if value is DONE:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield value
    finally:
        stop.set()
        reader.join()


def predicted(model: inference_pipeline.Pipeline, batches: Iterable[list[tuple]]) -> Iterator[tuple[list, list]]:
    """``(batch, poses per item)`` for batches of ``(frame, sample)``, in order. Bottom-up: the network of the
    next batch runs while a thread decodes this one. Top-down models run their stages per frame (detector,
    crops, network, decoder) in this thread."""
    if not isinstance(model, inference_pipeline.BottomUp):
        for batch in batches:
            yield batch, model.poses([sample for _, sample in batch])
        return
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='openfields-video-decoder') as decoder:
        pending = None
        try:
            for batch in batches:
                samples = [sample for _, sample in batch]
                fields = model.network_fields(samples)
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = batch, decoder.submit(model.decoded, samples, fields)
        except Exception:  # a failed read or network call: the batch decoded meanwhile comes first
            if pending is not None:
                yield pending[0], pending[1].result()
            raise
        if pending is not None:
            yield pending[0], pending[1].result()
