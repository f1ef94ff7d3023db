"""Decoder flags (argument group 'decoder') and the choice of decoders for a network's heads.

Candidates, named ``<kind>:<index>`` in head order:

* ``cifcaf:i``: the i-th Cif head paired with the first sparse Caf head (``sparse_skeleton`` unset) of
  the same dataset and keypoints; with ``--dense-connections`` also the first dense Caf head
  (``sparse_skeleton`` set) of that dataset;
* ``cifdet:i``: the i-th CifDet head.

Without ``--decoder`` the best candidate decodes: pose decoders before detection, bigger heads
first (priority ``n_fields / 1000``, detection ``-1``).

Plugins add decoders with :func:`register_decoder`: a function ``(head_metas, settings) -> [Candidate]``
under a kind name; its candidates are named ``<kind>:<n>`` like the built-in ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import headmeta
from .annotation import Annotation, AnnotationDet
from .cifcaf import CifCaf
from .cifdet import CifDet

LOG = logging.getLogger(__name__)

DEFAULT_INSTANCE_THRESHOLD = 0.15
DEFAULT_KEYPOINT_THRESHOLD = 0.15
DEFAULT_KEYPOINT_THRESHOLD_REL = 0.5


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
        )


def cli(parser: argparse.ArgumentParser) -> None:
    """Add the 'decoder' argument group."""
    d = DecoderSettings.__dataclass_fields__
    group = parser.add_argument_group('decoder')
    group.add_argument('--decoder', nargs='+', default=None, metavar='NAME',
                       help='decoders to run, e.g. cifcaf:0 cifdet:0 (default: the best one for the heads)')
    group.add_argument('--seed-threshold', type=float, default=d['seed_threshold'].default,
                       help='minimum rescored confidence of a CIF cell to start a pose')
    group.add_argument('--instance-threshold', type=float, default=None,
                       help=f'minimum instance score (default {DEFAULT_INSTANCE_THRESHOLD}, '
                            '0.0 with --force-complete-pose)')
    group.add_argument('--keypoint-threshold', type=float, default=None,
                       help=f'minimum joint confidence (default {DEFAULT_KEYPOINT_THRESHOLD}, '
                            '0.0 with --force-complete-pose; at most --seed-threshold)')
    group.add_argument('--keypoint-threshold-rel', type=float, default=None,
                       help='minimum joint confidence relative to the joint it grows from '
                            f'(default {DEFAULT_KEYPOINT_THRESHOLD_REL}, 0.0 with --force-complete-pose)')
    group.add_argument('--cif-th', type=float, default=d['cif_th'].default,
                       help='minimum CIF confidence of a cell to vote in the high-resolution map')
    group.add_argument('--caf-th', type=float, default=d['caf_th'].default,
                       help='minimum CAF confidence (before and after rescoring) of an association')
    group.add_argument('--force-complete-pose', action='store_true', default=False,
                       help='fill every joint of every pose (weak associations, then copies of neighbours)')
    group.add_argument('--force-complete-caf-th', type=float, default=d['force_complete_caf_th'].default,
                       help='CAF threshold of the force-complete growth')
    group.add_argument('--dense-connections', type=float, nargs='?', const=1.0,
                       default=d['dense_connections'].default, metavar='COUPLING',
                       help='also grow along a dense Caf head, its confidences times COUPLING '
                            '(flag alone: 1.0)')
    group.add_argument('--greedy', action='store_true', default=False,
                       help='accept a connection as soon as it is evaluated (default: best first)')
    group.add_argument('--no-reverse-match', dest='reverse_match', action='store_false', default=True,
                       help='accept connections without checking the association back to the source')
    group.add_argument('--fragment-merge-distance', type=float, default=d['fragment_merge_distance'].default,
                       help='merge a pose fragment (joints the skeleton cannot connect) into the nearest pose '
                            'lacking its joints within this fraction of that pose\'s size (0: off)')
    group.add_argument('--max-instances', type=int, default=d['max_instances'].default,
                       help='at most this many instances per image and decoder')


@dataclass(frozen=True)
class Candidate:
    """A decoder that the heads allow: ``name`` (``kind:index``), the head indices it reads and how
    to build it."""

    name: str
    head_indices: tuple[int, ...]
    priority: float
    build: Callable[[], Callable[[list], list]]


class Decoder:
    """Runs the chosen decoders on one image: ``__call__(fields_per_head)`` with one entry per head
    (indexed like the network's head metas; heads no decoder reads may be None) -> their instances,
    concatenated in decoder order."""

    def __init__(self, decoders: list[tuple[str, tuple[int, ...], Callable[[list], list]]]):
        self.decoders = decoders

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.decoders]

    def __call__(self, fields_per_head: list) -> list[Annotation | AnnotationDet]:
        annotations = []
        for _, head_indices, decode in self.decoders:
            annotations += decode([fields_per_head[i] for i in head_indices])
        return annotations

    @property
    def stats(self) -> dict[str, dict[str, float]]:
        """Per decoder, the milliseconds per stage of the last call."""
        return {name: dict(getattr(decode, 'stats', {})) for name, _, decode in self.decoders}


CandidateFinder = Callable[[Sequence[headmeta.Base], DecoderSettings], list[Candidate]]

# kind name -> candidates of a plugin's decoder (the built-in cifcaf and cifdet are in candidates())
DECODERS: dict[str, CandidateFinder] = {}


def register_decoder(kind: str, find: CandidateFinder) -> None:
    """Add (or replace) a decoder kind: ``find(head_metas, settings)`` returns the candidates the heads
    allow (their ``name`` is set here, ``<kind>:<n>``)."""
    if kind in ('cifcaf', 'cifdet'):
        raise ValueError(f'decoder kind {kind!r} is built in')
    DECODERS[kind] = find


def candidates(head_metas: Sequence[headmeta.Base], settings: DecoderSettings) -> list[Candidate]:
    """All decoders the heads allow, in naming order: built-in ones, then the plugins'."""
    found = []
    cifs = [(i, m) for i, m in enumerate(head_metas) if isinstance(m, headmeta.Cif)]
    for i, cif in cifs:
        caf_index = _first_caf(head_metas, cif, dense=False)
        if caf_index is None:
            continue
        heads = (i, caf_index)
        dense_index = _first_caf(head_metas, cif, dense=True) if settings.dense_connections > 0 else None
        if dense_index is not None:
            heads += (dense_index,)
        metas = [head_metas[h] for h in heads]
        found.append(Candidate(f'cifcaf:{len(found)}', heads,
                               cif.n_fields / 1000, lambda metas=metas: CifCaf(*metas[:2], settings, *metas[2:])))
    dets = [(i, m) for i, m in enumerate(head_metas) if isinstance(m, headmeta.CifDet)]
    for n, (i, det) in enumerate(dets):
        found.append(Candidate(f'cifdet:{n}', (i,), -1.0 + det.n_fields / 1000,
                               lambda det=det: CifDet(det, settings)))
    for kind, find in DECODERS.items():
        for n, candidate in enumerate(find(head_metas, settings)):
            found.append(dataclasses.replace(candidate, name=f'{kind}:{n}'))
    return found


def factory(head_metas: Sequence[headmeta.Base], settings: DecoderSettings,
            names: Sequence[str] | None = None) -> Decoder:
    """The decoder for ``head_metas``: the named candidates (``cifcaf`` means ``cifcaf:0``), or the
    best one. Raises ValueError for unknown names (listing the available ones) or when no decoder fits."""
    available = candidates(head_metas, settings)
    by_name = {c.name: c for c in available}
    if not available:
        raise ValueError('no decoder for heads ' + ', '.join(m.full_name for m in head_metas))
    if names:
        chosen = []
        for name in names:
            key = name if ':' in name else f'{name}:0'
            if key not in by_name:
                raise ValueError(f'unknown decoder {name!r}; available: {", ".join(by_name)}')
            chosen.append(by_name[key])
    else:
        chosen = [max(available, key=lambda c: c.priority)]
        LOG.info('decoder %s (available: %s)', chosen[0].name, ', '.join(by_name))
    return Decoder([(c.name, c.head_indices, c.build()) for c in chosen])


def _first_caf(head_metas: Sequence[headmeta.Base], cif: headmeta.Cif, dense: bool) -> int | None:
    """Index of the first (dense or sparse) Caf head of ``cif``'s dataset and keypoints, or None."""
    for i, meta in enumerate(head_metas):
        if (isinstance(meta, headmeta.Caf) and meta.dataset == cif.dataset
                and list(meta.keypoints) == list(cif.keypoints) and (meta.sparse_skeleton is not None) == dense):
            return i
    return None


__all__ = ['DECODERS', 'Candidate', 'Decoder', 'DecoderSettings', 'candidates', 'cli', 'factory', 'register_decoder']
