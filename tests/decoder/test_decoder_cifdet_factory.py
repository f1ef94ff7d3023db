"""CifDet decoder on hand-made fields, and the decoder flags / factory."""

import argparse

import numpy as np
import pytest
from decoder_samples import HEIGHT, WIDTH, caf_meta, cif_meta, oracle_fields, people

from openfields import headmeta
from openfields.decoder import CifCaf, CifDet, DecoderSettings
from openfields.decoder.factory import cli, factory
from openfields.decoder.annotation import Annotation, AnnotationDet

STRIDE = 8


def det_meta(categories=('person', 'car')):
    return headmeta.CifDet(name='cifdet', dataset='cocodet', categories=list(categories), base_stride=16,
                           upsample_stride=2)


def det_fields(boxes, n_categories=2, conf=1.0):
    """Eval-mode CifDet fields ``(N, 6, h, w)``: a 5x5 patch of cells at each box centre votes for the
    centre and the size. ``boxes``: ``(category index, x, y, w, h)`` in pixels."""
    h, w = (HEIGHT - 1) // STRIDE + 1, (WIDTH - 1) // STRIDE + 1
    fields = np.zeros((n_categories, 6, h, w), np.float32)
    for category, x, y, bw, bh in boxes:
        cx, cy = (x + bw / 2) / STRIDE, (y + bh / 2) / STRIDE
        col, row = int(round(cx)), int(round(cy))
        patch = (category, slice(None), slice(row - 2, row + 3), slice(col - 2, col + 3))
        fields[patch] = np.array([0.0, conf, cx, cy, bw / STRIDE, bh / STRIDE], np.float32)[:, None, None]
    return fields


def test_cifdet_recovers_boxes_within_one_pixel():
    boxes = [(0, 100.5, 80.0, 60.0, 150.0), (0, 300.0, 200.0, 120.0, 90.0), (1, 120.0, 100.0, 200.0, 100.0),
             (1, 500.0, 20.0, 40.0, 30.0)]
    decode = CifDet(det_meta(), DecoderSettings())
    annotations = decode([det_fields(boxes)])
    assert len(annotations) == len(boxes)
    assert all(isinstance(a, AnnotationDet) for a in annotations)
    for category, *xywh in boxes:
        matches = [a for a in annotations if a.category_id == category + 1
                   and np.abs(a.bbox - np.array(xywh)).max() < 1.0]
        assert len(matches) == 1 and matches[0].score > 0.9


def test_cifdet_soft_suppresses_overlapping_boxes_of_one_category():
    strong, weak = (0, 50.0, 50.0, 300.0, 300.0), (0, 95.0, 50.0, 300.0, 300.0)  # IoU 0.74, apart patches
    fields = det_fields([strong]) + det_fields([weak], conf=0.35)
    seed_score = 0.9 * 25 * 0.35 / 16 + 0.1 * 0.35
    annotations = CifDet(det_meta(), DecoderSettings(instance_threshold=0.01))([fields])
    assert len(annotations) == 2
    np.testing.assert_allclose(annotations[0].bbox, strong[1:], atol=1.0)
    np.testing.assert_allclose(annotations[1].bbox, weak[1:], atol=1.0)
    assert annotations[1].score == pytest.approx(0.1 * seed_score, rel=1e-3)  # kept, but a tenth
    assert len(CifDet(det_meta(), DecoderSettings())([fields])) == 1  # 0.15 drops the suppressed one

    other_category = det_fields([strong]) + det_fields([(1,) + weak[1:]], conf=0.35)
    annotations = CifDet(det_meta(), DecoderSettings())([other_category])
    assert [a.category_id for a in annotations] == [1, 2]
    assert annotations[1].score == pytest.approx(seed_score, rel=1e-3)


def parse(argv):
    parser = argparse.ArgumentParser()
    cli(parser)
    return parser.parse_args(argv)


def test_flags_parse_to_settings():
    settings = DecoderSettings.from_args(parse([]))
    assert settings == DecoderSettings()
    assert (settings.seed_threshold, settings.instance_threshold, settings.keypoint_threshold,
            settings.keypoint_threshold_rel, settings.cif_th, settings.caf_th) == (0.2, 0.15, 0.15, 0.5, 0.3, 0.3)
    assert settings.reverse_match and not settings.greedy and settings.max_instances == 100
    settings = DecoderSettings.from_args(parse(
        ['--seed-threshold', '0.5', '--instance-threshold', '0.4', '--keypoint-threshold', '0.2',
         '--keypoint-threshold-rel', '0.3', '--cif-th', '0.25', '--caf-th', '0.35', '--greedy',
         '--no-reverse-match', '--max-instances', '7', '--dense-connections']))
    assert settings == DecoderSettings(seed_threshold=0.5, instance_threshold=0.4, keypoint_threshold=0.2,
                                       keypoint_threshold_rel=0.3, cif_th=0.25, caf_th=0.35, greedy=True,
                                       reverse_match=False, max_instances=7, dense_connections=1.0)
    assert DecoderSettings.from_args(parse(['--dense-connections', '0.3'])).dense_connections == 0.3
    forced = DecoderSettings.from_args(parse(['--force-complete-pose']))
    assert forced.force_complete_pose and forced.instance_threshold == 0.0 and forced.keypoint_threshold == 0.0


def test_factory_selects_by_name_and_lists_choices():
    metas = [cif_meta(), caf_meta(), det_meta()]
    decode = factory(metas, DecoderSettings(), names=['cifcaf:0'])
    assert decode.names == ['cifcaf:0'] and isinstance(decode.decoders[0][2], CifCaf)
    assert factory(metas, DecoderSettings()).names == ['cifcaf:0']  # default: the pose decoder
    assert factory(metas, DecoderSettings(), names=['cifdet']).names == ['cifdet:0']
    with pytest.raises(ValueError, match='available: cifcaf:0, cifdet:0, cifmax:0'):
        factory(metas, DecoderSettings(), names=['cifcaf:1'])
    with pytest.raises(ValueError, match='no decoder'):
        factory([caf_meta()], DecoderSettings())


def test_factory_decoder_runs_all_chosen_heads():
    anns = people(2, seed=2)
    dense = caf_meta(skeleton=[(8, 12)], name='caf_dense', sparse_skeleton=caf_meta().skeleton)
    metas = [det_meta(), cif_meta(), caf_meta(), dense]
    cif, caf, dense_fields = oracle_fields(anns, metas[1:])
    fields = [det_fields([(1, 100.0, 100.0, 50.0, 50.0)]), cif, caf, dense_fields]
    decode = factory(metas, DecoderSettings(dense_connections=1.0), names=['cifcaf:0', 'cifdet:0'])
    assert decode.decoders[0][1] == (1, 2, 3)  # the dense head joins with --dense-connections
    annotations = decode(fields)
    assert [type(a) for a in annotations] == [Annotation, Annotation, AnnotationDet]
    assert set(decode.stats) == {'cifcaf:0', 'cifdet:0'}
    assert factory(metas, DecoderSettings()).decoders[0][1] == (1, 2)
