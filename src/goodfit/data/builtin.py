"""The built-in datasets: their static facts (:data:`DATASETS`, :func:`describe_datasets`) and
their loaders, each with a fixed, documented train/test split.

Built-in sets (see :data:`DATASETS` for the same facts as data; ``goodfit datasets`` prints them):

``digits``
    scikit-learn's 8x8 handwritten digits, 1797 images as ``(1, 8, 8)``, pixel values divided
    by 16 to lie in [0, 1]; 10 classes. Split: stratified 80/20 (1437 train / 360 test) by
    ``sklearn.model_selection.train_test_split(random_state=0, stratify=y)``.
``mnist1d``
    MNIST-1D generated offline by ``mnist1d.data.make_dataset`` with the package's default
    arguments (5000 signals, package seed 42): 4000 train / 1000 test length-40 signals as
    ``(1, 40)``; 10 classes. Option ``n_samples=5000`` generates another number (the deep
    double-descent notebook of the MNIST-1D repository uses 8000 with ``test_fraction = 0.5``:
    4000 / 4000). Split: the package's own (first 80 % train, last 20 % test of its
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
``digits_parity``
    ``digits`` (the same images and split) with two tasks, ``digit`` (10 classes) and
    ``parity`` (2): multitask data, loaded by :mod:`goodfit.data.multitask`.
``poly``
    Noisy polynomial regression ``y = p(x) + noise * eps``, ``x ~ U(-1, 1)``, ``eps ~ N(0, 1)``,
    for under/over-fitting demonstrations. ``p`` has random ``N(0, 1)`` coefficients of the
    given ``degree`` (or explicit ``coefficients``, constant term first), rescaled so that
    ``p(x)`` has unit standard deviation over [-1, 1] (so ``noise`` is a noise-to-signal ratio;
    explicit coefficients are used as given). Options ``n_samples=200``, ``degree=3``,
    ``noise=0.2``, ``coefficients=None``. Split: 50/50 (100 / 100), so the test error is a
    good estimate of the generalization error. ``Dataset.info`` holds the coefficients.
    Targets are not standardized.

Every loader depends only on the data seed (default: the dataset's own documented seed), never
on the training run's seed. :func:`load_builtin` returns :class:`~goodfit.data.raw.RawData`;
:func:`goodfit.data.load_dataset` is the entry point.
"""

from __future__ import annotations

import dataclasses
import os
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from goodfit.checks import check_int, check_probability, check_real
from goodfit.data.multitask import load_multitask_raw
from goodfit.data.raw import RawData, Task, fixed_split

__all__ = ["DATASETS", "DatasetInfo", "cache_dir", "describe_datasets", "load_builtin"]

_MNIST1D_CACHE_VERSION = 1


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
            "the package's own: first 80% train / last 20% test (package seed 42)",
            {"n_samples": 5000}, 42,
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
        DatasetInfo(
            "digits_parity", "multitask", 1437, 360, (1, 8, 8), None, 12,  # type: ignore[arg-type]
            "scikit-learn digits, two tasks: the digit (10 classes) and its parity (2)",
            _SPLIT_8020 + " (the digits split)", {}, 0,
        ),
    ]
}  # fmt: skip

#: Test fraction of each built-in set's documented split.
DEFAULT_TEST_FRACTION = {name: 0.5 if name == "poly" else 0.2 for name in DATASETS}


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


def _sklearn_tabular(name: str, seed: int, test_fraction: float, options: dict) -> RawData:
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
    Xtr, ytr, Xte, yte = fixed_split(X, y, test_fraction, seed, True, name)
    classes = tuple(bunch.target_names.tolist())
    return RawData(
        Xtr, ytr, Xte, yte, "classification", len(classes), DATASETS[name].description,
        f"sklearn.datasets.load_{name}", feature_names, classes,
    )  # fmt: skip


