"""``python -m tools.benchmark_dense``: the held-back cases it decodes."""

from tools import benchmark_dense


def sample() -> dict:
    keypoints = [float(v) for k in range(17) for v in (10 + k, 20 + k, 2)]
    return {'annotations': [{'keypoints': list(keypoints), 'num_keypoints': 17} for _ in range(20)]}


def test_held_back_joints_are_unlabelled_and_counted_and_the_original_is_untouched():
    data = sample()
    eyes = benchmark_dense.held_back(data, joints={1, 2})
    assert all(a['keypoints'][3:9] == [0, 0, 0, 0, 0, 0] and a['num_keypoints'] == 15 for a in eyes['annotations'])
    assert data['annotations'][0]['keypoints'][3:6] == [11.0, 21.0, 2.0]


def test_a_held_back_fraction_is_seeded_and_near_its_share():
    data = sample()
    first = benchmark_dense.held_back(data, fraction=0.3, seed=1)
    assert first == benchmark_dense.held_back(data, fraction=0.3, seed=1)
    kept = sum(a['num_keypoints'] for a in first['annotations'])
    assert 0.6 * 340 < kept < 0.8 * 340  # 340 labelled keypoints, 30% held back
