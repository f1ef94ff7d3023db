"""CIF encoder targets (K, 5, h, w) = [confidence, dx, dy, b_min, scale], and the encoder factory."""

import argparse

import numpy as np
import PIL.Image
import pytest
import torch

from openfields import encoder, headmeta
from encoder_samples import cif_meta, caf_meta, person, box, sample_meta


IMAGE = torch.zeros(3, 385, 385)


def positives(field):
    """Positive cells of a ``(C, h, w)`` field: x, y indices ``(P, 2)`` and recovered positions ``(P, 2)``."""
    y, x = np.nonzero(field[0] == 1)
    cells = np.stack([x, y], axis=1).astype(np.float64)
    return cells, cells + np.stack([field[1, y, x], field[2, y, x]], axis=1)


def test_output_shapes():
    for base_stride, size in ((16, 25), (8, 49)):
        targets = encoder.Cif(cif_meta(base_stride))(IMAGE, [person(190, 370, 300)], sample_meta())
        assert targets.shape == (17, 5, size, size) and targets.dtype == torch.float32
    pil = PIL.Image.new('RGB', (385, 241))
    assert encoder.Cif(cif_meta(16))(pil, [], sample_meta(385, 241)).shape == (17, 5, 16, 25)


def test_oracle_round_trip_recovers_every_visible_keypoint():
    rng = np.random.default_rng(1)
    anns = [person(70, 200, 180), person(200, 300, 250), person(330, 390, 140)]  # last one: feet outside
    for ann in anns:
        ann['keypoints'][:, :2] += rng.uniform(-3, 3, size=(17, 2))
        ann['keypoints'][rng.choice(17, 4, replace=False), 2] = 0
    targets = encoder.Cif(cif_meta())(IMAGE, anns, sample_meta()).numpy()
    keypoints = np.stack([ann['keypoints'] for ann in anns])
    for k in range(17):
        visible = keypoints[:, k, 2] > 0
        truth = keypoints[visible, k, :2] / 8  # field units
        _, recovered = positives(targets[k])
        error = np.linalg.norm(recovered[:, None] - truth[None], axis=-1)  # (P, people)
        assert (error.min(axis=1) < 1e-5).all()
        inside = ((truth >= 0) & (truth <= 48)).all(axis=1)
        assert (error[:, inside] < 1e-5).any(axis=0).all()
        positive = targets[k, 0] == 1
        assert np.allclose(targets[k, 3][positive], 0.1 / 8)
        assert np.isnan(targets[k, 1:][:, ~positive]).all()  # regression only on positive cells


def test_patch_is_side_length_square_around_the_keypoint():
    ann = person(200, 300, 200)
    ann['keypoints'][:, 2] = 0
    ann['keypoints'][0] = [8 * 20.3, 8 * 10.8, 2]
    targets = encoder.Cif(cif_meta())(IMAGE, [ann], sample_meta()).numpy()
    cells, _ = positives(targets[0])
    # corner round(xy - 1.5) = (19, 9): a 4 x 4 patch
    assert sorted(map(tuple, cells.astype(int))) == [(x, y) for x in range(19, 23) for y in range(9, 13)]
    assert np.nansum(targets[1:, 0]) == 0


def test_nearest_person_wins():
    a, b = person(100, 300, 200), person(100, 300, 200)
    a['keypoints'][1:, 2] = b['keypoints'][1:, 2] = 0
    a['keypoints'][0, :2] = [8 * 20.2, 8 * 15.1]
    b['keypoints'][0, :2] = [8 * 21.7, 8 * 15.1]  # 1.5 cells to the right
    targets = encoder.Cif(cif_meta(), side_length=4)(IMAGE, [a, b], sample_meta()).numpy()
    truth = np.array([[20.2, 15.1], [21.7, 15.1]])
    cells, recovered = positives(targets[0])
    distance = np.linalg.norm(cells[:, None] - truth[None], axis=-1)  # (P, 2)
    claimed = np.linalg.norm(recovered - cells, axis=1)
    np.testing.assert_allclose(claimed, distance.min(axis=1), atol=1e-5)
    owner = np.linalg.norm(recovered[:, None] - truth[None], axis=-1).argmin(axis=1)
    assert set(owner.tolist()) == {0, 1}


def test_crowd_and_unlabelled_boxes_are_ignored_with_margin():
    anns = [box(40, 40, 80, 40), box(200, 240, 40, 40, iscrowd=0)]
    targets = encoder.Cif(cif_meta())(IMAGE, anns, sample_meta()).numpy()
    ignored = np.zeros((49, 49), dtype=bool)
    ignored[3:13, 3:18] = True  # margin (4 - 1) / 2 = 1.5 cells
    ignored[28:38, 23:33] = True
    assert np.isnan(targets[:, 0][:, ignored]).all()
    assert (targets[:, 0][:, ~ignored] == 0).all()


