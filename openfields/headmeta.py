"""Head metadata: the single source of truth for what a head predicts.

Encoders, heads, losses, the decoder, metrics and painters all read these
dataclasses; nothing re-derives keypoints, sigmas, skeletons or strides.

Conventions
-----------
* Keypoints are indexed 0-based in arrays; skeleton pairs are **1-based** as in
  COCO's ``categories[].skeleton``.
* ``stride = base_stride // upsample_stride`` is the distance in input pixels
  between two neighbouring field cells. Field cell ``(i, j)`` sits on input
  pixel ``(i * stride, j * stride)`` (row, column).
* Metas are frozen. ``base_stride``, the stride of the basenet, is known before
  any network exists (``openfields.network.factory.base_stride``) and given when
  a dataset creates its metas; ``dataclasses.replace`` makes a variant. A head's
  index is its position in the network's list of heads, not a field here.
* ``to_dict`` / ``from_dict`` use plain Python types only, so head metas can
  live inside checkpoints that load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(kw_only=True, frozen=True)
class Base:
    """Fields common to all heads.

    ``n_components`` is the channel count ``C`` of the head output
    ``(B, F, C, H, W)`` in training mode: one shared log-b channel, then the
    confidences, two channels per vector and the scales.
    """

    name: str
    dataset: str
    upsample_stride: int = 1
    base_stride: int = 0  # stride of the basenet; 0: not known (no encoding, decoding or drawing)
    training_weights: list[float] | None = None  # optional loss weight per field

    type_name: ClassVar[str] = 'base'
    n_confidences: ClassVar[int] = 1
    n_vectors: ClassVar[int] = 0
    n_scales: ClassVar[int] = 0
    vector_offsets: ClassVar[tuple[bool, ...]] = ()  # vector is a position (True) or a size (False)

    @property
    def stride(self) -> int:
        if self.base_stride <= 0:
            raise ValueError(f'head {self.dataset}.{self.name} was created without the basenet\'s stride '
                             '(base_stride unset)')
        return self.base_stride // self.upsample_stride

    @property
    def n_fields(self) -> int:
        raise NotImplementedError

    @property
    def n_components(self) -> int:
        return 1 + self.n_confidences + 2 * self.n_vectors + self.n_scales

    @property
    def full_name(self) -> str:
        return f'{self.dataset}.{self.name}'

    def __post_init__(self):
        if self.upsample_stride < 1:
            raise ValueError(f'{self.full_name}: upsample_stride must be >= 1, got {self.upsample_stride}')
        if self.training_weights is not None and len(self.training_weights) != self.n_fields:
            raise ValueError(f'{self.full_name}: {len(self.training_weights)} training_weights '
                             f'for {self.n_fields} fields')

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed dict (lists, not tuples) with a ``type`` key."""
        d = dataclasses.asdict(self)
        d['type'] = self.type_name
        return _plain(d)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> 'Base':
        d = dict(d)
        d.pop('head_index', None)  # written by openfields before head metas were frozen: the head's position
        type_name = d.pop('type')
        cls = HEAD_META_TYPES.get(type_name)
        if cls is None:
            raise ValueError(f'unknown head meta type {type_name!r}; known: {sorted(HEAD_META_TYPES)}')
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f'head meta {type_name!r} has unknown fields {sorted(unknown)}')
        return cls(**d)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_pairs(owner: str, what: str, pairs, n_keypoints: int):
    for pair in pairs:
        if len(pair) != 2 or not all(1 <= int(j) <= n_keypoints for j in pair):
            raise ValueError(f'{owner}: {what} entry {list(pair)} is not a pair of 1-based '
                             f'keypoint indices in [1, {n_keypoints}]')


