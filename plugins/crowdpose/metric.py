"""CrowdPose keypoint AP: overall, and per difficulty level of the images' crowd index."""

import json
import logging

from openfields.datasets.coco import DatasetError
from openfields.metric.coco import Coco

from .constants import CROWD_INDEX_SPLITS

LOG = logging.getLogger(__name__)

# pycocotools' value for an undefined entry (here: a difficulty level without evaluated images)
UNDEFINED = -1.0


def split_of(crowd_index: float) -> str:
    """``easy``, ``medium`` or ``hard`` for a crowd index (see ``constants.CROWD_INDEX_SPLITS``)."""
    for name, low, high in CROWD_INDEX_SPLITS:
        if low <= crowd_index < high:
            return name
    raise ValueError(f'crowd index {crowd_index} is not in [0, inf)')


def image_splits(data: dict, path) -> dict:
    """``{image id: split name}`` of the images with a ``crowdIndex``; the others are logged."""
    splits = {}
    for image in data['images']:
        if 'crowdIndex' not in image:
            continue
        try:
            splits[int(image['id'])] = split_of(float(image['crowdIndex']))
        except (TypeError, ValueError):
            raise DatasetError(f'{path}: image id {image["id"]}: "crowdIndex" must be a number >= 0, '
                               f'got {image["crowdIndex"]!r}') from None
    missing = len(data['images']) - len(splits)
    if missing:
        LOG.warning('%s: %d of %d images have no "crowdIndex"; they count in AP only, not in AP_easy, '
                    'AP_medium or AP_hard', path, missing, len(data['images']))
    return splits


class CrowdPoseCoco:
    """OKS AP over all images (pycocotools' keys: ``AP``, ``AP50``, ...) plus ``AP_easy``, ``AP_medium``,
    ``AP_hard`` (each with ``n_images_<level>``): the same evaluation restricted to the evaluated images of
    one difficulty level (:data:`UNDEFINED` when there is none)."""

    def __init__(self, annotations: str, *, category_id: int, sigmas: list[float], keypoint_names: list[str]):
        with open(annotations, encoding='utf-8') as f:
            data = json.load(f)
        settings = dict(iou_type='keypoints', category_id=category_id, sigmas=sigmas, keypoint_names=keypoint_names)
        self.overall = Coco(data, **settings)
        self.splits = image_splits(data, annotations)
        self.per_split = {name: Coco(data, **settings) for name, _, _ in CROWD_INDEX_SPLITS}
        self._seen = {name: False for name in self.per_split}

    @property
    def names(self) -> tuple[str, ...]:
        """COCOeval's scores of all images, then ``AP_easy``, ``AP_medium``, ``AP_hard``."""
        return (*self.overall.names, *(f'AP_{name}' for name in self.per_split))

    def accumulate(self, predictions, image_meta: dict):
        self.overall.accumulate(predictions, image_meta)
        split = self.splits.get(int(image_meta['image_id']))
        if split is not None:
            self.per_split[split].accumulate(predictions, image_meta)
            self._seen[split] = True

    def stats(self, **kwargs) -> dict:
        result = self.overall.stats(**kwargs)
        for name, metric in self.per_split.items():
            split_stats = metric.stats() if self._seen[name] else {'AP': UNDEFINED, 'n_images': 0}
            result[f'AP_{name}'] = split_stats['AP']
            result[f'n_images_{name}'] = split_stats['n_images']
        return result

    def write_predictions(self, path_prefix):
        return self.overall.write_predictions(path_prefix)
