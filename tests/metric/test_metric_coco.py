"""COCO metric: real pycocotools numbers for ground truth fed back as predictions, and controlled damage."""

import copy
import json
import pathlib
import zipfile

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from openfields import headmeta
from openfields.decoder.annotation import Annotation, AnnotationDet
from openfields.metric import Coco, coco_sigmas
from openfields.metric.coco import BBOX_STAT_NAMES, KEYPOINT_STAT_NAMES
from openfields.datasets import coco_person

SHARED = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data'
COCO_SAMPLE = SHARED / 'coco-val-sample' / 'annotations.json'
CROWDPOSE_SAMPLE = SHARED / 'crowdpose-sample' / 'annotations.json'
needs_coco = pytest.mark.skipif(not COCO_SAMPLE.is_file(), reason=f'COCO sample data not found at {COCO_SAMPLE}')
needs_crowdpose = pytest.mark.skipif(not CROWDPOSE_SAMPLE.is_file(),
                                     reason=f'CrowdPose sample data not found at {CROWDPOSE_SAMPLE}')

COCO_META = headmeta.Cif(name='cif', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                         sigmas=coco_person.COCO_PERSON_SIGMAS)
DET_META = headmeta.CifDet(name='cifdet', dataset='cocodet', categories=['person'])
# CrowdPose's own evaluation (crowdposetools) uses COCO's sigmas for the 12 limb joints in CrowdPose order
# (shoulders, elbows, wrists, hips, knees, ankles) and 0.079 for head and neck.
CROWDPOSE_SIGMAS = [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
                    0.079, 0.079]


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def people(dataset: dict) -> list[dict]:
    """Ground-truth annotations that count in keypoint evaluation (COCOeval ignores zero-keypoint ones)."""
    return [a for a in dataset['annotations']
            if a['category_id'] == 1 and a['num_keypoints'] > 0 and not a['iscrowd']]


def pose(ann: dict, meta: headmeta.Cif = COCO_META, shift=(0.0, 0.0), score: float = 1.0) -> Annotation:
    """The ground-truth pose as a prediction: labelled keypoints found with confidence 1."""
    keypoints = np.asarray(ann['keypoints'], dtype=np.float32).reshape(-1, 3)
    data = keypoints.copy()
    data[:, 2] = (keypoints[:, 2] > 0).astype(np.float32)
    data[:, :2] += np.asarray(shift, dtype=np.float32)
    return Annotation(meta=meta, data=data, joint_scales=np.zeros(len(data), dtype=np.float32),
                      fixed_score=score)


def box(ann: dict, score: float = 1.0) -> AnnotationDet:
    return AnnotationDet(meta=DET_META, category_id=ann['category_id'], score=score,
                         bbox=np.asarray(ann['bbox'], dtype=np.float32))


def by_image(dataset: dict, predictions: list[tuple[int, object]]) -> dict[int, list]:
    """Predictions grouped by image, every image of the dataset present (possibly empty)."""
    grouped = {image['id']: [] for image in dataset['images']}
    for image_id, prediction in predictions:
        grouped[image_id].append(prediction)
    return grouped


def evaluate(metric: Coco, grouped: dict[int, list]) -> dict:
    for image_id, predictions in grouped.items():
        metric.accumulate(predictions, {'image_id': image_id})
    return metric.stats()


def keypoint_stats(dataset, predictions, **kwargs) -> dict:
    metric = Coco(dataset, sigmas=coco_person.COCO_PERSON_SIGMAS, **kwargs)
    return evaluate(metric, by_image(dataset, predictions))


def oks(ann: dict, shift, sigmas=coco_person.COCO_PERSON_SIGMAS, area=None) -> float:
    """OKS of a uniformly shifted ground-truth pose, from the COCO definition (kappa = 2 sigma)."""
    visible = np.asarray(ann['keypoints']).reshape(-1, 3)[:, 2] > 0
    kappa = 2 * np.asarray(sigmas)
    d2 = shift[0] ** 2 + shift[1] ** 2
    area = ann['area'] if area is None else area
    return float(np.mean(np.exp(-d2 / (2 * area * kappa[visible] ** 2))))