def _check_keypoint_fields(meta: 'Cif | Caf | Heatmap'):
    owner = meta.full_name
    n = len(meta.keypoints)
    if n == 0:
        raise ValueError(f'{owner}: no keypoints')
    if len(set(meta.keypoints)) != n:
        raise ValueError(f'{owner}: duplicate keypoint names in {meta.keypoints}')
    if len(meta.sigmas) != n:
        raise ValueError(f'{owner}: {len(meta.sigmas)} sigmas for {n} keypoints')
    if any(not s > 0 for s in meta.sigmas):
        raise ValueError(f'{owner}: sigmas must be positive, got {meta.sigmas}')
    if meta.pose is not None and (len(meta.pose) != n or any(len(p) != 3 for p in meta.pose)):
        raise ValueError(f'{owner}: pose must be {n} rows of (x, y, v)')
    if meta.hflip is not None:
        for a, b in meta.hflip.items():
            if a not in meta.keypoints or b not in meta.keypoints:
                raise ValueError(f'{owner}: hflip pair {a!r} <-> {b!r} names an unknown keypoint')
            if meta.hflip.get(b) != a:
                raise ValueError(f'{owner}: hflip must be symmetric, {a!r} -> {b!r} but '
                                 f'{b!r} -> {meta.hflip.get(b)!r}')
    if meta.draw_skeleton is not None:
        _check_pairs(owner, 'draw_skeleton', meta.draw_skeleton, n)


@dataclass(kw_only=True, frozen=True)
class Cif(Base):
    """Composite Intensity Field: one field per keypoint type.

    Training output channels (C=5): ``[log_b, confidence, dx, dy, scale]``.
    Target channels (5): ``[confidence, dx, dy, b_min, scale]``.
    """

    keypoints: list[str]
    sigmas: list[float]
    pose: list[list[float]] | None = None  # upright reference pose (K rows of x, y, v)
    draw_skeleton: list[tuple[int, int]] | None = None
    score_weights: list[float] | None = None
    hflip: dict[str, str] | None = None

    type_name: ClassVar[str] = 'cif'
    n_confidences: ClassVar[int] = 1
    n_vectors: ClassVar[int] = 1
    n_scales: ClassVar[int] = 1
    vector_offsets: ClassVar[tuple[bool, ...]] = (True,)

    def __post_init__(self):
        _check_keypoint_fields(self)
        if self.score_weights is not None and len(self.score_weights) != len(self.keypoints):
            raise ValueError(f'{self.full_name}: {len(self.score_weights)} score_weights '
                             f'for {len(self.keypoints)} keypoints')
        super().__post_init__()

    @property
    def n_fields(self) -> int:
        return len(self.keypoints)

    def flip_permutation(self) -> list[int] | None:
        """Index map so that ``flipped[i] = original[perm[i]]``; None without hflip."""
        return flip_permutation(self.keypoints, self.hflip)


@dataclass(kw_only=True, frozen=True)
class Caf(Base):
    """Composite Association Field: one field per skeleton connection.

    Training output channels (C=8): ``[log_b, confidence, x1, y1, x2, y2, s1, s2]``.
    Target channels (9): ``[confidence, x1, y1, x2, y2, b_min1, b_min2, scale1, scale2]``.
    """

    keypoints: list[str]
    sigmas: list[float]
    skeleton: list[tuple[int, int]]
    pose: list[list[float]] | None = None
    draw_skeleton: list[tuple[int, int]] | None = None
    hflip: dict[str, str] | None = None
    sparse_skeleton: list[tuple[int, int]] | None = None  # set for dense heads
    dense_to_sparse_radius: float = 2.0
    only_in_field_of_view: bool = False

    type_name: ClassVar[str] = 'caf'
    n_confidences: ClassVar[int] = 1
    n_vectors: ClassVar[int] = 2
    n_scales: ClassVar[int] = 2
    vector_offsets: ClassVar[tuple[bool, ...]] = (True, True)

    def __post_init__(self):
        _check_keypoint_fields(self)
        if not self.skeleton:
            raise ValueError(f'{self.full_name}: empty skeleton')
        # normalised while the meta is built (frozen afterwards)
        object.__setattr__(self, 'skeleton', [tuple(int(j) for j in pair) for pair in self.skeleton])
        _check_pairs(self.full_name, 'skeleton', self.skeleton, len(self.keypoints))
        if self.sparse_skeleton is not None:
            object.__setattr__(self, 'sparse_skeleton', [tuple(int(j) for j in pair) for pair in self.sparse_skeleton])
            _check_pairs(self.full_name, 'sparse_skeleton', self.sparse_skeleton, len(self.keypoints))
        super().__post_init__()

    @property
    def n_fields(self) -> int:
        return len(self.skeleton)


