"""Decoder flags (argument group 'decoder') and the choice of decoders for a network's heads.

Candidates, named ``<kind>:<index>`` in head order:

* ``cifcaf:i``: the i-th Cif head paired with the first sparse Caf head (``sparse_skeleton`` unset) of
  the same dataset and keypoints; with ``--dense-connections`` also the first dense Caf head
  (``sparse_skeleton`` set) of that dataset;
* ``cifdet:i``: the i-th CifDet head;
* ``cifmax:i``: the i-th Cif head alone, one pose per image from each keypoint's map peak (single
  individual per image, e.g. single-animal DeepLabCut projects); chosen only by name;
* ``heatmap:i``: the i-th Heatmap head (DeepLabCut's heatmap with location refinement), one pose per image
  from each heatmap's maximum and the locref offset there (:class:`.heatmap.HeatmapMax`).

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
from .cifmax import CifMax
from .heatmap import HeatmapMax
from .settings import (DEFAULT_INSTANCE_THRESHOLD, DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_KEYPOINT_THRESHOLD_REL,
                       MIN_VOTES_PER_FIELD, DecoderSettings)

LOG = logging.getLogger(__name__)

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
    group.add_argument('--max-votes-fraction', type=float, default=d['max_votes_fraction'].default,
                       metavar='FRACTION',
                       help='bounded work on noisy fields (an untrained or early network): each CIF and CAF '
                            'field votes with at most this fraction of its cells (at least '
                            f'{MIN_VOTES_PER_FIELD}), its most confident; 0: all (logged when it bites)')
    group.add_argument('--max-grown-poses', type=int, default=None, metavar='N',
                       help='grow at most N poses per image before NMS (default: 3 x --max-instances; '
                            'logged when it bites)')


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

# kind name -> candidates of a plugin's decoder (the built-in cifcaf, cifdet, cifmax and heatmap are in candidates())
DECODERS: dict[str, CandidateFinder] = {}


def register_decoder(kind: str, find: CandidateFinder) -> None:
    """Add (or replace) a decoder kind: ``find(head_metas, settings)`` returns the candidates the heads
    allow (their ``name`` is set here, ``<kind>:<n>``)."""
    if kind in ('cifcaf', 'cifdet', 'cifmax', 'heatmap'):
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
    for n, (i, cif) in enumerate(cifs):  # by name only: below every multi-instance decoder
        found.append(Candidate(f'cifmax:{n}', (i,), -2.0 + cif.n_fields / 1000,
                               lambda cif=cif: CifMax(cif, settings)))
    heatmaps = [(i, m) for i, m in enumerate(head_metas) if isinstance(m, headmeta.Heatmap)]
    for n, (i, heatmap) in enumerate(heatmaps):  # a heatmap head's only decoder: one pose per image
        found.append(Candidate(f'heatmap:{n}', (i,), -2.0 + heatmap.n_fields / 1000,
                               lambda heatmap=heatmap: HeatmapMax(heatmap, settings)))
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
    _check_dense(chosen, head_metas, settings)
    return Decoder([(c.name, c.head_indices, c.build()) for c in chosen])


def _check_dense(chosen: Sequence[Candidate], head_metas: Sequence[headmeta.Base], settings: DecoderSettings) -> None:
    """``--dense-connections`` with a cifcaf decoder that found no dense Caf head would decode exactly as
    without it: refused, naming the heads there are."""
    if settings.dense_connections <= 0:
        return
    for candidate in chosen:
        if candidate.name.startswith('cifcaf:') and len(candidate.head_indices) < 3:
            cif = head_metas[candidate.head_indices[0]]
            raise ValueError(f'--dense-connections: no dense Caf head for {cif.full_name} among the heads '
                             f'{", ".join(m.full_name for m in head_metas)}; train one with '
                             f'--{cif.dataset}-with-dense, or leave the flag out')


def _first_caf(head_metas: Sequence[headmeta.Base], cif: headmeta.Cif, dense: bool) -> int | None:
    """Index of the first (dense or sparse) Caf head of ``cif``'s dataset and keypoints, or None."""
    for i, meta in enumerate(head_metas):
        if (isinstance(meta, headmeta.Caf) and meta.dataset == cif.dataset
                and list(meta.keypoints) == list(cif.keypoints) and (meta.sparse_skeleton is not None) == dense):
            return i
    return None


__all__ = ['DECODERS', 'Candidate', 'Decoder', 'DecoderSettings', 'candidates', 'cli', 'factory', 'register_decoder']
