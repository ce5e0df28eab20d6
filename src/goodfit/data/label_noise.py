"""Label noise for classification data: a fixed fraction of the training labels replaced.

Nakkiran et al. 2019 (*Deep Double Descent*, seed 003, Fig. 1-2 use "15% label noise"; their
App. B.1): "label noise of probability p refers to training samples having a correct label with
probability (1 - p), and a uniformly random incorrect label otherwise (label noise is sampled
only once and not per epoch)". Here exactly ``round(p * N)`` samples are chosen (without
replacement) and each gets a class drawn uniformly from the *other* ``K - 1`` classes, so the
fraction of wrong labels is exactly ``p`` (up to rounding). The MNIST-1D notebook of
*Understanding Deep Learning* §8.4 draws the new label from all ``K`` classes instead, which
leaves about ``p / K`` of the chosen labels unchanged (1.5 points of its 15 %).

Only the part the model trains on is noised (:func:`goodfit.data.prepare.prepare_data`); the
validation and test labels stay clean, so they measure the true rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from goodfit.checks import check_int

__all__ = ["flip_labels"]


def flip_labels(
    y: np.ndarray, fraction: float, num_classes: int, seed: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Replace exactly ``round(fraction * len(y))`` labels, each by a uniformly drawn *other*
    class; returns the new labels (a copy) and the sorted positions that were replaced.

    ``seed`` seeds :func:`numpy.random.default_rng` (an int or a sequence of ints).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"label noise must be a fraction in [0, 1), got {fraction!r}")
    num_classes = check_int("num_classes", num_classes, low=2)
    y = np.asarray(y).copy()
    rng = np.random.default_rng(seed)
    n_flip = round(fraction * len(y))
    idx = rng.choice(len(y), size=n_flip, replace=False)
    y[idx] = (y[idx] + rng.integers(1, num_classes, size=n_flip)) % num_classes
    return y, np.sort(idx)
