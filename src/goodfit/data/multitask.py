"""Data with several targets, for multitask learning (seed 001, "Regularization – Others":
*Multitasking Learning: learn two or more tasks with a layer of shared parameters*).

Sources:

- ``.npz`` with ``X`` and one ``y_<task>`` array per task (and optionally ``X_test`` with every
  ``y_<task>_test``);
- ``.csv`` with the option ``label = ["col_a", "col_b", ...]``: each listed column a task, every
  other column a numeric feature;
- the built-in ``digits_parity``: scikit-learn's digits (the ``digits`` split) with two tasks,
  ``digit`` (10 classes) and ``parity`` (even / odd, 2 classes).

A task is classification (integer labels, remapped to ``0..K-1``, ``K`` its width) or
regression (any other numbers; width 1), inferred as for single-target files. The returned
:class:`goodfit.data.Dataset` has ``task = "multitask"``, ``y`` a float32 ``(N, T)`` array (one
column per task, class indices stored as floats), ``num_outputs`` the sum of the widths and
``info["tasks"]`` the list of ``{"name", "kind", "width"}``, in the file's order. Without a test
part, the fixed 80/20 split is stratified by the first classification task.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from goodfit.data.raw import RawData, fixed_split
from goodfit.errors import DataError

__all__ = ["BUILTIN_MULTITASK", "is_multitask", "load_multitask_raw"]

BUILTIN_MULTITASK = ("digits_parity",)


def is_multitask(key: str, options: dict[str, Any]) -> bool:
    """Whether ``load_dataset(key, **options)`` is multitask data."""
    if key in BUILTIN_MULTITASK:
        return True
    if isinstance(options.get("label"), list | tuple):
        return True
    path = Path(key).expanduser()
    if path.suffix.lower() == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return "y" not in f.files and any(k.startswith("y_") for k in f.files)
        except (OSError, ValueError):
            return False
    return False


def _task_of(name: str, y: np.ndarray, where: str) -> tuple[dict[str, Any], np.ndarray]:
    """The task's spec and its column (class codes or floats) over train + test."""
    if y.ndim != 1:
        raise DataError(f"{where}: task {name!r} must have one value per sample, got {y.shape}")
    if y.dtype.kind in "US":
        classes, codes = np.unique(y, return_inverse=True)
        return {"name": name, "kind": "classification", "width": len(classes)}, codes
    if y.dtype.kind not in "biuf":
        raise DataError(f"{where}: task {name!r} has unsupported dtype {y.dtype}")
    y = y.astype(np.float64)
    if not np.isfinite(y).all():
        raise DataError(f"{where}: task {name!r} holds NaN/Inf values")
    uniq = np.unique(y)
    if np.all(y == np.round(y)) and 2 <= len(uniq) <= min(50, max(2, len(y) // 2)):
        codes = np.searchsorted(uniq, y)
        return {"name": name, "kind": "classification", "width": len(uniq)}, codes
    return {"name": name, "kind": "regression", "width": 1}, y


def _assemble(
    where: str,
    X: np.ndarray,
    ys: dict[str, np.ndarray],
    X_test: np.ndarray | None,
    ys_test: dict[str, np.ndarray] | None,
    seed: int,
    test_fraction: float,
    description: str,
) -> RawData:
    X = np.asarray(X, dtype=np.float64)
    if not ys:
        raise DataError(f"{where}: no task targets found")
    for name, y in ys.items():
        if len(y) != len(X):
            raise DataError(f"{where}: X has {len(X)} samples but task {name!r} has {len(y)}")
    if not np.isfinite(X).all():
        raise DataError(f"{where}: X contains NaN/Inf values")
    n = len(X)
    tasks, cols = [], []
    for name, y in ys.items():
        full = y if ys_test is None else np.concatenate([y, ys_test[name]])
        spec, col = _task_of(name, full, where)
        tasks.append(spec)
        cols.append(col)
    Y = np.stack(cols, axis=1).astype(np.float64)
    if X_test is None:
        first = next((i for i, t in enumerate(tasks) if t["kind"] == "classification"), None)
        strat = first is not None
        key = Y[:, first] if strat else Y[:, 0]
        idx = np.arange(n)
        tr, _, te, _ = fixed_split(idx, key, test_fraction, seed, strat, where)
        Xtr, Ytr, Xte, Yte = X[tr], Y[tr], X[te], Y[te]
    else:
        Xtr, Ytr = X, Y[:n]
        Xte, Yte = np.asarray(X_test, dtype=np.float64), Y[n:]
    return RawData(
        Xtr, Ytr, Xte, Yte, "multitask", None, description, where,  # type: ignore[arg-type]
        info={"tasks": tasks},
    )  # fmt: skip


def _npz(path: Path, seed: int, test_fraction: float) -> RawData:
    where = str(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if "X" not in arrays:
        raise DataError(f"{where}: no array 'X' (arrays: {', '.join(arrays)})")
    names = [k[2:] for k in arrays if k.startswith("y_") and not k.endswith("_test")]
    ys = {name: arrays[f"y_{name}"] for name in names}
    ys_test = None
    if "X_test" in arrays:
        missing = [n for n in names if f"y_{n}_test" not in arrays]
        if missing:
            raise DataError(f"{where}: has X_test but no y_<task>_test for {missing}")
        ys_test = {name: arrays[f"y_{name}_test"] for name in names}
    desc = f"multitask user data from {where}"
    return _assemble(
        where, arrays["X"], ys, arrays.get("X_test"), ys_test, seed, test_fraction, desc
    )


def _csv(path: Path, labels: list[str], seed: int, test_fraction: float, delimiter: str) -> RawData:
    where = str(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh, delimiter=delimiter) if r]
    if len(rows) < 2:
        raise DataError(f"{where}: needs a header row and data rows")
    header = [h.strip() for h in rows[0]]
    missing = [name for name in labels if name not in header]
    if missing:
        raise DataError(f"{where}: no label column(s) {missing} (columns: {', '.join(header)})")
    cells = np.char.strip(np.array(rows[1:], dtype=str))
    feats = [i for i, h in enumerate(header) if h not in labels]
    try:
        X = cells[:, feats].astype(np.float64)
    except ValueError:
        raise DataError(f"{where}: every feature column must hold numbers") from None
    ys = {}
    for name in labels:
        col = cells[:, header.index(name)]
        try:
            ys[name] = col.astype(np.float64)
        except ValueError:
            ys[name] = col
    return _assemble(where, X, ys, None, None, seed, test_fraction, f"multitask CSV {where}")


def _digits_parity(seed: int, test_fraction: float) -> RawData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (np.asarray(bunch.data, dtype=np.float64) / 16.0).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    ys = {"digit": y, "parity": y % 2}
    idx = np.arange(len(y))
    tr, _, te, _ = fixed_split(idx, y, test_fraction, seed, True, "digits_parity")  # = digits'
    desc = "scikit-learn digits with two tasks: the digit (10 classes) and its parity (2)"
    return _assemble(
        "digits_parity", X[tr], {k: v[tr] for k, v in ys.items()}, X[te],
        {k: v[te] for k, v in ys.items()}, seed, test_fraction, desc,
    )  # fmt: skip


def load_multitask_raw(
    key: str, seed: int | None, test_fraction: float | None, options: dict[str, Any]
) -> RawData:
    """The :class:`RawData` of multitask data ``key`` (see the module docstring)."""
    options = dict(options)
    test_fraction = 0.2 if test_fraction is None else test_fraction
    seed_ = 0 if seed is None else seed
    if key == "digits_parity":
        if options:
            raise TypeError(f"dataset 'digits_parity' takes no options, got {sorted(options)}")
        return _digits_parity(seed_, test_fraction)
    path = Path(key).expanduser()
    if not path.is_file():
        raise DataError(f"data file not found: {key}")
    if path.suffix.lower() == ".csv":
        labels = options.pop("label", None)
        delimiter = options.pop("delimiter", ",")
        if options:
            raise TypeError(f"multitask .csv got unexpected option(s) {sorted(options)}")
        return _csv(path, list(labels or []), seed_, test_fraction, delimiter)
    if options:
        raise TypeError(f"multitask .npz got unexpected option(s) {sorted(options)}")
    return _npz(path, seed_, test_fraction)
