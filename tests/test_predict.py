"""``python -m openfields.predict``: inputs, outputs and bad files."""

import json
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from openfields import predict as predict_cli
from openfields.datasets.coco import KeypointCategory
from openfields.network import checkpoint, factory
from openfields.datasets import coco_person
from openfields.datasets.keypoint_module import head_metas_for


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    path = tmp_path_factory.mktemp('model') / 'model.pkl'
    metas = head_metas_for(category, 'cocokp', 1, base_stride=16)
    checkpoint.save(path, factory.build('resnet18', {}, metas), epoch=1, meta={})
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


def test_debug_indices_with_save_all_write_each_plot_of_the_chosen_fields(model_path, images, tmp_path):
    out = tmp_path / 'all'
    failed = predict_cli.run(predict_cli.parser().parse_args(
        [str(images / 'a.png'), '--checkpoint', str(model_path), '--debug-indices', 'cif:5', 'caf:5',
         '--save-all', str(out), '--image-dpi', '30']))
    assert failed == 0
    cif = [f'a.png.cif-5-left_shoulder.{kind}.png' for kind in ('confidence', 'hr', 'regression', 'scale')]
    caf = [f'a.png.caf-5-left_shoulder-left_hip.{kind}.png' for kind in ('confidence', 'regression', 'scale')]
    assert sorted(p.name for p in out.iterdir()) == sorted(['a.png.input.png', 'a.png.predictions.png'] + cif + caf)
    assert sorted(p.name for p in images.iterdir()) == ['a.png', 'b.jpg', 'notes.txt']  # nothing else written


def test_save_all_alone_writes_the_drawn_image_of_each_input(model_path, images, tmp_path):
    out = tmp_path / 'all'
    failed = predict_cli.run(predict_cli.parser().parse_args(
        [str(images), '--checkpoint', str(model_path), '--save-all', str(out), '--image-dpi', '30']))
    assert failed == 0  # a folder gives its images only
    assert sorted(p.name for p in out.iterdir()) == ['a.png.predictions.png', 'b.jpg.predictions.png']


@pytest.mark.parametrize('entry, message', [
    ('head:5', "--debug-indices 'head:5': unknown head 'head'; heads: cif, caf, cocokp.cif, cocokp.caf"),
    ('caf:19', "--debug-indices 'caf:19': field 19 out of range for head cocokp.caf (19 fields: 0 to 18)"),
    ('cif:5:', "--debug-indices 'cif:5:': expected HEAD:FIELD[,FIELD...][:KIND[,KIND...]], "
               "e.g. cif:5, caf:5 or cif:5:hr"),
])
def test_bad_debug_indices_are_one_line_errors_naming_the_entry(model_path, images, tmp_path, capsys, entry,
                                                                message):
    with pytest.raises(SystemExit) as exit_info:
        predict_cli.main([str(images / 'a.png'), '--checkpoint', str(model_path), '--debug-indices', entry,
                          '--save-all', str(tmp_path / 'all'), '--json-output', str(tmp_path / 'json')])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f'openfields.predict: error: {message}\n'
    assert not (tmp_path / 'all').exists() and not (tmp_path / 'json').exists()


