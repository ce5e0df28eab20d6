"""User data files (``.npz``, ``.csv``): reading, validation, task inference and the fixed split.

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

import csv
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from goodfit.checks import check_int
from goodfit.data.raw import RawData, Task, fixed_split
from goodfit.errors import DataError

__all__ = ["load_file"]

_TASKS = ("classification", "regression")
_FILE_OPTIONS = {".npz": ("task", "num_classes"), ".csv": ("task", "num_classes", "label",
                                                           "delimiter")}  # fmt: skip


def _check_X(X: np.ndarray, where: str, key: str) -> np.ndarray:
    if X.dtype == object or X.dtype.kind in "USVO":
        raise DataError(f"{where}: {key} must be numeric, got dtype {X.dtype}")
    if X.dtype.kind == "c":
        raise DataError(f"{where}: {key} must be real, got complex dtype {X.dtype}")
    if X.ndim == 0:
        raise DataError(f"{where}: {key} must have a sample axis, got a scalar")
    if X.shape[0] == 0:
        raise DataError(f"{where}: {key} is empty (0 samples)")
    if X.ndim == 1:
        X = X[:, None]
    if X.size == 0:
        raise DataError(f"{where}: {key} has no features (shape {X.shape})")
    X = X.astype(np.float64)
    _refuse_non_finite(X, where, key, "non-finite value(s) (NaN/Inf)")
    return X


def _refuse_non_finite(a: np.ndarray, where: str, key: str, what: str) -> None:
    """A :class:`DataError` counting the NaN/Inf entries of ``a`` and naming the first sample."""
    bad = ~np.isfinite(a)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(a), -1).any(axis=1))[0, 0])
        raise DataError(f"{where}: {key} contains {int(bad.sum())} {what}, first in sample {first}")


def _check_y(y: np.ndarray, where: str, key: str) -> np.ndarray:
    if y.dtype == object:
        raise DataError(f"{where}: {key} has dtype object; use numbers or strings")
    if y.ndim == 0:
        raise DataError(f"{where}: {key} must have a sample axis, got a scalar")
    if y.shape[0] == 0:
        raise DataError(f"{where}: {key} is empty (0 samples)")
    if y.dtype.kind in "fc":
        _refuse_non_finite(y, where, key, "NaN/Inf label(s)")
    elif y.dtype.kind not in "biuUS":
        raise DataError(f"{where}: {key} has unsupported dtype {y.dtype}")
    return y


def _is_integral(y: np.ndarray) -> bool:
    if y.dtype.kind in "biu":
        return True
    return y.dtype.kind == "f" and bool(np.all(y == np.round(y)))


def _infer_task(y_all: np.ndarray, n: int) -> Task:
    if y_all.ndim > 1 and y_all.shape[1] != 1:
        return "regression"
    flat = y_all.reshape(len(y_all))
    if flat.dtype.kind in "US":
        return "classification"
    if _is_integral(flat) and len(np.unique(flat)) <= min(50, max(2, n // 2)):
        return "classification"
    return "regression"


def _finish_user(
    where: str,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray | None,
    y_test: np.ndarray | None,
    names: tuple[str, str],
    seed: int,
    test_fraction: float,
    task: str | None,
    num_classes: Any,
    feature_names: tuple[str, ...] | None,
) -> RawData:
    """Checked arrays of a user file -> :class:`RawData`: the task (given or inferred), class
    codes or float targets, and the fixed split when the file has no test part."""
    xk, yk = names
    X, y, X_test, y_test = _check_arrays(where, X, y, X_test, y_test, xk, yk)
    y_all = y if y_test is None else np.concatenate([y, y_test])
    if task is None:
        task = _infer_task(y_all, len(y_all))
    elif task not in _TASKS:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    classes: tuple[Any, ...] | None = None
    k: int | None = None
    if task == "classification":
        codes, classes = _class_codes(where, y_all, y.shape, yk, num_classes)
        k = len(classes)
        y, y_test = codes[: len(y)], (None if y_test is None else codes[len(y) :])
    else:
        if y_all.dtype.kind in "US":
            raise DataError(f"{where}: regression targets {yk} must be numbers, got strings")
        y = y.astype(np.float64).reshape(len(y), -1)
        if y_test is not None:
            y_test = y_test.astype(np.float64).reshape(len(y_test), -1)
    if X_test is None or y_test is None:
        X, y, X_test, y_test = fixed_split(
            X, y, test_fraction, seed, task == "classification", where
        )
    return RawData(
        X, y, X_test, y_test, task, k, f"user data from {where}", where, feature_names,  # type: ignore[arg-type]
        classes,
    )  # fmt: skip


def _check_arrays(
    where: str,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray | None,
    y_test: np.ndarray | None,
    xk: str,
    yk: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Each array checked (:func:`_check_X`, :func:`_check_y`), lengths matched, and a test
    part shaped and typed like the training part."""
    X = _check_X(X, where, xk)
    y = _check_y(y, where, yk)
    if len(X) != len(y):
        raise DataError(f"{where}: {xk} has {len(X)} samples but {yk} has {len(y)}")
    if X_test is None or y_test is None:
        return X, y, X_test, y_test
    X_test = _check_X(X_test, where, xk + "_test")
    y_test = _check_y(y_test, where, yk + "_test")
    if len(X_test) != len(y_test):
        raise DataError(
            f"{where}: {xk}_test has {len(X_test)} samples but {yk}_test has {len(y_test)}"
        )
    if X_test.shape[1:] != X.shape[1:]:
        raise DataError(
            f"{where}: {xk}_test has per-sample shape {X_test.shape[1:]} but {xk} has {X.shape[1:]}"
        )
    if (y_test.ndim > 1) != (y.ndim > 1) or y_test.shape[1:] != y.shape[1:]:
        raise DataError(
            f"{where}: {yk}_test has per-sample shape {y_test.shape[1:]} but {yk} has {y.shape[1:]}"
        )
    if (y_test.dtype.kind in "US") != (y.dtype.kind in "US"):
        raise DataError(f"{where}: {yk} and {yk}_test must both be strings or both numbers")
    return X, y, X_test, y_test


