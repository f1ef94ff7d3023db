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
import torchvision.transforms.functional as F
from torch import nn


class DetectorBase(nn.Module):
    """``detect`` and ``boxes`` of a detector with ``settings`` and ``detections(images)``."""

    settings = None  # DetectorSettings, set by the detector

    def detections(self, images: list[torch.Tensor]) -> list[dict]:
        raise NotImplementedError

    @torch.inference_mode()
    def detect(self, images: list[torch.Tensor]) -> list[dict]:
        """Eval-mode detections of every box the model keeps (the mode is restored after)."""
        was_training = self.training
        self.eval()
        try:
            return self.detections(images)
        finally:
            self.train(was_training)

    def boxes(self, image: PIL.Image.Image, device=None) -> tuple[np.ndarray, np.ndarray]:
        """The individuals in ``image``: ``(N, 4)`` float32 x0, y0, x1, y1 in its pixels and ``(N,)`` scores,
        best first, at least ``--detector-score-threshold``, at most ``--detector-max-boxes``; none is an
        empty result."""
        tensor, scale = resized(image, self.settings.image_size)
        device = device if device is not None else next(self.parameters()).device
        detection = self.detect([tensor.to(device)])[0]
        scores = detection['scores'].cpu().numpy()
        keep = np.argsort(-scores, kind='stable')[:self.settings.max_boxes]
        keep = keep[scores[keep] >= self.settings.score_threshold]
        boxes = detection['boxes'].cpu().numpy().reshape(-1, 4)[keep] / scale
        return boxes.astype(np.float32), scores[keep].astype(np.float32)


def resized(image: PIL.Image.Image, long_edge: int) -> tuple[torch.Tensor, float]:
    """``(3, H, W)`` float tensor in [0, 1] whose long edge is ``long_edge``, and the scale applied."""
    scale = long_edge / max(image.size)
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return F.to_tensor(image.resize(size, PIL.Image.BILINEAR)), scale
