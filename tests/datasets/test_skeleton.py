"""Default skeletons for keypoint sets without one: the spanning tree of typically close keypoints."""

import numpy as np

from openfields.datasets.skeleton import chain_skeleton, spanning_tree_skeleton, typical_distances


def arm_instances(n=20, seed=0):
    """Instances of a 4-keypoint 'arm' whose keypoints are listed out of anatomical order:
    shoulder (1), wrist (2), elbow (3), hand tip (4); chain shoulder-elbow-wrist-tip."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        scale = rng.uniform(20, 200)
        origin = rng.uniform(0, 500, size=2)
        shoulder, elbow, wrist, tip = (origin + scale * np.array(p) for p in ((0, 0), (0, 1), (0.2, 2), (0.25, 2.3)))
        sets.append([[*shoulder, 2], [*wrist, 2], [*elbow, 2], [*tip, 2]])
    return np.array(sets, dtype=np.float64)


def test_spanning_tree_follows_the_anatomy_not_the_keypoint_order():
    assert spanning_tree_skeleton(arm_instances()) == [(1, 3), (2, 3), (2, 4)]


def test_distances_are_scale_free_medians_over_instances_that_label_both():
    instances = arm_instances()
    instances[:10, 3, 2] = 0  # the tip unlabelled on half of the instances
    d = typical_distances(instances)
    assert np.isnan(d[0, 0]) and np.allclose(d, d.T, equal_nan=True)
    # shoulder-tip: only the instances with a tip count, where the box's longer side is 2.3 scale units
    assert abs(d[0, 3] - np.hypot(0.25, 2.3) / 2.3) < 1e-9
    # shoulder-elbow (1 unit) counts on all: half in boxes of 2.3, half of 2.0 (no tip), the median between
    assert 1 / 2.3 < d[0, 2] < 1 / 2.0


def test_keypoints_never_labelled_together_are_joined_in_order():
    instances = arm_instances()
    instances[:, 3, 2] = 0  # the tip is never labelled
    assert spanning_tree_skeleton(instances) == [(1, 3), (1, 4), (2, 3)]


def test_without_instances_the_skeleton_is_a_chain():
    assert spanning_tree_skeleton(np.zeros((0, 4, 3))) == chain_skeleton(4) == [(1, 2), (2, 3), (3, 4)]
