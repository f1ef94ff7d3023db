"""COCO files as found: keypoints in another field (Human-Art's ``keypoints_21``)."""

import copy
import json
import logging
import pathlib

import pytest

from openfields import eval as eval_cli
from openfields.datasets.coco import DatasetError, use_keypoints_field

SHARED = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'coco-val-sample'
needs_shared = pytest.mark.skipif(not (SHARED / 'annotations.json').is_file(),
                                  reason=f'shared sample data not found at {SHARED}')
EXTRA = ['left_thumb', 'right_thumb', 'left_big_toe', 'right_big_toe']


def human_art_style(data: dict) -> dict:
    """21 names in the category, their values in ``keypoints_21`` (COCO's 17 plus 4 unlabelled), the
    17-keypoint ``keypoints`` kept, as Human-Art ships it."""
    data = copy.deepcopy(data)
    for category in data['categories']:
        category['keypoints'] = category['keypoints'] + EXTRA
        category.pop('sigmas', None)
        category['sigmas'] = [0.05] * 21
    for ann in data['annotations']:
        if ann.get('keypoints'):
            ann['keypoints_21'] = ann['keypoints'] + [0] * 12
    return data


def test_the_keypoints_key_field_replaces_keypoints():
    data = {'images': [], 'categories': [{'id': 1, 'keypoints': ['a']}],
            'annotations': [{'category_id': 1, 'keypoints': [1, 2, 2, 3, 4, 2], 'kp1': [5, 6, 2]}]}
    assert use_keypoints_field(data, 'x.json', 'kp1')['annotations'][0]['keypoints'] == [5, 6, 2]
    with pytest.raises(DatasetError, match='--cocokp-keypoints-key kp9: no annotation of x.json'):
        use_keypoints_field(data, 'x.json', 'kp9', '--cocokp-keypoints-key')


def test_a_matching_keypoints_n_field_is_found_with_one_message(caplog):
    data = {'images': [], 'categories': [{'id': 1, 'keypoints': ['a', 'b']}],
            'annotations': [{'category_id': 1, 'keypoints': [1, 2, 2], 'keypoints_2': [5, 6, 2, 7, 8, 2]}]}
    with caplog.at_level(logging.INFO):
        assert use_keypoints_field(data, 'x.json', None)['annotations'][0]['keypoints'] == [5, 6, 2, 7, 8, 2]
    assert sum('keypoints_2' in r.getMessage() for r in caplog.records) == 1


@needs_shared
def test_human_art_style_json_reaches_oracle_ap_with_the_keypoints_key(tmp_path):
    annotations = tmp_path / 'human_art.json'
    annotations.write_text(json.dumps(human_art_style(json.loads((SHARED / 'annotations.json').read_text()))))
    out = tmp_path / 'oracle'
    eval_cli.run(eval_cli.parser().parse_args([
        '--dataset', 'cocokp', '--cocokp-val-annotations', str(annotations), '--cocokp-train-annotations',
        str(annotations), '--cocokp-val-image-dir', str(SHARED / 'images'), '--cocokp-keypoints-key', 'keypoints_21',
        '--oracle', 'cif', 'caf', '--oracle-stride', '16', '--cocokp-upsample', '2', '--output', str(out),
        '--loader-workers', '0', '--device', 'cpu']))
    stats = json.loads((tmp_path / 'oracle.stats.json').read_text())
    assert stats['AP'] >= 0.98
