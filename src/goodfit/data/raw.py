"""What a loader returns before it becomes a :class:`goodfit.data.Dataset`: NumPy arrays and
metadata (:class:`RawData`), split once into train and test by :func:`fixed_split`.

Built-in sets (:mod:`goodfit.data.builtin`) and user files (:mod:`goodfit.data.files`) both
produce it; :func:`goodfit.data.load_dataset` turns it into tensors and standardizes.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Literal

import numpy as np

from goodfit.errors import DataError

__all__ = ["RawData", "Task", "fixed_split"]

Task = Literal["classification", "regression"]


@dataclasses.dataclass
class RawData:
    """Arrays and metadata from a loader (built-in or file), before standardization."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: Task
    num_classes: int | None
    description: str
    source: str
    feature_names: tuple[str, ...] | None = None
    classes: tuple[Any, ...] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def fixed_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, stratify: bool, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed train/test split by ``sklearn.model_selection.train_test_split(random_state=seed)``,
    stratified for classification when every class has >= 2 samples."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_test = math.ceil(test_fraction * n)
    if n_test < 1 or n - n_test < 1:
        raise DataError(
            f"{where}: {n} samples are too few for a train/test split with "
            f"test_fraction={test_fraction}"
        )
    strat = None
    if stratify:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and n_test >= len(counts) and n - n_test >= len(counts):
            strat = y
        else:
            warnings.warn(
                f"{where}: a class has fewer than 2 samples (or the split is too small); "
                "making an unstratified split",
                stacklevel=3,
            )
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=strat
    )
    return Xtr, ytr, Xte, yte
