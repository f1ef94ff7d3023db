"""Photometric transforms (image only; annotations and meta pass through) and the conversion to a tensor."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import PIL.ImageFilter
import torch
import torchvision.transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Blur:
    """Gaussian blur with sigma uniform in ``[0, max_sigma]`` pixels."""

    def __init__(self, max_sigma: float = 5.0):
        self.max_sigma = float(max_sigma)

    def __call__(self, image, anns, meta):
        sigma = float(torch.rand(())) * self.max_sigma
        if sigma < 0.05:  # no visible effect: skip the work
            return image, anns, meta
        return image.filter(PIL.ImageFilter.GaussianBlur(radius=sigma)), anns, meta

    def __repr__(self):
        return f'Blur(max_sigma={self.max_sigma})'


class ColorJitter:
    """torchvision's ColorJitter (draws from torch's RNG) on the image."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.1, saturation: float = 0.4, hue: float = 0.1):
        self.jitter = torchvision.transforms.ColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, image, anns, meta):
        return self.jitter(image), anns, meta

    def __repr__(self):
        return repr(self.jitter)


class RandomJpeg:
    """With probability ``p``, round-trip the image through JPEG at ``quality`` (compression artefacts)."""

    def __init__(self, quality: int = 50, p: float = 0.1):
        self.quality = int(quality)
        self.p = float(p)

    def __call__(self, image, anns, meta):
        if float(torch.rand(())) >= self.p:
            return image, anns, meta
        buffer = io.BytesIO()
        image.save(buffer, format='JPEG', quality=self.quality)
        buffer.seek(0)
        out = PIL.Image.open(buffer)
        out.load()
        return out.convert('RGB'), anns, meta

    def __repr__(self):
        return f'RandomJpeg(quality={self.quality}, p={self.p})'


class RandomGrayscale:
    """With probability ``p``, replace the image by its luminance (still 3 channels)."""

    def __init__(self, p: float = 0.01):
        self.p = float(p)

    def __call__(self, image, anns, meta):
        if float(torch.rand(())) >= self.p:
            return image, anns, meta
        return image.convert('L').convert('RGB'), anns, meta

    def __repr__(self):
        return f'RandomGrayscale(p={self.p})'


class ImageToTensor:
    """PIL RGB image -> float32 tensor ``(3, H, W)`` with values in ``[0, 1]``."""

    def __call__(self, image, anns, meta):
        array = np.asarray(image.convert('RGB') if image.mode != 'RGB' else image)
        tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
        return tensor.to(torch.float32).div_(255.0), anns, meta

    def __repr__(self):
        return 'ImageToTensor()'


class Normalize:
    """``(x - mean) / std`` per channel on a ``(3, H, W)`` tensor (a new tensor; ImageNet statistics)."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image, anns, meta):
        return (image - self.mean) / self.std, anns, meta

    def __repr__(self):
        mean = tuple(round(v, 4) for v in self.mean.flatten().tolist())
        std = tuple(round(v, 4) for v in self.std.flatten().tolist())
        return f'Normalize(mean={mean}, std={std})'
