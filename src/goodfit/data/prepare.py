"""One data-preparation path: hold out a validation part, standardize on the part the model
trains on, and hand the three parts to the loop.

Used by ``goodfit train`` (the whole training set), by a study's folds (a fold's training part)
and by the LR finder, so the split and the standardization are the same everywhere: the
validation part is drawn with scikit-learn's ``train_test_split`` (stratified for
classification), and the standardizer is fitted on the training part only (seed 000 §1.1: the
statistics of the data the model learns from; never the validation or test data).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from goodfit.data.standardize import fit_standardizer
from goodfit.errors import DataError

__all__ = ["PreparedData", "holdout_indices", "prepare_data"]

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass
class PreparedData:
    """A dataset split into the part the model trains on, the validation part (``None``
    without one) and the test set, standardized with statistics of ``train`` only.

    ``transform`` is that standardization (identity when disabled): apply it to any other
    rows of the dataset's training array, e.g. a cross-validation fold's held-out part.
    """

    dataset: Any
    train: Pair
    val: Pair | None
    test: Pair
    transform: Callable[[torch.Tensor], torch.Tensor]
    #: The rows of the dataset's training array that ``train`` holds (in its order).
    train_index: torch.Tensor | None = None
    #: Rows of the dataset's training array whose label :func:`flip_labels` replaced in
    #: ``train`` (sorted; empty without label noise); ``rows`` gives their clean labels.
    noisy: torch.Tensor = dataclasses.field(default_factory=lambda: _no_rows())
    #: The labels ``train`` holds for those rows (each differs from the dataset's).
    noisy_labels: torch.Tensor = dataclasses.field(default_factory=lambda: _no_rows())

    def rows(self, idx: Sequence[int] | torch.Tensor) -> Pair:
        """Rows ``idx`` of the dataset's training array, transformed like ``train``."""
        idx = torch.as_tensor(idx)
        return self.transform(self.dataset.X_train[idx]), self.dataset.y_train[idx]


def holdout_indices(
    dataset: Any, pool: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split the row indices ``pool`` into (train, validation), sorted, stratified for
    classification (unstratified when a class is too small to stratify)."""
    if val_fraction <= 0:
        return pool, None
    n_val = math.ceil(val_fraction * len(pool))
    if len(pool) - n_val < 1:
        raise DataError(
            f"{len(pool)} training samples are too few to hold out data.val_fraction = "
            f"{val_fraction:g} for validation and keep one to train on; use more data or "
            "data.val_fraction = 0"
        )
    from sklearn.model_selection import train_test_split

    idx = pool.numpy()
    strat = dataset.y_train[pool].numpy() if dataset.task == "classification" else None
    try:
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=strat)
    except ValueError:  # too few samples of a class to stratify
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed)
    return torch.as_tensor(sorted(tr)), torch.as_tensor(sorted(va))


def prepare_data(
    dataset: Any,
    *,
    val_fraction: float,
    seed: int,
    standardize: bool = True,
    pool: Sequence[int] | torch.Tensor | None = None,
    train_size: int | None = None,
    label_noise: float = 0.0,
) -> PreparedData:
    """Split ``pool`` (default: every training row) into train/validation and standardize.

    Parameters
    ----------
    dataset : a :class:`goodfit.data.Dataset` (not standardized).
    val_fraction : share of ``pool`` held out for validation (0: none).
    seed : random state of the split.
    standardize : fit a per-feature (per-channel) standardizer on the train part.
    pool : training-array rows to use, e.g. a cross-validation fold's training part.
    train_size : keep only this many rows of ``pool`` (before the validation holdout): the
        first ``train_size`` of one permutation drawn from ``seed``, so smaller sizes are
        subsets of larger ones (sample-wise double descent, Nakkiran et al. 2019).
    label_noise : share of the labels of the part the model trains on replaced by another
        class (:func:`goodfit.data.label_noise.flip_labels`); validation and test stay clean.
    """
    pool = torch.arange(dataset.n_train) if pool is None else torch.as_tensor(pool)
    if train_size is not None:
        pool = _subsample(pool, train_size, seed)
    train_idx, val_idx = holdout_indices(dataset, pool, val_fraction, seed)
    X, y = dataset.X_train, dataset.y_train
    transform = fit_standardizer(X[train_idx]) if standardize else _identity
    X_train = transform(X[train_idx])
    val = (transform(X[val_idx]), y[val_idx]) if val_idx is not None else None
    y_train, pos = _noised(dataset, train_idx, label_noise, seed)
    return PreparedData(
        dataset=dataset,
        train=(X_train, y_train),
        val=val,
        test=(transform(dataset.X_test), dataset.y_test),
        transform=transform,
        train_index=train_idx,
        noisy=train_idx[pos],
        noisy_labels=y_train[pos],
    )


def _subsample(pool: torch.Tensor, train_size: int, seed: int) -> torch.Tensor:
    """The first ``train_size`` rows of a seeded permutation of ``pool``, sorted."""
    if train_size > len(pool):
        raise DataError(
            f"data.train_size = {train_size} is more than the {len(pool)} training samples "
            "available; use at most that many"
        )
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(pool), generator=g)
    return pool[perm[:train_size]].sort().values


def _noised(
    dataset: Any, train_idx: torch.Tensor, label_noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training labels with ``label_noise`` of them replaced, and the replaced positions
    (into ``train_idx``)."""
    y = dataset.y_train[train_idx]
    if not label_noise:
        return y, _no_rows()
    if dataset.task != "classification":
        raise DataError(
            f"data.label_noise = {label_noise:g} replaces class labels: it needs a "
            f"classification dataset, and {dataset.name!r} is a {dataset.task} one"
        )
    from goodfit.data.label_noise import flip_labels

    y_new, pos = flip_labels(y.numpy(), label_noise, dataset.num_classes, [seed, 2])
    return torch.as_tensor(y_new), torch.as_tensor(pos, dtype=torch.long)


def _no_rows() -> torch.Tensor:
    return torch.zeros(0, dtype=torch.long)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x
