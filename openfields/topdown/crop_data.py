"""Training samples of top-down pose estimation: one crop per annotated individual.

:class:`InstanceCrops` turns a keypoint dataset read without preprocessing (a
:class:`~openfields.datasets.coco.CocoKeypoints` whose preprocess returns ``(image, anns, meta)`` unchanged)
into ``(image (3, H, W), targets, meta)`` samples that :func:`openfields.datasets.collate.collate_images_targets_meta`
batches like bottom-up ones: the crop around the individual's box (jittered when training), optionally
mirrored, converted and normalised, and encoded from that individual's keypoints alone. Other people in
the crop are background: the network learns to find the pose of the individual the crop is centred on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import headmeta
from ..datasets.coco import CocoKeypoints
from ..transforms import geometry as transform_geometry
from ..transforms.compose import Compose
from ..transforms.encoders import Encoders
from ..transforms.hflip import HFlip
from ..transforms.image import ImageToTensor, Normalize
from .boxes import BoxSettings, instance_box, is_annotated_individual
from .crops import CROP_FILL, CropGeometry, CropSettings, JitterSettings


def sample_rng() -> np.random.Generator:
    """A generator seeded from torch's global RNG, which the DataLoader seeds per worker: reproducible runs,
    different draws in every worker (a generator built once would repeat itself in each worker)."""
    return np.random.default_rng(int(torch.randint(0, 2 ** 62, ())))


def annotation_in_crop(ann: dict, geometry: CropGeometry) -> dict:
    """A copy of ``ann`` in crop pixels: keypoints mapped (those outside the crop get ``v = 0``), the box
    the bounding box of its mapped corners, clipped to the crop."""
    (ann,) = transform_geometry.copy_anns([ann])
    keypoints = ann['keypoints']
    keypoints[:, :2] = geometry.to_crop(keypoints[:, :2])
    x, y, w, h = ann['bbox'].astype(np.float64)
    corners = geometry.to_crop(np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]))
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    ann['bbox'] = np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)
    transform_geometry.clip_boxes([ann], geometry.width, geometry.height)
    transform_geometry.unlabel_outside([ann], geometry.width, geometry.height)
    return ann


class InstanceCrops(torch.utils.data.Dataset):
    """One sample per annotated individual (not crowd, at least one labelled keypoint) of ``dataset``.

    ``samples``: ``(image index in dataset, annotation index in that image)`` pairs, known without loading
    an image. A sample is ``(image (3, crop.height, crop.width), targets, meta)``, one target per
    ``encoders`` entry (of ``head_metas``, in order); None when the image cannot be read or the individual's
    box lies outside it (the collate function drops it). ``meta`` holds the image's ``dataset``,
    ``image_id``, ``file_name``, ``local_file_path``, the ``annotation_index``, the ``crop`` geometry as
    plain values (before any flip; ``hflip`` says whether the crop was mirrored), and the crop as transforms
    geometry (``offset``, ``scale``, ``rotation``, ``hflip``, ...), so
    :func:`openfields.decoder.annotation.inverse_transform` maps crop predictions back to the image.
    """

    def __init__(self, dataset: CocoKeypoints, head_metas: Sequence[headmeta.Base], encoders: Sequence, *,
                 crop: CropSettings = CropSettings(), boxes: BoxSettings = BoxSettings(),
                 jitter: JitterSettings | None = None, hflip_probability: float = 0.0, fill=CROP_FILL):
        self.dataset = dataset
        self.crop = crop
        self.boxes = boxes
        self.jitter = jitter
        self.fill = tuple(fill)
        cif = head_metas[0]
        self.hflip = HFlip(cif.keypoints, cif.hflip) if cif.hflip and hflip_probability > 0 else None
        self.hflip_probability = hflip_probability
        self.finish = Compose([ImageToTensor(), Normalize(), Encoders(encoders)])
        self.samples = [(image_index, ann_index)
                        for image_index, image_id in enumerate(dataset.ids)
                        for ann_index, ann in enumerate(dataset.anns_per_image[image_id])
                        if is_annotated_individual(ann)]

    def __len__(self):
        return len(self.samples)

    def geometry(self, ann: dict, image_width: int, image_height: int) -> CropGeometry | None:
        """The crop of one individual: around its box, jittered when training; None without a box."""
        box = instance_box(ann, image_width, image_height, self.boxes)
        if box is None:
            return None
        geometry = self.crop.around(box)
        return self.jitter.apply(geometry, sample_rng()) if self.jitter is not None else geometry

    def __getitem__(self, index):
        image_index, ann_index = self.samples[index]
        loaded = self.dataset[image_index]
        if loaded is None:
            return None
        image, anns, image_meta = loaded
        geometry = self.geometry(anns[ann_index], *image.size)
        if geometry is None:
            return None
        meta = {**image_meta, **geometry.transform_meta(*image.size), 'annotation_index': ann_index,
                'crop': geometry.as_dict()}
        sample = geometry.crop(image, self.fill), [annotation_in_crop(anns[ann_index], geometry)], meta
        if self.hflip is not None and float(torch.rand(())) < self.hflip_probability:
            sample = self.hflip(*sample)
        return self.finish(*sample)
