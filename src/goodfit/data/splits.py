"""Validation splits for model selection: holdout, k-fold, stratified k-fold, repeated random
subsampling, leave-p-out and leave-one-out (seed 000 §1.2.2 "Cross-Validation"), repeated
(stratified) k-fold and the 5x2 cross-validation of Dietterich (1998).

Every splitter is a thin front over :mod:`sklearn.model_selection` (not a rewrite) and returns a
list of ``(train_idx, val_idx)`` pairs of ``int64`` index arrays into the *training* data. The test
set is held out by the dataset itself and is never part of these splits.

Example
-------
>>> from goodfit.data.splits import make_splits
>>> folds = make_splits("kfold", 100, seed=0, k=5)
>>> len(folds), len(folds[0][1])
(5, 20)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import model_selection as ms

from goodfit.checks import check_int, check_real

__all__ = [
    "DEFAULT_MAX_FITS",
    "SMALL_DATA_THRESHOLD",
    "SPLITTERS",
    "five_by_two",
    "holdout",
    "kfold",
    "leave_one_out",
    "leave_p_out",
    "make_splits",
    "n_splits",
    "repeated_kfold",
    "repeated_random",
    "repeated_stratified_kfold",
    "stratified_kfold",
]

Split = tuple[np.ndarray, np.ndarray]

#: Below this many samples :func:`holdout` switches from seed 000's 70/30 split to 50/50
#: ("For small dataset validation part can be set as 50% of data", seed 000 §1.2.2). With 200
#: samples a 30% validation part holds 60 samples, whose accuracy has a standard error of up to
#: sqrt(0.25 / 60) ~ 6.5 points; below that the validation estimate is too noisy to be worth the
#: training data it leaves unused, so both halves get the same size.
SMALL_DATA_THRESHOLD = 200

#: Default limit on the number of fits leave-p-out / leave-one-out may ask for.
DEFAULT_MAX_FITS = 1000


def _check_n(n_samples: int) -> int:
    return check_int("n_samples", n_samples, low=2)


def _check_fraction(name: str, value: float) -> float:
    return check_real(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


def _check_int(name: str, value: int, low: int, high: int | None = None, why: str = "") -> int:
    """:func:`goodfit.checks.check_int`, with ``why`` explaining the upper bound."""
    try:
        return check_int(name, value, low=low, high=high)
    except ValueError as err:
        raise ValueError(f"{err}{why}") from None


def _labels(y: Any, n: int, kind: str) -> np.ndarray:
    if y is None:
        raise ValueError(f"{kind} needs the class labels y (stratification), got y=None")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be a 1-D array of length n_samples={n}, got shape {y.shape}")
    return y


def _run(splitter: Any, n: int, y: np.ndarray | None = None) -> list[Split]:
    dummy = np.zeros((n, 1), dtype=np.int8)  # sklearn only needs len(X)
    return [
        (tr.astype(np.int64, copy=False), va.astype(np.int64, copy=False))
        for tr, va in splitter.split(dummy, y)
    ]


def holdout(
    n_samples: int,
    y: Any = None,
    *,
    seed: int = 0,
    val_fraction: float | None = None,
    stratify: bool = False,
    small_data_threshold: int = SMALL_DATA_THRESHOLD,
) -> list[Split]:
    """Holdout method: one random train/validation split (seed 000 §1.2.2, "Holdout Method").

    "Traditional splitting is 30% for validation ... and 70% for train. For small dataset
    validation part can be set as 50% of data." With ``val_fraction=None`` the fraction is 0.3,
    or 0.5 when ``n_samples < small_data_threshold`` (default :data:`SMALL_DATA_THRESHOLD`).
    ``stratify=True`` keeps the class ratios of ``y`` in both parts (``StratifiedShuffleSplit``),
    which addresses the note's "low applicability for imbalanced data".

    Returns a list with one ``(train_idx, val_idx)`` pair.
    """
    n = _check_n(n_samples)
    _check_int("small_data_threshold", small_data_threshold, 0)
    if val_fraction is None:
        val_fraction = 0.5 if n < small_data_threshold else 0.3
    frac = _check_fraction("val_fraction", val_fraction)
    return _shuffle_split(n, y, seed=seed, n_repeats=1, val_fraction=frac, stratify=stratify)


def kfold(
    n_samples: int, y: Any = None, *, seed: int = 0, k: int = 10, shuffle: bool = True
) -> list[Split]:
    """K-fold cross-validation (seed 000 §1.2.2, "K-fold Cross Validation"; "Traditional choose
    is k = 10").

    Splits the data into ``k`` near-equal folds; each fold is the validation part once and the
    other ``k - 1`` folds are the training part (``sklearn.model_selection.KFold``). The samples
    are shuffled with ``seed`` first (``shuffle=True``) because datasets often come sorted by class.
    """
    n = _check_n(n_samples)
    k = _check_int("k", k, 2, n, why=f" (at most n_samples={n})")
    splitter = ms.KFold(n_splits=k, shuffle=shuffle, random_state=seed if shuffle else None)
    return _run(splitter, n)


def stratified_kfold(
    n_samples: int, y: Any = None, *, seed: int = 0, k: int = 10, shuffle: bool = True
) -> list[Split]:
    """Stratified ("balanced") k-fold (seed 000 §1.2.2, "Balanced K-fold (Stratified k-fold)":
    "First split data on the classes, than, select k-folds, such that for all folds data will be
    evenly distributed").

    Uses ``sklearn.model_selection.StratifiedKFold``: every fold holds each class's share of the
    samples to within one sample. Needs the labels ``y``.
    """
    n = _check_n(n_samples)
    y = _labels(y, n, "stratified_kfold")
    k = _check_int("k", k, 2, n, why=f" (at most n_samples={n})")
    _check_classes(y, k)
    splitter = ms.StratifiedKFold(
        n_splits=k, shuffle=shuffle, random_state=seed if shuffle else None
    )
    return _run(splitter, n, y)


def _check_classes(y: np.ndarray, k: int) -> None:
    _, counts = np.unique(y, return_counts=True)
    if counts.max() < k:
        raise ValueError(
            f"k={k} is larger than the number of samples of every class "
            f"(largest class has {counts.max()}); use a smaller k"
        )


def repeated_kfold(
    n_samples: int, y: Any = None, *, seed: int = 0, k: int = 10, repeats: int = 10
) -> list[Split]:
    """Repeated k-fold: ``repeats`` k-fold splits, each with a fresh shuffle
    (``sklearn.model_selection.RepeatedKFold``), ``k · repeats`` fits in all, repetition by
    repetition. More repeats buy a less noisy mean (not more independent data: the corrected
    t-test of :mod:`goodfit.select.stats` accounts for the overlap). The default ``10 x 10`` is
    the design Bouckaert & Frank (2004, *Evaluating the replicability of significance tests for
    comparing learning algorithms*) recommend with the corrected test.
    """
    n = _check_n(n_samples)
    k = _check_int("k", k, 2, n, why=f" (at most n_samples={n})")
    repeats = _check_int("repeats", repeats, 1)
    return _run(ms.RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=seed), n)


def repeated_stratified_kfold(
    n_samples: int, y: Any = None, *, seed: int = 0, k: int = 10, repeats: int = 10
) -> list[Split]:
    """Repeated stratified k-fold: :func:`repeated_kfold` with every fold keeping the class
    ratios of ``y`` (``sklearn.model_selection.RepeatedStratifiedKFold``). Needs the labels."""
    n = _check_n(n_samples)
    y = _labels(y, n, "repeated_stratified_kfold")
    k = _check_int("k", k, 2, n, why=f" (at most n_samples={n})")
    repeats = _check_int("repeats", repeats, 1)
    _check_classes(y, k)
    splitter = ms.RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    return _run(splitter, n, y)


def five_by_two(n_samples: int, y: Any = None, *, seed: int = 0) -> list[Split]:
    """5x2 cross-validation (Dietterich 1998, *Approximate statistical tests for comparing
    supervised classification learning algorithms*): five repetitions of a 2-fold split, each
    half the training part once and the validation part once; 10 fits.

    Repetition ``i`` (``i = 0..4``) is ``StratifiedKFold(2, shuffle=True, random_state=seed + i)``
    when the labels ``y`` are given (classification), ``KFold(2, ...)`` the same way when
    ``y`` is None (regression). The splits come repetition by repetition, fold 1 then fold 2 —
    the order :func:`goodfit.select.stats.paired_ttest_5x2cv` and
    :func:`~goodfit.select.stats.combined_ftest_5x2cv` expect.
    """
    n = _check_n(n_samples)
    if n < 4:
        raise ValueError(f"5x2 needs n_samples >= 4 (two folds of two), got {n}")
    labels = None if y is None else _labels(y, n, "5x2")
    if labels is not None:
        _check_classes(labels, 2)
    splits: list[Split] = []
    for i in range(5):
        cls = ms.KFold if labels is None else ms.StratifiedKFold
        splits += _run(cls(n_splits=2, shuffle=True, random_state=seed + i), n, labels)
    return splits


def _shuffle_split(
    n: int, y: Any, *, seed: int, n_repeats: int, val_fraction: float, stratify: bool
) -> list[Split]:
    n_val = math.ceil(val_fraction * n)
    if n_val < 1 or n_val > n - 1:
        raise ValueError(
            f"val_fraction={val_fraction} leaves {n_val} of n_samples={n} for validation; "
            "both parts need at least one sample"
        )
    if stratify:
        labels = _labels(y, n, "stratify=True")
        splitter = ms.StratifiedShuffleSplit(
            n_splits=n_repeats, test_size=val_fraction, random_state=seed
        )
        return _run(splitter, n, labels)
    splitter = ms.ShuffleSplit(n_splits=n_repeats, test_size=val_fraction, random_state=seed)
    return _run(splitter, n)


def repeated_random(
    n_samples: int,
    y: Any = None,
    *,
    seed: int = 0,
    n_repeats: int = 10,
    val_fraction: float = 0.3,
    stratify: bool = False,
) -> list[Split]:
    """Repeated random subsampling ("Random K-fold", seed 000 §1.2.2): "Randomly divide the data
    into a test and training set k different times ... you can independently choose how large each
    test set is and how many trials you average over."

    ``n_repeats`` independent random splits with ``val_fraction`` of the samples for validation
    (``ShuffleSplit``; ``StratifiedShuffleSplit`` with ``stratify=True``). Validation parts of
    different repeats may overlap.
    """
    n = _check_n(n_samples)
    n_repeats = _check_int("n_repeats", n_repeats, 1)
    frac = _check_fraction("val_fraction", val_fraction)
    return _shuffle_split(
        n, y, seed=seed, n_repeats=n_repeats, val_fraction=frac, stratify=stratify
    )


def _guard(kind: str, n: int, p: int, max_fits: int) -> None:
    fits = math.comb(n, p)
    if fits > max_fits:
        raise ValueError(
            f"{kind} with n_samples={n}, p={p} needs comb({n}, {p}) = {fits:,} fits, more than "
            f"max_fits={max_fits:,}; use k-fold instead (kind='kfold', k=10) or raise max_fits"
        )


def leave_p_out(
    n_samples: int,
    y: Any = None,
    *,
    seed: int = 0,
    p: int = 1,
    max_fits: int = DEFAULT_MAX_FITS,
) -> list[Split]:
    """Leave-p-out cross-validation (seed 000 §1.2.2, "Leave-p-out cross validation (LpOCV)"):
    every subset of ``p`` samples is the validation part once (``sklearn LeavePOut``), so there are
    ``comb(n_samples, p)`` fits. The note's drawback, "exhaustively large computation time", is
    guarded: the count is computed first and a ``ValueError`` naming it is raised when it exceeds
    ``max_fits``. ``seed`` is accepted for a uniform signature; the splits are deterministic.
    """
    del seed
    n = _check_n(n_samples)
    p = _check_int("p", p, 1, n - 1, why=f" (at most n_samples - 1 = {n - 1})")
    max_fits = _check_int("max_fits", max_fits, 1)
    _guard("leave_p_out", n, p, max_fits)
    return _run(ms.LeavePOut(p), n)


def leave_one_out(
    n_samples: int, y: Any = None, *, seed: int = 0, max_fits: int = DEFAULT_MAX_FITS
) -> list[Split]:
    """Leave-one-out (LOO, seed 000 §1.2.2): leave-p-out with ``p = 1``; ``n_samples`` fits whose
    mean validation error is the LOO cross-validation error (LOO-XVE). Guarded by ``max_fits`` like
    :func:`leave_p_out`.
    """
    del seed
    n = _check_n(n_samples)
    max_fits = _check_int("max_fits", max_fits, 1)
    _guard("leave_one_out", n, 1, max_fits)
    return _run(ms.LeaveOneOut(), n)


#: Registry NAME -> splitter ``f(n_samples, y=None, *, seed, **params)``.
SPLITTERS: dict[str, Callable[..., list[Split]]] = {
    "holdout": holdout,
    "kfold": kfold,
    "stratified_kfold": stratified_kfold,
    "repeated_random": repeated_random,
    "leave_p_out": leave_p_out,
    "leave_one_out": leave_one_out,
    "repeated_kfold": repeated_kfold,
    "repeated_stratified_kfold": repeated_stratified_kfold,
    "5x2": five_by_two,
}


def make_splits(
    kind: str, n_samples: int, y: Any = None, *, seed: int = 0, **params: Any
) -> list[Split]:
    """Build the validation splits named ``kind`` (a key of :data:`SPLITTERS`).

    Returns a list of ``(train_idx, val_idx)`` int64 arrays over ``range(n_samples)``; within a
    pair the two parts are disjoint and together cover every sample (for holdout and repeated
    random subsampling each pair covers all samples; the k-fold kinds' validation parts also
    partition the data). Unknown ``params`` raise ``TypeError``, bad values ``ValueError``.
    """
    try:
        splitter = SPLITTERS[kind]
    except KeyError:
        raise ValueError(f"splits kind must be one of {sorted(SPLITTERS)}, got {kind!r}") from None
    return splitter(n_samples, y, seed=seed, **params)


def n_splits(kind: str, n_samples: int, **params: Any) -> int:
    """Number of fits ``make_splits(kind, n_samples, **params)`` would return, without building
    them (for progress bars and up-front checks before any training). Raises like
    :func:`make_splits`: ``TypeError`` for an unknown parameter, ``ValueError`` for a bad value,
    including the leave-p-out guard. (Labels are not needed: class counts are not checked.)"""
    if kind not in SPLITTERS:
        raise ValueError(f"splits kind must be one of {sorted(SPLITTERS)}, got {kind!r}")
    try:
        inspect.signature(SPLITTERS[kind]).bind(n_samples, None, **params)
    except TypeError as err:
        raise TypeError(f"splits kind {kind!r}: {err}") from None
    n = _check_n(n_samples)
    if "val_fraction" in params and params["val_fraction"] is not None:
        _check_fraction("val_fraction", params["val_fraction"])
    if kind in ("kfold", "stratified_kfold"):
        return _check_int("k", params.get("k", 10), 2, n, why=f" (at most n_samples={n})")
    if kind in ("repeated_kfold", "repeated_stratified_kfold"):
        k = _check_int("k", params.get("k", 10), 2, n, why=f" (at most n_samples={n})")
        return k * _check_int("repeats", params.get("repeats", 10), 1)
    if kind == "5x2":
        if n < 4:
            raise ValueError(f"5x2 needs n_samples >= 4 (two folds of two), got {n}")
        return 10
    if kind == "holdout":
        _check_int("small_data_threshold", params.get("small_data_threshold", 0), 0)
        return 1
    if kind == "repeated_random":
        return _check_int("n_repeats", params.get("n_repeats", 10), 1)
    p = 1 if kind == "leave_one_out" else params.get("p", 1)
    p = _check_int("p", p, 1, n - 1, why=f" (at most n_samples - 1 = {n - 1})")
    max_fits = _check_int("max_fits", params.get("max_fits", DEFAULT_MAX_FITS), 1)
    _guard(kind, n, p, max_fits)
    return math.comb(n, p)
