"""What every detector of top-down mode answers, written once: :meth:`DetectorBase.detect` (eval-mode
detections of ``(3, H, W)`` images in [0, 1]) and :meth:`DetectorBase.boxes` (the boxes of a PIL image that
are cropped for the pose model). A detector supplies ``settings`` (a
:class:`~openfields.topdown.detectors.DetectorSettings`) and ``detections(images)``: one dict per image with
``boxes`` ``(N, 4)`` x0, y0, x1, y1 in the input tensor's pixels, ``scores`` ``(N,)`` and ``labels`` ``(N,)``.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
from torch import nn

from ..network import cpu_threads


class DetectorBase(nn.Module):
    """``detect`` and ``boxes`` of a detector with ``settings`` and ``detections(images)``."""

    settings = None  # DetectorSettings, set by the detector

    def detections(self, images: list[torch.Tensor], precision: str = 'float32') -> list[dict]:
        """Boxes (float32) and scores of each image, the network in ``precision`` (``--precision``)."""
        raise NotImplementedError

    @torch.inference_mode()
    def detect(self, images: list[torch.Tensor], precision: str = 'float32') -> list[dict]:
        """Eval-mode detections of every box the model keeps (the mode is restored after)."""
        cpu_threads.follow_load()
        was_training = self.training
        self.eval()
        try:
            return self.detections(images, precision)
        finally:
            self.train(was_training)

    def boxes(self, image: PIL.Image.Image, device=None, precision: str = 'float32'
              ) -> tuple[np.ndarray, np.ndarray]:
        """The individuals in ``image``: ``(N, 4)`` float32 x0, y0, x1, y1 in its pixels and ``(N,)`` scores,
        best first, at least ``--detector-score-threshold``, at most ``--detector-max-boxes``; none is an
        empty result. The network runs in ``precision`` (``--precision``)."""
        tensor, scale = resized(image, self.settings.image_size)
        device = device if device is not None else next(self.parameters()).device
        detection = self.detect([tensor.to(device)], precision)[0]
        return selected(detection['boxes'].cpu().numpy(), detection['scores'].cpu().numpy(), scale, self.settings)


def selected(boxes: np.ndarray, scores: np.ndarray, scale: float, settings) -> tuple[np.ndarray, np.ndarray]:
    """What :meth:`DetectorBase.boxes` returns of the detections ``boxes`` ``(N, 4)`` and ``scores`` of an image
    resized by ``scale``: best first (stable), the first ``settings.max_boxes``, those at least
    ``settings.score_threshold``, in the original image's pixels (float32). An exported detector
    (:mod:`openfields.export.detector`) selects with it too."""
    scores = np.asarray(scores).reshape(-1)
    keep = np.argsort(-scores, kind='stable')[:settings.max_boxes]
    keep = keep[scores[keep] >= settings.score_threshold]
    boxes = np.asarray(boxes).reshape(-1, 4)[keep] / scale
    return boxes.astype(np.float32), scores[keep].astype(np.float32)


def resized(image: PIL.Image.Image, long_edge: int) -> tuple[torch.Tensor, float]:
    """``(3, H, W)`` float tensor in [0, 1] whose long edge is ``long_edge``, and the scale applied."""
    array, scale = resized_array(image, long_edge)
    return torch.from_numpy(array), scale


def resized_array(image: PIL.Image.Image, long_edge: int) -> tuple[np.ndarray, float]:
    """:func:`resized` as a numpy array (what an exported detector reads; torch is not needed): the RGB image
    resized bilinearly (PIL) so that its long edge is ``long_edge``, ``(3, H, W)`` float32 in [0, 1]."""
    scale = long_edge / max(image.size)
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    pixels = np.asarray(image.convert('RGB').resize(size, PIL.Image.BILINEAR), dtype=np.uint8)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32) / np.float32(255.0), scale
