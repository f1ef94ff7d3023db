"""Specifications of the synthetic pose renderer (plugins/synthetic/render.py)."""

import json
import threading

import numpy as np
import pytest
from pycocotools.coco import COCO

from openfields.datasets.coco_person import COCO_KEYPOINTS, COCO_PERSON_SKELETON
from openfields.plugins.synthetic import render
from openfields.plugins.synthetic.render import (
    SyntheticConfig, dataset_key, render_background, render_image, write_dataset)

CONFIG = SyntheticConfig(seed=0, n_images=64, crowd_probability=0.2)
SMALL = SyntheticConfig(seed=3, n_images=8, crowd_probability=0.5)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """The 64-image set and its annotations path."""
    root = tmp_path_factory.mktemp('synthetic')
    path = write_dataset(root, CONFIG, 'train')
    return root, path, json.loads(path.read_text())


def person_annotations(data):
    return [a for a in data['annotations'] if not a['iscrowd']]


def keypoints_of(ann):
    return np.asarray(ann['keypoints'], dtype=float).reshape(-1, 3)


def snapshot(folder):
    """Every file below `folder` with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def test_layout_one_png_per_image_and_no_temporary_folder(dataset):
    root, path, data = dataset
    assert path == root / 'train' / 'annotations.json'
    pngs = sorted((root / 'train' / 'images').glob('*.png'))
    assert len(pngs) == len(data['images']) == 64
    assert [p.name for p in pngs] == sorted(img['file_name'] for img in data['images'])
    assert sorted(p.name for p in root.iterdir()) == ['train']  # no temporary folder left


def test_loads_with_pycocotools(dataset):
    _, path, data = dataset
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 64
    category = coco.loadCats([1])[0]
    assert category['name'] == 'person'
    assert category['keypoints'] == COCO_KEYPOINTS
    assert category['skeleton'] == [list(pair) for pair in COCO_PERSON_SKELETON]
    for img in data['images']:
        assert (img['width'], img['height']) == (CONFIG.width, CONFIG.height)
    ids = [a['id'] for a in data['annotations']]
    assert len(set(ids)) == len(ids)


def test_annotation_fields(dataset):
    _, _, data = dataset
    image_ids = {img['id'] for img in data['images']}
    for ann in data['annotations']:
        assert ann['image_id'] in image_ids
        assert ann['category_id'] == 1
        assert ann['iscrowd'] in (0, 1)
        assert len(ann['keypoints']) == 51
        kps = keypoints_of(ann)
        assert set(kps[:, 2]) <= {0.0, 1.0, 2.0}
        assert np.all(kps[kps[:, 2] == 0, :2] == 0)  # unlabelled: x = y = 0
        assert ann['num_keypoints'] == int(np.count_nonzero(kps[:, 2] > 0))
        assert ann['area'] > 0
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0
        labelled = kps[kps[:, 2] > 0]
        assert np.all(labelled[:, 0] >= x) and np.all(labelled[:, 0] <= x + w)
        assert np.all(labelled[:, 1] >= y) and np.all(labelled[:, 1] <= y + h)


def test_labelled_keypoints_inside_image(dataset):
    _, _, data = dataset
    for ann in person_annotations(data):
        kps = keypoints_of(ann)
        labelled = kps[kps[:, 2] > 0]
        assert len(labelled) >= 1  # figures without a keypoint in the image are not drawn
        assert np.all(labelled[:, 0] >= 0) and np.all(labelled[:, 0] <= CONFIG.width - 1)
        assert np.all(labelled[:, 1] >= 0) and np.all(labelled[:, 1] <= CONFIG.height - 1)


def test_crowd_annotations(dataset):
    _, _, data = dataset
    crowds = [a for a in data['annotations'] if a['iscrowd']]
    assert len(crowds) >= 1
    for ann in crowds:
        assert ann['num_keypoints'] == 0
        assert ann['keypoints'] == [0] * 51
        x, y, w, h = ann['bbox']
        assert x >= 0 and y >= 0 and x + w <= CONFIG.width and y + h <= CONFIG.height
    assert len({a['image_id'] for a in crowds}) == len(crowds)  # at most one crowd per image


def test_set_statistics(dataset):
    _, _, data = dataset
    people = person_annotations(data)
    per_image = np.bincount([a['image_id'] for a in people], minlength=65)[1:]
    assert np.count_nonzero(per_image >= 2) >= 16
    v = np.concatenate([keypoints_of(a)[:, 2] for a in people])
    assert np.count_nonzero(v == 1) >= 50    # occluded by nearer figures or rectangles
    assert np.count_nonzero(v == 0) >= 10    # cut off by the image border
    assert np.count_nonzero(v == 2) > 0.6 * len(v)
    heights = np.array([a['bbox'][3] for a in people]) / CONFIG.height
    assert heights.max() > 0.6 and np.percentile(heights, 10) < 0.45  # varied scales


def test_visible_keypoints_are_drawn():
    """At most visible keypoints the image differs from the same seed's background."""
    differs, total = 0, 0
    for seed in range(24):
        background = np.asarray(render_background(np.random.default_rng(seed), CONFIG), dtype=int)
        image, anns = render_image(np.random.default_rng(seed), CONFIG, image_id=seed)
        assert image.mode == 'RGB' and image.size == (CONFIG.width, CONFIG.height)
        pixels = np.asarray(image, dtype=int)
        for ann in anns:
            for x, y, v in keypoints_of(ann):
                if v == 2:
                    row, col = int(round(y)), int(round(x))
                    total += 1
                    differs += np.abs(pixels[row, col] - background[row, col]).sum() > 30
    assert total > 200
    assert differs >= 0.9 * total