def _class_codes(
    where: str, y_all: np.ndarray, y_shape: tuple[int, ...], yk: str, num_classes: Any
) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Classification labels -> int64 codes ``0..K-1`` and the original value of each code:
    as given with ``num_classes`` (integers in ``[0, K)``), else the sorted distinct labels."""
    if y_all.ndim > 1 and not (y_all.ndim == 2 and y_all.shape[1] == 1):
        raise DataError(
            f"{where}: classification labels {yk} must be one per sample, got shape {y_shape}"
        )
    y_all = y_all.reshape(len(y_all))
    if y_all.dtype.kind not in "US" and not _is_integral(y_all):
        bad = int(np.argwhere(y_all != np.round(y_all))[0, 0])
        raise DataError(
            f"{where}: classification labels must be integers, but {yk} has "
            f"{y_all[bad].item()!r} (sample {bad}); use task='regression' for real targets"
        )
    if num_classes is not None:
        return _given_class_codes(where, y_all, yk, num_classes)
    uniq, codes = np.unique(y_all, return_inverse=True)
    if len(uniq) < 2:
        raise DataError(
            f"{where}: classification needs at least 2 classes, {yk} has only {uniq.tolist()}"
        )
    classes = tuple(u.item() if hasattr(u, "item") else u for u in uniq)
    return codes.reshape(-1).astype(np.int64), classes


def _given_class_codes(
    where: str, y_all: np.ndarray, yk: str, num_classes: Any
) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Integer labels kept as codes, checked to lie in ``[0, num_classes)``."""
    k = check_int(f"{where}: num_classes", num_classes, low=2)
    if y_all.dtype.kind in "US":
        raise DataError(f"{where}: num_classes={k} needs integer labels, got strings")
    lo, hi = y_all.min(), y_all.max()
    if lo < 0 or hi >= k:
        v = (lo if lo < 0 else hi).item()
        raise DataError(
            f"{where}: label {v!r} in {yk} is out of range for num_classes={k} (allowed 0..{k - 1})"
        )
    return y_all.astype(np.int64).reshape(-1), tuple(range(k))