# --- keypoints ------------------------------------------------------------------------------------------

@needs_coco
def test_ground_truth_keypoints_give_perfect_scores():
    dataset = load(COCO_SAMPLE)
    stats = keypoint_stats(dataset, [(a['image_id'], pose(a)) for a in people(dataset)])
    assert list(stats) == list(KEYPOINT_STAT_NAMES) + ['n_images']
    assert stats['AP'] == pytest.approx(1.0)
    assert stats['AR'] == pytest.approx(1.0)
    assert stats['APM'] == pytest.approx(1.0) and stats['APL'] == pytest.approx(1.0)
    assert stats['n_images'] == 4


@needs_coco
def test_shifting_keypoints_lowers_ap_monotonically():
    dataset = load(COCO_SAMPLE)
    ap = {}
    for shift in (2.0, 5.0, 10.0):
        predictions = [(a['image_id'], pose(a, shift=(shift, 0.0))) for a in people(dataset)]
        ap[shift] = keypoint_stats(dataset, predictions)['AP']
    # measured with pycocotools 2.0.11: 0.953, 0.679, 0.283 (people of 30-270 px; eye sigmas are 0.025)
    assert 0.93 < ap[2.0] < 0.98
    assert 0.6 < ap[5.0] < 0.75
    assert 0.2 < ap[10.0] < 0.35


@needs_coco
def test_shifted_poses_match_hand_computed_oks():
    """Scores ordered like the OKS: at each threshold t the matches come first, so recall is
    (#OKS >= t) / n and precision is 1 up to it; AP_t counts the 101 recall points up to that recall."""
    dataset = load(COCO_SAMPLE)
    shift = (3.0, 2.0)
    anns = people(dataset)
    values = np.array([oks(a, shift) for a in anns])
    ranks = np.argsort(np.argsort(values))  # distinct scores, even after rounding to 3 digits
    predictions = [(a['image_id'], pose(a, shift=shift, score=0.5 + 0.01 * r)) for a, r in zip(anns, ranks)]
    stats = keypoint_stats(dataset, predictions)

    thresholds = np.linspace(0.5, 0.95, 10)
    recalls = np.array([np.sum(values >= t) / len(anns) for t in thresholds])
    recall_points = np.linspace(0.0, 1.0, 101)
    expected_ap = np.mean([np.sum(recall_points <= r + 1e-9) / 101 for r in recalls])
    assert 0.2 < recalls.mean() < 0.9  # the shift matters, but not for everyone
    assert stats['AR'] == pytest.approx(recalls.mean())
    assert stats['AP'] == pytest.approx(expected_ap)


@needs_coco
def test_dropping_half_the_people_halves_recall():
    dataset = load(COCO_SAMPLE)
    anns = people(dataset)
    assert len(anns) == 12
    stats = keypoint_stats(dataset, [(a['image_id'], pose(a)) for a in anns[::2]])
    assert stats['AR'] == pytest.approx(0.5)
    assert stats['AP'] == pytest.approx(51 / 101)  # precision 1 on the recall points 0.00 ... 0.50


@needs_coco
def test_images_without_predictions_count_as_misses():
    dataset = load(COCO_SAMPLE)
    skipped = 197388
    n_skipped = sum(a['image_id'] == skipped for a in people(dataset))
    assert n_skipped == 5
    predictions = [(a['image_id'], pose(a)) for a in people(dataset) if a['image_id'] != skipped]

    stats = keypoint_stats(dataset, predictions)  # the image is accumulated with an empty list
    assert stats['AR'] == pytest.approx(7 / 12)
    assert stats['n_images'] == 4

    # never accumulated: not evaluated, unless image_ids asks for it
    grouped = by_image(dataset, predictions)
    del grouped[skipped]
    metric = Coco(dataset, sigmas=coco_person.COCO_PERSON_SIGMAS)
    assert evaluate(metric, grouped)['AR'] == pytest.approx(1.0)
    metric = Coco(dataset, sigmas=coco_person.COCO_PERSON_SIGMAS, image_ids=[i['id'] for i in dataset['images']])
    assert evaluate(metric, grouped)['AR'] == pytest.approx(7 / 12)


