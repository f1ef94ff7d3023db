"""Head metas: validation, strides, flips and plain-typed round trips."""

import dataclasses

import pytest
import torch

from openfields import headmeta
from openfields.datasets import coco_person


def coco_cif(**kwargs):
    return headmeta.Cif(name='cif', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, pose=coco_person.COCO_UPRIGHT_POSE,
                        hflip=headmeta.hflip_from_names(coco_person.COCO_KEYPOINTS), **kwargs)


def coco_caf(**kwargs):
    return headmeta.Caf(name='caf', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, skeleton=coco_person.COCO_PERSON_SKELETON, **kwargs)


def test_component_counts_match_the_documented_layouts():
    assert (coco_cif().n_fields, coco_cif().n_components) == (17, 5)
    assert (coco_caf().n_fields, coco_caf().n_components) == (19, 8)
    det = headmeta.CifDet(name='cifdet', dataset='cocodet', categories=['person', 'car'])
    assert (det.n_fields, det.n_components) == (2, 6)


def test_stride_is_base_stride_over_upsample_and_requires_the_base_stride():
    with pytest.raises(ValueError, match='created without the basenet\'s stride'):
        _ = coco_cif(upsample_stride=2).stride
    assert coco_cif(upsample_stride=2, base_stride=16).stride == 8


@pytest.mark.parametrize('meta', [coco_cif(), coco_caf(),
                                  headmeta.CifDet(name='cifdet', dataset='d', categories=['a'])])
def test_head_metas_are_frozen(meta):
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.base_stride = 16
    assert dataclasses.replace(meta, base_stride=16).stride == 16 and meta.base_stride == 0


def test_checkpoint_dicts_with_the_former_head_index_field_still_load():
    saved = dict(coco_caf(base_stride=16).to_dict(), head_index=1)
    meta = headmeta.Base.from_dict(saved)
    assert meta == coco_caf(base_stride=16) and meta.stride == 16 and not hasattr(meta, 'head_index')


def test_round_trip_through_plain_dict_survives_torch_weights_only(tmp_path):
    metas = [coco_cif(upsample_stride=2, score_weights=coco_person.COCO_PERSON_SCORE_WEIGHTS), coco_caf()]
    path = tmp_path / 'metas.pt'
    torch.save([m.to_dict() for m in metas], path)
    loaded = [headmeta.Base.from_dict(d) for d in torch.load(path, weights_only=True)]
    assert loaded == metas
    assert loaded[1].skeleton[0] == (16, 14)


def test_coco_flip_permutation_swaps_left_and_right():
    perm = coco_cif().flip_permutation()
    names = coco_person.COCO_KEYPOINTS
    assert [names[i] for i in perm][:5] == ['nose', 'right_eye', 'left_eye', 'right_ear', 'left_ear']
    assert sorted(perm) == list(range(17))


@pytest.mark.parametrize('names, expected', [
    (['snout', 'leftear', 'rightear', 'tailbase'], {'leftear': 'rightear', 'rightear': 'leftear'}),
    (['head', 'l_knee', 'r_knee'], {'l_knee': 'r_knee', 'r_knee': 'l_knee'}),
    (['a', 'b', 'c'], {}),
])
def test_hflip_pairs_are_found_by_name(names, expected):
    assert headmeta.hflip_from_names(names) == expected


@pytest.mark.parametrize('kwargs, message', [
    (dict(sigmas=[0.1] * 16), '16 sigmas for 17 keypoints'),
    (dict(score_weights=[1.0] * 3), 'score_weights'),
    (dict(hflip={'nose': 'tail'}), 'unknown keypoint'),
    (dict(draw_skeleton=[(0, 1)]), '1-based'),
])
def test_inconsistent_cif_meta_is_rejected_with_the_field_named(kwargs, message):
    base = dict(name='cif', dataset='x', keypoints=coco_person.COCO_KEYPOINTS, sigmas=coco_person.COCO_PERSON_SIGMAS)
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        headmeta.Cif(**base)


def test_caf_skeleton_index_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r'skeleton entry \[1, 18\]'):
        headmeta.Caf(name='caf', dataset='x', keypoints=coco_person.COCO_KEYPOINTS,
                     sigmas=coco_person.COCO_PERSON_SIGMAS, skeleton=[(1, 18)])
