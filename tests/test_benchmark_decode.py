"""``python -m tools.benchmark_decode``: the decoder benchmark's scenes and its result file."""

import json

import numpy as np

from tools import benchmark_decode


def test_clean_and_cluttered_scenes_still_decode_to_the_rendered_people():
    rows = benchmark_decode.time_scenes([1, 5], benchmark_decode.SETTINGS['eval'], repeats=1)
    assert [(r['fields'], r['people']) for r in rows] == [('clean', 1), ('cluttered', 1), ('clean', 5),
                                                          ('cluttered', 5), ('random network', 0)]
    for row in rows[:-1]:
        assert row['decoded'] == row['annotated'] == row['people']
        assert not row['considered']['capped'] and row['considered']['seeds'] >= row['people']
    assert rows[-1]['considered']['capped']  # a random network's fields: bounded work


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
    assert row['people'] == 1 and row['fields'] == 'clean' and row['ms_median'] > 0
    assert set(row['considered']) == {'confident_cells', 'votes', 'seeds', 'poses_grown', 'capped'}
    assert set(row['stages_ms_median']) == {'accumulation', 'seeds', 'caf_scoring', 'growth', 'force_complete',
                                            'nms'}
    assert result['image'] == [641, 427] and result['predict'] is None


def test_peer_rows_take_the_median_over_rounds_and_the_ratio_to_openpifpaf():
    def row(decoder, name, ms, cpp=None, poses=5):
        return {'input': name, 'decoder': decoder, 'decoder_ms_median': ms, 'poses': poses,
                **({} if cpp is None else {'cpp_ms_median': cpp})}
    results = {'openfields': [row('openfields', 'clean-5', ms) for ms in (2.0, 2.2, 9.0)],
               'openfields_all_votes': [row('openfields', 'clean-5', ms) for ms in (2.0, 2.4, 2.6)],
               'openpifpaf': [row('openpifpaf', 'clean-5', ms, cpp=ms - 0.5, poses=4) for ms in (5.0, 5.5, 4.0)]}
    [summary] = benchmark_decode.peer_rows(results)
    assert summary['openfields_ms'] == 2.2 and summary['openpifpaf_ms'] == 5.0 and summary['ratio'] == 0.44
    assert summary['openpifpaf_cpp_only_ms'] == 4.5 and summary['ratio_all_votes'] == 0.48
    assert summary['rounds'] == 3 and summary['poses'] == {'openfields': 5, 'openfields_all_votes': 5, 'openpifpaf': 4}
