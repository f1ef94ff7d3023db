"""openfields' own detector for top-down mode (``--detector cifdet``): a :class:`~openfields.network.nets.Shell`
of the pose run's ``--basenet`` (with its flags, ``--basenet-pretrained`` included) and one CifDet head of one
category, the dataset's individuals. It trains with the composite-field losses like any openfields network
(:mod:`openfields.topdown.detector_training`) and decodes its boxes with :mod:`openfields.decoder.cifdet`.

Inputs of :meth:`CifDetDetector.detect` are ``(3, H, W)`` float tensors in [0, 1] as for the torchvision
detectors: they are normalised with the ImageNet statistics the basenets expect and padded at the right and
bottom to a size the fields align with, so boxes come back in the input's pixels. A checkpoint's ``model``
entry is the Shell's (:func:`openfields.network.checkpoint.model_description`) plus ``detector`` (the
settings): :func:`from_description` rebuilds it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .. import headmeta, transforms
from ..decoder.cifdet import CifDet as CifDetDecoder
from ..decoder.settings import DecoderSettings
from ..network import checkpoint, factory as network_factory, nets
from .detector_base import DetectorBase

NAME = 'cifdet'
CATEGORY = 'individual'
BMIN = 1.0  # pixels: the smallest localisation uncertainty of a box (the cocodet plugin's default)
# every box a detection run or an evaluation might want: --detector-score-threshold selects the crops later
DECODER_SETTINGS = DecoderSettings(seed_threshold=0.05, instance_threshold=0.05, max_instances=100)


class CifDetDetector(DetectorBase):
    """A Shell with one CifDet head, its detector ``settings`` and its box decoder.

    ``forward(images (B, 3, H, W) normalised, head_mask)`` is the Shell's (what the trainer calls), so the
    run trains it as any composite-field network; ``head_metas`` are the Shell's.
    """

    def __init__(self, network: nets.Shell, settings):
        super().__init__()
        if [type(meta) for meta in network.head_metas] != [headmeta.CifDet]:
            raise ValueError(f'--detector {NAME}: needs one CifDet head, got '
                             f'{[meta.full_name for meta in network.head_metas]}')
        self.network = network
        self.settings = settings
        self.decode = CifDetDecoder(network.head_metas[0], DECODER_SETTINGS)
        self.register_buffer('mean', torch.tensor(transforms.IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(transforms.IMAGENET_STD).view(3, 1, 1), persistent=False)

    @property
    def head_metas(self) -> list[headmeta.Base]:
        return self.network.head_metas

    def forward(self, images: torch.Tensor, head_mask=None):
        return self.network(images, head_mask=head_mask)

    def checkpoint_description(self) -> dict:
        return {'detector': dataclasses.asdict(self.settings), **checkpoint.model_description(self.network)}

    def detections(self, images: list[torch.Tensor], precision: str = 'float32') -> list[dict]:
        """Boxes of every image (one batch, padded alike), clipped to the image, best first; the basenet in
        ``precision``, the head in float32 (:class:`openfields.network.nets.Shell`)."""
        batch = self.normalised_batch(images)
        fields = self.network(batch, precision=precision)[0].float().cpu()
        return [self.image_detections(fields[i], image.shape[-1], image.shape[-2])
                for i, image in enumerate(images)]

    def normalised_batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        """``(B, 3, H', W')``: the images normalised and padded at the right and bottom with zeros (the
        ImageNet mean colour, as the training pipeline pads) to ``k * stride + 1`` pixels."""
        stride = self.network.head_metas[0].stride
        height = _aligned(max(image.shape[-2] for image in images), stride)
        width = _aligned(max(image.shape[-1] for image in images), stride)
        batch = torch.zeros((len(images), 3, height, width), device=self.mean.device)
        for i, image in enumerate(images):
            batch[i, :, :image.shape[-2], :image.shape[-1]] = (image.to(batch.device) - self.mean) / self.std
        return batch

    def image_detections(self, fields: torch.Tensor, width: int, height: int) -> dict:
        """The decoded boxes of one image's fields ``(1, 6, h, w)`` as x0, y0, x1, y1 clipped to
        ``[0, width] x [0, height]`` (as torchvision's detectors clip); boxes left empty are dropped."""
        corners, scores = decoded_boxes(self.decode, fields, width, height)
        device = self.mean.device
        return {'boxes': torch.from_numpy(corners).to(device), 'scores': torch.from_numpy(scores).to(device),
                'labels': torch.ones(len(scores), dtype=torch.int64, device=device)}


def decoded_boxes(decode: CifDetDecoder, fields, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The boxes ``decode`` finds in one image's fields ``(1, 6, h, w)`` (a tensor or an array) as x0, y0, x1,
    y1 float32 clipped to ``[0, width] x [0, height]`` (as torchvision's detectors clip), boxes left empty
    dropped, and their scores, best first: what :meth:`CifDetDetector.image_detections` and an exported cifdet
    detector (:mod:`openfields.export.detector`) return."""
    found = decode([fields])
    xywh = np.array([ann.bbox for ann in found], dtype=np.float32).reshape(-1, 4)
    corners = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    corners[:, [0, 2]] = corners[:, [0, 2]].clip(0, width)
    corners[:, [1, 3]] = corners[:, [1, 3]].clip(0, height)
    keep = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
    return corners[keep], np.array([ann.score for ann in found], dtype=np.float32)[keep]


def normalised_array(image: np.ndarray, stride: int) -> np.ndarray:
    """``(1, 3, H', W')`` float32 of one ``(3, H, W)`` image in [0, 1]: what :meth:`CifDetDetector.normalised_batch`
    makes of it, in numpy (an exported cifdet detector's input)."""
    mean = np.asarray(transforms.IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(transforms.IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)
    batch = np.zeros((1, 3, _aligned(image.shape[-2], stride), _aligned(image.shape[-1], stride)), np.float32)
    batch[0, :, :image.shape[-2], :image.shape[-1]] = (image - mean) / std
    return batch


def _aligned(size: int, stride: int) -> int:
    """The smallest ``k * stride + 1 >= size``: field cell ``k`` sits on the last pixel."""
    return -(-(size - 1) // stride) * stride + 1


def head_meta(dataset: str, base_stride: int) -> headmeta.CifDet:
    """The detector's head: one field, the individuals of ``dataset``."""
    return headmeta.CifDet(name=NAME, dataset=dataset, categories=[CATEGORY], base_stride=base_stride)


def build(network: network_factory.NetworkChoice, settings, dataset: str) -> CifDetDetector:
    """A new detector of ``network`` (a fresh basenet: the pose run's ``--basenet`` and its flags; without
    ImageNet weights with ``--detector-pretrained none``) for the individuals of ``dataset``."""
    if network.loaded is not None:
        raise ValueError(f'--detector {NAME}: a new detector starts from a fresh basenet, not a checkpoint')
    return CifDetDetector(network.build([head_meta(dataset, network.stride)]), settings)


def from_description(saved: dict, settings) -> CifDetDetector:
    """The detector of a checkpoint's ``model`` entry (:meth:`CifDetDetector.checkpoint_description`)."""
    return CifDetDetector(network_factory.from_checkpoint({'model': saved}), settings)
