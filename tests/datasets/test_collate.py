"""Variable-size batches: one target size per batch within every bound, per-worker sizes, targets encoded
after the resize."""

import itertools

import numpy as np
import PIL.Image
import pytest
import torch

from openfields import encoder, headmeta, transforms
from openfields.datasets.collate import BatchResize, BatchResizeCollate
from openfields.decoder import fields_from_targets

SETTINGS = BatchResize(min_scale=0.4, max_scale=1.3, min_short_side=64, max_short_side=300, max_ratio=2.0,
                       multiple=16, max_shift=10, max_size=480)
SIZES = [(640, 480), (480, 640), (100, 100), (2000, 150), (150, 2000), (40, 30), (3000, 2500), (301, 299)]


def assert_within_bounds(width, height, settings, first_size):
    short, long = min(width, height), max(width, height)
    assert settings.min_short_side <= short <= settings.max_short_side
    assert long <= settings.max_size and long / short <= settings.max_ratio
    assert (width - 1) % settings.multiple == 0 and (height - 1) % settings.multiple == 0
    if settings.to_square:
        assert width == height
    elif first_size[0] != first_size[1]:
        assert (width >= height) == (first_size[0] >= first_size[1])  # orientation of the first image


@pytest.mark.parametrize('to_square', [False, True])
def test_target_sizes_respect_every_bound(to_square):
    settings = BatchResize(**{**SETTINGS.__dict__, 'to_square': to_square})
    for (width, height), scale in itertools.product(SIZES, np.linspace(0.4, 1.3, 7)):
        assert_within_bounds(*settings.target_size(width, height, scale), settings, (width, height))


def test_target_size_follows_the_first_image_times_the_scale():
    assert SETTINGS.target_size(400, 200, 1.0) == (417, 209)  # short 200 up to 13 * 16 + 1, long 2 x 209 down
    assert SETTINGS.target_size(200, 400, 0.5) == (113, 225)  # short 100 up to 113, long 2 x 113 down to 225
    assert SETTINGS.target_size(1000, 800, 1.0) == (353, 289)  # short clamped to 300, down to 289; ratio 1.25


def spot_sample(width, height, points, sigma=2.0):
    """Black image with a Gaussian spot on each point, one annotation with the points as keypoints."""
    yy, xx = np.mgrid[:height, :width]
    gray = np.zeros((height, width))
    for x, y in points:
        gray = np.maximum(gray, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)))
    image = PIL.Image.fromarray(np.repeat(np.rint(255 * gray).astype(np.uint8)[:, :, None], 3, axis=2))
    anns = [{'keypoints': [[x, y, 2] for x, y in points], 'iscrowd': 0}]
    return transforms.NormalizeAnnotations()(image, anns, {'image_id': width * 10000 + height})


class SpotImages(torch.utils.data.Dataset):
    """Images of different sizes with three spots each: ``(PIL image, anns, meta)`` samples."""

    sizes = [(320, 240), (200, 260), (410, 180), (150, 150), (260, 200), (330, 330)]

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, index):
        width, height = self.sizes[index]
        return spot_sample(width, height, [(0.3 * width, 0.3 * height), (0.5 * width, 0.7 * height),
                                           (0.8 * width, 0.4 * height)])


def cif_meta():
    return headmeta.Cif(name='cif', dataset='spots', keypoints=['a', 'b', 'c'], sigmas=[0.05] * 3, base_stride=8)


def collate():
    finish = transforms.Compose([transforms.ImageToTensor(), transforms.Normalize(),
                                 transforms.Encoders([encoder.Cif(cif_meta())])])
    return BatchResizeCollate(BatchResize(min_scale=0.5, max_scale=1.2, min_short_side=64, max_short_side=256,
                                          multiple=8, max_size=400), finish)


def loader(workers, seed=0):
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(SpotImages(), batch_size=2, shuffle=True, num_workers=workers,
                                       collate_fn=collate(), generator=generator)


def test_batches_have_one_size_within_every_bound():
    torch.manual_seed(0)
    settings = collate().settings
    sizes = set()
    for _ in range(3):
        for images, targets, metas in loader(workers=0):
            _, _, height, width = images.shape
            assert_within_bounds(width, height, settings, metas[0]['width_height'])
            assert targets[0].shape[-2:] == ((height - 1) // 8 + 1, (width - 1) // 8 + 1)
            sizes.add((width, height))
    assert len(sizes) >= 4  # a new size per batch


def test_workers_draw_different_sizes_and_runs_repeat():
    def sizes_per_worker(seed):
        batches = [images.shape[-2:] for _ in range(2) for images, _, _ in loader(workers=2, seed=seed)]
        return [tuple(s) for s in batches[0::2]], [tuple(s) for s in batches[1::2]]  # batches alternate workers
    first, second = sizes_per_worker(seed=3)
    assert first != second
    assert sizes_per_worker(seed=3) == (first, second)


def test_targets_are_encoded_after_the_resize_and_point_at_the_spots():
    """Oracle round trip: every positive CIF cell's regressed position is a spot of the resized image."""
    torch.manual_seed(1)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (transforms.IMAGENET_MEAN, transforms.IMAGENET_STD))
    n_checked = 0
    for images, targets, metas in loader(workers=0):
        for image, target, meta in zip(images, targets[0], metas):
            gray = ((image * std + mean).sum(dim=0)).numpy()
            fields = fields_from_targets(cif_meta(), target)  # (K, 5, h, w): log_b, conf, x, y, scale
            for k, (x, y, v) in enumerate(meta['annotations'][0]['keypoints']):
                positive = fields[k, 1] == 1.0
                if v == 0:
                    assert not positive.any()  # pushed out of the batch image: no target
                    continue
                points = 8.0 * np.stack([fields[k, 2][positive], fields[k, 3][positive]], axis=1)
                assert len(points) and np.abs(points - (x, y)).max() < 1e-3
                if 4 <= x < gray.shape[1] - 4 and 4 <= y < gray.shape[0] - 4:
                    assert np.abs(spot_centre(gray, x, y) - (x, y)).max() < 0.3
                    n_checked += 1
    assert n_checked >= 6


def spot_centre(gray, x, y, radius=4):
    i, j = int(round(x)), int(round(y))
    window = gray[j - radius:j + radius + 1, i - radius:i + radius + 1]
    window = window - window.min()
    yy, xx = np.mgrid[j - radius:j + radius + 1, i - radius:i + radius + 1]
    return np.array([(window * xx).sum(), (window * yy).sum()]) / window.sum()


def test_a_batch_of_unreadable_images_is_dropped():
    assert collate()([None, None]) is None
