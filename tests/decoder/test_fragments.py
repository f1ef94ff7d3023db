"""Fragment merging: joints cut off from their pose by the skeleton go back to it."""

import numpy as np

from openfields.decoder.fragments import merge_fragments

SIGMAS = np.full(4, 0.1)


def pose(joints: dict[int, tuple[float, float]], scale: float = 1.0) -> list[list[float]]:
    """A 4-joint pose ``[v, x, y, s]`` with the given joints found (v = 0.9)."""
    return [[0.9, *joints[j], scale] if j in joints else [0.0, 0.0, 0.0, 0.0] for j in range(4)]


def test_a_fragment_near_a_pose_lacking_its_joint_is_merged():
    body = pose({0: (0, 0), 1: (0, 100), 2: (0, 200)})
    fragment = pose({3: (30, 220)})
    poses = merge_fragments([body, fragment], 0.75, SIGMAS)
    assert len(poses) == 1 and poses[0][3] == [0.9, 30, 220, 1.0]


def test_a_fragment_with_a_joint_the_pose_has_stays_apart():
    body = pose({0: (0, 0), 1: (0, 100), 2: (0, 200)})
    other = pose({2: (30, 220)})
    assert len(merge_fragments([body, other], 0.75, SIGMAS)) == 2


def test_a_fragment_beyond_the_distance_limit_stays_apart():
    body = pose({0: (0, 0), 1: (0, 100), 2: (0, 200)})  # size 200
    fragment = pose({3: (0, 200 + 151)})
    assert len(merge_fragments([body, fragment], 0.75, SIGMAS)) == 2
    assert len(merge_fragments([body, pose({3: (0, 200 + 149)})], 0.75, SIGMAS)) == 1


def test_the_instance_size_implied_by_joint_scales_extends_the_reach():
    # two visible joints 20 px apart, but their scales say the person is 400 px tall (s / sigma)
    body = pose({0: (0, 0), 1: (0, 20)}, scale=40.0)
    fragment = pose({3: (0, 250)})
    assert len(merge_fragments([body, fragment], 0.75, SIGMAS)) == 1


def test_the_nearest_pose_gets_the_fragment_and_order_is_kept():
    near = pose({0: (0, 0), 1: (0, 100), 2: (0, 200)})
    far = pose({0: (300, 0), 1: (300, 100), 2: (300, 200)})
    fragment = pose({3: (60, 210)})
    poses = merge_fragments([far, near, fragment], 0.75, SIGMAS)
    assert poses[0] is far and poses[1] is near
    assert near[3][0] == 0.9 and far[3][0] == 0.0


def test_zero_distance_turns_merging_off():
    body = pose({0: (0, 0), 1: (0, 100), 2: (0, 200)})
    assert len(merge_fragments([body, pose({3: (0, 210)})], 0.0, SIGMAS)) == 2
