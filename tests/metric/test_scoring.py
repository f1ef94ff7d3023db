"""The scoring core shared by openfields.eval and --eval-interval: fields -> decoder -> original image -> metrics."""

import math

import numpy as np
import torch

from openfields.decoder.annotation import AnnotationDet
from openfields.metric import scoring


class Recording:
    """A metric that keeps what it was given."""

    names = ('boxes',)

    def __init__(self):
        self.seen = []

    def accumulate(self, predictions, meta):
        self.seen.append((meta['image_id'], [p.bbox.tolist() for p in predictions]))

    def stats(self):
        return {'boxes': len(self.seen), 'other': 'text'}


def meta(image_id: int, scale: float) -> dict:
    """An image shrunk by ``scale``, no offset, rotation or flip."""
    return {'image_id': image_id, 'scale': np.array([scale, scale]), 'offset': np.zeros(2), 'hflip': False,
            'width_height': np.array([100.0, 100.0]), 'rotation': {'angle': 0.0, 'width': 50.0, 'height': 50.0}}


def test_predictions_reach_every_metric_in_original_image_coordinates():
    loader = [(torch.zeros(2, 3, 8, 8), [[], []], [meta(1, 0.5), meta(2, 0.25)]), None]
    seen_fields = []

    def fields(images, anns, metas):
        return [[np.full((1,), b)] for b in range(images.shape[0])], 0.5

    def decode(image_fields):
        seen_fields.append(float(image_fields[0][0]))
        return [AnnotationDet(meta=None, category_id=1, score=0.9, bbox=np.array([2, 4, 6, 8], np.float32))]

    metrics = [Recording(), Recording()]
    scored = scoring.accumulate(loader, fields, decode, metrics)
    assert (scored.n_images, scored.nn_seconds) == (2, 0.5)
    assert seen_fields == [0.0, 1.0]
    for metric in metrics:
        assert metric.seen == [(1, [[4, 8, 12, 16]]), (2, [[8, 16, 24, 32]])]
    assert scoring.merged_stats(metrics) == {'boxes': 2, 'other': 'text'}


def test_scores_are_the_declared_names_as_floats_undefined_is_nan():
    values = scoring.scores({'AP': 0.5, 'n': 3, 'pck': None, 'flag': True}, ['AP', 'n', 'pck', 'flag', 'absent'])
    assert values['AP'] == 0.5 and values['n'] == 3.0 and isinstance(values['n'], float)
    assert all(math.isnan(values[name]) for name in ('pck', 'flag', 'absent'))


def test_network_fields_run_only_the_wanted_heads():
    class TwoHeads(torch.nn.Module):
        heads = [None, None]

        def forward(self, images, head_mask):
            assert head_mask == [False, True]
            return [None, images[:, :1] * 2]

    per_image, seconds = scoring.network_fields(TwoHeads(), [1], 'cpu')(torch.ones(2, 3, 4, 4), None, None)
    assert len(per_image) == 2 and len(per_image[0]) == 1
    assert per_image[1][0].shape == (1, 4, 4) and per_image[1][0].max() == 2.0 and seconds >= 0


def test_max_images_stops_inside_a_batch_and_later_batches_are_not_run():
    batches = [(torch.zeros(2, 3, 8, 8), [[], []], [meta(1, 1.0), meta(2, 1.0)]),
               (torch.zeros(2, 3, 8, 8), [[], []], [meta(3, 1.0), meta(4, 1.0)]),
               (torch.zeros(2, 3, 8, 8), [[], []], [meta(5, 1.0), meta(6, 1.0)])]
    run = []

    def fields(images, anns, metas):
        run.append([m['image_id'] for m in metas])
        return [[np.zeros(1)] for _ in range(images.shape[0])], 0.0

    metric = Recording()
    scored = scoring.accumulate(batches, fields, lambda f: [], [metric], scoring.ScoringSettings(max_images=3))
    assert scored.n_images == 3
    assert run == [[1, 2], [3]]  # the third batch is never run through the network
    assert [image_id for image_id, _ in metric.seen] == [1, 2, 3]