@pytest.mark.parametrize('flag', ['--json-output', '--image-output', '--save-all'])
def test_an_output_folder_under_a_regular_file_is_one_line_before_the_model_loads(flag, images, tmp_path, capsys):
    (tmp_path / 'afile').write_text('not a folder')
    out = tmp_path / 'afile' / 'x'
    with pytest.raises(SystemExit) as exit_info:
        predict_cli.main([str(images / 'a.png'), '--checkpoint', str(tmp_path / 'missing.pkl'), flag, str(out)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f'openfields.predict: error: {flag} {out}: {tmp_path / "afile"} is a file, not a folder']


# --- images larger than the network input: decoded small, poses in original pixels, a pixel limit ---------

LARGE = (6000, 4500)
MARK = (4321, 1234, 48)  # x, y, side of a white square on black


def image_with_a_mark(path, size):
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    x, y, side = (round(v * size[0] / LARGE[0]) for v in MARK)
    pixels[y:y + side, x:x + side] = 255
    PIL.Image.fromarray(pixels).save(path, **({'quality': 90} if path.suffix == '.jpg' else {}))
    return path


@pytest.fixture(scope='module')
def large_and_small(tmp_path_factory):
    """A 6000x4500 JPEG (81 MB decoded, 324 MB as a float tensor) and an 800x600 one of the same scene."""
    folder = tmp_path_factory.mktemp('large')
    return image_with_a_mark(folder / 'large.jpg', LARGE), image_with_a_mark(folder / 'small.jpg', (800, 600))


@pytest.mark.parametrize('suffix', ['.jpg', '.png'])  # decoded at 1/8 (JPEG); decoded in full, reduced by 9
def test_a_large_image_reaches_the_network_at_the_long_edge_with_a_meta_back_to_original_pixels(suffix, tmp_path):
    from openfields import transforms
    from openfields.inference.pipeline import Prepare
    from openfields.transforms.geometry import to_original
    path = image_with_a_mark(tmp_path / f'large{suffix}', LARGE)
    dataset = predict_cli.ImageFiles([path], Prepare(transforms.eval_pipeline(641, pad='tight')), long_edge=641,
                                     max_pixels=16e6)
    image, meta = dataset[0]
    assert image.shape[1:] == (481, 641)
    brightness = image.sum(dim=0).numpy()
    rows, columns = np.nonzero(brightness > brightness.max() - 0.5)
    centre = to_original(np.array([[columns.mean(), rows.mean()]]), meta)[0]
    x, y, side = MARK
    assert np.abs(centre - (x + (side - 1) / 2, y + (side - 1) / 2)).max() < 6  # 1 network pixel: 9.4


def _peak_rss_mb(image, model_path, tmp_path) -> float:
    script = ('import resource, sys\n'
              'from openfields import predict\n'
              'code = predict.main(sys.argv[1:])\n'
              'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n')
    result = subprocess.run([sys.executable, '-c', script, str(image), '--checkpoint', str(model_path),
                             '--long-edge', '641', '--json-output', str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.split()[-1])


@pytest.mark.slow  # 15-30 s end to end: make test-slow (CI runs it), make test stays near 10 minutes
def test_predicting_a_large_jpeg_needs_no_more_memory_than_a_small_one(large_and_small, model_path, tmp_path):
    """A full decode alone is 81 MB more, and a float tensor of the full image 324 MB."""
    large, small = large_and_small
    extra = _peak_rss_mb(large, model_path, tmp_path) - _peak_rss_mb(small, model_path, tmp_path)
    assert extra < 40
    predictions = json.loads((tmp_path / 'large.jpg.predictions.json').read_text())
    for p in predictions:  # a random network's poses, but in the pixels of the 6000x4500 image
        xy = np.array(p['keypoints']).reshape(-1, 3)[:, :2]
        assert (xy > -1).all() and (xy[:, 0] < LARGE[0] + 1).all() and (xy[:, 1] < LARGE[1] + 1).all()
    assert any(np.array(p['keypoints']).reshape(-1, 3)[:, 0].max() > 800 for p in predictions) or not predictions


def test_an_image_above_the_pixel_limit_at_full_size_is_one_line_and_the_others_still_run(
        large_and_small, model_path, tmp_path):
    large, small = large_and_small
    result = predict(str(large), str(small), '--checkpoint', str(model_path), '--max-megapixels', '20',
                     '--json-output', str(tmp_path))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if 'large.jpg' in line]
    assert len(errors) == 1 and '6000x4500 pixels (27.0 megapixels)' in errors[0]
    assert '--max-megapixels 20' in errors[0] and '--long-edge' in errors[0]
    assert (tmp_path / 'small.jpg.predictions.json').is_file() and 'Traceback' not in result.stderr


def test_progress_lines_with_rate_and_eta_and_per_stage_times_at_the_end(model_path, images, tmp_path):
    (images / 'notes.txt').unlink()
    PIL.Image.new('RGB', (64, 48)).save(images / 'c.png')
    result = predict(str(images), '--checkpoint', str(model_path), '--progress-interval', '0')
    assert result.returncode == 0, result.stderr
    lines = [line.split('openfields.show.progress: ')[1] for line in result.stderr.splitlines()
             if 'openfields.show.progress: ' in line]
    assert [line.split(',')[0] for line in lines] == [
        'predicting: 1/3 images (33%)', 'predicting: 2/3 images (67%)', 'predicting: 3/3 images (100%)']
    assert all(' images/s, ETA ' in line for line in lines) and lines[-1].endswith('ETA 0:00:00')
    summary = [line for line in result.stderr.splitlines() if '3 images in ' in line]
    assert len(summary) == 1
    for stage in ('load', 'network', 'decoder', 'output'):
        assert f'{stage} ' in summary[0]
    assert summary[0].endswith(' ms per image)')
