"""A model in use (openfields/inference/pipeline.py): one opener for every file a user can name, one call from
images to poses in their own pixels."""

import numpy as np
import PIL.Image
import pytest

from openfields.decoder.settings import DecoderSettings
from openfields.inference import pipeline

LOW = DecoderSettings(seed_threshold=0.1, instance_threshold=0.0)  # a random network's weak poses


def images():
    rng = np.random.default_rng(3)
    return [PIL.Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in ((96, 72), (64, 80))]


def test_a_checkpoint_and_its_exports_open_as_the_same_bottom_up_pipeline(tiny_checkpoint, tiny_onnx,
                                                                           tiny_torchscript):
    settings = pipeline.PipelineSettings(decoder=LOW)
    models = [pipeline.open_model(str(path), settings) for path in (tiny_checkpoint, tiny_onnx, tiny_torchscript)]
    assert [m.method for m in models] == ['bu'] * 3
    assert all([meta.name for meta in m.head_metas] == ['cif', 'caf'] for m in models)
    poses = [pipeline.predict(m, images()) for m in models]
    assert [len(p) for p in poses[0]] == [len(p) for p in poses[1]] == [len(p) for p in poses[2]]
    assert sum(len(p) for p in poses[0]) > 0
    for exported in poses[1:]:
        for ours, theirs in zip(sum(poses[0], []), sum(exported, [])):
            assert np.abs(ours.data - theirs.data).max() < 1e-2


def test_poses_are_in_the_pixels_of_the_image_whatever_the_long_edge(tiny_checkpoint):
    model = pipeline.open_model(str(tiny_checkpoint), pipeline.PipelineSettings(decoder=LOW, long_edge=161))
    wide = PIL.Image.new('RGB', (320, 240), (124, 116, 104))
    sample, meta = model.prepare(wide, {})
    assert tuple(sample.shape[1:]) == (129, 161)  # 161 x 121 padded to k * 16 + 1
    for pose in sum(model.poses([(sample, meta)]), []):
        found = pose.data[pose.data[:, 2] > 0]
        assert found[:, 0].max() < 320 + 16 and found[:, 1].max() < 240 + 16  # original pixels, not 161 x 121


def test_detector_flags_on_a_bottom_up_model_are_refused_naming_the_flag(tiny_checkpoint):
    with pytest.raises(ValueError, match='--detector-checkpoint is for top-down models; .*tiny.pkl is bottom-up'):
        pipeline.open_model(str(tiny_checkpoint), pipeline.PipelineSettings(detector_checkpoint='x.pkl'))
    with pytest.raises(ValueError, match='--detector-score-threshold must be in'):
        pipeline.PipelineSettings(detector_score_threshold=1.5)
    with pytest.raises(ValueError, match='--batch-size > 1 needs --long-edge'):
        pipeline.open_model(str(tiny_checkpoint), pipeline.PipelineSettings(pad='center'))
