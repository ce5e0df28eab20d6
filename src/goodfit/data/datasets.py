"""Built-in datasets and user data files, with fixed, documented train/test splits.

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

Built-in sets (see :data:`DATASETS` for the same facts as data; ``goodfit datasets`` prints them):

``digits``
    scikit-learn's 8x8 handwritten digits, 1797 images as ``(1, 8, 8)``, pixel values divided
    by 16 to lie in [0, 1]; 10 classes. Split: stratified 80/20 (1437 train / 360 test) by
    ``sklearn.model_selection.train_test_split(random_state=0, stratify=y)``.
``mnist1d``
    MNIST-1D generated offline by ``mnist1d.data.make_dataset`` with the package's default
    arguments (5000 signals, package seed 42): 4000 train / 1000 test length-40 signals as
    ``(1, 40)``; 10 classes. Split: the package's own (first 80 % train, last 20 % test of its
    shuffled sample). Generation takes a few seconds, so the arrays are cached as ``.npz`` in
    :func:`cache_dir`. Nothing is ever downloaded. (The package itself centres and scales the
    whole generated set by one global mean/std; goodfit's standardization then refits on the
    training part.)
``breast_cancer``
    scikit-learn's Wisconsin breast cancer set, 569 samples x 30 features, 2 classes.
    Split: stratified 80/20 (455 / 114), ``random_state=0``.
``wine``
    scikit-learn's wine recognition set, 178 samples x 13 features, 3 classes.
    Split: stratified 80/20 (142 / 36), ``random_state=0``.
``moons``
    ``sklearn.datasets.make_moons``: two interleaving half circles in 2-D, 2 classes.
    Options ``n_samples=1000``, ``noise=0.2`` (std of Gaussian noise on the points),
    ``label_noise=0.0`` (fraction of *training* labels flipped to another class; test labels
    stay clean so the test set measures the true rule). Split: stratified 80/20.
``spirals``
    ``num_classes`` (default 2) interleaved Archimedean spiral arms in 2-D. Options
    ``n_samples=1000``, ``noise=0.1``, ``label_noise=0.0``, ``turns=1.5``, ``num_classes=2``.
    Split: stratified 80/20.
``poly``
    Noisy polynomial regression ``y = p(x) + noise * eps``, ``x ~ U(-1, 1)``, ``eps ~ N(0, 1)``,
    for under/over-fitting demonstrations. ``p`` has random ``N(0, 1)`` coefficients of the
    given ``degree`` (or explicit ``coefficients``, constant term first), rescaled so that
    ``p(x)`` has unit standard deviation over [-1, 1] (so ``noise`` is a noise-to-signal ratio;
    explicit coefficients are used as given). Options ``n_samples=200``, ``degree=3``,
    ``noise=0.2``, ``coefficients=None``. Split: 50/50 (100 / 100), so the test error is a
    good estimate of the generalization error. ``Dataset.info`` holds the coefficients.
    Targets are not standardized.

User files (the name is a path):

``.npz``
    arrays ``X`` (``(N, ...)``) and ``y`` (``(N,)`` or ``(N, k)``), optionally ``X_test`` and
    ``y_test``; if absent, a fixed 80/20 split (stratified for classification) is made with the
    data seed (default 0).
``.csv``
    one header row, then one sample per row; the label column is the option ``label`` (default:
    the column named ``"label"`` if there is one, else the last column); every other column is a
    numeric feature. Option ``delimiter=","``. Split as for ``.npz``.

For user files the task is inferred: 1-D labels that are strings, or integer-valued with at
most ``min(50, N // 2)`` distinct values, mean classification; anything else regression.
``task="classification" | "regression"`` overrides it. Classification labels are remapped to
``0..K-1`` in sorted order (``Dataset.classes`` keeps the original values) unless the option
``num_classes=K`` is given, in which case labels must already be integers in ``[0, K)``.

Malformed data raises :class:`goodfit.errors.DataError` naming the file, array/column and value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from goodfit.data.files import (
    _FILE_OPTIONS,
    Task,
    _check_pos_int,
    _load_csv,
    _load_npz,
    _Raw,
    _split,
)
from goodfit.data.standardize import Standardizer, apply_standardizer, fit_standardizer
from goodfit.errors import DataError

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "Standardizer",
    "apply_standardizer",
    "cache_dir",
    "describe_datasets",
    "fit_standardizer",
    "load_dataset",
]

_MNIST1D_CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Registry metadata
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a built-in dataset (with default options)."""

    name: str
    task: Task
    n_train: int
    n_test: int
    input_shape: tuple[int, ...]
    num_classes: int | None
    num_outputs: int
    description: str
    split: str
    options: dict[str, Any]
    default_seed: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SPLIT_8020 = "stratified 80/20, sklearn train_test_split(random_state=seed)"

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "digits", "classification", 1437, 360, (1, 8, 8), 10, 10,
            "scikit-learn 8x8 handwritten digits, pixels / 16 in [0, 1]",
            _SPLIT_8020, {}, 0,
        ),
        DatasetInfo(
            "mnist1d", "classification", 4000, 1000, (1, 40), 10, 10,
            "MNIST-1D (mnist1d.make_dataset, default args), length-40 signals; cached",
            "the package's own: first 80% train / last 20% test (package seed 42)", {}, 42,
        ),
        DatasetInfo(
            "breast_cancer", "classification", 455, 114, (30,), 2, 2,
            "scikit-learn Wisconsin breast cancer, 30 tabular features",
            _SPLIT_8020, {}, 0,
        ),
        DatasetInfo(
            "wine", "classification", 142, 36, (13,), 3, 3,
            "scikit-learn wine recognition, 13 tabular features",
            _SPLIT_8020, {}, 0,
        ),
        DatasetInfo(
            "moons", "classification", 800, 200, (2,), 2, 2,
            "two interleaving half circles (sklearn make_moons), optional label noise",
            _SPLIT_8020, {"n_samples": 1000, "noise": 0.2, "label_noise": 0.0}, 0,
        ),
        DatasetInfo(
            "spirals", "classification", 800, 200, (2,), 2, 2,
            "interleaved 2-D spiral arms, optional label noise",
            _SPLIT_8020,
            {"n_samples": 1000, "noise": 0.1, "label_noise": 0.0, "turns": 1.5,
             "num_classes": 2},
            0,
        ),
        DatasetInfo(
            "poly", "regression", 100, 100, (1,), None, 1,
            "noisy polynomial y = p(x) + noise*eps on [-1, 1], for under/over-fitting",
            "random 50/50, sklearn train_test_split(random_state=seed)",
            {"n_samples": 200, "degree": 3, "noise": 0.2, "coefficients": None}, 0,
        ),
    ]
}  # fmt: skip

