"""COCO-format reading: what a user's own json can get wrong, and how it is reported."""

import json
import logging

import numpy as np
import PIL.Image
import pytest

from openfields.datasets.coco import CocoKeypoints, DatasetError, keypoint_category, load_json

KEYPOINTS = ['head', 'left_hand', 'right_hand']


def write_set(tmp_path, annotations=None, images=None, categories=None, n_images=2):
    image_dir = tmp_path / 'images'
    image_dir.mkdir(exist_ok=True)
    if images is None:
        images = []
        for i in range(1, n_images + 1):
            PIL.Image.new('RGB', (40, 30), (i * 40, 0, 0)).save(image_dir / f'{i}.png')
            images.append({'id': i, 'file_name': f'{i}.png', 'width': 40, 'height': 30})
    if annotations is None:
        annotations = [{'id': 10 + i, 'image_id': i, 'category_id': 1, 'iscrowd': 0, 'bbox': [1, 1, 20, 20],
                        'keypoints': [5, 5, 2, 10, 10, 2, 15, 5, 1]} for i in range(1, n_images + 1)]
    if categories is None:
        categories = [{'id': 1, 'name': 'thing', 'keypoints': KEYPOINTS, 'skeleton': [[1, 2], [1, 3]]}]
    path = tmp_path / 'annotations.json'
    path.write_text(json.dumps({'images': images, 'annotations': annotations, 'categories': categories}))
    return path, image_dir


def dataset(path, image_dir, **kwargs):
    data = load_json(path, '--x-train-annotations')
    category = keypoint_category(data, path, None)
    return CocoKeypoints(data, path, image_dir, category, lambda *sample: sample, dataset_name='x',
                         image_dir_flag='--x-train-image-dir', **kwargs)


def test_samples_carry_image_keypoint_arrays_and_meta(tmp_path):
    ds = dataset(*write_set(tmp_path))
    assert len(ds) == 2
    image, anns, meta = ds[1]
    assert image.size == (40, 30) and image.getpixel((0, 0)) == (80, 0, 0)
    assert anns[0]['keypoints'].shape == (3, 3) and anns[0]['keypoints'][2, 2] == 1
    assert meta['image_id'] == 2 and meta['file_name'] == '2.png'


def test_category_gives_keypoints_and_one_based_skeleton(tmp_path):
    path, _ = write_set(tmp_path)
    category = keypoint_category(load_json(path, '--f'), path, None)
    assert category.keypoints == KEYPOINTS and category.skeleton == [(1, 2), (1, 3)]
    assert category.sigmas is None


def test_missing_file_names_the_flag(tmp_path):
    with pytest.raises(DatasetError, match='--x-train-annotations: annotation file not found'):
        load_json(tmp_path / 'nope.json', '--x-train-annotations')


def test_malformed_json_names_file_and_position(tmp_path):
    path = tmp_path / 'broken.json'
    path.write_text('{"images": [}')
    with pytest.raises(DatasetError, match=r'broken.json: not valid JSON .* line 1 column 13'):
        load_json(path, '--f')


def test_missing_top_level_field_is_named(tmp_path):
    path = tmp_path / 'a.json'
    path.write_text(json.dumps({'images': [], 'annotations': []}))
    with pytest.raises(DatasetError, match='field "categories" is missing'):
        load_json(path, '--f')


def test_keypoint_list_of_wrong_length_names_the_annotation(tmp_path):
    ann = {'id': 77, 'image_id': 1, 'category_id': 1, 'bbox': [0, 0, 1, 1], 'keypoints': [1, 2, 2, 3, 4, 2]}
    with pytest.raises(DatasetError, match=r'annotation id 77: "keypoints" has 6 values, expected 9'):
        dataset(*write_set(tmp_path, annotations=[ann]))


def test_annotation_of_unknown_image_is_named(tmp_path):
    ann = {'id': 5, 'image_id': 99, 'category_id': 1, 'bbox': [0, 0, 1, 1], 'keypoints': [0] * 9}
    with pytest.raises(DatasetError, match='annotation id 5: "image_id" 99 is not in "images"'):
        dataset(*write_set(tmp_path, annotations=[ann]))


def test_skeleton_that_does_not_fit_the_keypoints_is_replaced_by_a_derived_one(tmp_path, caplog):
    categories = [{'id': 1, 'name': 'thing', 'keypoints': KEYPOINTS, 'skeleton': [[1, 2], [1, 4]]}]
    path, _ = write_set(tmp_path, categories=categories)
    with caplog.at_level(logging.INFO):
        category = keypoint_category(load_json(path, '--f'), path, None)
    assert category.skeleton_derived and len(category.skeleton) == len(KEYPOINTS) - 1
    assert '"skeleton" entry [1, 4]' in caplog.text and 'derived from the annotations' in caplog.text


