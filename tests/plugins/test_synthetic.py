"""The synthetic DataModule's flags choose how hard the rendered set is."""

import numpy as np
import pytest

from openfields import train
from openfields.datasets.coco_person import COCO_KEYPOINTS
from openfields.plugins.synthetic import render
from openfields.plugins.synthetic.datamodule import Synthetic

EASY = ['--synthetic-people', '1', '2', '--synthetic-heights', '0.5', '0.8', '--synthetic-max-rotation', '10',
        '--synthetic-crowd-probability', '0', '--synthetic-occlusion-probability', '0']
NECK = [COCO_KEYPOINTS.index('left_shoulder'), COCO_KEYPOINTS.index('right_shoulder')]
PELVIS = [COCO_KEYPOINTS.index('left_hip'), COCO_KEYPOINTS.index('right_hip')]


def test_flags_become_the_render_configuration():
    config = Synthetic.render_config(train.parser().parse_args(EASY), n_images=5)
    assert (config.min_people, config.max_people, config.min_height_fraction, config.max_height_fraction) == \
        (1, 2, 0.5, 0.8)
    assert config.max_rotation == 10 and config.crowd_probability == 0 and config.occlusion_probability == 0
    assert config.n_images == 5


def torso_angles(config, n_images=24):
    """Degrees between each person's pelvis-to-shoulders direction and "up", and the people counts."""
    angles, counts = [], []
    for i in range(n_images):
        _, anns = render.render_image(np.random.default_rng(i), config, i)
        counts.append(len([a for a in anns if not a['iscrowd']]))
        for ann in anns:
            k = np.asarray(ann['keypoints'], float).reshape(-1, 3)
            if not ann['iscrowd'] and (k[NECK + PELVIS, 2] > 0).all():
                up = k[NECK, :2].mean(axis=0) - k[PELVIS, :2].mean(axis=0)
                angles.append(abs(np.degrees(np.arctan2(up[0], -up[1]))))
    return np.array(angles), counts, len(counts) - sum(counts)


def test_easy_sets_hold_upright_people_the_standard_set_turns_them_over():
    easy, counts, _ = torso_angles(Synthetic.render_config(train.parser().parse_args(EASY), n_images=24))
    assert min(counts) >= 1 and max(counts) <= 2
    # the torso leans on its own (up to about 30 degrees when crouching); the figure turns by at most 10
    assert easy.max() < 45
    standard, _, _ = torso_angles(render.SyntheticConfig(), n_images=24)
    assert standard.max() > 90


def test_bad_values_name_the_flags():
    with pytest.raises(ValueError, match='--synthetic-people'):
        Synthetic.render_config(train.parser().parse_args(['--synthetic-people', '3', '1']), n_images=1)
