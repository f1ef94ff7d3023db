"""Debug plots of fields: ``--debug-images`` and ``--debug-indices HEAD:FIELD[:KIND]`` (train and predict).

``--debug-indices cif:5 caf:5`` chooses fields by head name (``cif``, or the full ``synthetic.cif``) and
0-based field index (keypoint index for CIF, skeleton connection index for CAF); several fields may be
given as ``cif:5,6``; a third part restricts the plot kinds, ``cif:5:hr`` or ``cif:5:confidence,regression``.
Without it every kind of the head is drawn. ``--debug-images`` alone chooses every field of every head.

Per image, :class:`DebugPlots` draws one figure for the input image as the network sees it, one per
chosen field and kind, and, where ground truth is known (training), one of the poses. Each field figure
has a panel per source: the target and/or the prediction of the network.

Kinds: ``confidence`` (map), ``regression`` (CIF: arrows cell -> keypoint; CAF: associations, arrows
joint 1 -> joint 2), ``scale`` (circles of the regressed joint sizes), ``hr`` (CIF only: the decoder's
high-resolution map with the seeds of the field).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re

import matplotlib.patches
import numpy as np

from .. import headmeta
from ..decoder.cifhr import CifHr
from ..decoder.settings import DecoderSettings
from ..decoder.oracle import fields_from_targets
from ..decoder.seeds import cif_seeds
from . import field_painters
from .canvas import Canvas

LOG = logging.getLogger(__name__)

KINDS: dict[type, tuple[str, ...]] = {
    headmeta.Cif: ('confidence', 'regression', 'scale', 'hr'),
    headmeta.Caf: ('confidence', 'regression', 'scale'),
}
SPEC_FORMAT = 'HEAD:FIELD[,FIELD...][:KIND[,KIND...]], e.g. cif:5, caf:5 or cif:5:hr'
_SPEC = re.compile(r'^(?P<head>[A-Za-z0-9_.-]+):(?P<fields>\d+(,\d+)*)(:(?P<kinds>[a-z]+(,[a-z]+)*))?$')


def cli(parser: argparse.ArgumentParser):
    """Add the 'debug plots' argument group; returns it (training adds ``--debug-batches``)."""
    group = parser.add_argument_group('debug plots')
    group.add_argument('--debug-images', action='store_true', default=False,
                       help='draw every debug plot: input image, every kind of the --debug-indices fields '
                            '(every field of every head without them) and poses')
    group.add_argument('--debug-indices', nargs='+', default=[], metavar='HEAD:FIELD[:KIND]',
                       help='fields to draw, e.g. cif:5 caf:5 cif:5:hr (0-based field index; kinds: '
                            'confidence, regression, scale, hr; default every kind of the head)')
    return group


@dataclasses.dataclass(frozen=True)
class FieldRequest:
    """One ``--debug-indices`` entry as given: head name, field indices, kinds (empty: every kind)."""

    text: str
    head: str
    fields: tuple[int, ...]
    kinds: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> 'FieldRequest':
        match = _SPEC.match(text)
        if match is None:
            raise ValueError(f'--debug-indices {text!r}: expected {SPEC_FORMAT}')
        kinds = tuple(match['kinds'].split(',')) if match['kinds'] else ()
        return cls(text=text, head=match['head'], fields=tuple(int(f) for f in match['fields'].split(',')),
                   kinds=kinds)


@dataclasses.dataclass(frozen=True)
class DebugSettings:
    """``every_plot`` (``--debug-images``) and the parsed ``--debug-indices``; plots are drawn when
    either is given."""

    requests: tuple[FieldRequest, ...] = ()
    every_plot: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'DebugSettings':
        return cls(requests=tuple(FieldRequest.parse(text) for text in args.debug_indices),
                   every_plot=args.debug_images)

    @property
    def enabled(self) -> bool:
        return self.every_plot or bool(self.requests)


@dataclasses.dataclass(frozen=True)
class FieldSelection:
    """A field chosen for plots: its head (index and meta), field index and kinds."""

    head_index: int
    meta: headmeta.Base
    field: int
    kinds: tuple[str, ...]

    @property
    def label(self) -> str:
        """Keypoint name (CIF) or ``joint1-joint2`` (CAF)."""
        keypoints = self.meta.keypoints
        if isinstance(self.meta, headmeta.Caf):
            a, b = self.meta.skeleton[self.field]
            return f'{keypoints[a - 1]}-{keypoints[b - 1]}'
        return keypoints[self.field]

    @property
    def name(self) -> str:
        return f'{self.meta.name}-{self.field}-{self.label}'

    def title(self, kind: str) -> str:
        is_caf = isinstance(self.meta, headmeta.Caf)
        what = {'confidence': 'confidence',
                'regression': 'associations, joint 1 -> joint 2' if is_caf else 'regression, cell -> keypoint',
                'scale': 'scales (circle diameter: joint scale)',
                'hr': 'high-resolution map and seeds'}[kind]
        label = self.label.replace('-', ' -> ') if is_caf else self.label
        return f'{self.meta.full_name} field {self.field} ({label}): {what}'


def select_fields(settings: DebugSettings, head_metas: list[headmeta.Base]) -> list[FieldSelection]:
    """The fields of ``head_metas`` chosen by ``settings``, one entry per (head, field) with the union of
    its requested kinds. Raises ValueError naming the entry for an unknown head, a field out of range or
    a kind that does not apply."""
    chosen: dict[tuple[int, int], set[str]] = {}
    if settings.every_plot and not settings.requests:
        for i, meta in enumerate(head_metas):
            if type(meta) in KINDS:
                for field in range(meta.n_fields):
                    chosen[(i, field)] = set(KINDS[type(meta)])
    for request in settings.requests:
        for head_index in _heads(request, head_metas):
            meta = head_metas[head_index]
            kinds = _kinds(request, meta)
            for field in request.fields:
                if field >= meta.n_fields:
                    raise ValueError(f'--debug-indices {request.text!r}: field {field} out of range for head '
                                     f'{meta.full_name} ({meta.n_fields} fields: 0 to {meta.n_fields - 1})')
                chosen.setdefault((head_index, field), set()).update(kinds)
    return [FieldSelection(head_index=i, meta=head_metas[i], field=field,
                           kinds=tuple(k for k in KINDS[type(head_metas[i])] if k in kinds))
            for (i, field), kinds in sorted(chosen.items())]


def _heads(request: FieldRequest, head_metas: list[headmeta.Base]) -> list[int]:
    found = [i for i, meta in enumerate(head_metas) if request.head in (meta.name, meta.full_name)]
    if not found:
        names = ', '.join(dict.fromkeys([m.name for m in head_metas] + [m.full_name for m in head_metas]))
        raise ValueError(f'--debug-indices {request.text!r}: unknown head {request.head!r}; heads: {names}')
    return found


def _kinds(request: FieldRequest, meta: headmeta.Base) -> tuple[str, ...]:
    available = KINDS.get(type(meta))
    if available is None:
        raise ValueError(f'--debug-indices {request.text!r}: no debug plots for {meta.type_name} heads '
                         f'({meta.full_name})')
    for kind in request.kinds:
        if kind not in available:
            raise ValueError(f'--debug-indices {request.text!r}: kind {kind!r} does not apply to '
                             f'{meta.type_name} heads; kinds: {", ".join(available)}')
    return request.kinds or available


@dataclasses.dataclass
class Source:
    """Fields of one image from one source, per head (None where absent): eval-mode ``fields``
    ``(F, C, h, w)`` and, for targets, the raw ``targets`` (their NaN marks ignored cells)."""

    label: str
    fields: list
    targets: list | None = None

    @classmethod
    def from_targets(cls, head_metas: list[headmeta.Base], targets: list) -> 'Source':
        fields = [fields_from_targets(meta, target) if target is not None and type(meta) in KINDS else None
                  for meta, target in zip(head_metas, targets)]
        return cls(label='target', fields=fields, targets=list(targets))

    @classmethod
    def from_predictions(cls, fields: list) -> 'Source':
        return cls(label='prediction',
                   fields=[None if f is None else np.asarray(f.detach().cpu().numpy() if hasattr(f, 'detach') else f,
                                                            dtype=np.float32) for f in fields])

    def view(self, selection: FieldSelection) -> field_painters.FieldView | None:
        i = selection.head_index
        if self.fields[i] is None:
            return None
        if self.targets is not None:
            return field_painters.FieldView.from_target(selection.meta, self.targets[i], selection.field)
        return field_painters.FieldView.from_eval_fields(selection.meta, self.fields[i], selection.field)


class DebugPlots:
    """Debug figures of single images onto a :class:`Canvas`.

    ``decode``: a decoder (``decoder.factory``) for the pose panels of training samples, or None.
    """

    def __init__(self, canvas: Canvas, head_metas: list[headmeta.Base], selections: list[FieldSelection],
                 decoder_settings: DecoderSettings, decode=None):
        self.canvas = canvas
        self.head_metas = head_metas
        self.selections = selections
        self.decoder_settings = decoder_settings
        self.decode = decode

    def sample(self, name: str, image, meta: dict, sources: list[Source], annotations: list[dict] | None = None):
        """Every figure of one image: ``image`` ``(3, H, W)`` normalised network input, ``meta`` its
        transform record, ``sources`` one panel each, ``annotations`` ground truth in input pixels (adds
        the poses figure)."""
        rgb = field_painters.denormalize(image)
        self.input_image(name, rgb, meta)
        high_resolution = {}
        for selection in self.selections:
            views = [source.view(selection) for source in sources]
            for kind in selection.kinds:
                with self.canvas.figure(f'{name}.{selection.name}.{kind}', len(sources),
                                        title=selection.title(kind), colorbar=True) as (figure, axes):
                    colour_scale = None
                    for ax, source, view in zip(axes, sources, views):
                        field_painters.background(ax, rgb)
                        ax.set_title(source.label, fontsize=9)
                        if kind == 'hr':
                            colour_scale = self._high_resolution(ax, selection, source, high_resolution)
                        elif view is None:
                            _not_available(ax)
                        else:
                            colour_scale = self._field(ax, kind, selection, view, views)
                    if colour_scale is not None:
                        self.canvas.colorbar(figure, *colour_scale)
        if annotations is not None:
            self.poses(name, rgb, sources, annotations)

    def input_image(self, name: str, rgb: np.ndarray, meta: dict) -> None:
        with self.canvas.figure(f'{name}.input', title=_input_title(rgb, meta)) as (_, axes):
            axes[0].imshow(rgb)
            axes[0].set_xticks([])
            axes[0].set_yticks([])
            if meta.get('valid_area') is not None:
                x, y, w, h = np.asarray(meta['valid_area'], np.float64)
                axes[0].add_patch(matplotlib.patches.Rectangle((x - 0.5, y - 0.5), w, h, fill=False,
                                                               linestyle='--', color='cyan', lw=1.0))

    @staticmethod
    def _field(ax, kind: str, selection: FieldSelection, view: field_painters.FieldView, views: list):
        if kind == 'confidence':
            return field_painters.confidence(ax, view, field_painters.CONFIDENCE_COLOURS[selection.meta.type_name])
        if kind == 'regression' and isinstance(selection.meta, headmeta.Caf):
            return field_painters.caf_associations(ax, view)
        if kind == 'regression':
            return field_painters.cif_regression(ax, view)
        return field_painters.scales(ax, view, field_painters.max_scale([v for v in views if v is not None]))

    def _high_resolution(self, ax, selection: FieldSelection, source: Source, cache: dict):
        fields = source.fields[selection.head_index]
        if fields is None:
            _not_available(ax)
            return None
        key = (source.label, selection.head_index)
        if key not in cache:
            stride = selection.meta.stride
            cifhr = CifHr().fill_cif(fields, stride, self.decoder_settings.cif_th)
            cache[key] = cifhr.values(), cif_seeds(fields, stride, cifhr, self.decoder_settings.seed_threshold)
        values, seeds = cache[key]
        mine = seeds.field == selection.field
        xy = np.stack([seeds.x[mine], seeds.y[mine]], axis=1)
        ax.set_title(f'{source.label}: max {values[selection.field].max():.2f}, {int(mine.sum())} seed cells',
                     fontsize=9)
        return field_painters.high_resolution(ax, values[selection.field], xy, seeds.score[mine])

    def poses(self, name: str, rgb: np.ndarray, sources: list[Source], annotations: list[dict]) -> None:
        """Ground truth beside the poses decoded from each source."""
        cif = next((m for m in self.head_metas if isinstance(m, headmeta.Cif)), None)
        if cif is None:
            return
        panels = [('ground truth', field_painters.ground_truth_annotations(cif, annotations))]
        if self.decode is not None:
            needed = {i for _, head_indices, _ in self.decode.decoders for i in head_indices}
            panels += [(f'decoded {source.label}', self.decode(source.fields)) for source in sources
                       if all(source.fields[i] is not None for i in needed)]
        boxes = field_painters.ignored_boxes(annotations)
        with self.canvas.figure(f'{name}.poses', len(panels), title=f'poses ({cif.full_name})') as (_, axes):
            for ax, (label, poses) in zip(axes, panels):
                field_painters.poses(ax, rgb, poses, boxes)
                ax.set_title(f'{label}: {len(poses)}', fontsize=9)


def _not_available(ax) -> None:
    ax.text(0.5, 0.5, 'not available', transform=ax.transAxes, ha='center', va='center', fontsize=12)


def _input_title(rgb: np.ndarray, meta: dict) -> str:
    height, width = rgb.shape[:2]
    parts = [f'input {width}x{height}']
    if meta.get('scale') is not None:
        sx, sy = np.asarray(meta['scale'], np.float64)
        parts.append(f'scale {sx:.2f}x{sy:.2f}')
    angle = (meta.get('rotation') or {}).get('angle', 0.0)
    if angle:
        parts.append(f'rotation {angle:.0f} deg')
    if meta.get('hflip'):
        parts.append('flipped')
    return ', '.join(parts)
