"""The compiled decoder (openfields/decoder/kernels.py) against the numpy / plain-Python decoder it replaced
(reference_decoder.py): the same accumulated maps and the same poses, bit for bit, on the benchmark's clean,
cluttered and random-network fields and on heavily cluttered ones, with the default, evaluation (force
complete), greedy and uncapped settings."""

import numpy as np
import pytest
from reference_decoder import ReferenceCifCaf

from openfields.decoder import CifCaf, DecoderSettings
from tools import benchmark_decode

SETTINGS = {
    'default': DecoderSettings(),
    'eval': DecoderSettings(force_complete_pose=True, seed_threshold=0.2),
    'greedy': DecoderSettings(greedy=True),
    'no reverse match, uncapped': DecoderSettings(reverse_match=False, max_votes_fraction=0.0),
}


@pytest.fixture(scope='module')
def fields():
    found = {f'{kind} {n}': f for kind, n, _, f in benchmark_decode.scenes([5, 15])}
    _, anns = benchmark_decode.rendered_scene(8, seed=7)
    found['heavy clutter 8'] = benchmark_decode.cluttered_fields(anns, benchmark_decode._metas(),
                                                                 np.random.default_rng(3), clutter_fraction=0.3)
    for field in found['heavy clutter 8']:
        field[:, 1] = np.minimum(field[:, 1] * 2.0, 1.0)  # clutter up to 1: seeds and poses everywhere
    return found


@pytest.mark.parametrize('settings', SETTINGS.values(), ids=SETTINGS.keys())
def test_compiled_decoder_gives_the_reference_poses_bit_for_bit(fields, settings):
    cif_meta, caf_meta = benchmark_decode._metas()
    compiled, reference = CifCaf(cif_meta, caf_meta, settings), ReferenceCifCaf(cif_meta, caf_meta, settings)
    n_poses = 0
    for name, (cif, caf) in fields.items():
        expected, found = reference([cif, caf]), compiled([cif, caf])
        np.testing.assert_array_equal(compiled.cifhr.values(), reference.cifhr.values(), err_msg=name)
        assert len(found) == len(expected), name
        for a, b in zip(found, expected):
            np.testing.assert_array_equal(a.data, b.data, err_msg=name)
            np.testing.assert_array_equal(a.joint_scales, b.joint_scales, err_msg=name)
            assert a.score == b.score, name
        assert compiled.counts == reference.counts, name
        n_poses += len(found)
    assert n_poses > 40  # clean and cluttered scenes decode their people, heavy clutter many more


def test_blend_of_the_growth_equals_the_reference_query():
    from reference_decoder import reference_blend
    from openfields.decoder.caf_scored import Associations
    rng = np.random.default_rng(4)
    source = rng.uniform(0, 60, (300, 2))
    rows = np.column_stack([rng.uniform(0.2, 1, 300), source, source + rng.normal(10, 1, (300, 2)),
                            rng.uniform(2, 8, (300, 2))])
    associations = Associations(rows)
    for x, y, scale in zip(*rng.uniform(0, 60, (2, 500)), rng.uniform(0.1, 10, 500)):
        assert associations.blend(x, y, scale, 2.0) == reference_blend(associations.rows, x, y, scale, 2.0)


def test_dense_connections_give_the_reference_poses():
    from decoder_samples import caf_meta, cif_meta, oracle_fields, people
    sparse = caf_meta()
    dense = caf_meta(skeleton=[(8, 12), (9, 13)], name='caf_dense', sparse_skeleton=sparse.skeleton)
    cif, caf, dense_fields = oracle_fields(people(4, seed=2), [cif_meta(), sparse, dense])
    caf[sparse.skeleton.index((6, 8)), 1] = 0.0  # the dense edges are the only way to the left arms
    for settings in (DecoderSettings(dense_connections=1.0), DecoderSettings(dense_connections=0.5,
                                                                            force_complete_pose=True)):
        found = CifCaf(cif_meta(), sparse, settings, dense)([cif, caf, dense_fields])
        expected = ReferenceCifCaf(cif_meta(), sparse, settings, dense)([cif, caf, dense_fields])
        assert [a.score for a in found] == [a.score for a in expected] and len(found) == 4
        for a, b in zip(found, expected):
            np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.filterwarnings('ignore:invalid value encountered in cast:RuntimeWarning')
def test_votes_at_nan_or_huge_positions_are_ignored():
    from openfields.decoder.cifhr import CifHr
    shape = (2, 30, 40)
    x = np.array([10.0, np.nan, 1e20, -1e20, 20.0, 5.0], np.float32)
    y = np.array([10.0, 5.0, 5.0, 5.0, np.inf, 5.0], np.float32)
    sigma = np.array([2.0, 2.0, 2.0, 2.0, 2.0, np.nan], np.float32)
    field, amplitude = np.array([0, 1, 1, 1, 1, 1]), np.full(6, 0.5, np.float32)
    hr = CifHr().reset(shape).accumulate(field, x, y, sigma, amplitude)
    expected = CifHr().reset(shape).accumulate(field[:1], x[:1], y[:1], sigma[:1], amplitude[:1])
    np.testing.assert_array_equal(hr.values(), expected.values())
    assert hr.values()[0, 10, 10] == 0.5 and not hr.values()[1].any()
