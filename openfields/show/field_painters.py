"""Painters of composite fields on matplotlib axes, in input-image pixels.

One field (a keypoint type of a CIF head, a connection of a CAF head) is read into a :class:`FieldView`
from either a target (encoder layout) or eval-mode head outputs; every painter then draws a view the
same way, so target and prediction panels compare directly.

Cell ``(i, j)`` of a field with stride ``s`` sits on pixel ``(x, y) = (j s, i s)`` (headmeta.py); maps are
drawn as ``s x s`` squares centred there.
"""

from __future__ import annotations

import dataclasses

import matplotlib.collections
import matplotlib.colors
import matplotlib.patches
import numpy as np
import PIL.Image
import torch

from .. import headmeta
from ..decoder.annotation import Annotation
from ..decoder.oracle import fields_from_targets
from ..transforms import IMAGENET_MEAN, IMAGENET_STD
from .painters import draw_annotations

# cells at or above this confidence carry arrows and scale circles: a prediction this confident is a
# claim about the keypoint; targets are exactly 1 where positive
ARROW_THRESHOLD = 0.5
CONFIDENCE_COLOURS = {'cif': 'Oranges', 'caf': 'Blues'}
IGNORED_RGBA = (1.0, 0.0, 1.0, 0.35)  # translucent magenta over ignored cells (NaN confidence)


