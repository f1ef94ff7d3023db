"""Each transform key of a DeepLabCut ``pytorch_config.yaml`` changes what the training pipeline does: the
crop's shape, the padding, the batch sizes of ResizeFromListCollate, the keypoints a flip swaps."""

import pathlib

import numpy as np
import PIL.Image
import pytest
import torch

import openfields.transforms as T
from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.datasets.augmentation import Augmentation
from openfields.datasets.collate import BatchResize, BatchResizeCollate

yaml = pytest.importorskip('yaml')

BODYPARTS = ['snout', 'leftear', 'rightear', 'tailbase']
DLC_PROJECT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'


def translated(tmp_path, train_section: dict):
    path = tmp_path / 'pytorch_config.yaml'
    path.write_text(yaml.safe_dump({'data': {'train': train_section}}))
    return train.cli(['--config', str(path)])


def augmentation(tmp_path, train_section: dict) -> Augmentation:
    return Augmentation.from_args(translated(tmp_path, train_section), 'dlc')


def sample(width: int, height: int, points=((10.0, 12.0), (20.0, 12.0), (30.0, 12.0), (40.0, 30.0))):
    pixels = (np.arange(width * height * 3) % 251).astype(np.uint8).reshape(height, width, 3)
    keypoints = np.array([[x, y, 2.0] for x, y in points], dtype=np.float32)
    ann = {'keypoints': keypoints, 'bbox': np.array([0, 0, width, height], dtype=np.float32), 'iscrowd': 0}
    return T.NormalizeAnnotations()(PIL.Image.fromarray(pixels), [ann], {})


def test_a_rectangular_crop_sampling_gives_rectangular_training_inputs(tmp_path):
    extras = augmentation(tmp_path, {'crop_sampling': {'width': 256, 'height': 128, 'method': 'uniform'}}).extras
    pipeline = T.train_pipeline(385, upright_rotation=0.0, color_jitter=False, jpeg=0.0, grayscale=0.0,
                                extras=extras)
    torch.manual_seed(0)
    for size in ((640, 480), (200, 90)):  # larger: cropped; smaller: padded to the crop
        image, _, _ = pipeline(*sample(*size))
        assert tuple(image.shape) == (3, 129, 257)


def test_auto_padding_with_divisors_minimum_sizes_and_a_mirrored_border(tmp_path):
    extras = augmentation(tmp_path, {'auto_padding': {'pad_width_divisor': 32, 'pad_height_divisor': 16,
                                                      'min_width': 100, 'min_height': 50,
                                                      'border_mode': 'reflect_101'}}).extras
    torch.manual_seed(0)
    left = top = 0
    while left < 2 or top < 2:  # the image lands at a random place; look at one with a border on both sides
        image, anns, meta = extras.padding_step()(*sample(70, 40))
        assert image.size == (129, 65)  # at least 100 x 50, then k * 32 + 1 by k * 16 + 1
        left, top = (-meta['offset']).astype(int)
    pixels, original = np.asarray(image).astype(int), np.asarray(sample(70, 40)[0]).astype(int)
    np.testing.assert_array_equal(pixels[top:top + 40, left:left + 70], original)
    # reflect_101: the column left of the image mirrors the image's second column, not its edge
    np.testing.assert_array_equal(pixels[top:top + 40, left - 1], original[:, 1])
    np.testing.assert_allclose(anns[0]['keypoints'][0, :2], [10 + left, 12 + top])


def test_constant_border_is_the_default(tmp_path):
    extras = augmentation(tmp_path, {'auto_padding': {'min_height': 64, 'min_width': 64}}).extras
    assert extras.auto_padding_border == 'constant' and extras.auto_padding_min == (64, 64)
    image, _, _ = T.PadToMultiple(0, fill=(0, 0, 0), min_size=(64, 64))(*sample(40, 40))
    assert image.size == (64, 64)


def test_resize_from_list_collate_draws_each_batch_size_from_the_list(tmp_path):
    settings = augmentation(tmp_path, {'collate': {'type': 'ResizeFromListCollate',
                                                   'scales': [64, [48, 96]]}}).batch_resize
    assert settings.sizes == ((64, 64), (96, 48))
    collate = BatchResizeCollate(settings.with_multiple(16), T.Compose([T.ImageToTensor(), T.Normalize(), T.Encoders([])]))
    torch.manual_seed(0)
    shapes = set()
    for _ in range(12):
        images, _, _ = collate([sample(120, 80), sample(90, 100)])
        shapes.add(tuple(images.shape[2:]))
    assert shapes == {(65, 65), (49, 97)}  # sides rounded up to k * 16 + 1; [h, w] is h rows, w columns


def test_collate_sizes_and_scale_together_are_refused(tmp_path):
    args = translated(tmp_path, {'collate': {'type': 'ResizeFromListCollate', 'scales': [64]}})
    args.dlc_collate_scale = [0.5, 1.0]
    with pytest.raises(ValueError, match='--dlc-collate-scale and --dlc-collate-sizes'):
        BatchResize.from_args(args, 'dlc')


def test_hflip_symmetries_swap_exactly_the_listed_pairs(tmp_path):
    # snout <-> tailbase: not the left/right pair a name would give, and the ears stay where they are
    a = augmentation(tmp_path, {'hflip': {'p': 1.0, 'symmetries': [[0, 3]]}})
    flip_map = a.flip_map(BODYPARTS, '--dlc-hflip-pairs')
    assert flip_map == {'snout': 'tailbase', 'tailbase': 'snout'}
    image, anns, _ = T.HFlip(BODYPARTS, flip_map)(*sample(50, 40))
    xs = anns[0]['keypoints'][:, 0].tolist()
    assert xs == [49 - 40.0, 49 - 20.0, 49 - 30.0, 49 - 10.0]  # rows 0 and 3 swapped, 1 and 2 not


def test_hflip_pairs_name_a_missing_keypoint_in_one_line(tmp_path):
    a = augmentation(tmp_path, {'hflip': {'symmetries': [[0, 9]]}})
    with pytest.raises(ValueError, match=r'--dlc-hflip-pairs 0:9: \'9\' is neither a keypoint name'):
        a.flip_map(BODYPARTS, '--dlc-hflip-pairs')


needs_project = pytest.mark.skipif(not (DLC_PROJECT / 'config.yaml').is_file(),
                                   reason=f'no DeepLabCut project at {DLC_PROJECT}')


@needs_project
def test_hflip_symmetries_become_the_heads_flip_map(tmp_path):
    args = translated(tmp_path, {'hflip': {'p': 0.5, 'symmetries': [[0, 3]]}})
    args.dlc_project = str(DLC_PROJECT)
    dlc = datasets_factory.datamodule_from_args(args, base_stride=16)
    assert dlc.head_metas[0].hflip == {'snout': 'tailbase', 'tailbase': 'snout'}
    assert dlc.head_metas[0].flip_permutation() == [3, 1, 2, 0]


@needs_project
def test_a_dlc_project_trains_on_batches_of_the_listed_sizes(tmp_path):
    args = translated(tmp_path, {'collate': {'type': 'ResizeFromListCollate', 'scales': [[48, 80]]}})
    args.dlc_project, args.batch_size, args.loader_workers = str(DLC_PROJECT), 2, 0
    dlc = datasets_factory.datamodule_from_args(args, base_stride=16)
    loader = dlc.train_loader(datasets_factory.loader_settings_from_args(args, pin_memory=False))
    images, targets, _ = next(iter(loader))
    assert tuple(images.shape) == (2, 3, 49, 81)
    assert tuple(targets[0].shape[-2:]) == (4, 6)  # the fields of a 49 x 81 input at stride 16
