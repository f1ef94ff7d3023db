"""Horizontal flip: ``x' = (W - 1) - x`` (pixel-centre convention) and left/right keypoint rows swapped."""

from __future__ import annotations

import PIL.Image

from ..headmeta import flip_permutation
from . import geometry


class HFlip:
    """Mirror image, keypoints, boxes and valid_area; swap left/right keypoint rows; toggle ``meta['hflip']``.

    ``keypoints`` are the keypoint names and ``hflip`` maps a name to its mirror (``left_eye -> right_eye``).
    Annotations with a different number of keypoints (e.g. detection-only) are mirrored without swapping.
    """

    def __init__(self, keypoints: list[str], hflip: dict[str, str]):
        self.keypoints = list(keypoints)
        self.hflip = dict(hflip)
        self.permutation = flip_permutation(self.keypoints, self.hflip)

    def __call__(self, image, anns, meta):
        w, _ = image.size
        anns, meta = geometry.copy_anns(anns), geometry.copy_meta(meta)
        image = image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
        geometry.hflip(anns, meta, w)
        if self.permutation is not None:
            for ann in anns:
                if len(ann['keypoints']) == len(self.permutation):
                    ann['keypoints'] = ann['keypoints'][self.permutation]
        return image, anns, meta

    def __repr__(self):
        return f'HFlip({len(self.keypoints)} keypoints)'
