"""Decoder settings: the thresholds and switches every decoder reads (flags in :mod:`.factory`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

DEFAULT_INSTANCE_THRESHOLD = 0.15
DEFAULT_KEYPOINT_THRESHOLD = 0.15
DEFAULT_KEYPOINT_THRESHOLD_REL = 0.5
# every field may vote with at least this many cells, whatever --max-votes-fraction says
MIN_VOTES_PER_FIELD = 1000


@dataclass(frozen=True)
class DecoderSettings:
    """Decoder configuration. ``None`` thresholds resolve on construction: 0.15 / 0.15 / 0.5
    (instance / keypoint / keypoint relative), all 0.0 with ``force_complete_pose``. Then, for
    consistency, a ``keypoint_threshold`` above ``seed_threshold`` is lowered to it (a seed must be
    able to be a joint)."""

    seed_threshold: float = 0.2
    instance_threshold: float | None = None
    keypoint_threshold: float | None = None
    keypoint_threshold_rel: float | None = None
    cif_th: float = 0.3
    caf_th: float = 0.3
    force_complete_pose: bool = False
    force_complete_caf_th: float = 0.001
    dense_connections: float = 0.0
    greedy: bool = False
    reverse_match: bool = True
    max_instances: int = 100
    fragment_merge_distance: float = 0.75
    # bounded work on noisy fields (an untrained or early network): the most confident cells of a field
    # that vote and score associations (a fraction of its cells, at least MIN_VOTES_PER_FIELD; 0: all),
    # and the poses grown before NMS (None: 3 x max_instances)
    max_votes_fraction: float = 0.2
    max_grown_poses: int | None = None

    def __post_init__(self):
        complete = self.force_complete_pose
        for name, default in (('instance_threshold', DEFAULT_INSTANCE_THRESHOLD),
                              ('keypoint_threshold', DEFAULT_KEYPOINT_THRESHOLD),
                              ('keypoint_threshold_rel', DEFAULT_KEYPOINT_THRESHOLD_REL)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, 0.0 if complete else default)
        if self.seed_threshold < self.keypoint_threshold:
            object.__setattr__(self, 'keypoint_threshold', self.seed_threshold)
        if self.max_instances < 1:
            raise ValueError(f'max_instances must be >= 1, got {self.max_instances}')
        if self.fragment_merge_distance < 0:
            raise ValueError(f'fragment_merge_distance must be >= 0, got {self.fragment_merge_distance}')
        if self.max_grown_poses is None:
            object.__setattr__(self, 'max_grown_poses', 3 * self.max_instances)
        if not 0.0 <= self.max_votes_fraction <= 1.0:
            raise ValueError(f'max_votes_fraction must be in [0, 1], got {self.max_votes_fraction}')
        if self.max_grown_poses < 1:
            raise ValueError(f'max_grown_poses must be >= 1, got {self.max_grown_poses}')
        if self.dense_connections < 0:
            raise ValueError(f'dense_connections must be >= 0, got {self.dense_connections}')

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'DecoderSettings':
        return cls(
            seed_threshold=args.seed_threshold,
            instance_threshold=args.instance_threshold,
            keypoint_threshold=args.keypoint_threshold,
            keypoint_threshold_rel=args.keypoint_threshold_rel,
            cif_th=args.cif_th,
            caf_th=args.caf_th,
            force_complete_pose=args.force_complete_pose,
            force_complete_caf_th=args.force_complete_caf_th,
            dense_connections=args.dense_connections,
            greedy=args.greedy,
            reverse_match=args.reverse_match,
            max_instances=args.max_instances,
            fragment_merge_distance=args.fragment_merge_distance,
            max_votes_fraction=args.max_votes_fraction,
            max_grown_poses=args.max_grown_poses,
        )