def _mnist1d_arrays(seed: int, n_samples: int = 5000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ``n_samples`` generated signals ``x`` (float64), labels ``y`` and time grid ``t``,
    cached."""
    size = "" if n_samples == 5000 else f"_n{n_samples}"
    path = cache_dir() / f"mnist1d_v{_MNIST1D_CACHE_VERSION}_seed{seed}{size}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["x"], z["y"], z["t"]
    except (OSError, KeyError, ValueError, EOFError):
        pass  # absent or unreadable: regenerate
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    args.num_samples = n_samples
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


def _mnist1d(name: str, seed: int, test_fraction: float, options: dict) -> RawData:
    o = _take_options(name, options)
    x, y, t = _mnist1d_arrays(seed, check_int(f"{name}: n_samples", o["n_samples"], low=10))
    n_train = int(len(y) * (1.0 - test_fraction))
    X = x[:, None, :]
    return RawData(
        X[:n_train], y[:n_train], X[n_train:], y[n_train:], "classification", 10,
        DATASETS[name].description, "mnist1d.data.make_dataset (generated offline)",
        None, tuple(range(10)), {"t": t.tolist()},
    )  # fmt: skip


def _flip_labels(y: np.ndarray, fraction: float, num_classes: int, seed: int) -> np.ndarray:
    """Flip exactly ``round(fraction * N)`` labels, each to a uniformly drawn *other* class."""
    from goodfit.data.label_noise import flip_labels

    return flip_labels(y, fraction, num_classes, [seed, 1])[0]


def _moons_spirals(name: str, seed: int, test_fraction: float, options: dict) -> RawData:
    o = _take_options(name, options)
    n = check_int(f"{name}: n_samples", o["n_samples"], low=2)
    noise = check_real(f"{name}: noise", o["noise"], low=0.0)
    label_noise = check_probability(f"{name}: label_noise", o["label_noise"])
    if name == "moons":
        from sklearn.datasets import make_moons

        X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
        k = 2
    else:
        k = check_int(f"{name}: num_classes", o["num_classes"], low=2)
        turns = check_real(f"{name}: turns", o["turns"], low=0.0)
        rng = np.random.default_rng(seed)
        y = np.arange(n) % k
        r = np.sqrt(rng.uniform(0.0, 1.0, size=n))  # uniform density along the arms' area
        angle = 2 * np.pi * (turns * r + y / k)
        X = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        X = X + noise * rng.standard_normal(X.shape)
        perm = rng.permutation(n)
        X, y = X[perm], y[perm]
    y = np.asarray(y, dtype=np.int64)
    Xtr, ytr, Xte, yte = fixed_split(X, y, test_fraction, seed, True, name)
    if label_noise > 0:
        ytr = _flip_labels(ytr, label_noise, k, seed)
    info = {key: o[key] for key in o}
    return RawData(
        Xtr, ytr, Xte, yte, "classification", k, DATASETS[name].description,
        f"synthetic (seed {seed})", ("x1", "x2"), tuple(range(k)), info,
    )  # fmt: skip


def _poly(name: str, seed: int, test_fraction: float, options: dict) -> RawData:
    o = _take_options(name, options)
    n = check_int(f"{name}: n_samples", o["n_samples"], low=2)
    noise = check_real(f"{name}: noise", o["noise"], low=0.0)
    rng = np.random.default_rng(seed)
    if o["coefficients"] is not None:
        coef = np.asarray(o["coefficients"], dtype=np.float64).ravel()
        if coef.size == 0 or not np.isfinite(coef).all():
            raise ValueError(f"poly: coefficients must be finite numbers, got {o['coefficients']}")
    else:
        degree = check_int(f"{name}: degree", o["degree"], low=0)
        coef = rng.standard_normal(degree + 1)
        grid = np.linspace(-1.0, 1.0, 2001)
        scale = np.polynomial.polynomial.polyval(grid, coef).std()
        coef = coef / (scale if scale > 0 else 1.0)
    x = rng.uniform(-1.0, 1.0, size=(n, 1))
    y = np.polynomial.polynomial.polyval(x, coef) + noise * rng.standard_normal((n, 1))
    Xtr, ytr, Xte, yte = fixed_split(x, y, test_fraction, seed, False, name)
    info = {"coefficients": coef.tolist(), "noise": noise, "degree": len(coef) - 1}
    return RawData(
        Xtr, ytr, Xte, yte, "regression", None, DATASETS[name].description,
        f"synthetic (seed {seed})", ("x",), None, info,
    )  # fmt: skip


_LOADERS: dict[str, Callable[[str, int, float, dict], RawData]] = {
    "digits": _sklearn_tabular,
    "breast_cancer": _sklearn_tabular,
    "wine": _sklearn_tabular,
    "mnist1d": _mnist1d,
    "moons": _moons_spirals,
    "spirals": _moons_spirals,
    "poly": _poly,
    "digits_parity": lambda name, seed, tf, options: load_multitask_raw(name, seed, tf, options),
}


def load_builtin(
    name: str, seed: int | None, test_fraction: float | None, options: dict[str, Any]
) -> RawData:
    """Generate or load the built-in set ``name`` (a key of :data:`DATASETS`) and split it.

    ``seed`` None means the set's documented seed (``DATASETS[name].default_seed``) and
    ``test_fraction`` None its documented fraction; ``options`` are the set's own
    (``DATASETS[name].options``: unknown ones raise ``TypeError``, bad values ``ValueError``).
    """
    seed_ = DATASETS[name].default_seed if seed is None else seed
    tf = DEFAULT_TEST_FRACTION[name] if test_fraction is None else test_fraction
    return _LOADERS[name](name, seed_, tf, options)
