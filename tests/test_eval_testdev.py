"""``--<dataset>-eval-testdev``: an image-info json (COCO test-dev style, no annotations) is predicted image by
image and written as the submission zip of the OpenPifPaf guide; no metrics."""

import json
import pathlib
import zipfile

import pytest

from openfields import eval as eval_cli

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'coco-val-sample'
pytestmark = pytest.mark.skipif(not (SAMPLE / 'annotations.json').is_file(),
                                reason=f'shared COCO sample not found at {SAMPLE}')


def image_info(tmp_path, keypoint_categories: bool = True, annotations=None) -> pathlib.Path:
    """The sample's images and categories as ``image_info_test-dev2017.json``; COCO's own test-dev categories
    declare no keypoints (``keypoint_categories=False``)."""
    data = json.loads((SAMPLE / 'annotations.json').read_text())
    categories = data['categories'] if keypoint_categories else [
        {'supercategory': 'person', 'id': 1, 'name': 'person'},
        {'supercategory': 'vehicle', 'id': 2, 'name': 'bicycle'}]
    info = {'images': data['images'], 'categories': categories}
    if annotations is not None:
        info['annotations'] = annotations
    path = tmp_path / 'image_info_test-dev2017.json'
    path.write_text(json.dumps(info))
    return path


def eval_argv(checkpoint, info, out, *extra):
    return ['--checkpoint', str(checkpoint), '--dataset', 'cocokp', '--cocokp-val-annotations', str(info),
            '--cocokp-val-image-dir', str(SAMPLE / 'images'),
            '--cocokp-train-annotations', str(info.parent / 'no.json'),
            '--coco-eval-long-edge', '129', '--loader-workers', '0', '--device', 'cpu', '--output', str(out), *extra]


def submitted(zip_path: pathlib.Path) -> tuple[str, list]:
    with zipfile.ZipFile(zip_path) as archive:
        (name,) = archive.namelist()
        return name, json.loads(archive.read(name))


@pytest.mark.parametrize('keypoint_categories, annotations', [(True, None), (False, None), (True, [])])
def test_every_image_of_an_image_info_json_is_in_the_submission_zip(tmp_path, tiny_checkpoint, caplog,
                                                                    keypoint_categories, annotations):
    info, out = image_info(tmp_path, keypoint_categories, annotations), tmp_path / 'testdev'
    with caplog.at_level('INFO', logger='openfields.metric.submission'):
        eval_cli.main(eval_argv(tiny_checkpoint, info, out, '--cocokp-eval-testdev'))
    name, results = submitted(tmp_path / 'testdev.zip')
    assert name == 'person_keypoints_test-dev2017_openfields_results.json'
    assert {r['image_id'] for r in results} == {785, 40083, 196141, 197388}
    assert all(len(r['keypoints']) == 17 * 3 and r['category_id'] == 1 and r['score'] >= 0 for r in results)
    stats = json.loads((tmp_path / 'testdev.stats.json').read_text())
    assert stats['n_images'] == 4 and stats['submission'] == str(out) + '.zip' and 'AP' not in stats
    assert any('no metrics' in r.getMessage() for r in caplog.records)


def test_an_image_info_json_without_the_flag_is_one_line_naming_the_file_and_the_flag(tmp_path, tiny_checkpoint,
                                                                                       capsys):
    info = image_info(tmp_path)
    with pytest.raises(SystemExit) as stop:
        eval_cli.main(eval_argv(tiny_checkpoint, info, tmp_path / 'testdev'))
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1
    assert str(info) in err and '"annotations" is missing' in err and '--<dataset>-eval-testdev' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [info.name]  # nothing written
