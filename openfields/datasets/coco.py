"""Reading COCO-format keypoint datasets (a json file plus an image folder).

Everything a user can get wrong in their own json is checked once, up front, with an error that names
the file and the field. An image that cannot be read at training time is skipped with a warning.
"""

import dataclasses
import json
import logging
import math
import numbers
import os
import pathlib

import numpy as np
import PIL.Image
import torch

from .skeleton import spanning_tree_skeleton

LOG = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Bad dataset input; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class KeypointCategory:
    """A keypoint category as declared in the json's ``categories``."""

    id: int
    name: str
    keypoints: list[str]
    skeleton: list[tuple[int, int]]  # the json's, or derived from the annotations (skeleton_derived)
    sigmas: list[float] | None  # an optional non-standard field of the category
    skeleton_derived: bool = False
    # an optional non-standard field: extra 1-based pairs for a dense Caf head (--<dataset>-with-dense)
    dense_skeleton: list[tuple[int, int]] | None = None


def load_json(path: str | os.PathLike, flag: str, keypoints_key: str | None = None, *,
              image_info: bool = False) -> dict:
    """Parse a COCO json file; errors name the flag that gave the path. The annotations' keypoints are
    read from ``keypoints_key`` when given (:func:`use_keypoints_field`). ``image_info``: an image-info json
    (COCO test-dev style, no ``annotations``) is read as one without annotations."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DatasetError(f'{flag}: annotation file not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as error:
        raise DatasetError(f'{path}: not valid JSON ({error.msg} at line {error.lineno} '
                           f'column {error.colno})') from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f'{path}: cannot be read ({error})') from None
    if not isinstance(data, dict):
        raise DatasetError(f'{path}: top level must be an object with images, annotations, categories')
    if image_info and data.get('annotations') is None:
        data['annotations'] = []
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            hint = (' (an image-info json, COCO test-dev style, is predicted by openfields.eval with '
                    '--<dataset>-eval-testdev)' if key == 'annotations' and 'annotations' not in data else '')
            raise DatasetError(f'{path}: field "{key}" is missing or not a list{hint}')
    return use_keypoints_field(data, path, keypoints_key, flag)


def use_keypoints_field(data: dict, path, keypoints_key: str | None, flag: str = '') -> dict:
    """Annotations whose keypoints live in another field (Human-Art: 21 keypoint names in the category,
    their values in ``keypoints_21``, COCO's 17 in ``keypoints``): ``keypoints_key`` is copied to
    ``keypoints``. Without it, a ``keypoints_N`` field matching a category's N names is used when
    ``keypoints`` does not match (one log line says so)."""
    key = keypoints_key
    if key is None:
        key = _matching_keypoints_field(data)
        if key is None:
            return data
        LOG.info('%s: "keypoints" does not hold the category\'s %s keypoints, "%s" does: reading it (set the '
                 'field with --<dataset>-keypoints-key)', path, key.rsplit('_', 1)[1], key)
    if not any(key in ann for ann in data['annotations']):
        raise DatasetError(f'{flag} {key}: no annotation of {path} has a "{key}" field')
    for ann in data['annotations']:
        if key in ann:
            ann['keypoints'] = ann[key]
    return data


def _matching_keypoints_field(data: dict) -> str | None:
    """``keypoints_N`` when some annotation's ``keypoints`` does not hold 3 N values of its category's N
    names and its ``keypoints_N`` does."""
    sizes = {c.get('id'): len(c['keypoints']) for c in data['categories'] if c.get('keypoints')}
    for ann in data['annotations']:
        n = sizes.get(ann.get('category_id'))
        keypoints = ann.get('keypoints')
        if n is None or not isinstance(keypoints, list) or len(keypoints) in (0, 3 * n):
            continue
        field = ann.get(f'keypoints_{n}')
        if isinstance(field, list) and len(field) == 3 * n:
            return f'keypoints_{n}'
    return None


def keypoint_category(data: dict, path: str | os.PathLike, category_id: int | None) -> KeypointCategory:
    """The category to train: ``category_id``, or the first category that declares keypoints."""
    candidates = [c for c in data['categories'] if c.get('keypoints')]
    if category_id is not None:
        candidates = [c for c in candidates if c.get('id') == category_id]
    if not candidates:
        which = f'with id {category_id} ' if category_id is not None else ''
        raise DatasetError(f'{path}: no category {which}declares "keypoints"')
    c = candidates[0]
    keypoints = [str(k) for k in c['keypoints']]
    skeleton = c.get('skeleton') or []
    invalid = [pair for pair in skeleton
               if not isinstance(pair, (list, tuple)) or len(pair) != 2
               or not all(isinstance(j, int) and 1 <= j <= len(keypoints) for j in pair)]
    if invalid:
        # e.g. CrowdPose's json ships COCO's 17-keypoint skeleton for its 14 keypoints: the pairs do not
        # describe these keypoints, so none of them is used
        LOG.warning('%s: category %s "skeleton" entry %s is not a pair of 1-based keypoint indices in '
                    '[1, %d]; the json\'s skeleton is ignored', path, c.get('id'), invalid[0], len(keypoints))
        skeleton = []
    derived = not skeleton
    if derived:
        skeleton = spanning_tree_skeleton(_labelled_keypoints(data, c['id'], len(keypoints)))
        LOG.info('%s: category %s has no usable "skeleton"; derived from the annotations (spanning tree of '
                 'keypoints usually close together): %s', path, c.get('id'), skeleton)
    sigmas = c.get('sigmas')
    if sigmas is not None and (len(sigmas) != len(keypoints) or not all(s > 0 for s in sigmas)):
        raise DatasetError(f'{path}: category {c.get("id")} "sigmas" must hold {len(keypoints)} '
                           'positive numbers')
    return KeypointCategory(id=int(c['id']), name=str(c.get('name', c['id'])), keypoints=keypoints,
                            skeleton=[tuple(p) for p in skeleton],
                            sigmas=[float(s) for s in sigmas] if sigmas is not None else None,
                            skeleton_derived=derived, dense_skeleton=_dense_skeleton(c, path, len(keypoints)))


def _dense_skeleton(category: dict, path, n_keypoints: int) -> list[tuple[int, int]] | None:
    """The category's optional ``dense_skeleton``: 1-based keypoint pairs (declared on purpose, so a bad
    entry is an error, unlike a ``skeleton`` written for other keypoints)."""
    pairs = category.get('dense_skeleton')
    if pairs is None:
        return None
    if not isinstance(pairs, list) or not pairs or any(
            not isinstance(pair, (list, tuple)) or len(pair) != 2
            or not all(isinstance(j, int) and not isinstance(j, bool) and 1 <= j <= n_keypoints for j in pair)
            for pair in pairs):
        raise DatasetError(f'{path}: category {category.get("id")} "dense_skeleton" must be a non-empty list of '
                           f'pairs of 1-based keypoint indices in [1, {n_keypoints}]')
    return [tuple(pair) for pair in pairs]


def _labelled_keypoints(data: dict, category_id, n_keypoints: int) -> np.ndarray:
    """``(N, K, 3)`` keypoints of the category's annotations that have the right number of values."""
    sets = [ann['keypoints'] for ann in data['annotations']
            if ann.get('category_id') == category_id and not ann.get('iscrowd')
            and isinstance(ann.get('keypoints'), list) and len(ann['keypoints']) == 3 * n_keypoints
            and all(_is_number(v) and math.isfinite(v) for v in ann['keypoints'])]
    return np.asarray(sets, dtype=np.float64).reshape(-1, n_keypoints, 3)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_keypoints(keypoints: list, names: list[str], source: str) -> None:
    """Every value a number; labelled keypoints (``v > 0``) at finite, non-negative ``x, y``.
    Unlabelled ones may hold anything numeric (COCO writes ``0, 0, 0``). Coordinates beyond the image's
    right or bottom edge are kept: augmentation crops them."""
    for index, value in enumerate(keypoints):
        if not _is_number(value):
            raise DatasetError(f'{source}: keypoints[{index}] ({"xyv"[index % 3]} of {names[index // 3]!r}) '
                               f'is not a number ({value!r})')
    for k, name in enumerate(names[:len(keypoints) // 3]):  # none for a crowd region without keypoints
        x, y, v = keypoints[3 * k:3 * k + 3]
        checks = [(2, v)] + ([(0, x), (1, y)] if not v <= 0 else [])  # a NaN v is not "unlabelled"
        for offset, value in checks:
            problem = ('NaN' if math.isnan(value) else 'inf' if math.isinf(value)
                       else f'negative ({value!r})' if offset < 2 and value < 0 else None)
            if problem is not None:
                raise DatasetError(f'{source}: keypoints[{3 * k + offset}] ({"xyv"[offset]} of {name!r}) '
                                   f'is {problem}')


def _parse_annotation(ann: dict, names: list[str], path) -> dict:
    ann_id = ann.get('id', '?')
    keypoints = ann.get('keypoints', [])
    n_keypoints = len(names)
    if not isinstance(keypoints, list) or (len(keypoints) != 3 * n_keypoints
                                           and not (ann.get('iscrowd') and not keypoints)):
        count = f'has {len(keypoints)} values' if isinstance(keypoints, list) else 'is not a list'
        raise DatasetError(f'{path}: annotation id {ann_id}: "keypoints" {count}, '
                           f'expected {3 * n_keypoints} ({n_keypoints} keypoints x 3)')
    _check_keypoints(keypoints, names, f'{path}: annotation id {ann_id}')
    bbox = ann.get('bbox')
    if bbox is None or len(bbox) != 4:
        raise DatasetError(f'{path}: annotation id {ann_id}: "bbox" must be [x, y, width, height]')
    keypoints = (np.asarray(keypoints, dtype=np.float32).reshape(n_keypoints, 3) if keypoints
                 else np.zeros((n_keypoints, 3), dtype=np.float32))
    return {
        'id': ann_id,
        'image_id': ann['image_id'],
        'category_id': ann.get('category_id'),
        'iscrowd': int(ann.get('iscrowd', 0)),
        'keypoints': keypoints,
        'bbox': np.asarray(bbox, dtype=np.float32),
    }


class CocoKeypoints(torch.utils.data.Dataset):
    """Images and keypoint annotations of one category from a COCO-format json.

    ``__getitem__`` returns ``preprocess(image, anns, meta)``, or None when the image cannot be read
    (the collate function drops it). Crowd annotations of the category are kept (they become ignore
    regions); images with fewer than ``min_kp_anns`` annotations with labelled keypoints are left out
    when ``min_kp_anns > 0``.
    """

    def __init__(self, data: dict, annotation_file, image_dir, category: KeypointCategory,
                 preprocess, *, dataset_name: str, min_kp_anns: int = 1, image_dir_flag: str = 'image dir'):
        self.annotation_file = pathlib.Path(annotation_file)
        self.image_dir = pathlib.Path(image_dir)
        self.category = category
        self.preprocess = preprocess
        self.dataset_name = dataset_name
        images = {}
        for image in data['images']:
            if 'id' not in image or 'file_name' not in image:
                raise DatasetError(f'{annotation_file}: image entry {image} needs "id" and "file_name"')
            images[image['id']] = image
        anns_per_image: dict = {image_id: [] for image_id in images}
        for ann in data['annotations']:
            if ann.get('category_id') != category.id:
                continue
            if ann.get('image_id') not in images:
                raise DatasetError(f'{annotation_file}: annotation id {ann.get("id", "?")}: '
                                   f'"image_id" {ann.get("image_id")} is not in "images"')
            anns_per_image[ann['image_id']].append(_parse_annotation(ann, category.keypoints, annotation_file))

        def n_kp_anns(image_id):
            return sum(1 for a in anns_per_image[image_id]
                       if not a['iscrowd'] and np.any(a['keypoints'][:, 2] > 0))

        ids = [i for i in images if min_kp_anns <= 0 or n_kp_anns(i) >= min_kp_anns]
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
        LOG.info('%s: %d images, %d annotations of category %r', annotation_file, len(self.ids),
                 sum(len(anns_per_image[i]) for i in self.ids), category.name)

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
        anns = [dict(ann, keypoints=ann['keypoints'].copy(), bbox=ann['bbox'].copy())
                for ann in self.anns_per_image[image_id]]
        meta = {
            'dataset': self.dataset_name,
            'dataset_index': index,
            'image_id': image_id,
            'file_name': image_info['file_name'],
            'local_file_path': str(path),
        }
        return self.preprocess(image, anns, meta)