@dataclass(kw_only=True, frozen=True)
class CifDet(Base):
    """Detection field: one field per category.

    Training output channels (C=6): ``[log_b, confidence, dx, dy, w, h]``.
    Target channels (7): ``[confidence, dx, dy, w, h, b_min_xy, b_min_wh]``.
    """

    categories: list[str]

    type_name: ClassVar[str] = 'cifdet'
    n_confidences: ClassVar[int] = 1
    n_vectors: ClassVar[int] = 2
    n_scales: ClassVar[int] = 0
    vector_offsets: ClassVar[tuple[bool, ...]] = (True, False)

    def __post_init__(self):
        if not self.categories:
            raise ValueError(f'{self.full_name}: no categories')
        super().__post_init__()

    @property
    def n_fields(self) -> int:
        return len(self.categories)


HEATMAP_TARGETS = ('gaussian', 'plateau')
HEATMAP_LOSSES = ('mse', 'bce')
LOCREF_LOSSES = ('huber', 'mse')


@dataclass(kw_only=True, frozen=True)
class Heatmap(Base):
    """DeepLabCut's heatmap head with location refinement: one map per keypoint type.

    Training output channels (C=3, C=1 without ``locref``): ``[heatmap, locref_x, locref_y]``, raw
    (``apply_sigmoid``: the heatmap is a logit). Eval mode: ``[score, x, y]`` with the score through a sigmoid
    when ``apply_sigmoid`` and ``x, y`` absolute field coordinates (cell index plus
    ``locref * locref_std / stride``). Target channels (3, or 1): ``[heatmap, locref_x, locref_y]``; locref
    in units of ``locref_std`` pixels, NaN where no keypoint is within ``pos_dist_thresh``.

    ``pos_dist_thresh`` (pixels of the network input): the plateau's radius, or 1.5 Gaussian sigmas
    (DeepLabCut's ``2 * pos_dist_thresh / 3``). ``upsample_stride`` is the product of ``deconv_strides``.
    The deconvolution stack (the same layout for the heatmap and the locref branch, separate weights):
    ``deconv_channels`` are the outputs of every deconvolution but the last, which gives the K (2K) maps,
    unless ``final_conv_kernel`` > 0 adds a final convolution that gives them. Kernels are odd, so that
    field cell i stays on input pixel ``i * stride``. ``sigmas`` (COCO OKS sigmas) are for evaluation and
    drawing only; the targets use ``pos_dist_thresh``.
    """

    keypoints: list[str]
    sigmas: list[float]
    pose: list[list[float]] | None = None
    draw_skeleton: list[tuple[int, int]] | None = None
    score_weights: list[float] | None = None
    hflip: dict[str, str] | None = None
    target: str = 'gaussian'
    pos_dist_thresh: float = 17.0
    locref: bool = True
    locref_std: float = 7.2801
    apply_sigmoid: bool = False
    clip_scores: bool = True
    heatmap_loss: str = 'mse'
    locref_loss: str = 'huber'
    heatmap_weight: float = 1.0
    locref_weight: float = 0.05
    deconv_channels: list[int] = dataclasses.field(default_factory=list)
    deconv_kernels: list[int] = dataclasses.field(default_factory=lambda: [3])
    deconv_strides: list[int] = dataclasses.field(default_factory=lambda: [2])
    final_conv_kernel: int = 0

    type_name: ClassVar[str] = 'heatmap'
    n_confidences: ClassVar[int] = 1
    n_vectors: ClassVar[int] = 1
    n_scales: ClassVar[int] = 0
    vector_offsets: ClassVar[tuple[bool, ...]] = (True,)

    def __post_init__(self):
        _check_keypoint_fields(self)
        owner = self.full_name
        for name, value, choices in (('target', self.target, HEATMAP_TARGETS),
                                     ('heatmap_loss', self.heatmap_loss, HEATMAP_LOSSES),
                                     ('locref_loss', self.locref_loss, LOCREF_LOSSES)):
            if value not in choices:
                raise ValueError(f'{owner}: {name} {value!r} is not one of {", ".join(choices)}')
        for name in ('pos_dist_thresh', 'locref_std'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{owner}: {name} must be positive, got {getattr(self, name)}')
        for name in ('heatmap_weight', 'locref_weight'):
            if getattr(self, name) < 0:
                raise ValueError(f'{owner}: {name} must be >= 0, got {getattr(self, name)}')
        object.__setattr__(self, 'deconv_channels', [int(c) for c in self.deconv_channels])
        object.__setattr__(self, 'deconv_kernels', [int(k) for k in self.deconv_kernels])
        object.__setattr__(self, 'deconv_strides', [int(s) for s in self.deconv_strides])
        self._check_deconvolutions()
        super().__post_init__()

    def _check_deconvolutions(self):
        owner, kernels, strides = self.full_name, self.deconv_kernels, self.deconv_strides
        if len(kernels) != len(strides):
            raise ValueError(f'{owner}: {len(kernels)} deconvolution kernel sizes for {len(strides)} strides')
        hidden = len(kernels) - (0 if self.final_conv_kernel > 0 else 1)
        if hidden < 0:
            raise ValueError(f'{owner}: neither a deconvolution nor a final convolution gives the maps')
        if len(self.deconv_channels) != hidden:
            raise ValueError(f'{owner}: {len(self.deconv_channels)} hidden deconvolution channel counts for '
                             f'{len(kernels)} deconvolutions ({hidden} expected: the last layer gives the maps)')
        if any(c < 1 for c in self.deconv_channels) or any(s < 1 for s in strides):
            raise ValueError(f'{owner}: deconvolution channels and strides must be >= 1')
        for kernel in kernels + ([self.final_conv_kernel] if self.final_conv_kernel else []):
            if kernel < 1 or kernel % 2 == 0:
                raise ValueError(f'{owner}: kernel size {kernel}: openfields keeps field cell i on input pixel '
                                 'i * stride, which needs odd kernel sizes')
        product = math.prod(strides)
        if self.upsample_stride != product:
            raise ValueError(f'{owner}: upsample_stride {self.upsample_stride} is not the product of the '
                             f'deconvolution strides {strides} ({product})')

    @property
    def n_fields(self) -> int:
        return len(self.keypoints)

    @property
    def n_components(self) -> int:
        return 3 if self.locref else 1

    def flip_permutation(self) -> list[int] | None:
        """Index map so that ``flipped[i] = original[perm[i]]``; None without hflip."""
        return flip_permutation(self.keypoints, self.hflip)


HEAD_META_TYPES: dict[str, type[Base]] = {cls.type_name: cls for cls in (Cif, Caf, CifDet, Heatmap)}


def flip_permutation(keypoints: list[str], hflip: dict[str, str] | None) -> list[int] | None:
    """Permutation of keypoint indices under a horizontal flip (None if no hflip map)."""
    if not hflip:
        return None
    index = {name: i for i, name in enumerate(keypoints)}
    return [index[hflip.get(name, name)] for name in keypoints]


def hflip_from_names(keypoints: list[str]) -> dict[str, str]:
    """Left/right pairs found by name (``left_eye`` <-> ``right_eye``, ``leftear`` <-> ``rightear``,
    ``l_knee`` <-> ``r_knee``); empty when the names carry no side."""
    mapping = {}
    names = set(keypoints)
    swaps = (('left', 'right'), ('Left', 'Right'), ('LEFT', 'RIGHT'))
    for name in keypoints:
        for a, b in swaps:
            for x, y in ((a, b), (b, a)):
                if x in name:
                    other = name.replace(x, y)
                    if other in names and other != name:
                        mapping[name] = other
        if name not in mapping:
            for x, y in (('l_', 'r_'), ('r_', 'l_'), ('L_', 'R_'), ('R_', 'L_')):
                if name.startswith(x) and (y + name[len(x):]) in names:
                    mapping[name] = y + name[len(x):]
                    break
            for x, y in (('_l', '_r'), ('_r', '_l'), ('_L', '_R'), ('_R', '_L')):
                if name not in mapping and name.endswith(x) and (name[:-len(x)] + y) in names:
                    mapping[name] = name[:-len(x)] + y
    return mapping