def _load_npz(path: Path, seed: int, test_fraction: float, options: dict) -> RawData:
    where = str(path)
    if not zipfile.is_zipfile(path):
        raise DataError(f"{where}: not a readable .npz file (not a zip archive of arrays)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise DataError(f"{where}: cannot read arrays without pickle ({exc})") from None
    except Exception as exc:
        raise DataError(f"{where}: not a readable .npz file ({exc})") from None
    found = ", ".join(arrays) or "none"
    for key in ("X", "y"):
        if key not in arrays:
            raise DataError(f"{where}: missing array {key!r} (found: {found}); need X and y")
    if ("X_test" in arrays) != ("y_test" in arrays):
        have, miss = ("X_test", "y_test") if "X_test" in arrays else ("y_test", "X_test")
        raise DataError(f"{where}: has {have!r} but no {miss!r}; give both or neither")
    return _finish_user(
        where, arrays["X"], arrays["y"], arrays.get("X_test"), arrays.get("y_test"),
        ("X", "y"), seed, test_fraction, options.get("task"), options.get("num_classes"), None,
    )  # fmt: skip


def _load_csv(path: Path, seed: int, test_fraction: float, options: dict) -> RawData:
    where = str(path)
    delimiter = options.get("delimiter", ",")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh, delimiter=delimiter) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{where}: cannot read CSV ({exc})") from None
    if not rows:
        raise DataError(f"{where}: empty file (need a header row and data rows)")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"{where}: no data rows after the header")
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise DataError(
                f"{where}: row {i + 2} has {len(r)} fields but the header has {len(header)}"
            )
    label = options.get("label")
    if label is None:
        label = "label" if "label" in header else header[-1]
    if label not in header:
        raise DataError(
            f"{where}: no label column {label!r} (columns: {', '.join(header)}); "
            "set the option label = '<column>'"
        )
    if len(header) < 2:
        raise DataError(f"{where}: needs at least one feature column besides {label!r}")
    j = header.index(label)
    cells = np.array(body, dtype=str)
    feat_cols = [c for c in range(len(header)) if c != j]
    feats = np.char.strip(cells[:, feat_cols])
    X = np.empty(feats.shape, dtype=np.float64)
    for c in range(feats.shape[1]):
        col = feats[:, c]
        col = np.where(col == "", "nan", col)
        try:
            X[:, c] = col.astype(np.float64)
        except ValueError:
            for i, v in enumerate(col):
                try:
                    float(v)
                except ValueError:
                    raise DataError(
                        f"{where}: column {header[feat_cols[c]]!r} row {i + 2}: "
                        f"{str(v)!r} is not a number"
                    ) from None
            raise  # pragma: no cover
    y_str = np.char.strip(cells[:, j])
    if (y_str == "").any():
        first = int(np.argwhere(y_str == "")[0, 0])
        raise DataError(f"{where}: label column {label!r} is empty in row {first + 2}")
    try:
        y: np.ndarray = y_str.astype(np.float64)
        if _is_integral(y) and np.isfinite(y).all():
            y = y.astype(np.int64)
    except ValueError:
        y = y_str
    return _finish_user(
        where, X, y, None, None, ("features", f"label column {label!r}"), seed, test_fraction,
        options.get("task"), options.get("num_classes"),
        tuple(header[c] for c in feat_cols),
    )  # fmt: skip


def load_file(
    key: str, seed: int | None, test_fraction: float | None, options: dict[str, Any]
) -> RawData:
    """Read the user data file ``key`` (a ``.npz`` or ``.csv`` path, ``~`` expanded) and split
    it as described above (data seed default 0, test fraction default 0.2).

    ``options``: ``task`` and ``num_classes``, for ``.csv`` also ``label`` and ``delimiter``;
    others raise ``TypeError``. A wrong suffix, a missing file or malformed data raise
    :class:`goodfit.errors.DataError`.
    """
    path = Path(key).expanduser()
    suffix = path.suffix.lower()
    if suffix not in _FILE_OPTIONS:
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
    loader = _load_npz if suffix == ".npz" else _load_csv
    seed_ = 0 if seed is None else seed
    return loader(path, seed_, 0.2 if test_fraction is None else test_fraction, options)
