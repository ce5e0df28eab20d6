"""The :class:`Dataset` type and :func:`load_dataset`, which loads a built-in set by name
or a user file by path, with a fixed, documented train/test split.

Every loader returns a :class:`Dataset`: train and test tensors (``X`` float32; ``y`` int64
class indices for classification, float32 of shape ``(N, num_outputs)`` for regression) plus
metadata. The splits are fixed: they depend only on the data seed (``seed``, default: the
dataset's own documented seed), never on the training run's seed, so the same call always gives
the same split.

Standardization (zero mean, unit variance) is always *fitted on training data only* and then
applied to every part, so no statistic of the validation or test data leaks into training. The
default ``load_dataset(name)`` standardizes with statistics of the whole training part; a caller
that carves a validation set (or cross-validation folds) out of the training part should load
with ``standardize=False`` and fit on each fold's training part with :func:`fit_standardizer`
(or :meth:`Dataset.standardize` with ``fit_on=train_idx``).

The built-in sets and their options are described in :mod:`goodfit.data.builtin`, the user file
formats in :mod:`goodfit.data.files`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from goodfit.checks import check_real, check_seed
from goodfit.data.builtin import DATASETS, load_builtin
from goodfit.data.files import load_file
from goodfit.data.raw import RawData, Task
from goodfit.data.standardize import Standardizer, fit_standardizer
from goodfit.errors import DataError

__all__ = ["Dataset", "load_dataset"]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train/test tensors plus metadata.

    Attributes
    ----------
    name : str
        Built-in name or the file's path.
    X_train, X_test : Tensor
        float32, shape ``(N, *input_shape)``.
    y_train, y_test : Tensor
        int64 class indices ``(N,)`` for classification; float32 ``(N, num_outputs)`` for
        regression.
    task : {"classification", "regression"}
    input_shape : tuple of int
        Shape of one sample, e.g. ``(1, 8, 8)``, ``(1, 40)``, ``(30,)``.
    num_classes : int or None
        Number of classes (None for regression).
    num_outputs : int
        Width of the model's output: ``num_classes`` or the regression target width.
    description : str
    feature_names : tuple of str or None
    classes : tuple or None
        Original label values, ``classes[k]`` is the label mapped to index ``k``.
    source : str
        Where the data came from.
    standardizer : Standardizer or None
        The statistics applied to ``X_train``/``X_test`` (None if raw).
    info : dict
        Extra facts (e.g. the true polynomial coefficients of ``poly``).
    """

    name: str
    X_train: Tensor
    y_train: Tensor
    X_test: Tensor
    y_test: Tensor
    task: Task
    input_shape: tuple[int, ...]
    num_classes: int | None
    num_outputs: int
    description: str = ""
    feature_names: tuple[str, ...] | None = None
    classes: tuple[Any, ...] | None = None
    source: str = ""
    standardizer: Standardizer | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        """``(X_train, y_train)``."""
        return self.X_train, self.y_train

    @property
    def test(self) -> tuple[Tensor, Tensor]:
        """``(X_test, y_test)``."""
        return self.X_test, self.y_test

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])

    def standardize(
        self,
        fit_on: Tensor | np.ndarray | Sequence[int] | slice | None = None,
        *,
        per: str = "auto",
    ) -> Dataset:
        """Return a copy standardized with statistics fitted on ``X_train[fit_on]`` only.

        ``fit_on`` (indices, boolean mask or slice into the training part; default all of it)
        should be the part the model trains on, e.g. the training indices of a
        cross-validation fold, so the held-out part's statistics never leak. The statistics are
        applied to all of ``X_train`` and to ``X_test``. Raises ``ValueError`` if the dataset is
        already standardized (load it with ``standardize=False``).
        """
        if self.standardizer is not None:
            raise ValueError(
                f"dataset {self.name!r} is already standardized; load it with "
                "standardize=False to fit the statistics on a subset"
            )
        X_fit = self.X_train if fit_on is None else self.X_train[_as_index(fit_on)]
        s = fit_standardizer(X_fit, per=per)
        return dataclasses.replace(
            self, X_train=s(self.X_train), X_test=s(self.X_test), standardizer=s
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, n_train={self.n_train}, "
            f"n_test={self.n_test}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, num_outputs={self.num_outputs}, "
            f"standardized={self.standardizer is not None})"
        )


