"""``python -m tools.benchmark_decode``: the decoder benchmark's scenes and its result file."""

import json

import numpy as np

from tools import benchmark_decode


def test_cluttered_scenes_still_decode_to_the_rendered_people():
    for n in (1, 5):
        row = benchmark_decode.time_decoder(n, benchmark_decode.SETTINGS['eval'], repeats=1)
        assert row['people'] == n and row['decoded'] == row['annotated'] == n


def test_clutter_adds_weak_responses_to_every_field():
    metas = benchmark_decode._metas()
    _, anns = benchmark_decode.rendered_scene(1, seed=3)
    clean = benchmark_decode.cluttered_fields(anns, metas, np.random.default_rng(0))
    for field in clean:
        weak = (field[:, 1] > 0) & (field[:, 1] < benchmark_decode.CLUTTER_MAX_CONFIDENCE)
        assert 0.01 < weak.mean() < 0.05


def test_result_file_has_stages_per_scene(tmp_path):
    out = tmp_path / 'decode.json'
    benchmark_decode.main(['--people', '1', '--repeats', '1', '--predict-images', '0', '--output', str(out)])
    result = json.loads(out.read_text())
    row = result['decoder']['eval'][0]
    assert row['people'] == 1 and row['ms_median'] > 0
    assert set(row['stages_ms_median']) == {'accumulation', 'seeds', 'caf_scoring', 'growth', 'force_complete',
                                            'nms'}
    assert result['image'] == [641, 427] and result['predict'] is None
