"""``python -m openfields.predict``: inputs, outputs and bad files."""

import json
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from openfields.datasets.coco import KeypointCategory
from openfields.network import checkpoint, factory
from openfields.plugins.cocokp import constants
from openfields.plugins.cocokp.datamodule import head_metas_for


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    category = KeypointCategory(id=1, name='person', keypoints=constants.COCO_KEYPOINTS,
                                skeleton=constants.COCO_PERSON_SKELETON, sigmas=None)
    path = tmp_path_factory.mktemp('model') / 'model.pkl'
    checkpoint.save(path, factory.build('resnet18', {}, head_metas_for(category, 'cocokp', 1)), epoch=1, meta={})
    return path


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (('a.png', (120, 90)), ('b.jpg', (97, 130))):
        PIL.Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    (folder / 'notes.txt').write_text('not an image')
    return folder


def predict(*argv):
    return subprocess.run([sys.executable, '-m', 'openfields.predict', *argv], capture_output=True, text=True)


def test_folder_input_writes_json_and_drawn_image_per_image(model_path, images, tmp_path):
    out = tmp_path / 'out'
    result = predict(str(images), '--checkpoint', str(model_path), '--json-output', str(out),
                     '--image-output', str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        'a.png.predictions.jpeg', 'a.png.predictions.json', 'b.jpg.predictions.jpeg', 'b.jpg.predictions.json']
    for name in ('a.png', 'b.jpg'):
        predictions = json.loads((out / f'{name}.predictions.json').read_text())
        assert isinstance(predictions, list)
        for p in predictions:
            assert len(p['keypoints']) == 51 and 0 < p['score'] <= 1 and len(p['bbox']) == 4
        with PIL.Image.open(out / f'{name}.predictions.jpeg') as drawn, PIL.Image.open(images / name) as original:
            assert drawn.size == original.size


def test_default_outputs_go_next_to_the_image(model_path, images):
    result = predict(str(images / 'a.png'), '--checkpoint', str(model_path), '--json-output')
    assert result.returncode == 0, result.stderr
    assert (images / 'a.png.predictions.json').is_file()


def test_bad_inputs_are_named_and_the_others_still_processed(model_path, images, tmp_path):
    out = tmp_path / 'out'
    result = predict(str(images / 'notes.txt'), str(images / 'missing.png'), str(images / 'a.png'),
                     '--checkpoint', str(model_path), '--json-output', str(out))
    assert result.returncode == 1
    assert 'missing.png: file not found' in result.stderr
    assert 'notes.txt: not a readable image' in result.stderr
    assert 'Traceback' not in result.stderr
    assert (out / 'a.png.predictions.json').is_file()


def test_batches_need_a_long_edge(model_path, images):
    result = predict(str(images), '--checkpoint', str(model_path), '--batch-size', '2')
    assert result.returncode == 2 and '--long-edge' in result.stderr
    result = predict(str(images), '--checkpoint', str(model_path), '--batch-size', '2', '--long-edge', '129',
                     '--json-output')
    assert result.returncode == 0, result.stderr
    assert (images / 'b.jpg.predictions.json').is_file()


def test_missing_checkpoint_is_one_clear_line(images, tmp_path):
    result = predict(str(images), '--checkpoint', str(tmp_path / 'nope.pkl'))
    assert result.returncode == 2
    assert result.stderr.strip().endswith('file not found: ' + str(tmp_path / 'nope.pkl'))
