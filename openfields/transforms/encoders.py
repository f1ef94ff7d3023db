"""The last step of a pipeline: annotations -> target fields."""

from __future__ import annotations

from collections.abc import Sequence


class Encoders:
    """Replace ``anns`` by ``[enc(image, anns, meta) for enc in encoders]`` (one target per head).

    ``meta['head_indices']`` lists ``enc.meta.head_index`` so collate can place each target at its head;
    the annotations stay available in ``meta['annotations']`` for debug plots.
    """

    def __init__(self, encoders: Sequence):
        self.encoders = list(encoders)

    def __call__(self, image, anns, meta):
        targets = [enc(image, anns, meta) for enc in self.encoders]
        meta = dict(meta, head_indices=[enc.meta.head_index for enc in self.encoders], annotations=anns)
        return image, targets, meta

    def __repr__(self):
        return f'Encoders({self.encoders!r})'