@needs_coco
def test_no_predictions_at_all_give_zero():
    dataset = load(COCO_SAMPLE)  # pycocotools' loadRes fails on an empty result list
    stats = keypoint_stats(dataset, [])
    assert stats['AP'] == 0.0 and stats['AR'] == 0.0


@needs_coco
def test_max_per_image_keeps_the_best_scoring():
    dataset = load(COCO_SAMPLE)
    ann = next(a for a in people(dataset) if a['image_id'] == 785)
    far = (200.0, 150.0)  # far from the only person of the image
    metric = Coco(dataset, max_per_image=1)
    metric.accumulate([pose(ann, shift=far, score=0.2), pose(ann, score=0.9), pose(ann, shift=far, score=0.3)],
                      {'image_id': 785})
    assert [r['score'] for r in metric.results()] == [0.9]
    assert metric.stats()['AP'] == pytest.approx(1.0)

    metric = Coco(dataset, max_per_image=1)
    metric.accumulate([pose(ann, score=0.5), pose(ann, shift=far, score=0.8)], {'image_id': 785})
    metric.accumulate([pose(ann, shift=far, score=0.7)], {'image_id': 785})  # same image again: merged
    assert [r['score'] for r in metric.results()] == [0.8]
    assert metric.stats()['AP'] == pytest.approx(0.0)


@needs_coco
def test_small_threshold_drops_small_predictions():
    dataset = load(COCO_SAMPLE)
    anns = people(dataset)
    sizes = []
    for a in anns:
        k = np.asarray(a['keypoints'], dtype=np.float64).reshape(-1, 3)
        w, h = np.ptp(k[k[:, 2] > 0, :2], axis=0)
        sizes.append(np.sqrt(w * h))
    threshold = np.mean(sorted(sizes)[:2])  # between the smallest and the second smallest person
    stats = keypoint_stats(dataset, [(a['image_id'], pose(a)) for a in anns], small_threshold=threshold)
    assert stats['AR'] == pytest.approx(11 / 12)


@needs_coco
def test_stats_stay_out_of_stdout(capsys):
    dataset = load(COCO_SAMPLE)
    metric = Coco(COCO_SAMPLE, sigmas=None)  # a path works too; default sigmas are COCO's
    for image_id, predictions in by_image(dataset, [(a['image_id'], pose(a)) for a in people(dataset)]).items():
        metric.accumulate(predictions, {'image_id': image_id})
    metric.stats()
    assert capsys.readouterr().out == ''
    assert 'Average Precision' in metric.summary
    metric.stats(verbose=True)
    assert 'Average Recall' in capsys.readouterr().out


@needs_coco
def test_written_predictions_reproduce_the_stats_with_plain_pycocotools(tmp_path):
    dataset = load(COCO_SAMPLE)
    metric = Coco(dataset)
    grouped = by_image(dataset, [(a['image_id'], pose(a, shift=(4.0, -1.0), score=0.5 + 0.01 * i))
                                 for i, a in enumerate(people(dataset))])
    stats = evaluate(metric, grouped)
    json_path, zip_path = metric.write_predictions(tmp_path / 'out' / 'model')
    assert json_path.endswith('model.pred.json') and zip_path.endswith('model.pred.zip')
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['model.pred.json', 'model.pred.zip']

    results = json.loads(pathlib.Path(json_path).read_text())
    assert len(results) == 12
    assert set(results[0]) == {'image_id', 'category_id', 'keypoints', 'score'}
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == ['predictions.json']
        assert json.loads(archive.read('predictions.json')) == results

    gt = COCO(str(COCO_SAMPLE))
    evaluation = COCOeval(gt, gt.loadRes(json_path), iouType='keypoints')
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert stats['AP'] == pytest.approx(evaluation.stats[0])
    assert 0.1 < stats['AP'] < 0.9
    assert [stats[name] for name in KEYPOINT_STAT_NAMES] == pytest.approx(list(evaluation.stats))