def _as_index(idx: Any) -> Any:
    if isinstance(idx, slice | Tensor):
        return idx
    return torch.as_tensor(np.asarray(idx))


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    seed: int | None = None,
    standardize: bool = True,
    test_fraction: float | None = None,
    **options: Any,
) -> Dataset:
    """Load a built-in dataset by name or a user ``.npz``/``.csv`` file by path.

    Parameters
    ----------
    name_or_path : str or path
        One of :data:`~goodfit.data.builtin.DATASETS` (``digits``, ``mnist1d``,
        ``breast_cancer``, ``wine``, ``moons``, ``spirals``, ``poly``; see
        :mod:`goodfit.data.builtin`) or a path to a ``.npz`` or ``.csv`` file (see
        :mod:`goodfit.data.files`).
    seed : int or None
        The *data* seed: drives synthetic generation and every split goodfit makes. None (the
        default) uses the dataset's documented seed (0; 42 for ``mnist1d``, the package's
        default), which gives the documented split. It is deliberately separate from the
        training run's seed: don't pass the run seed here unless you want a different split.
        An integer in ``[0, 2**32 - 1]``.
    standardize : bool
        If True (default), standardize ``X`` with statistics fitted on ``X_train`` only (per
        feature for tabular data, per channel for images/signals, see
        :func:`fit_standardizer`). Use False when you will split ``X_train`` further
        (validation, cross-validation folds) and fit on each training part yourself.
    test_fraction : float or None
        Fraction held out as test set, in (0, 1). None: the documented default (0.2; 0.5 for
        ``poly``). Ignored for ``.npz`` files that carry ``X_test``/``y_test``.
    **options
        Dataset-specific options (``DATASETS[name].options``; for files ``task``,
        ``num_classes``, and for ``.csv`` also ``label`` and ``delimiter``). Unknown options
        raise ``TypeError``, bad values ``ValueError``.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Unknown name, missing file, wrong extension, malformed data (missing arrays/columns,
        NaN/Inf features, NaN labels, non-integer or out-of-range class labels, length
        mismatch, empty data).

    Examples
    --------
    >>> ds = load_dataset("digits")
    >>> ds.X_train.shape, ds.num_classes
    (torch.Size([1437, 1, 8, 8]), 10)
    >>> raw = load_dataset("moons", standardize=False, label_noise=0.1)
    """
    if seed is not None:
        seed = check_seed("seed", seed)
    if test_fraction is not None:
        test_fraction = check_real(
            "test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True
        )
    key = os.fspath(name_or_path)
    from goodfit.data.multitask import is_multitask, load_multitask_raw

    if is_multitask(key, options):  # several targets: goodfit.data.multitask
        raw = load_multitask_raw(key, seed, test_fraction, options)
    elif key in DATASETS:
        raw = load_builtin(key, seed, test_fraction, options)
    else:
        path = Path(key).expanduser()
        if path.is_dir():  # one subfolder per class (goodfit.data.images)
            from goodfit.data.images import load_image_folder

            return _to_dataset(key, load_image_folder(path, seed, test_fraction, options),
                               standardize)  # fmt: skip
        if not path.suffix and not path.exists():
            raise DataError(
                f"unknown dataset {key!r}: expected one of {', '.join(DATASETS)} or a path "
                "to a .npz or .csv file"
            )
        raw = load_file(key, seed, test_fraction, options)
    return _to_dataset(key, raw, standardize)


def _to_dataset(name: str, raw: RawData, standardize: bool) -> Dataset:
    X_train = torch.as_tensor(np.ascontiguousarray(raw.X_train), dtype=torch.float32)
    X_test = torch.as_tensor(np.ascontiguousarray(raw.X_test), dtype=torch.float32)
    if raw.task == "classification":
        y_train = torch.as_tensor(np.asarray(raw.y_train, dtype=np.int64))
        y_test = torch.as_tensor(np.asarray(raw.y_test, dtype=np.int64))
        assert raw.num_classes is not None
        num_outputs = raw.num_classes
    else:
        y_train = torch.as_tensor(
            np.asarray(raw.y_train, dtype=np.float32).reshape(len(raw.y_train), -1)
        )
        y_test = torch.as_tensor(
            np.asarray(raw.y_test, dtype=np.float32).reshape(len(raw.y_test), -1)
        )
        num_outputs = int(y_train.shape[1])
        if raw.task == "multitask":
            num_outputs = sum(t["width"] for t in raw.info["tasks"])
    ds = Dataset(
        name=name, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
        task=raw.task, input_shape=tuple(X_train.shape[1:]), num_classes=raw.num_classes,
        num_outputs=num_outputs, description=raw.description, feature_names=raw.feature_names,
        classes=raw.classes, source=raw.source, info=raw.info,
    )  # fmt: skip
    return ds.standardize() if standardize else ds
