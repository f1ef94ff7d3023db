"""Merging pose fragments: the parts of one person that the skeleton cannot connect.

A labelled keypoint whose skeleton neighbours are all hidden (a wrist whose elbow and shoulder are
occluded, a nose without eyes) is reachable by no association, so the CAF growth starts a separate
pose at it: a low-scoring fragment, while the person's own pose lacks that joint. This step, an
openfields addition to OpenPifPaf's decoder, gives such fragments back to the pose they belong to.

Rule, for fragments in increasing number of joints: a pose ``P`` merges into the pose ``Q`` that

1. has more joints than ``P`` and no joint type in common with it,
2. is the closest such pose, by the smallest distance between a joint of ``P`` and a joint of ``Q``,
3. at a distance of at most ``max_distance`` times ``Q``'s size: the larger of the longer side of
   the box around its joints and the instance size its joint scales imply, ``median_j(s_j / sigma_j)``
   (the CIF scale of joint ``j`` is the instance size times the keypoint's sigma), so a person whose
   visible joints cover a small part of it still reaches its far fragments.

Merging joins the joint lists; ``Q`` can absorb further fragments afterwards. Wrong merges cost
little: they only fill joints that ``Q`` lacks, which OKS ignores unless they are labelled for
``Q``'s person, and then ``Q`` had nothing better to offer there.
"""

from __future__ import annotations

import numpy as np


def merge_fragments(joint_sets: list[list[list[float]]], max_distance: float,
                    sigmas: np.ndarray) -> list[list[list[float]]]:
    """Poses (``K`` joints ``[v, x, y, s]``, ``v > 0`` when found) with fragments merged in place into
    the poses they belong to; returns the remaining poses in their original order. ``sigmas``: ``(K,)``
    the keypoints' sigmas (head meta)."""
    if max_distance <= 0 or len(joint_sets) < 2:
        return joint_sets
    values = np.asarray(joint_sets, dtype=np.float64)  # (P, K, 4)
    found = values[:, :, 0] > 0  # (P, K)
    xy = values[:, :, 1:3]
    implied_size = values[:, :, 3] / np.asarray(sigmas, dtype=np.float64)[None]  # (P, K)
    merged = np.zeros(len(joint_sets), dtype=bool)
    for p in np.argsort(found.sum(axis=1), kind='stable'):
        target = _merge_target(p, found, xy, implied_size, merged, max_distance)
        if target is None:
            continue
        for joint in np.flatnonzero(found[p]):
            joint_sets[target][joint] = list(joint_sets[p][joint])
        found[target] |= found[p]
        xy[target, found[p]] = xy[p, found[p]]
        implied_size[target, found[p]] = implied_size[p, found[p]]
        merged[p] = True
    return [joints for joints, gone in zip(joint_sets, merged) if not gone]


def _merge_target(p: int, found: np.ndarray, xy: np.ndarray, implied_size: np.ndarray, merged: np.ndarray,
                  max_distance: float) -> int | None:
    """Index of the pose that fragment ``p`` merges into, or None: of the candidates by ascending distance
    (ties: lower index first, as ``argmin``), the first within ``max_distance`` times its size (sizes are
    computed for the candidates looked at only)."""
    count = found.sum(axis=1)
    candidates = (~merged) & (count > count[p]) & ~(found & found[p]).any(axis=1)
    candidates[p] = False
    if not candidates.any():
        return None
    own = xy[p, found[p]]  # (m, 2)
    distance = np.linalg.norm(xy[:, None, :, :] - own[None, :, None, :], axis=-1)  # (P, m, K)
    distance = np.where(found[:, None, :], distance, np.inf).min(axis=(1, 2))  # (P,)
    distance[~candidates] = np.inf
    for q in np.argsort(distance, kind='stable').tolist():
        if not np.isfinite(distance[q]):
            return None
        if distance[q] <= max_distance * _size(xy[q, found[q]], implied_size[q, found[q]]):
            return q
    return None


def _size(points: np.ndarray, implied_sizes: np.ndarray) -> float:
    """The larger of the longer side of the box around ``(n, 2)`` points and the median ``(n,)``
    implied instance size."""
    return max(float((points.max(axis=0) - points.min(axis=0)).max()), float(np.median(implied_sizes)))