# --- other datasets and ground-truth quirks -------------------------------------------------------------

@needs_crowdpose
def test_crowdpose_with_custom_sigmas_and_no_area():
    dataset = load(CROWDPOSE_SAMPLE)
    original = copy.deepcopy(dataset)
    assert all('area' not in a for a in dataset['annotations'])
    meta = headmeta.Cif(name='cif', dataset='crowdpose', keypoints=dataset['categories'][0]['keypoints'],
                        sigmas=CROWDPOSE_SIGMAS)
    metric = Coco(dataset, sigmas=CROWDPOSE_SIGMAS, keypoint_names=meta.keypoints)
    stats = evaluate(metric, by_image(dataset, [(a['image_id'], pose(a, meta)) for a in people(dataset)]))
    assert stats['AP'] == pytest.approx(1.0) and stats['AR'] == pytest.approx(1.0)
    assert dataset == original  # area filled in a copy only

    # shifted: the recall follows the OKS computed with the box area and the custom sigmas
    shift = (20.0, 0.0)
    values = np.array([oks(a, shift, CROWDPOSE_SIGMAS, area=a['bbox'][2] * a['bbox'][3]) for a in people(dataset)])
    recall = np.mean([np.mean(values >= t) for t in np.linspace(0.5, 0.95, 10)])
    assert 0.2 < recall < 0.8
    shifted = Coco(dataset, sigmas=CROWDPOSE_SIGMAS)
    stats = evaluate(shifted, by_image(dataset, [(a['image_id'], pose(a, meta, shift=shift))
                                                 for a in people(dataset)]))
    assert stats['AR'] == pytest.approx(recall)


@needs_crowdpose
def test_crowdpose_needs_sigmas():
    with pytest.raises(ValueError, match='sigmas'):
        Coco(load(CROWDPOSE_SAMPLE))
    with pytest.raises(ValueError, match='17 sigmas for 14 keypoints'):
        Coco(load(CROWDPOSE_SAMPLE), sigmas=coco_person.COCO_PERSON_SIGMAS)


@needs_coco
def test_bbox_ground_truth_boxes_give_perfect_scores():
    dataset = load(COCO_SAMPLE)  # includes boxes under 32x32 px (people without keypoints)
    metric = Coco(dataset, iou_type='bbox')
    stats = evaluate(metric, by_image(dataset, [(a['image_id'], box(a)) for a in dataset['annotations']]))
    assert list(stats) == list(BBOX_STAT_NAMES) + ['n_images']
    for name in ('AP', 'APS', 'APM', 'APL', 'AR100', 'ARS'):
        assert stats[name] == pytest.approx(1.0), name
    assert set(metric.results()[0]) == {'image_id', 'category_id', 'bbox', 'score'}


@needs_coco
def test_bbox_with_half_the_boxes_missing():
    dataset = load(COCO_SAMPLE)
    metric = Coco(dataset, iou_type='bbox')
    stats = evaluate(metric, by_image(dataset, [(a['image_id'], box(a)) for a in dataset['annotations'][::2]]))
    assert stats['AR100'] == pytest.approx(0.5)


