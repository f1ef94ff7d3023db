"""Photometric transforms (image only; annotations and meta pass through) and the conversion to a tensor."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import PIL.ImageFilter
import PIL.ImageOps
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


class GaussianNoise:
    """With probability ``p``, add per-pixel, per-channel noise ``N(0, sigma^2)`` with ``sigma^2`` uniform in
    ``[0, std^2]`` (``std`` in 0-255 units, DeepLabCut's ``gaussian_noise``); values are clipped to 0-255."""

    def __init__(self, std: float = 12.75, p: float = 0.5):
        if std < 0:
            raise ValueError(f'std must be >= 0, got {std}')
        self.std = float(std)
        self.p = float(p)

    def __call__(self, image, anns, meta):
        if float(torch.rand(())) >= self.p:
            return image, anns, meta
        sigma = (float(torch.rand(())) * self.std ** 2) ** 0.5
        array = torch.from_numpy(np.asarray(image, dtype=np.float32).copy())
        noisy = (array + sigma * torch.randn(array.shape)).clamp_(0, 255).round_()
        return PIL.Image.fromarray(noisy.numpy().astype(np.uint8)), anns, meta

    def __repr__(self):
        return f'GaussianNoise(std={self.std}, p={self.p})'


def motion_blur_kernel(size: int, angle: float) -> np.ndarray:
    """``(size, size)`` kernel: a line through the centre at ``angle`` degrees, summing to 1. The line is
    point-symmetric about the centre, so the blur does not move anything (keypoints stay valid)."""
    if size % 2 != 1:
        raise ValueError(f'size must be odd, got {size}')
    centre = (size - 1) // 2
    t = np.linspace(-centre, centre, 4 * size)  # symmetric about 0
    direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    cells = centre + np.rint(t[:, None] * direction).astype(int)  # rint(-x) = -rint(x): symmetric cells
    kernel = np.zeros((size, size))
    kernel[cells[:, 1], cells[:, 0]] = 1.0
    return kernel / kernel.sum()


class MotionBlur:
    """Blur along a line at a uniform random angle, length an odd size in ``[3, max_size]``
    (DeepLabCut's ``motion_blur``: albumentations' 3 to 7)."""

    def __init__(self, max_size: int = 7):
        if max_size < 3:
            raise ValueError(f'max_size must be >= 3, got {max_size}')
        self.max_size = int(max_size)

    def __call__(self, image, anns, meta):
        size = 3 + 2 * int(torch.randint(0, (self.max_size - 3) // 2 + 1, ()))
        kernel = motion_blur_kernel(size, 180.0 * float(torch.rand(())))
        array = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)[:, None]
        padded = torch.nn.functional.pad(array, (size // 2,) * 4, mode='replicate')
        blurred = torch.nn.functional.conv2d(padded, torch.from_numpy(kernel).float()[None, None])
        out = blurred[:, 0].permute(1, 2, 0).clamp_(0, 255).round_().numpy().astype(np.uint8)
        return PIL.Image.fromarray(out), anns, meta

    def __repr__(self):
        return f'MotionBlur(max_size={self.max_size})'


class HistogramEqualization:
    """Equalise the histogram of each channel (PIL's ``ImageOps.equalize``; DeepLabCut's ``hist_eq``)."""

    def __call__(self, image, anns, meta):
        return PIL.ImageOps.equalize(image), anns, meta

    def __repr__(self):
        return 'HistogramEqualization()'
