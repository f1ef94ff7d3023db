"""A test-set submission: the poses of every image of an image-info json (COCO test-dev style: ``images`` and
``categories``, no annotations), zipped for an evaluation server. No metric is computed: there is no ground
truth to compare with.

COCO's server wants a zip holding one json named ``[type]_[testset]_[alg]_results.json``, e.g.
``person_keypoints_test-dev2017_openfields_results.json``, with a list of ``{image_id, category_id,
keypoints (x, y, v flat), score}``. An image without a pose gets one of score 0 with every keypoint at 0
(OpenPifPaf does the same), so every image id appears.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import zipfile

from ..decoder.annotation import Annotation
from ..outputs import atomic_write

LOG = logging.getLogger(__name__)

ALGORITHM = 'openfields'


def result_name(image_info_path: str | os.PathLike) -> str:
    """``person_keypoints_<testset>_openfields_results.json``; the test set is the json's name without
    ``image_info_`` (``image_info_test-dev2017.json`` -> ``test-dev2017``)."""
    stem = pathlib.Path(image_info_path).stem
    testset = stem[len('image_info_'):] if stem.startswith('image_info_') else stem
    return f'person_keypoints_{testset}_{ALGORITHM}_results.json'


class Submission:
    """Collects the poses of ``image_ids`` (category ``category_id``, ``n_keypoints`` each); keeps the
    ``max_per_image`` best of an image (COCO's keypoint evaluation reads 20)."""

    names: tuple[str, ...] = ()  # no scores

    def __init__(self, image_info_path: str | os.PathLike, image_ids, *, category_id: int, n_keypoints: int,
                 max_per_image: int = 20):
        self.image_info_path = str(image_info_path)
        self.image_ids = [int(i) for i in image_ids]
        self.category_id = int(category_id)
        self.n_keypoints = n_keypoints
        self.max_per_image = max_per_image
        self._results: dict[int, list[dict]] = {}

    def accumulate(self, predictions: list[Annotation], image_meta: dict) -> None:
        image_id = int(image_meta['image_id'])
        poses = sorted((p for p in predictions if isinstance(p, Annotation)), key=lambda p: -float(p.score))
        results = self._results.setdefault(image_id, [])
        results.extend(self._result(p.json_data(), image_id) for p in poses[:self.max_per_image])

    def _result(self, data: dict, image_id: int) -> dict:
        return {'image_id': image_id, 'category_id': self.category_id, 'keypoints': data['keypoints'],
                'score': data['score']}

    def limit_to(self, image_ids) -> None:
        """After ``--eval-n-images``: the submission lists the predicted images only."""
        self.image_ids = [int(i) for i in image_ids]

    def results(self) -> list[dict]:
        """Every image's poses, a zero pose of score 0 for an image without any."""
        empty = [0.0] * (3 * self.n_keypoints)
        return [r for image_id in self.image_ids for r in self._results.get(image_id) or
                [{'image_id': image_id, 'category_id': self.category_id, 'keypoints': empty, 'score': 0.0}]]

    def stats(self) -> dict:
        return {'n_images': len(self.image_ids)}

    def write_files(self, path_prefix: str | os.PathLike) -> dict:
        """The zip (:meth:`write`), for the stats file; says in one line that no metric was computed."""
        path = self.write(path_prefix)
        LOG.info('no metrics: the image-info json holds no annotations; %s is the test-set submission', path)
        return {'submission': path}

    def write(self, path_prefix: str | os.PathLike) -> str:
        """``<prefix>.zip`` holding :func:`result_name`; returns its path."""
        path, name = f'{path_prefix}.zip', result_name(self.image_info_path)
        results = self.results()
        with atomic_write(path, 'wb') as f, zipfile.ZipFile(f, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, json.dumps(results))
        LOG.info('wrote %d poses of %d images to %s (%s)', len(results), len(self.image_ids), path, name)
        return path

    def write_predictions(self, path_prefix) -> tuple[str, ...]:
        """Nothing more for ``--write-predictions``: the submission zip (:meth:`write_files`) holds them."""
        return ()
