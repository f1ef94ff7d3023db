"""The detectors of top-down mode: names, weights from local files only, two classes, checkpoints."""

import logging

import numpy as np
import pytest
import torch

from openfields.network import checkpoint
from openfields.topdown import detectors
from openfields.topdown.detectors import DetectorSettings

SMALL = dict(pretrained='none', image_size=96)


def test_an_unknown_detector_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        DetectorSettings(name='yolo')
    message = str(error.value)
    assert message.startswith('--detector yolo: unknown detector')
    assert all(name in message for name in detectors.TORCHVISION_DETECTORS)


@pytest.mark.parametrize('name', list(detectors.TORCHVISION_DETECTORS))
def test_a_new_detector_has_two_classes_and_returns_its_losses_in_training(name):
    detector = detectors.build(DetectorSettings(name=name, **SMALL))
    images = [torch.rand(3, 96, 80), torch.rand(3, 70, 96)]
    targets = [{'boxes': torch.tensor([[10.0, 12.0, 50.0, 80.0]]), 'labels': torch.tensor([1])},
               {'boxes': torch.zeros((0, 4)), 'labels': torch.zeros((0,), dtype=torch.int64)}]
    losses = detector.train()(images, targets)
    assert tuple(losses) == detectors.LOSS_NAMES[detector.settings.family]
    assert all(torch.isfinite(v) and v >= 0 for v in losses.values())
    detections = detector.detect(images)
    assert detector.training  # detect() restores the mode
    assert len(detections) == 2 and all(set(d['labels'].tolist()) <= {1} for d in detections)


def test_auto_weights_without_any_file_train_from_scratch_and_say_where_to_put_them(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with caplog.at_level(logging.WARNING):
        detectors.build(DetectorSettings(name='ssdlite320_mobilenet_v3_large', pretrained='auto'))
    assert 'training from scratch' in caplog.text and str(tmp_path / 'hub' / 'checkpoints') in caplog.text


def coco_state_dict(name: str) -> dict:
    builder = getattr(__import__('torchvision').models.detection, name)
    return builder(weights=None, weights_backbone=None, num_classes=91).state_dict()


@pytest.mark.parametrize('name', ['ssdlite320_mobilenet_v3_large', 'fasterrcnn_mobilenet_v3_large_fpn'])
def test_coco_weights_in_the_hub_cache_are_used_and_keep_all_but_the_classifier(name, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    coco = coco_state_dict(name)
    path = detectors._hub_cache_path(detectors.TORCHVISION_DETECTORS[name].coco_weights)
    path.parent.mkdir(parents=True)
    torch.save(coco, path)
    detector = detectors.build(DetectorSettings(name=name, pretrained='auto', image_size=96))
    own = detector.model.state_dict()
    kept = [k for k in own if k in coco and own[k].shape == coco[k].shape]
    assert len(kept) > 0.9 * len(own)
    assert all(torch.equal(own[k], coco[k]) for k in kept if 'classification_head' not in k
               and 'box_predictor' not in k)


def test_a_coco_file_of_another_detector_is_refused_with_the_flag(tmp_path):
    path = tmp_path / 'wrong.pth'
    torch.save(coco_state_dict('ssdlite320_mobilenet_v3_large'), path)
    with pytest.raises(ValueError, match=r'--detector-pretrained .*wrong.pth: not the COCO state dict'):
        detectors.build(DetectorSettings(name='fasterrcnn_mobilenet_v3_large_fpn', pretrained=str(path)))


def test_a_checkpoint_restores_the_same_detector(tmp_path):
    detector = detectors.build(DetectorSettings(name='ssdlite320_mobilenet_v3_large', **SMALL))
    checkpoint.save(tmp_path / 'd.pkl', detector, epoch=1, meta={})
    restored = detectors.from_checkpoint(checkpoint.load(tmp_path / 'd.pkl')['model'])
    assert restored.settings == detector.settings
    assert all(torch.equal(a, b) for a, b in zip(detector.state_dict().values(), restored.state_dict().values()))


def test_boxes_of_an_image_are_capped_sorted_in_its_pixels_and_may_be_none():
    import dataclasses
    import PIL.Image
    torch.manual_seed(0)
    detector = detectors.build(DetectorSettings(name='fasterrcnn_mobilenet_v3_large_fpn', **SMALL))
    image = PIL.Image.fromarray((torch.rand(150, 300, 3) * 255).to(torch.uint8).numpy())
    detector.settings = dataclasses.replace(detector.settings, score_threshold=0.0, max_boxes=3)
    boxes, scores = detector.boxes(image)
    assert 1 <= len(boxes) <= 3 and list(scores) == sorted(scores, reverse=True)
    assert boxes[:, [0, 2]].max() <= 300 and boxes[:, [1, 3]].max() <= 150 and boxes.max() > 96  # not 96 px
    detector.settings = dataclasses.replace(detector.settings, score_threshold=1.0)
    boxes, scores = detector.boxes(image)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


@pytest.mark.parametrize('name', ['ssdlite320_mobilenet_v3_large', 'fasterrcnn_mobilenet_v3_large_fpn'])
def test_bfloat16_runs_the_backbone_in_it_and_decodes_float32_boxes(name):
    """Boxes are absolute pixel coordinates: decoded in bfloat16 they would be rounded to 2 px at 320 px."""
    import PIL.Image
    torch.manual_seed(0)
    detector = detectors.build(DetectorSettings(name=name, **SMALL))
    backbone = detector.model.backbone
    first_conv = next(m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d))
    last_conv = [m for m in detector.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # a head's
    seen = []
    for module in (first_conv, last_conv):
        module.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    image = PIL.Image.fromarray((torch.rand(150, 300, 3) * 255).to(torch.uint8).numpy())
    boxes, scores = detector.boxes(image, precision='bfloat16')
    assert seen[0] == torch.bfloat16 and seen[-1] == torch.float32
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    assert detector.model.backbone is backbone  # put back: training and float32 runs see the plain backbone
    seen.clear()
    detector.boxes(image)
    assert set(seen) == {torch.float32}