def test_left_warm_right_cool():
    """Left elbows and wrists are drawn warm (red > blue), right ones cool (blue > red)."""
    left, right = [], []
    for seed in range(24):
        image, anns = render_image(np.random.default_rng(seed), CONFIG, image_id=seed)
        pixels = np.asarray(image, dtype=int)
        for ann in anns:
            kps = keypoints_of(ann)
            for index, sink in ((7, left), (9, left), (8, right), (10, right)):
                x, y, v = kps[index]
                if v == 2:
                    r, _, b = pixels[int(round(y)), int(round(x))]
                    sink.append(r - b)
    assert len(left) > 40 and len(right) > 40
    assert np.mean(np.array(left) > 0) > 0.9
    assert np.mean(np.array(right) < 0) > 0.9


def test_deterministic(tmp_path):
    first = write_dataset(tmp_path / 'a', SMALL, 'train')
    second = write_dataset(tmp_path / 'b', SMALL, 'train')
    assert snapshot(first.parent) == snapshot(second.parent)

    other_seed = write_dataset(tmp_path / 'c', SyntheticConfig(seed=4, n_images=8), 'train')
    other_split = write_dataset(tmp_path / 'd', SMALL, 'val')
    assert other_seed.read_bytes() != first.read_bytes()
    assert other_split.read_bytes() != first.read_bytes()


def test_dataset_key():
    key = dataset_key(SMALL)
    assert key == dataset_key(SyntheticConfig(seed=3, n_images=8, crowd_probability=0.5))
    assert key != dataset_key(SyntheticConfig(seed=4, n_images=8, crowd_probability=0.5))
    assert 8 <= len(key) <= 16 and key.isalnum()


def test_existing_set_is_reused_untouched(tmp_path):
    path = write_dataset(tmp_path, SMALL, 'train')
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*')}
    assert write_dataset(tmp_path, SMALL, 'train') == path
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*')} == before

    # a complete set is never re-rendered, whatever it holds
    sentinel = tmp_path / 'other' / 'val' / 'annotations.json'
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text('sentinel')
    assert write_dataset(tmp_path / 'other', SMALL, 'val') == sentinel
    assert sentinel.read_text() == 'sentinel'
    assert sorted(p.name for p in sentinel.parent.iterdir()) == ['annotations.json']


def test_lost_race_keeps_the_winner(tmp_path, monkeypatch):
    """When another writer renames its set into place first, that set stays and ours goes."""
    original = render._render_into

    def racing(folder, config, split):
        original(folder, config, split)
        original(tmp_path / split, config, split)  # the other process finishes first
        (tmp_path / split / 'winner').write_text('')

    monkeypatch.setattr(render, '_render_into', racing)
    path = write_dataset(tmp_path, SMALL, 'train')
    assert (path.parent / 'winner').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['train']


def test_concurrent_writers(tmp_path):
    config = SyntheticConfig(seed=5, n_images=16)
    results, errors = [], []

    def write():
        try:
            results.append(write_dataset(tmp_path / 'shared', config, 'train'))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert sorted(p.name for p in (tmp_path / 'shared').iterdir()) == ['train']
    reference = write_dataset(tmp_path / 'reference', config, 'train')
    assert snapshot(results[0].parent) == snapshot(reference.parent)


def test_incomplete_foreign_folder_is_an_error(tmp_path):
    (tmp_path / 'train').mkdir()
    with pytest.raises(FileExistsError):
        write_dataset(tmp_path, SMALL, 'train')


def test_config_validation():
    with pytest.raises(ValueError):
        SyntheticConfig(min_people=3, max_people=2)
    with pytest.raises(ValueError):
        SyntheticConfig(crowd_probability=1.5)
