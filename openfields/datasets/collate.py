"""Batching of preprocessed samples."""

import torch


def collate_images_targets_meta(batch):
    """Stack ``(image, targets, meta)`` samples into ``(images, targets, metas)``.

    ``images``: ``(B, 3, H, W)``; ``targets``: one ``(B, F, C, h, w)`` tensor per head of the
    dataset; ``metas``: list of dicts. Samples that failed to load (None) are dropped.
    """
    batch = [sample for sample in batch if sample is not None]
    if not batch:
        return None
    images = torch.stack([image for image, _, _ in batch])
    n_heads = len(batch[0][1])
    targets = [torch.stack([sample_targets[i] for _, sample_targets, _ in batch])
               for i in range(n_heads)]
    metas = [meta for _, _, meta in batch]
    return images, targets, metas


def collate_images_anns_meta(batch):
    """Stack ``(image, anns, meta)`` evaluation samples into ``(images, [anns], metas)``.

    Images of one batch must have the same size (evaluation pads them). Unreadable samples are dropped.
    """
    batch = [sample for sample in batch if sample is not None]
    if not batch:
        return None
    images = torch.stack([image for image, _, _ in batch])
    return images, [anns for _, anns, _ in batch], [meta for _, _, meta in batch]
