"""``dlc``: a DeepLabCut project folder as a dataset (``--dlc-project PATH``).

The project's labels become an in-memory COCO keypoint dict (one category, the project's body parts), so
training and evaluation run through the core keypoint module (as ``cocokp``): transforms, encoders, the COCO metric.
Body parts and skeleton come from ``config.yaml`` (an empty skeleton becomes the spanning tree of body
parts that are usually close together, logged); frames are split into train and test as DeepLabCut split
shuffle ``--dlc-shuffle`` at ``--dlc-train-fraction`` (when the project holds that split; else openfields' own
split seeded by the shuffle number, :mod:`.split`) and the split is written next to the checkpoint
(``write_run_files``), where evaluation finds it (``use_run_files``). Validation during training uses the test frames.

Evaluation covers the train and the test frames: pixel error (DeepLabCut's "RMSE"), the same above
``--dlc-pcutoff``, PCK at ``--dlc-pck-radius`` pixels (:class:`openfields.metric.KeypointError`), and COCO OKS
AP of the test frames with ``--dlc-oks-sigma`` for every keypoint (:class:`openfields.metric.Coco`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import numpy as np
import torch

from openfields import transforms
from openfields.datasets import LoaderSettings
from openfields.datasets.coco import CocoKeypoints, DatasetError, KeypointCategory
from openfields.datasets.collate import collate_images_anns_meta, collate_images_targets_meta
from openfields.datasets.skeleton import spanning_tree_skeleton
from openfields.datasets.augmentation import Augmentation
from openfields.datasets.evaluation import EvalSettings
from openfields.datasets.keypoint_module import KeypointDataModule, as_loaded

from . import project
from .split import Split, find_split_file, project_split, read_split, split_path, write_split

LOG = logging.getLogger(__name__)

DEFAULT_TRAIN_FRACTION = 0.95  # DeepLabCut's default when config.yaml has no TrainingFraction
# Keypoint size relative to the animal (COCO's sigma convention) for the training targets. COCO-format
# categories without sigmas get 0.05, but the only animal size a DeepLabCut project gives is the box of the
# labelled keypoints, much smaller than a person's segmentation area: with 0.05 a mouse's keypoints are about
# 2 px wide, less than a field cell, and a 10-minute run on the openfield example decoded no pose at all;
# 0.2 (measured in docs/dlc.md) gives confident fields.
DEFAULT_SIGMA = 0.2


@dataclasses.dataclass(frozen=True)
class DlcEvalSettings:
    """DeepLabCut-style evaluation: confidence cutoff, PCK radius (pixels) and the OKS sigma."""

    pcutoff: float = project.DEFAULT_PCUTOFF
    pck_radius: float = 5.0
    oks_sigma: float = 0.1

    @staticmethod
    def cli(group, prefix: str):
        group.add_argument(f'--{prefix}-pcutoff', type=float, default=None,
                           help='confidence cutoff of the *_pixel_error_pcutoff metrics (DeepLabCut\'s '
                                'rmse_pcutoff; default: config.yaml pcutoff, else 0.6)')
        group.add_argument(f'--{prefix}-pck-radius', type=float, default=5.0,
                           help='PCK counts keypoints predicted within this many pixels')
        group.add_argument(f'--{prefix}-oks-sigma', type=float, default=0.1,
                           help='OKS sigma of every keypoint for COCO AP (DeepLabCut\'s default 0.1)')

    @classmethod
    def from_args(cls, args, prefix: str, config_pcutoff: float) -> 'DlcEvalSettings':
        get = lambda name: getattr(args, f'{prefix}_{name}')  # noqa: E731
        pcutoff = config_pcutoff if get('pcutoff') is None else get('pcutoff')
        if not 0.0 <= pcutoff <= 1.0:
            raise ValueError(f'--{prefix}-pcutoff must be in [0, 1], got {pcutoff}')
        for name in ('pck_radius', 'oks_sigma'):
            if not get(name) > 0:
                raise ValueError(f'--{prefix}-{name.replace("_", "-")} must be positive, got {get(name)}')
        return cls(pcutoff=pcutoff, pck_radius=get('pck_radius'), oks_sigma=get('oks_sigma'))


def default_skeleton(config: project.ProjectConfig, frames: list[project.Frame]) -> list[tuple[int, int]]:
    """For a config.yaml without skeleton: the spanning tree of body parts usually close together."""
    instances = [f.keypoints for f in frames]
    skeleton = spanning_tree_skeleton(np.concatenate(instances) if instances else
                                      np.zeros((0, len(config.bodyparts), 3)))
    LOG.info('%s: "skeleton" is empty; connecting body parts that are usually close together: %s',
             config.config_path, ', '.join(f'{config.bodyparts[a - 1]}-{config.bodyparts[b - 1]}'
                                           for a, b in skeleton))
    return skeleton


class Dlc(KeypointDataModule):
    """A DeepLabCut project: CIF + CAF heads of its body parts."""

    name = 'dlc'
    default_square_edge = 385
    drawn_boxes = False  # project frames have keypoints only; the json's bbox is their tight extent

    def __init__(self, *, config: project.ProjectConfig, frames: list[project.Frame], data_split: Split,
                 evaluation: DlcEvalSettings = DlcEvalSettings(), sigma: float = DEFAULT_SIGMA, **kwargs):
        """``kwargs``: those of :class:`KeypointDataModule` but the category (the project's body parts)."""
        if len(config.bodyparts) < 2:
            raise DatasetError(f'{config.config_path}: openfields needs at least two body parts '
                               f'(they are connected by the association field), found {config.bodyparts}')
        self.config = config
        self.frames = frames
        self.split = data_split
        self.evaluation = evaluation
        self.image_ids = {frame.path: i for i, frame in enumerate(frames, start=1)}
        self.coco = project.coco_dict(config, frames, self.image_ids)
        category = KeypointCategory(id=1, name=config.task, keypoints=list(config.bodyparts),
                                    skeleton=config.skeleton or default_skeleton(config, frames),
                                    sigmas=[sigma] * len(config.bodyparts))
        super().__init__(category=category, **kwargs)

    # --- flags ------------------------------------------------------------------------------------------

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(f'dataset {cls.name} (DeepLabCut project)')
        prefix = cls.name
        group.add_argument(f'--{prefix}-project', default=None,
                           help='DeepLabCut project folder (the one holding config.yaml)')
        group.add_argument(f'--{prefix}-train-fraction', type=float, default=None,
                           help='fraction of the labelled frames used for training (default: config.yaml '
                                f'TrainingFraction[0], else {DEFAULT_TRAIN_FRACTION})')
        group.add_argument(f'--{prefix}-shuffle', type=int, default=1,
                           help='the DeepLabCut shuffle whose train/test split is read from the project\'s '
                                'training-datasets folder; the seed of openfields\' own split when the project '
                                'has none for it')
        group.add_argument(f'--{prefix}-sigma', type=float, default=DEFAULT_SIGMA,
                           help='keypoint size relative to the animal\'s size (sqrt of the area of the box around '
                                'its labelled keypoints) for the training targets, as COCO\'s OKS sigmas')
        DlcEvalSettings.cli(group, prefix)
        Augmentation.cli(group, prefix, cls.default_square_edge)
        cls.head_cli(group)
        EvalSettings.cli(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, base_stride: int) -> 'Dlc':
        get = lambda name: getattr(args, f'{cls.name}_{name}')  # noqa: E731
        if get('project') is None:
            raise ValueError(f'--dataset {cls.name} needs {cls.flag("project")} PATH '
                             '(the DeepLabCut project folder holding config.yaml)')
        if not get('sigma') > 0:
            raise ValueError(f'{cls.flag("sigma")} must be positive, got {get("sigma")}')
        config = project.load_config(project.project_root(get('project')))
        evaluation = DlcEvalSettings.from_args(args, cls.name, config.pcutoff)
        common = cls.common_kwargs(args, base_stride)
        frames = project.load_frames(config)
        fraction = get('train_fraction')
        if fraction is None:
            fraction = config.training_fraction or DEFAULT_TRAIN_FRACTION
        data_split = project_split(config, frames, fraction, get('shuffle'))
        return cls(config=config, frames=frames, data_split=data_split, sigma=get('sigma'), evaluation=evaluation,
                   **common)

    def describe(self) -> dict:
        return {'project': str(self.config.root), 'keypoints': self.category.keypoints,
                'sigmas': self.head_metas[0].sigmas, 'skeleton': self.category.skeleton,
                'multi_animal': self.config.multi_animal,
                'train_fraction': self.split.train_fraction, 'shuffle': self.split.shuffle,
                'train_frames': len(self.split.train), 'test_frames': len(self.split.test)}

    # --- the split next to the checkpoint ---------------------------------------------------------------

    def write_run_files(self, checkpoint_path) -> None:
        path = split_path(checkpoint_path)
        write_split(path, self.split, self.config.root)
        LOG.info('%s: wrote the split (%d train, %d test frames) to %s', self.name, len(self.split.train),
                 len(self.split.test), path)

    def use_run_files(self, checkpoint_path) -> None:
        path = find_split_file(checkpoint_path)
        if path is None:
            LOG.warning('%s: no split file next to %s; using the split of --dlc-train-fraction %s '
                        '--dlc-shuffle %d', self.name, checkpoint_path, self.split.train_fraction,
                        self.split.shuffle)
            return
        self.split = read_split(path, set(self.image_ids))
        LOG.info('%s: evaluating with the training run\'s split %s (%d train, %d test frames)', self.name,
                 path, len(self.split.train), len(self.split.test))

    # --- loaders ----------------------------------------------------------------------------------------

    def _frames_dataset(self, paths, preprocess, min_kp_anns: int = 1) -> CocoKeypoints:
        ids = {self.image_ids[p] for p in paths}
        data = {'images': [i for i in self.coco['images'] if i['id'] in ids],
                'annotations': [a for a in self.coco['annotations'] if a['image_id'] in ids],
                'categories': self.coco['categories']}
        return CocoKeypoints(data, self.config.config_path, self.config.root, self.category, preprocess,
                             dataset_name=self.name, min_kp_anns=min_kp_anns, image_dir_flag=self.flag('project'))

    def raw_dataset(self, split: str) -> CocoKeypoints:
        """``'train'``: the training frames (those with a labelled animal); ``'val'``: every test frame; as read."""
        if split == 'train':
            return self._frames_dataset(self.split.train, as_loaded)
        if split == 'val':
            return self._frames_dataset(self.split.test, as_loaded, min_kp_anns=0)
        raise ValueError(f'--dataset {self.name}: no split {split!r} (train, val)')

    def train_loader(self, loader: LoaderSettings):
        batch_resize = self.augmentation.batch_resize is not None  # the collate function sizes each batch
        dataset = self._frames_dataset(self.split.train, self._preprocess(batch_resize))
        if len(dataset) < loader.batch_size:
            raise ValueError(f'{self.flag("project")}: {len(dataset)} training frames, fewer than '
                             f'--batch-size {loader.batch_size} (full batches only)')
        collate = self.augmentation.train_collate(self._encoders(), self.head_metas[0].base_stride, self.name)
        return self._loader(dataset, loader, shuffle=True, collate_fn=collate)

    def val_loader(self, loader: LoaderSettings):
        """The test frames, augmented as in training (a validation loss); the last batch may be smaller:
        DeepLabCut's test sets are often smaller than a batch."""
        dataset = self._frames_dataset(self.split.test, self._preprocess())
        return torch.utils.data.DataLoader(
            dataset, batch_size=loader.batch_size, shuffle=False, num_workers=loader.workers,
            pin_memory=loader.pin_memory, drop_last=False, collate_fn=collate_images_targets_meta)

    def eval_loader(self, loader: LoaderSettings, long_edge: int | None = -1):
        """Test frames, then train frames, without augmentation: ``(images, annotations, metas)`` batches.
        ``long_edge=-1`` takes ``--coco-eval-long-edge``."""
        long_edge = self.eval_settings.long_edge if long_edge == -1 else long_edge
        pad = 'tight' if loader.batch_size == 1 else 'center'
        if pad == 'center' and long_edge is None:
            raise ValueError('batches of several evaluation images need --coco-eval-long-edge (or --long-edge)')
        datasets = [self._frames_dataset(paths, transforms.eval_pipeline(long_edge, pad=pad, multiple=16),
                                         min_kp_anns=1 if self.eval_settings.annotation_filter else 0)
                    for paths in (self.split.test, self.split.train)]
        return torch.utils.data.DataLoader(
            torch.utils.data.ConcatDataset(datasets), batch_size=loader.batch_size, shuffle=False,
            num_workers=loader.workers, pin_memory=loader.pin_memory, collate_fn=collate_images_anns_meta)

    # --- evaluation -------------------------------------------------------------------------------------

    def decoder_names(self) -> list[str] | None:
        """Single-animal projects: each body part at its map's peak (``cifmax``), DeepLabCut's read-out;
        no body part can be lost to a weak connection or a second, fragmentary pose."""
        if self.config.multi_animal or self.heads.family != 'cif':
            return None  # a heatmap head has one decoder, the same read-out (``heatmap``)
        return ['cifmax']

    def metrics(self) -> list:
        """Pixel error / PCK of test and train frames, and OKS AP of the test frames."""
        from openfields.metric import Coco, KeypointError
        cif = self.head_metas[0]
        test_ids = [self.image_ids[p] for p in self.split.test]
        ground_truth = {self.image_ids[f.path]: f.keypoints for f in self.frames}
        e = self.evaluation
        return [
            KeypointError(ground_truth, {'test': test_ids, 'train': [self.image_ids[p] for p in self.split.train]},
                          keypoint_names=cif.keypoints, pcutoff=e.pcutoff, pck_radius=e.pck_radius,
                          multi_animal=self.config.multi_animal, match_sigma=e.oks_sigma),
            Coco(self.coco, iou_type='keypoints', category_id=1, sigmas=[e.oks_sigma] * len(cif.keypoints),
                 keypoint_names=cif.keypoints, image_ids=test_ids),
        ]
