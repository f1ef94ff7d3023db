"""``--debug-indices HEAD:FIELD[:KIND]`` and ``--debug-images``: which fields and plot kinds are drawn."""

import argparse

import pytest

from openfields.datasets.coco import KeypointCategory
from openfields.datasets import coco_person
from openfields.datasets.keypoint_module import head_metas_for
from openfields.show import debug

CIF_KINDS = ('confidence', 'regression', 'scale', 'hr')
CAF_KINDS = ('confidence', 'regression', 'scale')


@pytest.fixture()
def head_metas():
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    return head_metas_for(category, 'cocokp', 1, base_stride=16)


def settings(*argv: str) -> debug.DebugSettings:
    parser = argparse.ArgumentParser()
    debug.cli(parser)
    return debug.DebugSettings.from_args(parser.parse_args(list(argv)))


def chosen(head_metas, *argv):
    return [(s.head_index, s.field, s.kinds) for s in debug.select_fields(settings(*argv), head_metas)]


def test_without_flags_nothing_is_drawn():
    assert not settings().enabled
    assert settings('--debug-images').enabled and settings('--debug-indices', 'cif:0').enabled


def test_head_and_field_choose_every_kind_of_that_head(head_metas):
    assert chosen(head_metas, '--debug-indices', 'cif:5', 'caf:5') == [(0, 5, CIF_KINDS), (1, 5, CAF_KINDS)]


def test_field_names_come_from_the_head_meta(head_metas):
    cif, caf = debug.select_fields(settings('--debug-indices', 'cif:5', 'caf:5'), head_metas)
    assert cif.label == 'left_shoulder' and cif.name == 'cif-5-left_shoulder'
    assert coco_person.COCO_PERSON_SKELETON[5] == (6, 12)  # 1-based: left_shoulder -> left_hip
    assert caf.label == 'left_shoulder-left_hip'
    assert caf.title('regression') == ('cocokp.caf field 5 (left_shoulder -> left_hip): associations, '
                                       'joint 1 -> joint 2')


def test_kind_suffix_restricts_and_repeated_fields_merge(head_metas):
    assert chosen(head_metas, '--debug-indices', 'cif:5:hr', 'cif:5,6:confidence', 'caf:0:scale,regression') == [
        (0, 5, ('confidence', 'hr')), (0, 6, ('confidence',)), (1, 0, ('regression', 'scale'))]


def test_full_head_name_is_accepted(head_metas):
    assert chosen(head_metas, '--debug-indices', 'cocokp.caf:18') == [(1, 18, CAF_KINDS)]


def test_debug_images_alone_chooses_every_field_of_every_head(head_metas):
    selections = chosen(head_metas, '--debug-images')
    assert len(selections) == 17 + 19
    assert selections[0] == (0, 0, CIF_KINDS) and selections[-1] == (1, 18, CAF_KINDS)


def test_debug_images_with_indices_keeps_the_chosen_fields(head_metas):
    assert chosen(head_metas, '--debug-images', '--debug-indices', 'caf:3') == [(1, 3, CAF_KINDS)]


@pytest.mark.parametrize('entry, message', [
    ('foo:5', "--debug-indices 'foo:5': unknown head 'foo'; heads: cif, caf, cocokp.cif, cocokp.caf"),
    ('cif:17', "--debug-indices 'cif:17': field 17 out of range for head cocokp.cif (17 fields: 0 to 16)"),
    ('caf:19', "--debug-indices 'caf:19': field 19 out of range for head cocokp.caf (19 fields: 0 to 18)"),
    ('caf:1:hr', "--debug-indices 'caf:1:hr': kind 'hr' does not apply to caf heads; "
                 "kinds: confidence, regression, scale"),
])
def test_bad_entries_are_one_line_errors_naming_them(head_metas, entry, message):
    with pytest.raises(ValueError) as error:
        debug.select_fields(settings('--debug-indices', 'cif:1', entry), head_metas)
    assert str(error.value) == message


@pytest.mark.parametrize('entry', ['cif', 'cif:', 'cif:five', 'cif:5:', ':5', 'cif:-1'])
def test_malformed_entries_fail_when_parsed(entry):
    with pytest.raises(ValueError) as error:
        settings('--debug-indices', entry)
    assert str(error.value).startswith(f'--debug-indices {entry!r}: expected HEAD:FIELD')
    assert '\n' not in str(error.value)
