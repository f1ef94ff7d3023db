"""What a run trains (how it is run: :mod:`openfields.training.run_settings`): the network, its objective,
its loaders, test sets and key metric, and what its checkpoints record. The pose trainer
(:mod:`openfields.train`) builds one from its flags, the detector run of top-down mode
(:mod:`openfields.topdown.detector_training`) another; :func:`openfields.training.fit.fit` trains either.
"""

from __future__ import annotations

import dataclasses

import torch

from .snapshots import KeyMetric


@dataclasses.dataclass(frozen=True, eq=False)
class Recipe:
    """``network`` is the model itself (what is saved and averaged; on the run's device); ``fit`` wraps it
    for training (memory format, DDP, compilation: the run settings' acceleration) and builds its optimizer
    over the parameters that require a gradient. ``loss`` is the composite fields' loss (the trainer's
    :class:`~openfields.training.loop.FieldObjective`), or None when ``objective`` (images, targets -> losses)
    computes the losses itself."""

    network: torch.nn.Module
    train_loader: object
    val_loaders: dict
    meta: dict  # recorded in every checkpoint and in the log's process record
    loss: torch.nn.Module | None = None
    objective: object = None
    key_metric: KeyMetric | None = None
    test_sets: dict = dataclasses.field(default_factory=dict)  # rank 0 only
    batch_hook: object = None  # debug plots, rank 0 only

    def __post_init__(self):
        if (self.loss is None) == (self.objective is None):
            raise ValueError('a recipe has either a loss of the fields or an objective, not both or neither')

    @property
    def head_metas(self) -> list:
        """The network's head metas (none for a torchvision detector)."""
        return list(getattr(self.network, 'head_metas', ()))

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer updates: the parameters that require a gradient, in the network's order."""
        return [p for p in self.network.parameters() if p.requires_grad]