def test_wrong_image_folder_names_the_flag(tmp_path):
    path, _ = write_set(tmp_path)
    with pytest.raises(DatasetError, match='--x-train-image-dir: none of the 2 images'):
        dataset(path, tmp_path / 'elsewhere')


def test_corrupt_image_is_skipped_with_a_warning(tmp_path, caplog):
    path, image_dir = write_set(tmp_path)
    (image_dir / '2.png').write_bytes(b'not a png')
    ds = dataset(path, image_dir)
    with caplog.at_level(logging.WARNING):
        assert ds[1] is None
    assert '2.png' in caplog.text
    assert ds[0] is not None


def test_images_without_enough_labelled_people_are_left_out(tmp_path):
    annotations = [
        {'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [0, 0, 9, 9], 'keypoints': [1, 1, 2] + [0] * 6},
        {'id': 2, 'image_id': 2, 'category_id': 1, 'bbox': [0, 0, 9, 9], 'keypoints': [0] * 9},
        {'id': 3, 'image_id': 2, 'category_id': 1, 'bbox': [0, 0, 9, 9], 'keypoints': [], 'iscrowd': 1},
    ]
    ds = dataset(*write_set(tmp_path, annotations=annotations))
    assert ds.ids == [1]
    everything = dataset(*write_set(tmp_path, annotations=annotations), min_kp_anns=0)
    _, anns, _ = everything[1]
    assert [a['iscrowd'] for a in anns] == [0, 1]
    assert np.all(anns[1]['keypoints'] == 0)


def bad_keypoints_error(tmp_path, keypoints) -> str:
    ann = {'id': 1234, 'image_id': 1, 'category_id': 1, 'iscrowd': 0, 'bbox': [1, 1, 20, 20], 'keypoints': keypoints}
    path, image_dir = write_set(tmp_path, annotations=[ann], n_images=1)
    with pytest.raises(DatasetError) as error:
        dataset(path, image_dir)
    return str(error.value)


@pytest.mark.parametrize('keypoints, message', [
    ([5, 5, 2, float('nan'), 10, 2, 15, 5, 1], "annotation id 1234: keypoints[3] (x of 'left_hand') is NaN"),
    ([5, 5, 2, 10, 10, 2, 15, float('inf'), 1], "annotation id 1234: keypoints[7] (y of 'right_hand') is inf"),
    ([-3, 5, 2, 10, 10, 2, 15, 5, 1], "annotation id 1234: keypoints[0] (x of 'head') is negative (-3)"),
    ([5, 5, 2, 10, '10', 2, 15, 5, 1], "annotation id 1234: keypoints[4] (y of 'left_hand') is not a number ('10')"),
    ([5, 5, 2, 10, 10, None, 15, 5, 1], "annotation id 1234: keypoints[5] (v of 'left_hand') is not a number (None)"),
])
def test_bad_visible_keypoint_names_file_annotation_and_field(tmp_path, keypoints, message):
    assert bad_keypoints_error(tmp_path, keypoints) == f'{tmp_path / "annotations.json"}: {message}'


def test_nan_in_the_json_file_is_refused_at_load_time(tmp_path):
    """Python's json reads the ``NaN`` literal that some writers emit."""
    path, image_dir = write_set(tmp_path, n_images=1)
    path.write_text(path.read_text().replace('[5, 5, 2,', '[NaN, 5, 2,'))
    with pytest.raises(DatasetError, match=r"annotation id 11: keypoints\[0\] \(x of 'head'\) is NaN"):
        dataset(path, image_dir)


def test_unlabelled_keypoints_may_hold_any_coordinates(tmp_path):
    ann = {'id': 1, 'image_id': 1, 'category_id': 1, 'iscrowd': 0, 'bbox': [1, 1, 20, 20],
           'keypoints': [5, 5, 2, float('nan'), -4, 0, -1, 0, 0]}
    path, image_dir = write_set(tmp_path, annotations=[ann], n_images=1)
    _, anns, _ = dataset(path, image_dir)[0]
    np.testing.assert_array_equal(anns[0]['keypoints'][0], [5, 5, 2])
    assert anns[0]['keypoints'][1, 2] == 0 and anns[0]['keypoints'][2, 2] == 0


def test_keypoints_outside_the_image_but_not_negative_are_kept(tmp_path):
    ann = {'id': 1, 'image_id': 1, 'category_id': 1, 'iscrowd': 0, 'bbox': [1, 1, 20, 20],
           'keypoints': [0, 0, 2, 40.5, 30.2, 1, 55, 5, 2]}  # the images are 40 x 30 pixels
    path, image_dir = write_set(tmp_path, annotations=[ann], n_images=1)
    _, anns, _ = dataset(path, image_dir)[0]
    np.testing.assert_allclose(anns[0]['keypoints'][:, :2], [[0, 0], [40.5, 30.2], [55, 5]])
