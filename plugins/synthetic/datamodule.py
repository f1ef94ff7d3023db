"""``synthetic``: the embedded default dataset.

Multi-person images are rendered procedurally (``render.py``) once per configuration into a cache folder
as a COCO-format json plus PNG images, and then read through the core's COCO keypoint module (as ``cocokp``).
"""

import argparse
import os
import pathlib

from openfields.datasets.augmentation import Augmentation
from openfields.datasets.evaluation import EvalSettings
from openfields.datasets.keypoint_module import CocoKeypointModule

from . import render


def default_cache_dir() -> pathlib.Path:
    base = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
    return pathlib.Path(base) / 'openfields' / 'synthetic'


class Synthetic(CocoKeypointModule):
    """Rendered stick-figure people with COCO's 17 keypoints and skeleton."""

    name = 'synthetic'
    default_square_edge = 161

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(f'dataset {cls.name}')
        prefix = cls.name
        group.add_argument(f'--{prefix}-seed', type=int, default=0,
                           help='seed of the rendered images (the same seed gives the same images)')
        group.add_argument(f'--{prefix}-train-images', type=int, default=512)
        group.add_argument(f'--{prefix}-val-images', type=int, default=64)
        group.add_argument(f'--{prefix}-image-size', type=int, default=193,
                           help='width and height of the rendered images in pixels')
        defaults = render.SyntheticConfig()
        group.add_argument(f'--{prefix}-people', type=int, nargs=2, metavar=('MIN', 'MAX'),
                           default=[defaults.min_people, defaults.max_people],
                           help='number of people per image (uniform in [MIN, MAX])')
        group.add_argument(f'--{prefix}-heights', type=float, nargs=2, metavar=('MIN', 'MAX'),
                           default=[defaults.min_height_fraction, defaults.max_height_fraction],
                           help='person heights as fractions of the image height (log-uniform)')
        group.add_argument(f'--{prefix}-max-rotation', type=float, default=None, metavar='DEGREES',
                           help='rotate people uniformly within +-DEGREES (default: mostly upright, '
                                'sometimes tilted, lying or upside down)')
        group.add_argument(f'--{prefix}-crowd-probability', type=float, default=defaults.crowd_probability,
                           help='probability of a crowd (small people under one iscrowd box) per image')
        group.add_argument(f'--{prefix}-occlusion-probability', type=float,
                           default=defaults.occlusion_probability,
                           help='probability of a rectangle occluding part of a person per image')
        group.add_argument(f'--{prefix}-cache-dir', default=None,
                           help='where rendered sets are kept (default: $XDG_CACHE_HOME/openfields/synthetic, '
                                '~/.cache/openfields/synthetic without it)')
        Augmentation.cli(group, prefix, cls.default_square_edge)
        cls.head_cli(group)
        EvalSettings.cli(parser)

    @classmethod
    def render_config(cls, args: argparse.Namespace, n_images: int) -> render.SyntheticConfig:
        """The renderer's configuration from the flags; a bad value names its flag."""
        get = lambda name: getattr(args, f'{cls.name}_{name}')  # noqa: E731
        try:
            return render.SyntheticConfig(
                seed=get('seed'), n_images=n_images, width=get('image_size'), height=get('image_size'),
                min_people=get('people')[0], max_people=get('people')[1],
                min_height_fraction=get('heights')[0], max_height_fraction=get('heights')[1],
                max_rotation=get('max_rotation'), crowd_probability=get('crowd_probability'),
                occlusion_probability=get('occlusion_probability'))
        except ValueError as error:
            raise ValueError(f'--{cls.name}-people / -heights / -max-rotation / -crowd-probability / '
                             f'-occlusion-probability: {error}') from None

    @classmethod
    def from_args(cls, args: argparse.Namespace, base_stride: int) -> 'Synthetic':
        get = lambda name: getattr(args, f'{cls.name}_{name}')  # noqa: E731
        for name in ('train_images', 'val_images', 'image_size'):
            if get(name) < 1:
                raise ValueError(f'--{cls.name}-{name.replace("_", "-")} must be positive, got {get(name)}')
        cache_dir = pathlib.Path(get('cache_dir') or default_cache_dir())
        paths = {}
        for split in ('train', 'val'):
            config = cls.render_config(args, get(f'{split}_images'))
            root = cache_dir / render.dataset_key(config)
            annotations = render.write_dataset(root, config, split)
            paths[split] = (annotations, annotations.parent / 'images')
        return cls(train_annotations=paths['train'][0], train_image_dir=paths['train'][1],
                   val_annotations=paths['val'][0], val_image_dir=paths['val'][1],
                   **cls.common_kwargs(args, base_stride))