def test_keypoints_in_ignore_regions_claim_only_very_close_cells():
    ann = person(100, 300, 200)
    ann['keypoints'][1:, 2] = 0
    ann['keypoints'][0, :2] = [8 * 10.0, 8 * 10.0]
    targets = encoder.Cif(cif_meta())(IMAGE, [ann, box(40, 40, 80, 80)], sample_meta()).numpy()
    cells, _ = positives(targets[0])
    assert len(cells) >= 1
    assert (np.linalg.norm(cells - [10.0, 10.0], axis=1) < 1.0).all()


def test_outside_valid_area_confidence_zero_and_regression_nan():
    anns = [person(190, 380, 360)]
    meta = {'valid_area': np.array([0.0, 100.0, 385.0, 200.0])}  # rows 12 .. 37 valid
    targets = encoder.Cif(cif_meta())(IMAGE, anns, meta).numpy()
    outside = np.ones(49, dtype=bool)
    outside[12:38] = False
    assert (targets[:, 0, outside] == 0).all()
    assert np.isnan(targets[:, 1:, outside]).all()
    assert (targets[:, 0, ~outside] == 1).any()


def test_scale_of_upper_body_close_to_full_body():
    full, upper = person(190, 370, 300), person(190, 370, 300)
    upper['keypoints'][11:, 2] = 0
    full_scale = encoder.Cif(cif_meta())(IMAGE, [full], sample_meta()).numpy()[:, 4]
    upper_scale = encoder.Cif(cif_meta())(IMAGE, [upper], sample_meta()).numpy()[:, 4]
    nose_full, nose_upper = np.nanmax(full_scale[0]), np.nanmax(upper_scale[0])
    assert nose_upper == pytest.approx(nose_full, rel=0.3)
    # scale = instance scale * sigma of the keypoint type
    ratio = np.nanmax(full_scale[12]) / nose_full
    assert ratio == pytest.approx(0.107 / 0.026, rel=1e-4)


def test_fewer_than_3_keypoints_give_nan_scale_but_positive_confidence():
    ann = person(190, 370, 300)
    ann['keypoints'][2:, 2] = 0
    targets = encoder.Cif(cif_meta())(IMAGE, [ann], sample_meta()).numpy()
    for k in (0, 1):
        positive = targets[k, 0] == 1
        assert positive.sum() > 0
        assert np.isfinite(targets[k, 1:4][:, positive]).all()
        assert np.isnan(targets[k, 4][positive]).all()


def test_keypoint_slightly_outside_still_contributes_and_far_outside_does_not():
    ann = person(100, 300, 200)
    ann['keypoints'][2:, 2] = 0
    ann['keypoints'][0, :2] = [-8 * 1.0, 8 * 20.0]  # one cell left of the image
    ann['keypoints'][1, :2] = [-8 * 30.0, 8 * 20.0]  # beyond the padding
    targets = encoder.Cif(cif_meta())(IMAGE, [ann], sample_meta()).numpy()
    cells, recovered = positives(targets[0])
    assert len(cells) > 0
    np.testing.assert_allclose(recovered, [[-1.0, 20.0]] * len(cells), atol=1e-5)
    assert np.nansum(targets[1, 0]) == 0


def test_no_annotations_give_all_negative_confidence():
    targets = encoder.Cif(cif_meta(16))(IMAGE, [], sample_meta()).numpy()
    assert (targets[:, 0] == 0).all() and np.isnan(targets[:, 1:]).all()


# --- factory -------------------------------------------------------------------------------------

def parse(argv):
    parser = argparse.ArgumentParser()
    encoder.cli(parser)
    return parser.parse_args(argv)


def test_cli_defaults_and_flags():
    settings = encoder.EncoderSettings.from_args(parse([]))
    assert settings == encoder.EncoderSettings()
    assert settings.cif_side_length == 4 and settings.caf_min_size == 3 and settings.suppress_selfhidden
    settings = encoder.EncoderSettings.from_args(parse([
        '--cif-side-length=5', '--caf-min-size=4', '--caf-fixed-size', '--caf-aspect-ratio=0.5',
        '--encoder-no-suppress-selfhidden', '--encoder-suppress-invisible', '--encoder-suppress-collision']))
    assert settings == encoder.EncoderSettings(5, 4, True, 0.5, False, True, True)
    with pytest.raises(Exception):
        settings.cif_side_length = 3  # frozen


def test_factory_builds_one_encoder_per_head():
    settings = encoder.EncoderSettings(cif_side_length=5, caf_min_size=4, suppress_invisible=True)
    cif, caf = encoder.factory([cif_meta(), caf_meta()], settings, bmin=0.5)
    assert isinstance(cif, encoder.Cif) and cif.side_length == 5 and cif.bmin == 0.5
    assert isinstance(caf, encoder.Caf) and caf.min_size == 4 and caf.bmin == 0.5
    assert cif.suppress_invisible and caf.suppress_invisible


def test_factory_rejects_unknown_head_types():
    unknown = headmeta.Base(name='mystery', dataset='cocodet', base_stride=16)
    with pytest.raises(ValueError, match='cocodet.mystery'):
        encoder.factory([unknown], encoder.EncoderSettings(), bmin=0.1)
