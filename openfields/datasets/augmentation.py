"""Training augmentation of a COCO-style dataset: one frozen settings object, every part with its own flag
(``--<dataset>-square-edge``, ``--<dataset>-rotate``, ...), shared by every dataset that crops, scales, flips
and rotates its images (keypoints and boxes alike)."""

import argparse
import dataclasses

from openfields import transforms
from .collate import BatchResize, BatchResizeCollate, collate_images_targets_meta


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation of a COCO-style dataset; every part has its own flag."""

    enabled: bool = True
    square_edge: int = 385
    extended_scale: bool = False
    rescale_images: float = 1.0
    hflip: float | None = None  # probability; None: 0.5 when the keypoints have a flip map, else 0
    hflip_pairs: tuple[str, ...] | None = None  # 'a:b' names or 0-based indices; None: pairs found by name
    rotate: float = 0.4  # probability of a uniform rotation within +-30 degrees
    orientation_invariant: float = 0.0  # probability of a rotation by a multiple of 90 degrees
    blur: float = 0.0  # probability
    color_jitter: bool = True
    extras: transforms.ExtraAugmentation = transforms.ExtraAugmentation()  # DeepLabCut's, all off
    batch_resize: BatchResize | None = None  # variable-size training batches (the collate function)

    def hflip_probability(self, flip_map: dict | None, flag: str, keypoints: list[str] | None = None) -> float:
        """The flip probability for keypoints with ``flip_map`` (None for boxes: always flippable); a
        requested flip of keypoints without left/right pairs is refused (it would teach mirrored labels)."""
        if keypoints is not None and not flip_map:
            if self.hflip:
                raise ValueError(f'{flag} {self.hflip}: the keypoints {keypoints} have no left/right pairs to swap '
                                 'when the image is flipped (pairs are found by name: left_x/right_x, leftx/rightx, '
                                 'l_x/r_x, x_l/x_r); a flip without the swap teaches mirrored labels. Rename the '
                                 f'keypoints or pass {flag} 0')
            return 0.0
        return 0.5 if self.hflip is None else self.hflip

    def flip_map(self, keypoints: list[str], flag: str) -> dict[str, str] | None:
        """The flip map of ``--<dataset>-hflip-pairs`` over ``keypoints`` (each pair both ways); None without
        the flag (the pairs found by name apply)."""
        if self.hflip_pairs is None:
            return None
        mapping = {}
        for token in self.hflip_pairs:
            a, b = (_keypoint_name(part, keypoints, flag, token) for part in _pair_parts(token, flag))
            for x, y in ((a, b), (b, a)):
                if mapping.get(x, y) != y or x == y:
                    raise ValueError(f'{flag} {token}: {x!r} is paired twice or with itself')
                mapping[x] = y
        return mapping

    @staticmethod
    def cli(group, prefix: str, square_edge: int):
        group.add_argument(f'--{prefix}-square-edge', type=int, default=square_edge,
                           help='side of the square training crop in pixels')
        group.add_argument(f'--{prefix}-no-augmentation', dest=f'{prefix}_augmentation', default=True,
                           action='store_false', help='turn every augmentation off')
        group.add_argument(f'--{prefix}-extended-scale', default=False, action='store_true',
                           help='rescale images by a factor in [0.25, 2.0] instead of [0.4, 2.0]')
        group.add_argument(f'--{prefix}-rescale-images', type=float, default=1.0,
                           help='overall image rescaling factor applied on top of the scale jitter')
        group.add_argument(f'--{prefix}-hflip', type=float, default=None,
                           help='probability of a horizontal flip, left/right keypoints swapped by the head\'s '
                                'flip map (default: 0.5 with a flip map, 0 without; non-zero without one is '
                                'refused)')
        group.add_argument(f'--{prefix}-hflip-pairs', nargs='+', default=None, metavar='A:B',
                           help='the keypoints a horizontal flip swaps, as pairs of names or 0-based indices '
                                '(DeepLabCut\'s symmetries); replaces the left/right pairs found by name')
        group.add_argument(f'--{prefix}-rotate', type=float, default=0.4,
                           help='probability of a rotation by up to +-30 degrees')
        group.add_argument(f'--{prefix}-orientation-invariant', type=float, default=0.0,
                           help='probability of a rotation by a multiple of 90 degrees')
        group.add_argument(f'--{prefix}-blur', type=float, default=0.0, help='probability of a blur')
        group.add_argument(f'--{prefix}-no-color-jitter', dest=f'{prefix}_color_jitter', default=True,
                           action='store_false', help='no colour jitter, JPEG artefacts or grayscale')
        Augmentation.extras_cli(group, prefix)
        BatchResize.cli(group, prefix)

    @staticmethod
    def extras_cli(group, prefix: str):
        """DeepLabCut's augmentations (all off by default)."""
        defaults = transforms.ExtraAugmentation()
        group.add_argument(f'--{prefix}-resize', type=int, nargs=2, default=None, metavar=('WIDTH', 'HEIGHT'),
                           help='first resize to fit inside WIDTH x HEIGHT keeping the aspect ratio, padded at '
                                'the bottom and right to exactly that size')
        group.add_argument(f'--{prefix}-resize-keep-ratio', default=True, action=argparse.BooleanOptionalAction,
                           help='resize: keep the aspect ratio and pad (DeepLabCut\'s keep_ratio: true); the no- '
                                'form resizes to exactly WIDTH x HEIGHT (keep_ratio: false)')
        group.add_argument(f'--{prefix}-affine', type=float, default=0.0,
                           help='probability of an affine transform on a canvas of the same size (keypoints '
                                'pushed out become unlabelled)')
        group.add_argument(f'--{prefix}-affine-rotation', type=float, default=defaults.affine_rotation,
                           metavar='DEGREES', help='affine: rotation uniform in +-DEGREES')
        group.add_argument(f'--{prefix}-affine-scaling', type=float, nargs=2, default=list(defaults.affine_scaling),
                           metavar=('MIN', 'MAX'), help='affine: scale factor uniform in [MIN, MAX]')
        group.add_argument(f'--{prefix}-affine-translation', type=float, default=defaults.affine_translation,
                           metavar='PIXELS', help='affine: translation uniform in +-PIXELS per axis')
        group.add_argument(f'--{prefix}-crop-sampling', default=defaults.crop_sampling,
                           choices=('people', *transforms.CROP_SAMPLING_METHODS),
                           help='where the square-edge crop goes: people (around the annotations), uniform, '
                                'keypoints (a random keypoint), density (keypoints in crowded places more often) '
                                'or hybrid (uniform or density)')
        group.add_argument(f'--{prefix}-crop-size', type=int, nargs=2, default=None, metavar=('WIDTH', 'HEIGHT'),
                           help='a WIDTH x HEIGHT training crop (padded to that size) instead of the square edge')
        group.add_argument(f'--{prefix}-crop-max-shift', type=float, default=defaults.crop_max_shift,
                           help='keypoints/density/hybrid crops: a random shift of up to this fraction of the '
                                'crop (in [0, 0.4])')
        group.add_argument(f'--{prefix}-auto-padding', type=int, nargs='+', default=[0], metavar='N',
                           help='pad each side up to the next k * N + 1 pixels, at a random position (0: off); '
                                'two values: the divisors of the width and of the height')
        group.add_argument(f'--{prefix}-auto-padding-min', type=int, nargs=2, default=[0, 0],
                           metavar=('WIDTH', 'HEIGHT'),
                           help='pad each side to at least this size first (DeepLabCut\'s min_width, min_height)')
        group.add_argument(f'--{prefix}-auto-padding-border', default=defaults.auto_padding_border,
                           choices=transforms.BORDER_MODES,
                           help='what fills the padding: a random gray (constant) or the mirrored image '
                                '(reflect_101, without repeating the edge pixel)')
        group.add_argument(f'--{prefix}-hist-eq', type=float, default=0.0,
                           help='probability of a histogram equalisation')
        group.add_argument(f'--{prefix}-motion-blur', type=float, default=0.0,
                           help='probability of a motion blur (a line of 3 to 7 pixels at a random angle)')
        group.add_argument(f'--{prefix}-covering', type=float, default=0.0,
                           help='probability of covering 1 to 10 rectangles of 1-5%% of the image sides '
                                '(keypoints under them become unlabelled)')
        group.add_argument(f'--{prefix}-gaussian-noise', type=float, default=0.0, metavar='STD',
                           help='with probability 0.5, add noise of a standard deviation up to STD (0-255 units)')

    @classmethod
    def from_args(cls, args, prefix: str) -> 'Augmentation':
        get = lambda name: getattr(args, f'{prefix}_{name}')  # noqa: E731
        for name in ('hflip', 'rotate', 'orientation_invariant', 'blur'):
            if get(name) is not None and not 0.0 <= get(name) <= 1.0:
                raise ValueError(f'--{prefix}-{name.replace("_", "-")} is a probability in [0, 1], '
                                 f'got {get(name)}')
        if get('square_edge') < 16:
            raise ValueError(f'--{prefix}-square-edge must be at least 16, got {get("square_edge")}')
        extras, batch_resize = cls.extras_from_args(args, prefix), BatchResize.from_args(args, prefix)
        if batch_resize is not None:
            cls._check_no_crop_or_padding(extras, prefix)
        return cls(enabled=get('augmentation'), square_edge=get('square_edge'),
                   extended_scale=get('extended_scale'), rescale_images=get('rescale_images'),
                   hflip=get('hflip'), rotate=get('rotate'),
                   hflip_pairs=tuple(get('hflip_pairs')) if get('hflip_pairs') is not None else None,
                   orientation_invariant=get('orientation_invariant'), blur=get('blur'),
                   color_jitter=get('color_jitter'), extras=extras, batch_resize=batch_resize)

    @staticmethod
    def _check_no_crop_or_padding(extras: transforms.ExtraAugmentation, prefix: str) -> None:
        """Variable-size batches (``--<prefix>-collate-scale`` or ``-sizes``) set the size themselves."""
        batches = f'--{prefix}-collate-scale (or -sizes)'
        if extras.crop_sampling != 'people' or extras.crop_size is not None:
            raise ValueError(f'--{prefix}-crop-sampling / --{prefix}-crop-size and {batches}: variable-size '
                             'batches replace the crop; choose one')
        if extras.pads:
            raise ValueError(f'--{prefix}-auto-padding and {batches}: variable-size batches set the size (aligned '
                             f'with --{prefix}-collate-multiple); choose one')

    def train_collate(self, encoders, stride: int, prefix: str, finish_before=()):
        """The training ``collate_fn``: fixed-size stacking, or :class:`BatchResizeCollate` that resizes each
        batch and then runs ``finish_before``, the tensor conversion and the ``encoders``."""
        if self.batch_resize is None:
            return collate_images_targets_meta
        finish = transforms.Compose([*finish_before, transforms.ImageToTensor(), transforms.Normalize(),
                                     transforms.Encoders(encoders)])
        return BatchResizeCollate(self.batch_resize.with_multiple(stride, f'--{prefix}-collate-multiple'), finish)

    @staticmethod
    def extras_from_args(args, prefix: str) -> transforms.ExtraAugmentation:
        get = lambda name: getattr(args, f'{prefix}_{name}')  # noqa: E731
        flag = lambda name: f'--{prefix}-{name.replace("_", "-")}'  # noqa: E731
        for name in ('affine', 'hist_eq', 'motion_blur', 'covering'):
            if not 0.0 <= get(name) <= 1.0:
                raise ValueError(f'{flag(name)} is a probability in [0, 1], got {get(name)}')
        low, high = get('affine_scaling')
        checks = [('affine_scaling', 0 < low <= high, 'must be 0 < MIN <= MAX'),
                  ('affine_rotation', get('affine_rotation') >= 0, 'must be >= 0'),
                  ('affine_translation', get('affine_translation') >= 0, 'must be >= 0'),
                  ('crop_max_shift', 0.0 <= get('crop_max_shift') <= 0.4, 'must be in [0, 0.4]'),
                  ('auto_padding', len(get('auto_padding')) <= 2 and min(get('auto_padding')) >= 0,
                   'must be one or two numbers >= 0'),
                  ('auto_padding_min', min(get('auto_padding_min')) >= 0, 'must be >= 0'),
                  ('crop_size', get('crop_size') is None or min(get('crop_size')) >= 16, 'must be at least 16'),
                  ('gaussian_noise', get('gaussian_noise') >= 0, 'must be >= 0'),
                  ('resize', get('resize') is None or min(get('resize')) >= 1, 'must be positive')]
        for name, ok, requirement in checks:
            if not ok:
                raise ValueError(f'{flag(name)} {requirement}, got {get(name)}')
        return transforms.ExtraAugmentation(
            resize=tuple(get('resize')) if get('resize') is not None else None,
            resize_keep_ratio=getattr(args, f'{prefix}_resize_keep_ratio', True), affine=get('affine'),
            affine_rotation=get('affine_rotation'), affine_scaling=(low, high),
            affine_translation=get('affine_translation'), crop_sampling=get('crop_sampling'),
            crop_max_shift=get('crop_max_shift'), crop_size=_pair(get('crop_size')),
            auto_padding=_pair(get('auto_padding') * (3 - len(get('auto_padding')))),
            auto_padding_min=_pair(get('auto_padding_min')), auto_padding_border=get('auto_padding_border'),
            hist_eq=get('hist_eq'),
            motion_blur=get('motion_blur'), covering=get('covering'), gaussian_noise=get('gaussian_noise'))


def _pair(values) -> tuple[int, int] | None:
    return None if values is None else (int(values[0]), int(values[1]))


def _pair_parts(token: str, flag: str) -> list[str]:
    parts = str(token).split(':')
    if len(parts) != 2 or not all(parts):
        raise ValueError(f'{flag} {token}: a pair is A:B (two keypoint names or 0-based indices)')
    return parts


def _keypoint_name(part: str, keypoints: list[str], flag: str, token: str) -> str:
    if part in keypoints:
        return part
    if part.isdigit() and int(part) < len(keypoints):
        return keypoints[int(part)]
    raise ValueError(f'{flag} {token}: {part!r} is neither a keypoint name nor an index below {len(keypoints)} '
                     f'(keypoints: {", ".join(keypoints)})')
