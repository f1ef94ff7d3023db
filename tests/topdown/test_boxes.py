"""Ground-truth boxes of annotated individuals: from the bbox, from keypoints plus margin, clipped."""

import numpy as np
import pytest

from openfields.topdown.boxes import BoxSettings, instance_box, instance_boxes


def annotation(keypoints, bbox=(0, 0, 0, 0), iscrowd=0):
    return {'keypoints': np.asarray(keypoints, dtype=np.float32).reshape(-1, 3),
            'bbox': np.asarray(bbox, dtype=np.float32), 'iscrowd': iscrowd}


PERSON = annotation([[50, 60, 2], [70, 100, 1], [0, 0, 0]], bbox=(40, 50, 40, 60))


def test_auto_takes_the_bbox_when_it_has_a_size():
    np.testing.assert_allclose(instance_box(PERSON, 200, 200), [40, 50, 40, 60])


def test_keypoints_give_their_extent_plus_the_margin_on_every_side():
    box = instance_box(PERSON, 200, 200, BoxSettings(margin=20.0, source='keypoints'))
    np.testing.assert_allclose(box, [30, 40, 20 + 40, 40 + 40])


def test_auto_falls_back_to_keypoints_without_a_bbox():
    no_bbox = annotation([[50, 60, 2], [70, 100, 1]], bbox=(0, 0, 0, 0))
    np.testing.assert_allclose(instance_box(no_bbox, 200, 200, BoxSettings(margin=5.0)), [45, 55, 30, 50])


def test_bbox_source_without_a_bbox_gives_none():
    no_bbox = annotation([[50, 60, 2]], bbox=(10, 10, 0, 5))
    assert instance_box(no_bbox, 200, 200, BoxSettings(source='bbox')) is None


def test_boxes_partly_outside_are_clipped_to_the_image_extent():
    corner = annotation([[5, 5, 2], [30, 20, 2]])
    # keypoints 5..30 x 5..20 plus 20 px: -15..50 x -15..40, clipped at -0.5 (pixel-centre convention)
    np.testing.assert_allclose(instance_box(corner, 40, 30), [-0.5, -0.5, 40.0, 30.0])


def test_a_box_entirely_outside_the_image_is_none():
    outside = annotation([[300, 300, 2]], bbox=(250, 250, 20, 20))
    assert instance_box(outside, 200, 200) is None


def test_crowd_and_unlabelled_annotations_get_no_box():
    crowd = annotation([[50, 60, 2]], bbox=(0, 0, 100, 100), iscrowd=1)
    unlabelled = annotation([[0, 0, 0]], bbox=(0, 0, 100, 100))
    boxes = instance_boxes([crowd, PERSON, unlabelled, PERSON], 200, 200)
    assert [index for index, _ in boxes] == [1, 3]


def test_bad_settings_name_their_flag():
    with pytest.raises(ValueError, match='--topdown-bbox-margin'):
        BoxSettings(margin=-1.0)
    with pytest.raises(ValueError, match='--topdown-box-source'):
        BoxSettings(source='detector')
