"""Bounded work on noisy fields: an untrained network's fields vote with their most confident cells only,
at most so many poses grow, and a capped image is logged; clean fields are never capped."""

import logging

import numpy as np
import pytest

from openfields.decoder.cifhr import confident_cells, max_cells

from decoder_samples import decoder, oracle_fields, people


def noisy_fields(seed=0):
    """What a randomly initialised network gives: confidences near 0.5 in every cell, small vectors."""
    rng = np.random.default_rng(seed)
    cif = np.zeros((17, 5, 54, 81), np.float32)
    caf = np.zeros((19, 8, 54, 81), np.float32)
    for fields in (cif, caf):
        fields[:, 1] = rng.uniform(0.45, 0.55, fields[:, 1].shape)
        rows, columns = np.mgrid[0:54, 0:81]
        fields[:, 2::2] = columns + rng.normal(0, 0.3, fields[:, 2::2].shape)  # x at the cell
        fields[:, 3::2] = rows + rng.normal(0, 0.3, fields[:, 3::2].shape)
    cif[:, 4] = 0.7
    caf[:, 6:8] = 0.7
    return [cif, caf]


def test_the_most_confident_cells_of_each_field_are_kept_in_their_order():
    fields = np.zeros((2, 5, 4, 4), np.float32)
    fields[0, 1] = np.arange(16).reshape(4, 4) / 16  # field 0: 15 cells >= 0.05
    fields[1, 1, 0, :2] = 0.9  # field 1: 2 cells
    field, conf = confident_cells(fields, 0.05, (), max_per_field=3)[:2]
    assert field.tolist() == [0, 0, 0, 1, 1]
    assert conf.tolist() == pytest.approx([13 / 16, 14 / 16, 15 / 16, 0.9, 0.9])
    assert max_cells((54, 81), 0.2, 1000) == 1000 and max_cells((108, 161), 0.2, 1000) == 3477


def test_noisy_fields_vote_with_a_capped_number_of_cells_and_say_so_once(caplog):
    caplog.set_level(logging.DEBUG, logger='openfields.decoder.cifcaf')
    decode = decoder()
    for seed in (0, 1):
        decode(noisy_fields(seed))
        assert decode.counts['confident_cells'] == 17 * 54 * 81
        assert decode.counts['votes'] == 17 * 1000 and decode.counts['capped']
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and '74358 confident CIF cells, 17000 voted' in warnings[0].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 1  # the second image


def test_at_most_max_grown_poses_grow():
    anns = people(12, seed=3)
    decode = decoder(max_grown_poses=4, instance_threshold=0.0)
    annotations = decode(oracle_fields(anns))
    assert decode.counts['poses_grown'] == 4 and decode.counts['capped']
    assert len(annotations) <= 4


@pytest.mark.parametrize('n', [1, 5, 20])
def test_clean_fields_are_never_capped(n):
    decode = decoder()
    decode(oracle_fields(people(n, seed=n)))
    assert not decode.counts['capped']
    assert decode.counts['votes'] == decode.counts['confident_cells']
    assert decode.counts['poses_grown'] >= n
