"""The video's overlapped stages (:mod:`openfields.video.pipelined`): order, errors at their place in the stream,
no reader left behind."""

import threading
import time

import pytest

from openfields.video import pipelined


def reader_threads():
    return [t for t in threading.enumerate() if t.name == 'openfields-video-reader']


def test_items_come_in_order_with_what_the_reader_prepared():
    def slow_square(x):
        time.sleep(0.001 * (x % 3))  # uneven preparation times
        return x * x
    assert list(pipelined.prefetched(range(50), slow_square, depth=4)) == [(x, x * x) for x in range(50)]
    assert not reader_threads()


def test_a_reader_error_is_raised_after_the_items_before_it():
    def frames():
        yield from range(5)
        raise ValueError('decoding failed after frame 4')

    seen = []
    with pytest.raises(ValueError, match='after frame 4'):
        for item, _ in pipelined.prefetched(frames(), lambda x: x, depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4] and not reader_threads()


def test_leaving_early_stops_the_reader_though_its_queue_is_full():
    read = []

    def frames():
        for i in range(10_000):
            read.append(i)
            yield i

    stream = pipelined.prefetched(frames(), lambda x: x, depth=3)
    assert next(stream) == (0, 0)
    time.sleep(0.2)  # the reader fills its queue and waits
    stream.close()
    assert not reader_threads() and len(read) < 10


class Decoding:
    """A stand-in for a bottom-up model's two stages (its class is checked: a subclass of BottomUp)."""

    def __init__(self):
        self.network_calls = []

    def network_fields(self, samples):
        self.network_calls.append(list(samples))
        return [s * 10 for s in samples]

    def decoded(self, samples, fields):
        time.sleep(0.01)
        return [[f + 1] for f in fields]


def test_bottom_up_batches_are_decoded_beside_the_next_network_call_in_order(monkeypatch):
    monkeypatch.setattr(pipelined.inference_pipeline, 'BottomUp', Decoding)
    model = Decoding()
    batches = [[(f'frame{i}', i), (f'frame{i + 1}', i + 1)] for i in range(0, 8, 2)]
    out = list(pipelined.predicted(model, batches))
    assert [batch for batch, _ in out] == batches
    assert [poses for _, poses in out] == [[[10 * i + 1], [10 * (i + 1) + 1]] for i in range(0, 8, 2)]
    assert model.network_calls == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_a_failed_read_comes_after_the_batch_decoded_meanwhile_and_the_frames_read_before_it(monkeypatch):
    from openfields.video import command
    monkeypatch.setattr(pipelined.inference_pipeline, 'BottomUp', Decoding)

    def frames():
        for i in range(5):
            yield f'frame{i}', i
        raise OSError('frame 5 failed')
    out = []
    with pytest.raises(OSError, match='frame 5 failed'):
        for batch, poses in pipelined.predicted(Decoding(), command.batches(frames(), 2)):
            out.append((batch, poses))
    # batches [0, 1], [2, 3], then the shorter [4]: every frame before the failure got its poses, in order
    assert [[i for _, i in batch] for batch, _ in out] == [[0, 1], [2, 3], [4]]
    assert [poses for _, poses in out][-1] == [[41]]
