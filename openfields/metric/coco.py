"""COCO average precision and recall, computed by pycocotools' ``COCOeval``.

The metric collects predictions per image (:meth:`Coco.accumulate`), then hands them to pycocotools unchanged
(:meth:`Coco.stats`): the numbers are the official ones, not a re-implementation. What this module adds:

* per-image truncation to the ``max_per_image`` best-scoring predictions (COCOeval's own ``maxDets``
  would otherwise keep the *first* ones after its stable sort, i.e. depend on the decoder's order for ties);
* custom OKS sigmas for keypoint sets other than COCO's 17 (``kpt_oks_sigmas``);
* a prepared copy of the ground truth that pycocotools can digest: ``area`` from the box where it is missing
  (CrowdPose), ``iscrowd`` / ``num_keypoints`` / ``keypoints`` defaults, fresh annotation ids (COCOeval
  treats a ground-truth id of 0 as "unmatched") and only the evaluated category;
* images without predictions still count (``loadRes`` refuses an empty list, so an empty result set is
  built directly);
* COCO result files for evaluation servers (:meth:`Coco.write_predictions`).

pycocotools prints progress and the summary table; all of it is captured, logged at INFO and kept in
:attr:`Coco.summary`. Undefined entries (e.g. ``APM`` without medium-sized people) are pycocotools' -1.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
import zipfile
from typing import Any, Iterable

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from ..decoder.annotation import Annotation, AnnotationDet
from ..outputs import atomic_write, write_text

LOG = logging.getLogger(__name__)

# Names of COCOeval.stats entries, in COCOeval's order (see COCOeval.summarize).
KEYPOINT_STAT_NAMES = ('AP', 'AP50', 'AP75', 'APM', 'APL', 'AR', 'AR50', 'AR75', 'ARM', 'ARL')
BBOX_STAT_NAMES = ('AP', 'AP50', 'AP75', 'APS', 'APM', 'APL', 'AR1', 'AR10', 'AR100', 'ARS', 'ARM', 'ARL')
IOU_TYPES = ('keypoints', 'bbox')
DEFAULT_MAX_PER_IMAGE = {'keypoints': 20, 'bbox': 100}  # COCOeval's largest maxDets per iou type


def coco_sigmas() -> list[float]:
    """pycocotools' built-in OKS sigmas for the 17 COCO person keypoints."""
    return [float(s) for s in Params(iouType='keypoints').kpt_oks_sigmas]


