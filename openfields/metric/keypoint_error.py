"""Keypoint pixel error and PCK, DeepLabCut's evaluation quantities, per group of images.

Every labelled ground-truth keypoint ``g`` of an evaluated image is paired with the same keypoint ``p`` of
the prediction matched to its individual; ``d = ||p_xy - g_xy||_2`` in pixels of the original image, and
``c`` is the predicted confidence (``c = 0``: not found, as is a keypoint of an unmatched individual).

* ``pixel_error``: mean ``d`` over the labelled keypoints that were found (``c > 0``). DeepLabCut calls this
  "RMSE" although it is a mean Euclidean distance, not a root mean square (MMPose: "EPE");
* ``pixel_error_pcutoff``: the same mean over predictions with ``c >= pcutoff`` (DeepLabCut's "rmse_pcutoff");
* ``pck``: fraction of *all* labelled keypoints found within ``pck_radius`` pixels (misses count as failures).

Matching. Single animal: the best-scoring prediction is the animal (there is nothing to choose, as in
DeepLabCut's single-animal evaluation). Several animals: the assignment between predictions and labelled
individuals maximising the summed object keypoint similarity
``OKS = mean over the individual's labelled keypoints of exp(-d^2 / (2 s^2 (2 sigma)^2))`` (missing: 0) with
``s^2`` the area of the tight box of its labelled keypoints (each side at least 1 px), solved exactly with
``scipy.optimize.linear_sum_assignment``.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..decoder.annotation import Annotation

SCORES = ('pixel_error', 'pixel_error_pcutoff', 'pck')  # per group, in this order


class KeypointError:
    """Pixel error, pixel error above a confidence cutoff and PCK for named groups of images.

    ``ground_truth``: image id -> ``(N, K, 3)`` array of ``x, y, v`` in original pixels (``v > 0`` labelled).
    ``groups``: name -> image ids; stats keys are prefixed with the name (``test_pixel_error``). Images of a
    group that are never accumulated count as predicted empty.
    ``multi_animal``: match by optimal OKS assignment; otherwise each image holds at most one individual and
    the best-scoring prediction is taken.
    """

    def __init__(self, ground_truth: dict[int, np.ndarray], groups: dict[str, Iterable[int]], *,
                 keypoint_names: list[str], pcutoff: float = 0.6, pck_radius: float = 5.0,
                 multi_animal: bool = False, match_sigma: float = 0.1):
        self.keypoint_names = list(keypoint_names)
        n_keypoints = len(self.keypoint_names)
        self.ground_truth = {int(i): np.asarray(gt, dtype=np.float64).reshape(-1, n_keypoints, 3)
                             for i, gt in ground_truth.items()}
        self.groups = {name: sorted({int(i) for i in ids}) for name, ids in groups.items()}
        for name, ids in self.groups.items():
            unknown = [i for i in ids if i not in self.ground_truth]
            if unknown:
                raise ValueError(f'group {name!r}: image ids without ground truth: {unknown[:10]}')
        if not multi_animal:
            crowded = [i for i, gt in self.ground_truth.items() if len(gt) > 1]
            if crowded:
                raise ValueError(f'single-animal evaluation, but image {crowded[0]} has '
                                 f'{len(self.ground_truth[crowded[0]])} labelled individuals')
        if not 0.0 <= pcutoff <= 1.0:
            raise ValueError(f'pcutoff must be in [0, 1], got {pcutoff}')
        if not pck_radius > 0:
            raise ValueError(f'pck_radius must be positive, got {pck_radius}')
        self.pcutoff = float(pcutoff)
        self.pck_radius = float(pck_radius)
        self.multi_animal = multi_animal
        self.match_sigma = float(match_sigma)
        self._predictions: dict[int, list[tuple[float, np.ndarray]]] = {}  # image id -> (score, (K, 3))

    @property
    def names(self) -> tuple[str, ...]:
        """The scores :meth:`stats` returns per group (``test_pixel_error``, ``test_pixel_error_pcutoff``,
        ``test_pck``, then the next group's), known before evaluating; counts and settings are not scores."""
        return tuple(f'{group}_{score}' for group in self.groups for score in SCORES)

    def accumulate(self, predictions: list[Annotation], image_meta: dict):
        """Keep the predictions (original image coordinates) of ``image_meta['image_id']``; calling again for
        the same image adds to them."""
        image_id = int(image_meta['image_id'])
        if image_id not in self.ground_truth:
            raise ValueError(f'image_id {image_id} is not in the ground truth')
        kept = self._predictions.setdefault(image_id, [])
        for p in predictions:
            if not isinstance(p, Annotation):
                raise TypeError(f'expected Annotation (pose) predictions, got {type(p).__name__}')
            if p.data.shape != (len(self.keypoint_names), 3):
                raise ValueError(f'prediction has shape {p.data.shape}, expected ({len(self.keypoint_names)}, 3)')
            kept.append((float(p.score), np.asarray(p.data, dtype=np.float64)))

    def matched(self, image_id: int) -> np.ndarray:
        """``(N, K, 3)`` predicted ``x, y, c`` for the N labelled individuals of the image (zeros: unmatched)."""
        gt = self.ground_truth[image_id]
        predictions = self._predictions.get(image_id, [])
        result = np.zeros_like(gt)
        if not len(gt) or not predictions:
            return result
        if not self.multi_animal:
            result[0] = max(predictions, key=lambda sp: sp[0])[1]
            return result
        similarity = np.array([[oks(data, individual, self.match_sigma) for individual in gt]
                               for _, data in predictions])
        rows, cols = linear_sum_assignment(similarity, maximize=True)
        for r, c in zip(rows, cols):
            result[c] = predictions[r][1]
        return result

    def stats(self) -> dict[str, Any]:
        """Per group: ``<group>_pixel_error``, ``_pixel_error_pcutoff``, ``_pck`` (None when undefined), the
        per-keypoint pixel errors and the counts behind them; plus ``pcutoff`` and ``pck_radius``."""
        result: dict[str, Any] = {'pcutoff': self.pcutoff, 'pck_radius': self.pck_radius}
        for name, ids in self.groups.items():
            result.update({f'{name}_{key}': value for key, value in self._group_stats(ids).items()})
        return result

    def limit_to(self, image_ids) -> None:
        """Score only these images (``--eval-n-images``: the first N were predicted, the rest were not
        missed but never tried)."""
        wanted = {int(i) for i in image_ids}
        self.groups = {name: [i for i in ids if i in wanted] for name, ids in self.groups.items()}

    def _group_stats(self, image_ids: list[int]) -> dict[str, Any]:
        keypoint, distance, confidence = [], [], []
        for image_id in image_ids:
            gt, prediction = self.ground_truth[image_id], self.matched(image_id)
            labelled = gt[:, :, 2] > 0
            keypoint.append(np.nonzero(labelled)[1])
            distance.append(np.linalg.norm(prediction[:, :, :2] - gt[:, :, :2], axis=-1)[labelled])
            confidence.append(prediction[:, :, 2][labelled])
        keypoint, distance, confidence = (np.concatenate(a) if a else np.zeros(0)
                                          for a in (keypoint, distance, confidence))
        found = confidence > 0
        confident = found & (confidence >= self.pcutoff)
        return {
            'pixel_error': _mean(distance[found]),
            'pixel_error_pcutoff': _mean(distance[confident]),
            'pck': float(np.mean(found & (distance <= self.pck_radius))) if len(distance) else None,
            'pixel_error_per_keypoint': {name: _mean(distance[found & (keypoint == k)])
                                         for k, name in enumerate(self.keypoint_names)},
            'images': len(image_ids),
            'labelled_keypoints': int(len(distance)),
            'found_keypoints': int(np.count_nonzero(found)),
            'keypoints_above_pcutoff': int(np.count_nonzero(confident)),
        }

    def write_predictions(self, path_prefix) -> tuple[str, ...]:
        """Nothing to write: the COCO metric of the same evaluation writes the predictions."""
        return ()


def oks(prediction: np.ndarray, individual: np.ndarray, sigma: float) -> float:
    """Object keypoint similarity of a ``(K, 3)`` prediction (``x, y, c``) with a ``(K, 3)`` ground truth.

    ``mean over labelled keypoints of exp(-d^2 / (2 s^2 (2 sigma)^2))``, a keypoint not found counts 0;
    ``s^2`` is the area of the tight box of the labelled keypoints, each side at least 1 pixel.
    """
    labelled = individual[:, 2] > 0
    if not np.any(labelled):
        return 0.0
    xy = individual[labelled, :2]
    area = float(np.prod(np.maximum(np.ptp(xy, axis=0), 1.0)))
    d2 = np.sum((prediction[labelled, :2] - xy) ** 2, axis=1)
    similarity = np.exp(-d2 / (2.0 * area * (2.0 * sigma) ** 2))
    return float(np.mean(np.where(prediction[labelled, 2] > 0, similarity, 0.0)))


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None