@dataclasses.dataclass
class FieldView:
    """One field in pixels: ``confidence`` ``(h, w)`` (NaN: ignored, targets only), ``positions`` one
    ``(2, h, w)`` array (x, y) per regressed position, ``scales`` one ``(h, w)`` array per scale, ``stride``."""

    confidence: np.ndarray
    positions: list[np.ndarray]
    scales: list[np.ndarray]
    stride: int

    @classmethod
    def from_eval_fields(cls, meta: headmeta.Base, fields, field: int) -> 'FieldView':
        """Field ``field`` of eval-mode fields ``(F, C, h, w)``: ``[log_b, confidences, vectors (x, y
        absolute, field units), scales]`` as counted by the head meta."""
        values = np.asarray(fields[field].detach().cpu().numpy() if torch.is_tensor(fields) else fields[field],
                            dtype=np.float32)
        first_vector = 1 + meta.n_confidences
        first_scale = first_vector + 2 * meta.n_vectors
        stride = meta.stride
        positions = [values[first_vector + 2 * v:first_vector + 2 * v + 2] * stride
                     for v, is_offset in enumerate(meta.vector_offsets) if is_offset]
        scales = [values[first_scale + s] * stride for s in range(meta.n_scales)]
        return cls(confidence=values[1], positions=positions, scales=scales, stride=stride)

    @classmethod
    def from_target(cls, meta: headmeta.Base, target, field: int) -> 'FieldView':
        """Field ``field`` of a target ``(F, C_target, h, w)``, keeping NaN (ignored) confidences and NaN
        (absent) scales, which the oracle conversion fills in for decoding."""
        target = np.asarray(target.numpy() if torch.is_tensor(target) else target, dtype=np.float32)
        view = cls.from_eval_fields(meta, fields_from_targets(meta, target[field:field + 1]), 0)
        view.confidence = target[field, 0]
        # CIF and CAF targets end with their scales (docs/architecture.md)
        raw_scales = target[field, target.shape[1] - len(view.scales):]
        view.scales = [np.where(np.isnan(raw), np.nan, scale) for raw, scale in zip(raw_scales, view.scales)]
        return view

    def cell_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` pixel grids ``(h, w)`` of the cells."""
        h, w = self.confidence.shape
        return np.meshgrid(np.arange(w, dtype=np.float32) * self.stride, np.arange(h, dtype=np.float32) * self.stride)

    def confident(self) -> np.ndarray:
        """Boolean ``(h, w)``: cells at or above :data:`ARROW_THRESHOLD` (NaN is not confident)."""
        return np.nan_to_num(self.confidence, nan=0.0) >= ARROW_THRESHOLD


# --- images ---------------------------------------------------------------------------------------

def denormalize(image) -> np.ndarray:
    """Network input ``(3, H, W)`` normalised with the ImageNet statistics -> RGB ``(H, W, 3)`` in [0, 1]."""
    array = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    return np.clip(array * std + mean, 0.0, 1.0).transpose(1, 2, 0)


def background(ax, rgb: np.ndarray) -> None:
    """The input image in faded grey: fields drawn on top stand out, the people stay recognisable."""
    grey = rgb.mean(axis=2)
    ax.imshow(0.35 + 0.5 * grey, cmap='gray', vmin=0.0, vmax=1.0, interpolation='nearest')
    height, width = grey.shape
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _cell_extent(shape, stride: int):
    h, w = shape
    half = stride / 2
    return (-half, (w - 1) * stride + half, (h - 1) * stride + half, -half)


def _alpha_ramp(name: str) -> matplotlib.colors.Colormap:
    """``name`` with opacity growing with the value: zero is fully transparent."""
    base = matplotlib.colormaps[name]
    colours = base(np.linspace(0.0, 1.0, 256))
    colours[:, 3] = np.linspace(0.0, 0.9, 256)
    return matplotlib.colors.ListedColormap(colours, name=f'{name}_alpha')


# --- field painters -------------------------------------------------------------------------------
# Each returns the artist that carries its colour scale and the scale's label, for one colour bar per
# figure (the panels of a figure share their colour scales).

def confidence(ax, view: FieldView, colours: str):
    """Confidence map (colour map ``colours``, transparent at 0), ignored cells in translucent magenta."""
    values = view.confidence
    extent = _cell_extent(values.shape, view.stride)
    image = ax.imshow(np.nan_to_num(values, nan=0.0), cmap=_alpha_ramp(colours), vmin=0.0, vmax=1.0,
                      extent=extent, interpolation='nearest')
    ignored = np.zeros(values.shape + (4,), np.float32)
    ignored[np.isnan(values)] = IGNORED_RGBA
    ax.imshow(ignored, extent=extent, interpolation='nearest')
    return image, 'confidence (magenta: ignored)'


def cif_regression(ax, view: FieldView):
    """Arrows from each confident cell to its regressed keypoint, coloured by confidence."""
    return _arrows(ax, view, view.cell_pixels(), view.positions[0]), 'confidence (arrows: cell -> keypoint)'


def caf_associations(ax, view: FieldView):
    """Arrows from the first joint (dot) to the second joint of each confident cell's association."""
    arrows = _arrows(ax, view, view.positions[0], view.positions[1])
    mask = view.confident()
    ax.scatter(view.positions[0][0][mask], view.positions[0][1][mask], s=10, c='tab:red', zorder=3)
    return arrows, 'confidence (arrows: joint 1 -> joint 2)'


def _arrows(ax, view: FieldView, start, end):
    mask = view.confident()
    x0, y0 = start[0][mask], start[1][mask]
    dx, dy = end[0][mask] - x0, end[1][mask] - y0
    # dark arrows for confident cells: they stand out on the faded image, weak ones fade into it
    arrows = ax.quiver(x0, y0, dx, dy, np.nan_to_num(view.confidence[mask], nan=0.0), cmap='viridis_r',
                       clim=(ARROW_THRESHOLD, 1.0), angles='xy', scale_units='xy', scale=1.0,
                       width=0.006, headwidth=4, headlength=5, zorder=2)
    return arrows


def scales(ax, view: FieldView, vmax: float):
    """Confident cells coloured by their (first) scale in pixels, ``[0, vmax]``, and circles of diameter
    ``scale`` around their regressed positions (CAF: joint 1 red, joint 2 blue)."""
    mask = view.confident()
    values = np.where(mask, view.scales[0], np.nan)
    image = ax.imshow(values, cmap='viridis', vmin=0.0, vmax=vmax, extent=_cell_extent(values.shape, view.stride),
                      interpolation='nearest', alpha=0.6)
    circles = []
    for position, scale, colour in zip(view.positions, view.scales, ('tab:red', 'tab:blue')):
        finite = mask & np.isfinite(scale)
        circles += [matplotlib.patches.Circle((x, y), s / 2, fill=False, color=colour, lw=1.0, alpha=0.6)
                    for x, y, s in zip(position[0][finite], position[1][finite], scale[finite])]
    ax.add_collection(matplotlib.collections.PatchCollection(circles, match_original=True))
    return image, 'scale (px) of ' + ('joint 1' if len(view.scales) > 1 else 'the keypoint')


def max_scale(views: list[FieldView]) -> float:
    """Largest scale (pixels) of a confident cell over ``views`` (1 when there is none): a colour range
    shared by the panels of a figure."""
    values = [s[view.confident()] for view in views for s in view.scales]
    values = np.concatenate(values) if values else np.zeros(0)
    values = values[np.isfinite(values)]
    return float(values.max()) if len(values) and values.max() > 0 else 1.0


def high_resolution(ax, values: np.ndarray, seeds_xy: np.ndarray, seeds_score: np.ndarray):
    """High-resolution confidence map ``(H, W)`` (pixels) and the seeds of this field (dots coloured by
    score; up to ten labelled with it, best first, each at least 5% of the image away from the others)."""
    image = ax.imshow(values, cmap=_alpha_ramp('Oranges'), vmin=0.0, vmax=1.0, interpolation='nearest')
    if len(seeds_score):
        ax.scatter(seeds_xy[:, 0], seeds_xy[:, 1], s=25, c=seeds_score, cmap='viridis', vmin=0.0, vmax=1.0,
                   edgecolors='black', linewidths=0.5, zorder=3)
        width = values.shape[1]
        for (x, y), score in _spread_out(seeds_xy, seeds_score, min_distance=0.05 * max(values.shape)):
            left = x > 0.8 * width  # labels near the right edge go left of their seed, inside the panel
            ax.annotate(f'{score:.2f}', (x, y), xytext=(-3 if left else 3, 3), textcoords='offset points',
                        fontsize=7, color='black', ha='right' if left else 'left')
    return image, 'accumulated confidence'


def _spread_out(xy: np.ndarray, scores: np.ndarray, min_distance: float, limit: int = 10):
    """Up to ``limit`` ``((x, y), score)`` pairs in the given (best-first) order, skipping any closer than
    ``min_distance`` to one already taken: the many seed cells of one keypoint get one label."""
    taken = []
    for point, score in zip(xy, scores):
        if all(np.hypot(*(point - other)) >= min_distance for other, _ in taken):
            taken.append((point, score))
            if len(taken) == limit:
                break
    return taken


# --- poses ----------------------------------------------------------------------------------------

def ground_truth_annotations(meta: headmeta.Cif, anns: list[dict]) -> list[Annotation]:
    """Annotation dicts (input pixels) with labelled keypoints as :class:`Annotation` (confidence 1 where
    labelled), for the pose painter."""
    found = []
    for ann in anns:
        keypoints = np.asarray(ann['keypoints'], np.float32)
        if ann.get('iscrowd') or not np.any(keypoints[:, 2] > 0):
            continue
        data = keypoints.copy()
        data[:, 2] = (keypoints[:, 2] > 0).astype(np.float32)
        found.append(Annotation(meta=meta, data=data, joint_scales=np.zeros(len(data), np.float32)))
    return found


def poses(ax, rgb: np.ndarray, annotations: list, ignored_boxes: list | None = None) -> None:
    """The image with poses drawn (painters.draw_annotations), ignore regions (crowds, people without
    labelled keypoints) hatched."""
    image = PIL.Image.fromarray((rgb * 255).astype(np.uint8))
    ax.imshow(np.asarray(draw_annotations(image, annotations, line_width=max(1, round(max(image.size) / 150)))))
    for x, y, w, h in ignored_boxes or []:
        ax.add_patch(matplotlib.patches.Rectangle((x, y), w, h, fill=False, hatch='//', color='magenta', lw=1.0))
    ax.set_xticks([])
    ax.set_yticks([])


def ignored_boxes(anns: list[dict]) -> list:
    """Boxes ``x, y, w, h`` of the ignore regions among annotation dicts."""
    return [np.asarray(ann['bbox'], np.float32) for ann in anns
            if ann.get('iscrowd') or not np.any(np.asarray(ann['keypoints'])[:, 2] > 0)]
