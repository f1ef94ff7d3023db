"""A default skeleton for keypoint sets that come without one.

The CAF heads need connections between keypoints; a json or project without a (valid) skeleton gets
the tree that joins keypoints that are usually close together on the same instance:

1. for every pair ``(i, j)`` labelled together on at least one instance, the typical distance is the
   median over those instances of ``||p_i - p_j|| / size``, with ``size`` the longer side of the box
   around the instance's labelled keypoints (scale-free, so small and large instances count alike);
2. the skeleton is the minimum spanning tree of that complete graph (scipy's
   ``minimum_spanning_tree``): ``K - 1`` connections, each keypoint reached by its nearest neighbours;
3. keypoints never labelled together with the rest (separate components) are joined in keypoint
   order, component to component, and with no instances at all the skeleton is the chain
   ``1-2, 2-3, ...``.

A tree is the smallest skeleton that connects everything; the decoder's fragment merging makes up for
joints left unreachable when an instance's connecting keypoint is hidden.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree


def chain_skeleton(n_keypoints: int) -> list[tuple[int, int]]:
    """``[(1, 2), (2, 3), ...]``: keypoints connected in their order (1-based)."""
    return [(i, i + 1) for i in range(1, n_keypoints)]


def typical_distances(keypoint_sets: np.ndarray) -> np.ndarray:
    """``(K, K)`` median size-normalised distance of each keypoint pair over the ``(N, K, 3)``
    instances that label both (``v > 0``); NaN for pairs never labelled together and on the diagonal."""
    n_keypoints = keypoint_sets.shape[1]
    result = np.full((n_keypoints, n_keypoints), np.nan)
    labelled = keypoint_sets[:, :, 2] > 0
    usable = labelled.sum(axis=1) >= 2
    points, labelled = keypoint_sets[usable, :, :2], labelled[usable]
    if not len(points):
        return result
    low = np.where(labelled[:, :, None], points, np.inf).min(axis=1)
    high = np.where(labelled[:, :, None], points, -np.inf).max(axis=1)
    size = np.maximum((high - low).max(axis=1), 1e-6)  # (N,)
    distance = np.linalg.norm(points[:, :, None] - points[:, None, :], axis=-1) / size[:, None, None]
    both = labelled[:, :, None] & labelled[:, None, :]
    for i in range(n_keypoints):
        for j in range(i + 1, n_keypoints):
            if both[:, i, j].any():
                result[i, j] = result[j, i] = np.median(distance[both[:, i, j], i, j])
    return result


def spanning_tree_skeleton(keypoint_sets: np.ndarray) -> list[tuple[int, int]]:
    """Default skeleton (1-based pairs, smaller index first, sorted) for ``(N, K, 3)`` instances."""
    n_keypoints = keypoint_sets.shape[1]
    distances = typical_distances(keypoint_sets)
    # scipy treats 0 as "no edge": coincident keypoints get a tiny positive weight instead
    weights = np.where(np.isnan(distances), 0.0, np.maximum(distances, 1e-9))
    np.fill_diagonal(weights, 0.0)
    tree = minimum_spanning_tree(weights).tocoo()
    pairs = {tuple(sorted((int(i) + 1, int(j) + 1))) for i, j in zip(tree.row, tree.col)}
    n_components, component = connected_components(weights != 0, directed=False)
    first_of = [int(np.flatnonzero(component == c)[0]) for c in range(n_components)]
    for a, b in zip(sorted(first_of), sorted(first_of)[1:]):
        pairs.add((a + 1, b + 1))
    return sorted(pairs)