_DEFAULT_TEST_FRACTION = {name: 0.5 if name == "poly" else 0.2 for name in DATASETS}


def describe_datasets() -> list[dict[str, Any]]:
    """One dict per built-in dataset (name, task, n_train, n_test, input_shape, num_classes,
    num_outputs, description, split, options, default_seed), for ``goodfit datasets``.

    Static metadata with default options: nothing is generated or loaded.
    """
    return [info.as_dict() for info in DATASETS.values()]


def cache_dir() -> Path:
    """Folder for cached generated data: ``$GOODFIT_CACHE``, else ``$XDG_CACHE_HOME/goodfit``,
    else ``~/.cache/goodfit``."""
    env = os.environ.get("GOODFIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "goodfit"


# --------------------------------------------------------------------------------------------
# Raw loaders (numpy in, numpy out; no standardization)
# --------------------------------------------------------------------------------------------


def _check_fraction(test_fraction: float) -> float:
    tf = float(test_fraction)
    if not 0.0 < tf < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    return tf


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise TypeError(
            f"dataset {name!r} got unexpected option(s) {', '.join(map(repr, options))}; "
            "it takes none"
        )


def _take_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    allowed = DATASETS[name].options
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise TypeError(
            f"dataset {name!r} got unexpected option(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed)}"
        )
    return {**allowed, **options}


def _sklearn_tabular(name: str, seed: int, test_fraction: float, options: dict) -> _Raw:
    from sklearn import datasets as skd

    _no_options(name, options)
    loader = {
        "digits": skd.load_digits,
        "breast_cancer": skd.load_breast_cancer,
        "wine": skd.load_wine,
    }[name]
    bunch = loader()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    feature_names = tuple(str(f) for f in bunch.feature_names)
    if name == "digits":
        X = (X / 16.0).reshape(-1, 1, 8, 8)
    Xtr, ytr, Xte, yte = _split(X, y, test_fraction, seed, True, name)
    classes = tuple(bunch.target_names.tolist())
    return _Raw(
        Xtr, ytr, Xte, yte, "classification", len(classes), DATASETS[name].description,
        f"sklearn.datasets.load_{name}", feature_names, classes,
    )  # fmt: skip


def _mnist1d_arrays(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 5000 generated signals ``x`` (float64), labels ``y`` and time grid ``t``, cached."""
    path = cache_dir() / f"mnist1d_v{_MNIST1D_CACHE_VERSION}_seed{seed}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["x"], z["y"], z["t"]
    except (OSError, KeyError, ValueError, EOFError):
        pass  # absent or unreadable: regenerate
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    # make_dataset reseeds Python's and NumPy's global RNGs; restore them so that loading
    # data never changes a training run's random stream.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float64)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    t = np.asarray(d["t"], dtype=np.float64)
    _atomic_savez(path, x=x, y=y, t=t)
    return x, y, t


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    from goodfit.atomic import atomic_write

    try:
        atomic_write(path, lambda handle: np.savez(handle, **arrays))
    except OSError as exc:
        warnings.warn(f"cannot write cache {path}: {exc}; not caching", stacklevel=3)


def _mnist1d(name: str, seed: int, test_fraction: float, options: dict) -> _Raw:
    _no_options(name, options)
    x, y, t = _mnist1d_arrays(seed)
    n_train = int(len(y) * (1.0 - test_fraction))
    X = x[:, None, :]
    return _Raw(
        X[:n_train], y[:n_train], X[n_train:], y[n_train:], "classification", 10,
        DATASETS[name].description, "mnist1d.data.make_dataset (generated offline)",
        None, tuple(range(10)), {"t": t.tolist()},
    )  # fmt: skip


def _check_nonneg(name: str, key: str, value: Any, upper: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {key} must be a number, got {value!r}") from None
    if not (v >= 0 and math.isfinite(v)) or (upper is not None and v > upper):
        allowed = f"in [0, {upper}]" if upper is not None else ">= 0"
        raise ValueError(f"{name}: {key} must be {allowed}, got {value!r}")
    return v


def _flip_labels(y: np.ndarray, fraction: float, num_classes: int, seed: int) -> np.ndarray:
    """Flip exactly ``round(fraction * N)`` labels, each to a uniformly drawn *other* class."""
    rng = np.random.default_rng([seed, 1])
    n_flip = round(fraction * len(y))
    idx = rng.choice(len(y), size=n_flip, replace=False)
    y = y.copy()
    y[idx] = (y[idx] + rng.integers(1, num_classes, size=n_flip)) % num_classes
    return y


def _moons_spirals(name: str, seed: int, test_fraction: float, options: dict) -> _Raw:
    o = _take_options(name, options)
    n = _check_pos_int(name, "n_samples", o["n_samples"], 2)
    noise = _check_nonneg(name, "noise", o["noise"])
    label_noise = _check_nonneg(name, "label_noise", o["label_noise"], 1.0)
    if name == "moons":
        from sklearn.datasets import make_moons

        X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
        k = 2
    else:
        k = _check_pos_int(name, "num_classes", o["num_classes"], 2)
        turns = _check_nonneg(name, "turns", o["turns"])
        rng = np.random.default_rng(seed)
        y = np.arange(n) % k
        r = np.sqrt(rng.uniform(0.0, 1.0, size=n))  # uniform density along the arms' area
        angle = 2 * np.pi * (turns * r + y / k)
        X = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        X = X + noise * rng.standard_normal(X.shape)
        perm = rng.permutation(n)
        X, y = X[perm], y[perm]
    y = np.asarray(y, dtype=np.int64)
    Xtr, ytr, Xte, yte = _split(X, y, test_fraction, seed, True, name)
    if label_noise > 0:
        ytr = _flip_labels(ytr, label_noise, k, seed)
    info = {key: o[key] for key in o}
    return _Raw(
        Xtr, ytr, Xte, yte, "classification", k, DATASETS[name].description,
        f"synthetic (seed {seed})", ("x1", "x2"), tuple(range(k)), info,
    )  # fmt: skip


def _poly(name: str, seed: int, test_fraction: float, options: dict) -> _Raw:
    o = _take_options(name, options)
    n = _check_pos_int(name, "n_samples", o["n_samples"], 2)
    noise = _check_nonneg(name, "noise", o["noise"])
    rng = np.random.default_rng(seed)
    if o["coefficients"] is not None:
        coef = np.asarray(o["coefficients"], dtype=np.float64).ravel()
        if coef.size == 0 or not np.isfinite(coef).all():
            raise ValueError(f"poly: coefficients must be finite numbers, got {o['coefficients']}")
    else:
        degree = _check_pos_int(name, "degree", o["degree"], 0)
        coef = rng.standard_normal(degree + 1)
        grid = np.linspace(-1.0, 1.0, 2001)
        scale = np.polynomial.polynomial.polyval(grid, coef).std()
        coef = coef / (scale if scale > 0 else 1.0)
    x = rng.uniform(-1.0, 1.0, size=(n, 1))
    y = np.polynomial.polynomial.polyval(x, coef) + noise * rng.standard_normal((n, 1))
    Xtr, ytr, Xte, yte = _split(x, y, test_fraction, seed, False, name)
    info = {"coefficients": coef.tolist(), "noise": noise, "degree": len(coef) - 1}
    return _Raw(
        Xtr, ytr, Xte, yte, "regression", None, DATASETS[name].description,
        f"synthetic (seed {seed})", ("x",), None, info,
    )  # fmt: skip


_LOADERS: dict[str, Callable[[str, int, float, dict], _Raw]] = {
    "digits": _sklearn_tabular,
    "breast_cancer": _sklearn_tabular,
    "wine": _sklearn_tabular,
    "mnist1d": _mnist1d,
    "moons": _moons_spirals,
    "spirals": _moons_spirals,
    "poly": _poly,
}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


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
        One of :data:`DATASETS` (``digits``, ``mnist1d``, ``breast_cancer``, ``wine``,
        ``moons``, ``spirals``, ``poly``) or a path to a ``.npz`` or ``.csv`` file.
    seed : int or None
        The *data* seed: drives synthetic generation and every split goodfit makes. None (the
        default) uses the dataset's documented seed (0; 42 for ``mnist1d``, the package's
        default), which gives the documented split. It is deliberately separate from the
        training run's seed: don't pass the run seed here unless you want a different split.
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
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    key = os.fspath(name_or_path)
    if key in DATASETS:
        seed_ = DATASETS[key].default_seed if seed is None else int(seed)
        tf = _check_fraction(
            _DEFAULT_TEST_FRACTION[key] if test_fraction is None else test_fraction
        )
        raw = _LOADERS[key](key, seed_, tf, options)
        name = key
    else:
        path = Path(key).expanduser()
        suffix = path.suffix.lower()
        if suffix not in _FILE_OPTIONS:
            if not suffix and not path.exists():
                raise DataError(
                    f"unknown dataset {key!r}: expected one of {', '.join(DATASETS)} or a path "
                    "to a .npz or .csv file"
                )
            raise DataError(
                f"{key}: unsupported file type {path.suffix or '(none)'!r}; use .npz or .csv"
            )
        if not path.is_file():
            raise DataError(f"data file not found: {key}")
        unknown = [k for k in options if k not in _FILE_OPTIONS[suffix]]
        if unknown:
            raise TypeError(
                f"{suffix} file got unexpected option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(_FILE_OPTIONS[suffix])}"
            )
        tf = _check_fraction(0.2 if test_fraction is None else test_fraction)
        loader = _load_npz if suffix == ".npz" else _load_csv
        raw = loader(path, 0 if seed is None else int(seed), tf, options)
        name = key
    return _to_dataset(name, raw, standardize)


def _to_dataset(name: str, raw: _Raw, standardize: bool) -> Dataset:
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
    ds = Dataset(
        name=name, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
        task=raw.task, input_shape=tuple(X_train.shape[1:]), num_classes=raw.num_classes,
        num_outputs=num_outputs, description=raw.description, feature_names=raw.feature_names,
        classes=raw.classes, source=raw.source, info=raw.info,
    )  # fmt: skip
    return ds.standardize() if standardize else ds
