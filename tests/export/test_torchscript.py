"""``python -m openfields.export_torchscript``: traced, any size, fields within 1e-4 of torch, metadata."""

import numpy as np
import pytest
import torch

from model_files import head_metas
from openfields.export import metadata, torchscript
from openfields.network import checkpoint, factory


@pytest.mark.parametrize('shape', [(1, 3, 65, 81), (2, 3, 129, 97)])
def test_every_field_matches_torch_within_1e_4_at_sizes_other_than_the_traced_one(tiny_checkpoint,
                                                                                  tiny_torchscript, shape):
    images = torch.from_numpy(np.random.default_rng(1).normal(size=shape).astype(np.float32))
    model = factory.from_checkpoint(checkpoint.load(tiny_checkpoint)).eval()
    module, _ = torchscript.load(str(tiny_torchscript))
    with torch.inference_mode():
        for ref, out in zip(model(images), module(images)):
            assert out.shape == ref.shape and (ref - out).abs().max() < 1e-4


def test_the_head_metas_travel_in_the_extra_files(tiny_torchscript):
    _, text = torchscript.load(str(tiny_torchscript))
    described = metadata.from_json(text, tiny_torchscript)
    assert [m.to_dict() for m in metadata.head_metas(described)] == [m.to_dict() for m in head_metas()]
    assert described['source'] == 'tiny.pkl' and described['epoch'] == 3
