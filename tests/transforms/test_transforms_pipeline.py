"""The assembled train / eval pipelines and the Encoders step."""


import numpy as np
import torch

import openfields.transforms as T
from transforms_samples import HFLIP, KEYPOINTS, coco_sample


class DummyEncoder:
    """Returns a field-sized tensor filled with the number of non-crowd annotations."""

    def __init__(self, stride=8):
        self.stride = stride

    def __call__(self, image, anns, meta):
        _, h, w = image.shape
        n = sum(1 for a in anns if not a['iscrowd'])
        return torch.full((1, (h - 1) // self.stride + 1, (w - 1) // self.stride + 1), float(n))


def full_train(**kwargs):
    return T.train_pipeline(385, keypoints=KEYPOINTS, hflip=HFLIP, blur=0.5, orientation_invariant=0.3, **kwargs)


def test_train_pipeline_shape_and_normalisation():
    torch.manual_seed(0)
    pipeline = full_train()
    for _ in range(3):
        image, anns, meta = pipeline(*coco_sample())
        assert image.shape == (3, 385, 385) and image.dtype == torch.float32
        assert -2.2 < image.min() and image.max() < 2.7  # ImageNet-normalised range
        assert all(a['keypoints'].shape == (5, 3) for a in anns)
        x, y, w, h = meta['valid_area']
        assert x >= 0 and y >= 0 and x + w <= 385 and y + h <= 385


def test_train_pipeline_reproducible():
    pipeline = full_train()
    outputs = []
    for _ in range(2):
        torch.manual_seed(42)
        outputs.append([pipeline(*coco_sample()) for _ in range(3)])
    for (i1, a1, m1), (i2, a2, m2) in zip(*outputs):
        assert torch.equal(i1, i2)
        for x, y in zip(a1, a2):
            np.testing.assert_array_equal(x['keypoints'], y['keypoints'])
        np.testing.assert_array_equal(m1['offset'], m2['offset'])
    torch.manual_seed(43)
    assert not torch.equal(pipeline(*coco_sample())[0], outputs[0][0][0])


def test_train_pipeline_with_encoders():
    torch.manual_seed(0)
    pipeline = T.train_pipeline(385, encoders=[DummyEncoder(), DummyEncoder(stride=16)])
    image, targets, meta = pipeline(*coco_sample())
    assert meta['head_indices'] == [0, 1]  # the encoders' positions: their metas' in the dataset's list
    assert targets[0].shape == (1, 49, 49) and targets[1].shape == (1, 25, 25)
    assert len(meta['annotations']) == 4


def test_train_pipeline_switches():
    plain = T.train_pipeline(385, keypoints=KEYPOINTS, hflip=HFLIP, hflip_probability=0.0, upright_rotation=0.0,
                             color_jitter=False, jpeg=0.0, grayscale=0.0)
    names = [type(t).__name__ for t in plain.transforms]
    assert names == ['NormalizeAnnotations', 'RescaleRelative', 'Crop', 'CenterPad', 'ImageToTensor', 'Normalize']
    full = full_train(extended_scale=True, rescale_images=0.5)
    names = [type(t).__name__ for t in full.transforms]
    assert names[:6] == ['NormalizeAnnotations', 'RandomApply', 'RescaleRelative', 'RandomApply', 'RandomChoice',
                         'Crop']
    assert full.transforms[2].scale_range == (0.125, 1.0)
    no_aug = T.train_pipeline(385, augmentation=False)
    assert [type(t).__name__ for t in no_aug.transforms] == [
        'NormalizeAnnotations', 'RescaleAbsolute', 'CenterPad', 'ImageToTensor', 'Normalize']


def test_eval_pipeline_deterministic():
    pipeline = T.eval_pipeline(385)
    torch.manual_seed(0)
    i1, a1, m1 = pipeline(*coco_sample())
    torch.manual_seed(1)
    i2, a2, m2 = pipeline(*coco_sample())
    assert i1.shape == (3, 385, 385) and torch.equal(i1, i2)
    np.testing.assert_array_equal(a1[0]['keypoints'], a2[0]['keypoints'])
    np.testing.assert_allclose(m1['valid_area'], [0, 64, 385, 257])
    tight, _, _ = T.eval_pipeline(385, pad='tight', multiple=16)(*coco_sample())
    assert tight.shape == (3, 257, 385)
