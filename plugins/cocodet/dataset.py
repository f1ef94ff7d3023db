"""Reading COCO-format detection datasets: the boxes of every category of a json, plus the image folder.

Works with COCO's ``instances_*.json`` and with any COCO-format json whose annotations have a ``bbox``
(keypoint jsons too: their keypoints are not read). Json category ids can be any integers; annotations
leave this module with ``category_id`` set to the 1-based position of their category in
:func:`detection_categories`, which is the field of the CifDet head (``AnnotationDet.category_id``).
"""

import logging
import pathlib

import numpy as np
import PIL.Image
import torch

from openfields.datasets.coco import DatasetError

LOG = logging.getLogger(__name__)


def detection_categories(data: dict, path) -> tuple[list[int], list[str]]:
    """Json category ids and names, in the json's order; an error when there is none."""
    categories = data['categories']
    if not categories:
        raise DatasetError(f'{path}: "categories" is empty')
    ids, names = [], []
    for category in categories:
        if not isinstance(category, dict) or 'id' not in category:
            raise DatasetError(f'{path}: category entry {category} needs an "id"')
        ids.append(int(category['id']))
        names.append(str(category.get('name', category['id'])))
    if len(set(ids)) != len(ids):
        raise DatasetError(f'{path}: category ids {ids} are not unique')
    return ids, names


def _parse_box(ann: dict, field_of: dict[int, int], path) -> dict:
    ann_id = ann.get('id', '?')
    if ann.get('category_id') not in field_of:
        raise DatasetError(f'{path}: annotation id {ann_id}: "category_id" {ann.get("category_id")} is not '
                           f'in "categories" (ids {sorted(field_of)})')
    bbox = ann.get('bbox')
    if bbox is None or len(bbox) != 4:
        raise DatasetError(f'{path}: annotation id {ann_id}: "bbox" must be [x, y, width, height]')
    return {'id': ann_id, 'image_id': ann['image_id'], 'category_id': field_of[ann['category_id']],
            'iscrowd': int(ann.get('iscrowd', 0)), 'bbox': np.asarray(bbox, dtype=np.float32)}


class CocoDetections(torch.utils.data.Dataset):
    """Images and boxes of the categories ``category_ids`` from a COCO-format json.

    ``__getitem__`` returns ``preprocess(image, anns, meta)``, or None when the image cannot be read (the
    collate function drops it). Crowd boxes are kept (they become ignore regions); with ``min_anns > 0``
    only images with at least that many non-crowd boxes are used.
    """

    def __init__(self, data: dict, annotation_file, image_dir, category_ids: list[int], preprocess, *,
                 dataset_name: str, min_anns: int = 1, image_dir_flag: str = 'image dir'):
        self.image_dir = pathlib.Path(image_dir)
        self.preprocess = preprocess
        self.dataset_name = dataset_name
        images = {}
        for image in data['images']:
            if 'id' not in image or 'file_name' not in image:
                raise DatasetError(f'{annotation_file}: image entry {image} needs "id" and "file_name"')
            images[image['id']] = image
        field_of = {category_id: i + 1 for i, category_id in enumerate(category_ids)}
        anns_per_image: dict = {image_id: [] for image_id in images}
        for ann in data['annotations']:
            if ann.get('image_id') not in images:
                raise DatasetError(f'{annotation_file}: annotation id {ann.get("id", "?")}: '
                                   f'"image_id" {ann.get("image_id")} is not in "images"')
            anns_per_image[ann['image_id']].append(_parse_box(ann, field_of, annotation_file))

        def n_boxes(image_id):
            return sum(1 for a in anns_per_image[image_id] if not a['iscrowd'])

        ids = [i for i in images if min_anns <= 0 or n_boxes(i) >= min_anns]
        present = [i for i in ids if (self.image_dir / images[i]['file_name']).is_file()]
        if ids and not present:
            raise DatasetError(f'{image_dir_flag}: none of the {len(ids)} images of {annotation_file} '
                               f'is in {self.image_dir} (first: {images[ids[0]]["file_name"]})')
        if len(present) < len(ids):
            LOG.warning('%s: %d of %d images missing from %s; skipped', annotation_file,
                        len(ids) - len(present), len(ids), self.image_dir)
        self.images = images
        self.anns_per_image = anns_per_image
        self.ids = present
        LOG.info('%s: %d images, %d boxes of %d categories', annotation_file, len(self.ids),
                 sum(len(anns_per_image[i]) for i in self.ids), len(category_ids))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        image_id = self.ids[index]
        image_info = self.images[image_id]
        path = self.image_dir / image_info['file_name']
        try:
            with open(path, 'rb') as f:
                image = PIL.Image.open(f).convert('RGB')
        except (OSError, PIL.UnidentifiedImageError, ValueError) as error:
            LOG.warning('skipping unreadable image %s: %s', path, error)
            return None
        anns = [dict(ann, bbox=ann['bbox'].copy()) for ann in self.anns_per_image[image_id]]
        meta = {'dataset': self.dataset_name, 'dataset_index': index, 'image_id': image_id,
                'file_name': image_info['file_name'], 'local_file_path': str(path)}
        return self.preprocess(image, anns, meta)
