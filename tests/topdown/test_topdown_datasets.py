"""``--method td`` on every kind of keypoint dataset: COCO person keypoints, CrowdPose, DeepLabCut projects
(single and multi-animal) and the synthetic set (tests/topdown/test_topdown_cli.py): a short run trains the
detector and the pose model, and the pose checkpoint evaluates on detected and on ground-truth boxes."""

import json
import pathlib

import PIL.Image
import PIL.ImageDraw
import pytest
import yaml

from openfields import eval as evaluate, train
from openfields.network import checkpoint

SHARED = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data'
SHORT = ['--method', 'td', '--detector', 'ssdlite320_mobilenet_v3_large', '--detector-pretrained', 'none',
         '--detector-epochs', '1', '--detector-eval-interval', '1', '--detector-train-batches', '1',
         '--basenet', 'shufflenetv2k16', '--batch-size', '2', '--epochs', '1', '--train-batches', '1',
         '--loader-workers', '0', '--seed', '2', '--topdown-crop-width', '48', '--topdown-crop-height', '64']


def coco_format(name: str, folder: str) -> list[str]:
    root = SHARED / folder
    if not root.is_dir():
        pytest.skip(f'{root} is absent (the shared test data, see ../shared/data/README.md)')
    json_file = next(root.glob('*.json'))
    return ['--dataset', name, f'--{name}-train-annotations', str(json_file), f'--{name}-val-annotations',
            str(json_file), f'--{name}-train-image-dir', str(root / 'images'), f'--{name}-val-image-dir',
            str(root / 'images')]


def shared_dlc_project() -> list[str]:
    root = SHARED / 'dlc-openfield'
    if not root.is_dir():
        pytest.skip(f'{root} is absent (the shared test data, see ../shared/data/README.md)')
    return ['--dataset', 'dlc', '--dlc-project', str(root)]


def two_mice_project(root: pathlib.Path) -> list[str]:
    """A multi-animal project: 6 frames of 96x72 pixels, two mice of three body parts each."""
    root.mkdir()
    (root / 'config.yaml').write_text(yaml.safe_dump({
        'Task': 'pair', 'scorer': 'me', 'multianimalproject': True, 'individuals': ['m1', 'm2'],
        'bodyparts': 'MULTI!', 'multianimalbodyparts': ['snout', 'ear', 'tail'], 'uniquebodyparts': [],
        'skeleton': [['snout', 'ear'], ['ear', 'tail']], 'TrainingFraction': [0.67]}))
    rows = [['scorer'] + ['me'] * 12, ['individuals'] + ['m1'] * 6 + ['m2'] * 6,
            ['bodyparts'] + [b for b in ('snout', 'ear', 'tail') for _ in 'xy'] * 2, ['coords'] + ['x', 'y'] * 6]
    for i in range(6):
        image = PIL.Image.new('RGB', (96, 72), (30, 30, 30))
        draw = PIL.ImageDraw.Draw(image)
        points = [(10 + i, 10), (18 + i, 14), (34 + i, 12), (50, 40 + i), (58, 44 + i), (80, 50 + i)]
        for (x, y), colour in zip(points, [(255, 0, 0), (0, 255, 0), (0, 0, 255)] * 2):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        relative = f'labeled-data/v/img{i:03d}.png'
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / relative)
        rows.append([relative] + [v for p in points for v in p])
    (root / 'labeled-data' / 'v' / 'CollectedData_me.csv').write_text(
        ''.join(','.join(str(c) for c in row) + '\n' for row in rows))
    return ['--dataset', 'dlc', '--dlc-project', str(root)]


DATASETS = {
    'cocokp': lambda tmp: coco_format('cocokp', 'coco-val-sample'),
    'crowdpose': lambda tmp: coco_format('crowdpose', 'crowdpose-sample'),
    'dlc-single-animal': lambda tmp: shared_dlc_project(),
    'dlc-multi-animal': lambda tmp: two_mice_project(tmp / 'pair-me-2024-01-01'),
}


@pytest.mark.parametrize('kind', list(DATASETS))
def test_a_short_top_down_run_trains_and_evaluates(kind, tmp_path):
    data = DATASETS[kind](tmp_path)
    output = tmp_path / 'run.pkl'
    train.run(train.cli([*data, *SHORT, '--output', str(output)]))
    pose = checkpoint.load(output)
    recorded = pose['meta']['topdown']
    assert pathlib.Path(recorded['detector']).is_file()
    # DeepLabCut projects: boxes from the keypoints plus DeepLabCut's 20 px margin; COCO files: their bbox
    assert recorded['box_source'] == ('keypoints' if kind.startswith('dlc') else 'auto')
    for extra in ([], ['--oracle-boxes']):
        args = evaluate.parser().parse_args(['--checkpoint', str(output), *data, '--eval-n-images', '2', *extra,
                                            '--output', str(tmp_path / f'eval{len(extra)}')])
        evaluate.run(args)
        stats = json.loads((tmp_path / f'eval{len(extra)}.stats.json').read_text())
        assert stats['method'] == 'td' and stats['n_images'] == 2 and stats['oracle_boxes'] == bool(extra)
        assert stats['decoder'] == ['cifmax'] and stats['nn_time_ms'] > 0
