"""The ``heatmap`` decoder: argmax of each heatmap plus the locref offset there, DeepLabCut's HeatmapPredictor
read-out; one pose per image; chosen by default for a heatmap head and by name with ``--decoder``."""

import numpy as np
import pytest
import torch

from openfields import encoder, headmeta
from openfields.decoder import DecoderSettings, factory
from openfields.decoder.heatmap import HeatmapMax, oracle_fields

KEYPOINTS = [(41.3, 57.9), (90.25, 22.5), None, (150.0, 120.0)]


def meta(**kwargs):
    return headmeta.Heatmap(name='heatmap', dataset='dlc', keypoints=['snout', 'leftear', 'rightear', 'tailbase'],
                            sigmas=[0.1] * 4, upsample_stride=2, base_stride=16, **kwargs)


def oracle(head_meta):
    keypoints = np.array([[0, 0, 0] if p is None else [p[0], p[1], 2] for p in KEYPOINTS], np.float32)
    ann = {'keypoints': keypoints, 'bbox': [41, 22, 109, 98], 'iscrowd': 0, 'category_id': 1}
    target = encoder.factory([head_meta], encoder.EncoderSettings())[0](torch.zeros(3, 129, 161), [ann], {})
    return oracle_fields(head_meta, target)


@pytest.mark.parametrize('target', ['gaussian', 'plateau'])
def test_oracle_fields_decode_to_the_keypoints_exactly_and_an_unlabelled_one_scores_zero(target):
    head_meta = meta(target=target)
    poses = HeatmapMax(head_meta, DecoderSettings())([oracle(head_meta)])
    assert len(poses) == 1
    data = poses[0].data
    labelled = [0, 1, 3]
    np.testing.assert_allclose(data[labelled, :2], [KEYPOINTS[i] for i in labelled], atol=1e-4)
    assert data[2].tolist() == [0.0, 0.0, 0.0]  # rightear is not labelled: not found
    assert np.all(data[labelled, 2] > 0.9) and poses[0].joint_scales.tolist() == [8.0, 8.0, 0.0, 8.0]


def test_without_locref_the_peak_cell_is_the_position():
    head_meta = meta(locref=False)
    data = HeatmapMax(head_meta, DecoderSettings())([oracle(head_meta)])[0].data
    assert data[0, :2].tolist() == [40.0, 56.0] and data[3, :2].tolist() == [152.0, 120.0]


def test_scores_are_clipped_to_one_unless_clip_scores_is_off():
    fields = np.zeros((4, 3, 17, 21), np.float32)
    fields[:, 0, 5, 6] = [1.7, 0.4, -0.3, 0.8]
    fields[:, 1], fields[:, 2] = np.arange(21)[None], np.arange(17)[:, None]
    clipped = HeatmapMax(meta(), DecoderSettings(instance_threshold=0.0))([fields])[0].data
    assert clipped[:, 2].tolist() == pytest.approx([1.0, 0.4, 0.0, 0.8])  # -0.3 of the maximum: not found
    raw = HeatmapMax(meta(clip_scores=False), DecoderSettings(instance_threshold=0.0))([fields])[0].data
    assert raw[0, 2] == pytest.approx(1.7) and raw[1, :2].tolist() == [48.0, 40.0]


def test_a_weak_pose_is_dropped_by_the_instance_threshold():
    fields = np.zeros((4, 3, 17, 21), np.float32)
    fields[:, 0, 3, 3] = 0.05
    assert HeatmapMax(meta(), DecoderSettings())([fields]) == []
    assert len(HeatmapMax(meta(), DecoderSettings(instance_threshold=0.01))([fields])) == 1


def test_the_factory_offers_heatmap_for_a_heatmap_head_by_default_and_by_name():
    metas = [meta()]
    assert [c.name for c in factory.candidates(metas, DecoderSettings())] == ['heatmap:0']
    assert factory.factory(metas, DecoderSettings()).names == ['heatmap:0']
    assert factory.factory(metas, DecoderSettings(), names=['heatmap']).names == ['heatmap:0']
    with pytest.raises(ValueError, match="unknown decoder 'cifmax'; available: heatmap:0"):
        factory.factory(metas, DecoderSettings(), names=['cifmax'])
