"""Combinators and photometric transforms."""

import numpy as np
import PIL.Image
import pytest
import torch

import openfields.transforms as T


class Tag:
    def __init__(self, name):
        self.name = name

    def __call__(self, image, anns, meta):
        return image, anns, dict(meta, tags=meta.get('tags', ()) + (self.name,))


def test_compose_order_and_none():
    _, _, meta = T.Compose([Tag('a'), None, Tag('b')])(None, [], {})
    assert meta['tags'] == ('a', 'b')


def test_random_apply_frequency():
    torch.manual_seed(0)
    t = T.RandomApply(Tag('x'), 0.3)
    hits = sum('tags' in t(None, [], {})[2] for _ in range(2000))
    assert 0.26 < hits / 2000 < 0.34


def test_random_choice_frequencies():
    torch.manual_seed(0)
    t = T.RandomChoice([Tag('a'), Tag('b')], [0.2, 0.5])
    counts = {'a': 0, 'b': 0, None: 0}
    for _ in range(3000):
        tags = t(None, [], {})[2].get('tags', (None,))
        counts[tags[0]] += 1
    assert abs(counts['a'] / 3000 - 0.2) < 0.03
    assert abs(counts['b'] / 3000 - 0.5) < 0.03
    with pytest.raises(ValueError):
        T.RandomChoice([Tag('a'), Tag('b')], [0.7, 0.5])


def test_to_tensor_and_normalize():
    image = PIL.Image.new('RGB', (5, 3), (255, 0, 124))
    tensor, _, _ = T.ImageToTensor()(image, [], {})
    assert tensor.shape == (3, 3, 5) and tensor.dtype == torch.float32
    assert tensor[0].eq(1.0).all() and tensor[1].eq(0.0).all()
    normalized, _, _ = T.Normalize()(tensor, [], {})
    expected = (torch.tensor([1.0, 0.0, 124 / 255]) - torch.tensor(T.IMAGENET_MEAN)) / torch.tensor(T.IMAGENET_STD)
    torch.testing.assert_close(normalized[:, 0, 0], expected)
    assert tensor[0].eq(1.0).all()  # not modified in place
    # the eval fill colour is (almost) zero after normalisation
    fill, _, _ = T.Compose([T.ImageToTensor(), T.Normalize()])(PIL.Image.new('RGB', (2, 2), T.EVAL_FILL), [], {})
    assert fill.abs().max() < 0.02


def test_photometric_keep_size_and_mode():
    torch.manual_seed(0)
    array = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    image = PIL.Image.fromarray(array)
    for t in [T.Blur(), T.ColorJitter(), T.RandomJpeg(p=1.0), T.RandomGrayscale(p=1.0)]:
        out, anns, meta = t(image, ['ann'], {'m': 1})
        assert out.size == (50, 40) and out.mode == 'RGB' and anns == ['ann'] and meta == {'m': 1}
    gray = np.asarray(T.RandomGrayscale(p=1.0)(image, [], {})[0])
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert T.RandomJpeg(p=0.0)(image, [], {})[0] is image