@needs_coco
def test_only_the_requested_category_is_evaluated():
    dataset = load(COCO_SAMPLE)
    dataset['categories'].append({'id': 2, 'name': 'dog', 'supercategory': 'animal'})
    dogs = [{'id': 10_000 + i, 'image_id': a['image_id'], 'category_id': 2, 'bbox': a['bbox'], 'area': a['area'],
             'iscrowd': 0} for i, a in enumerate(dataset['annotations'])]
    dataset['annotations'] += dogs
    predictions = [(a['image_id'], pose(a)) for a in people(dataset)]
    assert keypoint_stats(dataset, predictions)['AR'] == pytest.approx(1.0)

    boxes = [(a['image_id'], box(a)) for a in dataset['annotations'] if a['category_id'] == 1]
    assert evaluate(Coco(dataset, iou_type='bbox'), by_image(dataset, boxes))['AR100'] == pytest.approx(1.0)
    # all categories: the dogs are missed
    stats = evaluate(Coco(dataset, iou_type='bbox', category_id=None), by_image(dataset, boxes))
    assert stats['AR100'] == pytest.approx(0.5)


@needs_coco
def test_ground_truth_id_zero_still_matches():
    dataset = load(COCO_SAMPLE)  # COCOeval marks matches by ground-truth id: 0 would read as "unmatched"
    dataset['annotations'][0]['id'] = 0
    stats = keypoint_stats(dataset, [(a['image_id'], pose(a)) for a in people(dataset)])
    assert stats['AP'] == pytest.approx(1.0)


# --- errors (no shared data needed) ---------------------------------------------------------------------

def tiny_dataset() -> dict:
    keypoints = [v for j in range(17) for v in (10.0 + 5 * j, 20.0 + 3 * j, 2)]
    return {'images': [{'id': 1, 'width': 200, 'height': 200, 'file_name': 'a.jpg'}],
            'categories': [{'id': 1, 'name': 'person', 'keypoints': coco_person.COCO_KEYPOINTS}],
            'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'keypoints': keypoints, 'num_keypoints': 17,
                             'bbox': [10.0, 20.0, 80.0, 48.0], 'area': 3840.0, 'iscrowd': 0}]}


def test_tiny_dataset_round_trip():
    dataset = tiny_dataset()
    assert keypoint_stats(dataset, [(1, pose(dataset['annotations'][0]))])['AP'] == pytest.approx(1.0)


def test_invalid_inputs_are_refused():
    dataset = tiny_dataset()
    metric = Coco(dataset)
    with pytest.raises(ValueError, match='accumulate'):
        metric.stats()
    with pytest.raises(ValueError, match='image_id 7'):
        metric.accumulate([], {'image_id': 7})
    with pytest.raises(TypeError, match='AnnotationDet'):
        metric.accumulate([box(dataset['annotations'][0])], {'image_id': 1})
    crowdpose_like = headmeta.Cif(name='cif', dataset='x', keypoints=[f'k{i}' for i in range(14)],
                                  sigmas=[0.05] * 14)
    with pytest.raises(ValueError, match='14 keypoints'):
        metric.accumulate([Annotation.empty(crowdpose_like)], {'image_id': 1})
    with pytest.raises(ValueError, match='category_id 3'):
        Coco(dataset, category_id=3)
    with pytest.raises(ValueError, match='image_ids'):
        Coco(dataset, image_ids=[1, 2])
    with pytest.raises(ValueError, match='iou_type'):
        Coco(dataset, iou_type='segm')


def test_coco_sigmas_are_the_published_ones():
    assert coco_sigmas() == pytest.approx(coco_person.COCO_PERSON_SIGMAS)


def test_names_are_the_scores_of_stats_known_before_evaluating():
    dataset = tiny_dataset()
    metric = Coco(dataset)
    assert metric.names == ('AP', 'AP50', 'AP75', 'APM', 'APL', 'AR', 'AR50', 'AR75', 'ARM', 'ARL')
    metric.accumulate([pose(dataset['annotations'][0])], {'image_id': 1})
    assert list(metric.stats()) == [*metric.names, 'n_images']
    boxes = Coco(dataset, iou_type='bbox', category_id=None)
    assert boxes.names[:3] == ('AP', 'AP50', 'AP75') and 'AR100' in boxes.names
