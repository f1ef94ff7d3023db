"""OpenPifPaf 0.13 checkpoints of other layouts than the shared shufflenetv2k16 file: shufflenetv2k30 with COCO cif,
caf and caf25 (dense), resnet50 (--resnet-input-conv2-stride=2 --resnet-block5-dilation=2) with cocodet's cifdet,
resnet18 with cif and caf without upsampling. Such files are 45-130 MB: each is rebuilt here from its layout recorded
with OpenPifPaf 0.13.11 (tests/data/openpifpaf_layouts.json, tools/openpifpaf_layout_reference.py) without OpenPifPaf
(tests/network/openpifpaf_layouts.py), read through openfields' allow-list and compared with the fields OpenPifPaf
computed from its own file (tests/data/openpifpaf_layouts.npz)."""

import shutil
import sys

import numpy as np
import pytest
import torch

import openpifpaf_layouts
from openfields.network import checkpoint, factory, openpifpaf_checkpoint

CASES = list(openpifpaf_layouts.layouts()['cases'])

COCO_SKELETON_EDGES = 19
DENSE_EDGES = 25
OPENPIFPAF_COCO_CATEGORIES = 91  # openpifpaf.plugins.coco.constants.COCO_CATEGORIES: COCO's 91 ids, 80 of them used

# expected conversions (openfields' basenet name and config, (full name, upsample, base stride, fields) per head)
EXPECTED = {
    'shufflenetv2k30_cocokp_dense': (
        {'name': 'shufflenetv2k30', 'config': {'kernel_size': 5}},
        [('cocokp.cif', 2, 16, 17), ('cocokp.caf', 2, 16, COCO_SKELETON_EDGES), ('cocokp.caf25', 2, 16, DENSE_EDGES)]),
    'resnet50_cocodet': (
        {'name': 'resnet50', 'config': {'pool0_stride': 0, 'input_conv_stride': 2, 'input_conv2_stride': 2,
                                        'block5_dilation': 2, 'remove_last_block': False}},
        [('cocodet.cifdet', 2, 16, OPENPIFPAF_COCO_CATEGORIES)]),
    'resnet18_cocokp': (
        {'name': 'resnet18', 'config': {'pool0_stride': 0, 'input_conv_stride': 2, 'input_conv2_stride': 0,
                                        'block5_dilation': 1, 'remove_last_block': False}},
        [('cocokp.cif', 1, 16, 17), ('cocokp.caf', 1, 16, COCO_SKELETON_EDGES)]),
}


@pytest.fixture(scope='module')
def rebuilt(tmp_path_factory):
    """case -> (path of its rebuilt file, the openfields checkpoint converted from it); written once, on first use."""
    folder = tmp_path_factory.mktemp('openpifpaf-layouts')
    cache = {}

    def get(case):
        if case not in cache:
            path = openpifpaf_layouts.write(case, folder / f'{case}.pkl')
            cache[case] = path, checkpoint.load(path)  # the real path: torch.load refuses, the allow-list reads
        return cache[case]

    yield get
    cache.clear()
    shutil.rmtree(folder, ignore_errors=True)  # up to 130 MB a file


def test_the_recorded_cases_are_the_expected_ones():
    assert sorted(CASES) == sorted(EXPECTED)
    assert openpifpaf_layouts.layouts()['versions']['openpifpaf'] == '0.13.11'


@pytest.mark.parametrize('case', CASES)
def test_the_rebuilt_file_names_exactly_the_globals_of_openpifpafs_own_file(rebuilt, case):
    path, _ = rebuilt(case)
    recorded = openpifpaf_layouts.layouts()['cases'][case]
    assert openpifpaf_layouts.pickled_globals(path) == recorded['globals']
    assert any(name.startswith('openpifpaf.network.') for name in recorded['globals'])
    assert not any(name == 'openpifpaf' or name.startswith('openpifpaf.') for name in sys.modules)
    saved = openpifpaf_checkpoint.read(path)  # stand-ins of the allow-list, the recorded tree
    assert len(openpifpaf_checkpoint.flat_state(saved['model'])) == recorded['state_dict_size']


@pytest.mark.parametrize('case', CASES)
def test_the_file_converts_to_the_basenet_and_heads_of_its_layout(rebuilt, case):
    _, saved = rebuilt(case)
    basenet, heads = EXPECTED[case]
    assert saved['model']['basenet']['name'] == basenet['name']
    config = saved['model']['basenet']['config']
    assert {k: config[k] for k in basenet['config']} == basenet['config']
    assert not any(v for k, v in config.items() if k not in basenet['config'])  # freeze flags: off
    assert saved['model']['batchnorm'] == {'eps': 1e-3, 'momentum': 0.01}
    assert saved['epoch'] == openpifpaf_layouts.layouts()['cases'][case]['epoch']
    assert saved['meta']['openpifpaf']['version'] == '0.13.11'
    metas = checkpoint.head_metas(saved)
    assert [(m.full_name, m.upsample_stride, m.base_stride, m.n_fields) for m in metas] == heads
    by_name = {m.name: m for m in metas}
    if 'caf25' in by_name:
        dense, caf = by_name['caf25'], by_name['caf']
        assert len(dense.skeleton) == DENSE_EDGES and dense.sparse_skeleton is not None
        assert [tuple(e) for e in dense.sparse_skeleton] == [tuple(e) for e in caf.skeleton]
        assert dense.only_in_field_of_view and dense.dense_to_sparse_radius == 2.0
        assert caf.sparse_skeleton is None and not caf.only_in_field_of_view
    if 'cifdet' in by_name:
        categories = by_name['cifdet'].categories
        head = openpifpaf_layouts.layouts()['cases'][case]['tree']['children']['head_nets']['children']['0']
        assert categories == dict(head['attributes']['meta']['state']['dict'])['categories']  # OpenPifPaf's
        assert len(categories) == OPENPIFPAF_COCO_CATEGORIES and categories[0] == 'person'
    for meta in metas:
        if meta.name in ('cif', 'caf', 'caf25'):
            assert meta.hflip and meta.hflip['left_eye'] == 'right_eye'


@pytest.mark.parametrize('case', CASES)
def test_the_converted_model_gives_openpifpafs_fields(rebuilt, case):
    """Eval mode, float64, on the recorded input: OpenPifPaf's fields of its own file (float32 weights run in
    float64 by both)."""
    _, saved = rebuilt(case)
    reference = openpifpaf_layouts.fields()
    image = torch.from_numpy(reference['input']).double()
    assert torch.equal(image, openpifpaf_layouts.input_image().double())
    model = factory.from_checkpoint(saved).eval().double()
    with torch.inference_mode():
        outputs = model(image)
    heads = openpifpaf_layouts.layouts()['cases'][case]['heads']
    assert len(outputs) == len(heads)
    for head, output in zip(heads, outputs):
        ours, theirs = output[0].numpy(), reference[f'{case}.{head["name"]}']
        assert list(ours.shape) == head['shape'] == list(theirs.shape), head['name']
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12, err_msg=head['name'])
        assert np.abs(theirs).max() > 1.0 and np.ptp(theirs[:, 1]) > 0.1  # not trivial: confidences vary
