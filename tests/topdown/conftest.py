"""The shared COCO sample read without preprocessing, and its head metas (stride 16)."""

import pathlib

import pytest

from openfields import encoder
from openfields.datasets.coco import CocoKeypoints, keypoint_category, load_json
from openfields.datasets.keypoint_module import head_metas_for

SHARED = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data'
COCO_SAMPLE = SHARED / 'coco-val-sample'


def as_loaded(image, anns, meta):
    return image, anns, meta


@pytest.fixture(scope='session')
def coco_sample():
    """``(raw CocoKeypoints, [cif, caf] metas of stride 16, json dict)`` of the shared COCO sample."""
    if not (COCO_SAMPLE / 'annotations.json').is_file():
        pytest.skip(f'shared sample data not found at {COCO_SAMPLE}')
    path = COCO_SAMPLE / 'annotations.json'
    data = load_json(path, 'test')
    category = keypoint_category(data, path, None)
    dataset = CocoKeypoints(data, path, COCO_SAMPLE / 'images', category, as_loaded, dataset_name='cocokp',
                            min_kp_anns=0)
    return dataset, head_metas_for(category, 'cocokp', 1, base_stride=16), data


def cif_encoders(metas):
    return encoder.factory(metas[:1], encoder.EncoderSettings())
