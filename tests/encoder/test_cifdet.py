"""CifDet encoder targets (F, 7, h, w) = [confidence, dx, dy, w, h, b_min_xy, b_min_wh], field units."""

import numpy as np
import pytest
import torch

from openfields import encoder, headmeta
from openfields.decoder import CifDet as CifDetDecoder, DecoderSettings
from openfields.decoder.oracle import fields_from_targets

STRIDE = 8
IMAGE = torch.zeros(3, 241, 321)  # fields of 31 x 41 cells
FULL = {'valid_area': np.array([0.0, 0.0, 321.0, 241.0])}


def det_meta(categories=('person', 'car'), base_stride=STRIDE):
    return headmeta.CifDet(name='cifdet', dataset='cocodet', categories=list(categories), base_stride=base_stride)


def box(x, y, w, h, category_id=1, iscrowd=0):
    return {'bbox': np.array([x, y, w, h], np.float32), 'category_id': category_id, 'iscrowd': iscrowd}


def encode(anns, meta=FULL, **kwargs):
    return encoder.CifDet(det_meta(), **kwargs)(IMAGE, anns, meta).numpy()


def test_output_shape_has_a_field_per_category():
    targets = encoder.CifDet(det_meta(base_stride=16))(IMAGE, [box(10, 10, 50, 80)], FULL)
    assert targets.shape == (2, 7, 16, 21) and targets.dtype == torch.float32


def test_patch_around_the_centre_regresses_the_box_and_its_core_is_positive():
    # centre (100, 60) px = cell (12.5, 7.5); the 5 x 5 patch starts at round(12.5 - 2) = 10 (numpy: even)
    targets = encode([box(60, 20, 80, 80)], bmin=1.0)[0]
    claimed = np.argwhere(np.isfinite(targets[1]))  # (row, col)
    assert sorted(map(tuple, claimed)) == [(r, c) for r in range(6, 11) for c in range(10, 15)]
    rows, cols = claimed[:, 0], claimed[:, 1]
    np.testing.assert_allclose(targets[1, rows, cols] + cols, 12.5)  # offsets point at the centre
    np.testing.assert_allclose(targets[2, rows, cols] + rows, 7.5)
    np.testing.assert_allclose(targets[3:5, rows, cols], 10.0)  # w, h = 80 px / 8
    np.testing.assert_allclose(targets[5:7, rows, cols], 0.05 * 10.0)  # b_min grows with the box
    distance = np.hypot(12.5 - cols, 7.5 - rows)
    np.testing.assert_array_equal(targets[0, rows, cols] == 1.0, distance <= 2.0)  # core: positive
    assert np.isnan(targets[0, rows, cols][distance > 2.0]).all()  # fringe: neither positive nor negative
    unclaimed = np.ones(targets.shape[1:], bool)
    unclaimed[rows, cols] = False
    assert (targets[0][unclaimed] == 0.0).all() and np.isnan(targets[1:, unclaimed]).all()


def test_small_boxes_keep_bmin_of_the_flag():
    targets = encode([box(100, 100, 16, 24)], bmin=4.0)[0]
    assert np.nanmax(targets[5]) == np.nanmin(targets[5]) == pytest.approx(4.0 / STRIDE)


def test_shared_cells_go_to_the_nearest_centre_of_the_same_category():
    anns = [box(60, 60, 40, 40), box(76, 60, 40, 40), box(68, 60, 40, 40, category_id=2)]
    targets = encode(anns)
    person = targets[0]
    rows, cols = np.nonzero(np.isfinite(person[1]))
    centres = np.array([[10.0, 10.0], [12.0, 10.0]])  # (x, y) cells of the two people
    pointed = np.stack([person[1, rows, cols] + cols, person[2, rows, cols] + rows], axis=1)
    nearest = np.linalg.norm(np.stack([cols, rows], 1)[:, None] - centres[None], axis=-1).min(axis=1)
    np.testing.assert_allclose(np.linalg.norm(pointed - np.stack([cols, rows], 1), axis=1), nearest)
    car = targets[1]
    assert np.nanmax(car[1] + np.arange(car.shape[2])) == np.nanmin(car[1] + np.arange(car.shape[2])) == 11.0


def test_crowd_box_is_an_ignore_region_of_its_category_only():
    targets = encode([box(160, 80, 80, 80, category_id=2, iscrowd=1)])
    # cells 20..30 x 10..20 plus a margin of two cells
    assert np.isnan(targets[1, 0, 8:23, 18:33]).all()
    assert (targets[1, 0, :7] == 0.0).all() and (targets[1, 0, :, :17] == 0.0).all()
    assert (targets[0, 0] == 0.0).all()  # the person field does not care about car crowds


def test_a_box_in_a_crowd_region_claims_only_cells_next_to_its_centre():
    targets = encode([box(100, 60, 80, 80, iscrowd=1), box(128, 88, 24, 24)])[0]
    claimed = np.argwhere(np.isfinite(targets[1]))
    centre = np.array([12.5, 17.5])  # (row, col) of the box centre (140, 100) px
    assert len(claimed) == 4 and (np.linalg.norm(claimed - centre, axis=1) < 1.0).all()
    assert (targets[0][tuple(claimed.T)] == 1.0).all()


def test_cells_outside_the_valid_area_are_negatives():
    # centre cell (15, 13), patch columns 13..17; the valid area ends in column 15 (120 px)
    targets = encode([box(80, 64, 80, 80)], meta={'valid_area': np.array([0.0, 0.0, 120.0, 241.0])})
    assert (targets[:, 0, :, 16:] == 0.0).all() and np.isnan(targets[:, 1:, :, 16:]).all()
    assert (targets[0, 0, :, 13:16] == 1.0).sum() == 9


def test_boxes_without_width_or_height_are_not_encoded():
    targets = encode([box(100, 60, 0, 80), box(200, 60, 40, 0)])
    assert (targets[:, 0] == 0.0).all() and np.isnan(targets[:, 1:]).all()


def test_a_category_outside_the_head_is_an_error():
    with pytest.raises(ValueError, match=r'cocodet.cifdet: annotation category_id 3 is not in 1..2'):
        encode([box(10, 10, 20, 20, category_id=3)])


def test_oracle_round_trip_recovers_every_box():
    rng = np.random.default_rng(0)
    anns = [box(*rng.uniform([0, 0, 20, 20], [250, 170, 90, 90]), category_id=int(rng.integers(1, 3)))
            for _ in range(6)]
    anns.append(box(290, 200, 60, 60))  # partly outside the image
    targets = encoder.CifDet(det_meta())(IMAGE, anns, FULL)
    decode = CifDetDecoder(det_meta(), DecoderSettings(instance_threshold=0.01))
    decoded = decode([fields_from_targets(det_meta(), targets)])
    assert len(decoded) == len(anns)
    for ann in anns:
        errors = [np.abs(d.bbox - ann['bbox']).max() for d in decoded if d.category_id == ann['category_id']]
        assert min(errors) < 1e-3


def test_factory_builds_the_cifdet_encoder_with_its_side_length():
    settings = encoder.EncoderSettings(cifdet_side_length=7)
    (cifdet,) = encoder.factory([det_meta()], settings, bmin=2.0)
    assert isinstance(cifdet, encoder.CifDet) and cifdet.side_length == 7 and cifdet.bmin == 2.0
    targets = cifdet(IMAGE, [box(60, 20, 80, 80)], FULL).numpy()
    assert np.isfinite(targets[0, 1]).sum() == 49