@contextlib.contextmanager
def _captured_stdout():
    """Collect what pycocotools prints instead of letting it reach stdout."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


class Coco:
    """COCO keypoint (OKS) or box (IoU) evaluation of one category.

    ``annotations``: path of a COCO json or the loaded dict (not modified).
    ``sigmas``: per-keypoint OKS sigmas; None takes pycocotools' COCO values (17 keypoints only).
    ``keypoint_names``: names of the predicted keypoints, checked against the ground-truth category.
    ``category_id``: the evaluated category; predictions and ground truth of other categories are ignored
    (None: all categories, bbox only).
    ``max_per_image``: predictions kept per image, best scores first (default 20 keypoints, 100 bbox).
    ``image_ids``: evaluate exactly these images (those never accumulated count as missed); default: every
    accumulated image.
    ``small_threshold``: drop predictions whose size (square root of their box area, pixels) is smaller.
    """

    def __init__(self, annotations: str | os.PathLike | dict, *, iou_type: str = 'keypoints',
                 category_id: int | None = 1, sigmas: Iterable[float] | None = None,
                 keypoint_names: Iterable[str] | None = None, max_per_image: int | None = None,
                 image_ids: Iterable[int] | None = None, small_threshold: float = 0.0):
        if iou_type not in IOU_TYPES:
            raise ValueError(f'iou_type must be one of {IOU_TYPES}, got {iou_type!r}')
        if category_id is None and iou_type == 'keypoints':
            raise ValueError('keypoint evaluation needs a category_id (its keypoints and sigmas)')
        self.iou_type = iou_type
        self.category_id = category_id
        self.max_per_image = DEFAULT_MAX_PER_IMAGE[iou_type] if max_per_image is None else int(max_per_image)
        if self.max_per_image < 1:
            raise ValueError(f'max_per_image must be >= 1, got {self.max_per_image}')
        self.small_threshold = float(small_threshold)
        dataset = _load(annotations)
        self.sigmas: list[float] | None = None
        if iou_type == 'keypoints':
            self.sigmas = _check_sigmas(dataset, category_id, sigmas, keypoint_names)
        self._gt = _ground_truth(dataset, category_id, self.sigmas)
        self.image_ids = None if image_ids is None else self._known_image_ids(image_ids)
        self._predictions: dict[int, list[dict]] = {}  # image id -> COCO result dicts, best score first
        self.summary = ''  # COCOeval's printed summary of the last stats() call

    @property
    def names(self) -> tuple[str, ...]:
        """The scores :meth:`stats` returns (COCOeval's summary, in its order), known before evaluating."""
        return KEYPOINT_STAT_NAMES if self.iou_type == 'keypoints' else BBOX_STAT_NAMES

    # --- collecting -----------------------------------------------------------------------------------

    def accumulate(self, predictions: list[Annotation | AnnotationDet], image_meta: dict):
        """Keep the best ``max_per_image`` predictions of the image ``image_meta['image_id']``.

        Predictions must be in the coordinates of the original image. An empty list still registers the
        image: its ground truth counts as missed. Calling again for the same image adds to its predictions.
        """
        image_id = int(image_meta['image_id'])
        if image_id not in self._gt.imgs:
            raise ValueError(f'image_id {image_id} is not in the ground truth')
        kept = [p for p in predictions if self._wanted(p)]
        kept.sort(key=lambda p: -float(p.score))  # stable: ties keep the decoder's order
        results = self._predictions.setdefault(image_id, [])
        results.extend(self._result(p, image_id) for p in kept[:self.max_per_image])
        results.sort(key=lambda r: -r['score'])
        del results[self.max_per_image:]

    def _wanted(self, prediction) -> bool:
        """Type check; drop other categories and predictions below ``small_threshold``."""
        if not isinstance(prediction, (Annotation, AnnotationDet)):
            raise TypeError(f'expected Annotation or AnnotationDet, got {type(prediction).__name__}')
        if self.iou_type == 'keypoints':
            if not isinstance(prediction, Annotation):
                raise TypeError('keypoint evaluation needs Annotation (pose) predictions, got AnnotationDet')
            if prediction.data.shape[0] != len(self.sigmas):
                raise ValueError(f'prediction has {prediction.data.shape[0]} keypoints, the metric '
                                 f'{len(self.sigmas)} sigmas')
        if self.category_id is not None and int(prediction.category_id) != self.category_id:
            return False
        return self.small_threshold <= 0.0 or _size(prediction) >= self.small_threshold

    def _result(self, prediction, image_id: int) -> dict:
        """COCO result dict with only the field of this iou type: ``loadRes`` picks its branch by the keys
        present (a ``bbox`` key wins over ``keypoints``), and the evaluation servers expect this format."""
        data = prediction.json_data()
        value_key = 'keypoints' if self.iou_type == 'keypoints' else 'bbox'
        return {'image_id': image_id, 'category_id': data['category_id'], value_key: data[value_key],
                'score': data['score']}

    # --- evaluating -----------------------------------------------------------------------------------

    def evaluated_image_ids(self) -> list[int]:
        """The images ``stats()`` evaluates."""
        return sorted(self._predictions) if self.image_ids is None else list(self.image_ids)

    def results(self) -> list[dict]:
        """COCO result list of the evaluated images."""
        return [r for image_id in self.evaluated_image_ids() for r in self._predictions.get(image_id, [])]

    def stats(self, *, verbose: bool = False) -> dict[str, Any]:
        """Run COCOeval; returns the summary values by name plus ``n_images``.

        ``verbose`` prints COCOeval's summary table (it is always logged at INFO).
        """
        image_ids = self.evaluated_image_ids()
        if not image_ids:
            raise ValueError('no images to evaluate: accumulate() was never called')
        with _captured_stdout() as printed:
            evaluation = self._coco_eval(image_ids)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        self.summary = _summary_lines(printed.getvalue())
        LOG.info('COCO %s evaluation of %d images:\n%s', self.iou_type, len(image_ids), self.summary)
        if verbose:
            print(self.summary)
        return {**{name: float(value) for name, value in zip(self.names, evaluation.stats)},
                'n_images': len(image_ids)}

    def _coco_eval(self, image_ids: list[int]) -> COCOeval:
        # loadRes adds id / area / bbox keys to the dicts it gets: hand it copies
        results = [dict(r) for r in self.results()]
        detections = self._gt.loadRes(results) if results else _empty_results(self._gt)
        evaluation = COCOeval(self._gt, detections, iouType=self.iou_type)
        evaluation.params.imgIds = image_ids
        if self.category_id is not None:
            evaluation.params.catIds = [self.category_id]
        if self.sigmas is not None:
            evaluation.params.kpt_oks_sigmas = np.asarray(self.sigmas, dtype=np.float64)
        return evaluation

    # --- writing --------------------------------------------------------------------------------------

    def write_predictions(self, path_prefix: str | os.PathLike) -> tuple[str, str]:
        """Write ``<prefix>.pred.json`` (COCO result list) and ``<prefix>.pred.zip`` (the same list as
        ``predictions.json``, the layout evaluation servers ask for); returns both paths."""
        prefix = str(path_prefix)
        results = self.results()
        text = json.dumps(results)
        json_path, zip_path = f'{prefix}.pred.json', f'{prefix}.pred.zip'
        write_text(json_path, text)
        with atomic_write(zip_path, 'wb') as f, zipfile.ZipFile(f, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr('predictions.json', text)
        LOG.info('wrote %d predictions to %s and %s', len(results), json_path, zip_path)
        return json_path, zip_path

    def _known_image_ids(self, image_ids: Iterable[int]) -> list[int]:
        ids = sorted({int(i) for i in image_ids})
        unknown = [i for i in ids if i not in self._gt.imgs]
        if unknown:
            raise ValueError(f'image_ids not in the ground truth: {unknown[:10]}')
        return ids


# --- ground truth ---------------------------------------------------------------------------------------

def _load(annotations: str | os.PathLike | dict) -> dict:
    if isinstance(annotations, dict):
        return annotations
    with open(annotations, encoding='utf-8') as f:
        return json.load(f)


def _category(dataset: dict, category_id: int) -> dict:
    for category in dataset.get('categories', []):
        if category['id'] == category_id:
            return category
    known = [c['id'] for c in dataset.get('categories', [])]
    raise ValueError(f'category_id {category_id} is not in the ground truth (categories {known})')


def _check_sigmas(dataset: dict, category_id: int, sigmas, keypoint_names) -> list[float]:
    """OKS sigmas consistent with the ground-truth category and the predicted keypoint names."""
    gt_names = _category(dataset, category_id).get('keypoints')
    names = list(keypoint_names) if keypoint_names is not None else gt_names
    if sigmas is None:
        if names is not None and len(names) != 17:
            raise ValueError(f'{len(names)} keypoints: pass sigmas (the defaults are COCO\'s 17)')
        return coco_sigmas()
    sigmas = [float(s) for s in sigmas]
    if not all(s > 0 and math.isfinite(s) for s in sigmas):
        raise ValueError(f'sigmas must be positive, got {sigmas}')
    if names is not None and len(names) != len(sigmas):
        raise ValueError(f'{len(sigmas)} sigmas for {len(names)} keypoints')
    if gt_names is not None and len(gt_names) != len(sigmas):
        raise ValueError(f'{len(sigmas)} sigmas but category {category_id} has {len(gt_names)} keypoints')
    if keypoint_names is not None and gt_names is not None and list(keypoint_names) != list(gt_names):
        LOG.warning('predicted keypoint names %s differ from the ground truth\'s %s', list(keypoint_names),
                    list(gt_names))
    return sigmas


def _ground_truth(dataset: dict, category_id: int | None, sigmas: list[float] | None) -> COCO:
    """A pycocotools COCO index over a prepared copy of ``dataset`` (the caller's dict is untouched)."""
    annotations = [_prepared(a, len(sigmas) if sigmas is not None else None)
                   for a in dataset.get('annotations', [])
                   if category_id is None or a['category_id'] == category_id]
    for new_id, annotation in enumerate(annotations, start=1):
        # COCOeval marks matches by ground-truth id, so an id of 0 would count as a miss
        annotation['id'] = new_id
    prepared = {key: value for key, value in dataset.items() if key != 'annotations'}
    prepared['images'] = list(dataset.get('images', []))
    prepared['categories'] = copy.deepcopy(dataset.get('categories', []))
    prepared['annotations'] = annotations
    coco = COCO()
    coco.dataset = prepared
    with _captured_stdout():
        coco.createIndex()
    return coco


def _prepared(annotation: dict, n_keypoints: int | None) -> dict:
    """Shallow copy with the fields COCOeval reads but some datasets lack."""
    a = dict(annotation)  # COCOeval also writes an 'ignore' key into ground-truth dicts
    a.setdefault('iscrowd', 0)
    if 'area' not in a:  # CrowdPose: OKS divides by the area, use the box instead
        a['area'] = float(a['bbox'][2] * a['bbox'][3]) if 'bbox' in a else 0.0
    if n_keypoints is not None:
        if 'keypoints' not in a:
            a['keypoints'] = [0.0] * (3 * n_keypoints)
        if 'num_keypoints' not in a:
            a['num_keypoints'] = int(np.count_nonzero(np.asarray(a['keypoints'])[2::3] > 0))
    return a


def _empty_results(gt: COCO) -> COCO:
    """The result set ``loadRes`` would build for no predictions (it asserts on an empty list)."""
    results = COCO()
    results.dataset = {'images': list(gt.dataset['images']),
                       'categories': copy.deepcopy(gt.dataset['categories']), 'annotations': []}
    with _captured_stdout():
        results.createIndex()
    return results


# --- helpers --------------------------------------------------------------------------------------------

def _size(prediction: Annotation | AnnotationDet) -> float:
    """Square root of the box area: the keypoints' extent for poses, the box for detections."""
    if isinstance(prediction, AnnotationDet):
        w, h = prediction.bbox[2], prediction.bbox[3]
    else:
        found = prediction.data[prediction.data[:, 2] > 0, :2]
        if len(found) == 0:
            return 0.0
        w, h = np.ptp(found, axis=0)
    return math.sqrt(max(0.0, float(w) * float(h)))


def _summary_lines(printed: str) -> str:
    """The 'Average Precision/Recall' table out of everything COCOeval printed."""
    return '\n'.join(line for line in printed.splitlines() if line.lstrip().startswith('Average'))

