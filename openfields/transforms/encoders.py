"""The last step of a pipeline: annotations -> target fields."""

from __future__ import annotations

from collections.abc import Sequence


class Encoders:
    """Replace ``anns`` by ``[enc(image, anns, meta) for enc in encoders]`` (one target per head).

    ``meta['head_indices']`` lists the heads of the targets so collate and the trainer can place each
    target at its head: ``head_indices`` (default: the position of each encoder, i.e. of its meta in the
    dataset's ``head_metas``; a :class:`~openfields.datasets.multi.MultiDataModule` shifts them to the
    network's positions). The annotations stay available in ``meta['annotations']`` for debug plots.
    """

    def __init__(self, encoders: Sequence, head_indices: Sequence[int] | None = None):
        self.encoders = list(encoders)
        self.head_indices = list(range(len(self.encoders)) if head_indices is None else head_indices)
        if len(self.head_indices) != len(self.encoders):
            raise ValueError(f'{len(self.head_indices)} head indices for {len(self.encoders)} encoders')

    def __call__(self, image, anns, meta):
        targets = [enc(image, anns, meta) for enc in self.encoders]
        meta = dict(meta, head_indices=list(self.head_indices), annotations=anns)
        return image, targets, meta

    def __repr__(self):
        return f'Encoders({self.encoders!r})'
