"""``goodfit predict RUN_DIR DATA``: the run's model, with the run's own preprocessing, on new data.

A run folder keeps what predicting needs: ``config.toml`` (the model's architecture, the image
size and colour of an image folder), ``model.pt`` (the final weights, loaded with
``torch.load(weights_only=True)``) and ``preprocess.pt`` (the standardization fitted on the part
the model trained on, the task, the input shape and the original class labels; written by
``goodfit train``). The same preprocessing is applied here and baked into an export
(:mod:`goodfit.app.export`), so a prediction never depends on statistics of the new data.

``DATA`` is a ``.npz`` (array ``X``; ``y`` optional), a ``.csv`` (one header row; a label column,
named like the run's ``data.label`` or ``label`` or being the one extra column, is optional) or an
image folder (class subfolders, or images directly inside). The output CSV has one row per
sample: ``index``, the predicted ``class`` and one ``prob_<class>`` column per class (or
``value``/``value_<j>`` for regression), and ``label`` when the data have labels.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from goodfit.errors import CheckpointError, DataError

__all__ = [
    "PREPROCESS_NAME",
    "LoadedRun",
    "load_run",
    "predict_arrays",
    "read_predict_data",
    "run_predict",
    "save_preprocessing",
]

PREPROCESS_NAME = "preprocess.pt"


def save_preprocessing(prepared: Any, out: Path) -> Path:
    """Write ``preprocess.pt``: the fitted standardization (``mean``/``std``, or none), the
    task, the input shape, the output width and the original class labels of the run."""
    from goodfit.data.standardize import Standardizer
    from goodfit.train.checkpoint import save_checkpoint

    ds = prepared.dataset
    t = prepared.transform
    classes = None
    if ds.task == "classification":
        raw = ds.classes if ds.classes is not None else range(ds.num_classes)
        classes = [c.item() if hasattr(c, "item") else c for c in raw]
    state = {
        "format": 1,
        "task": ds.task,
        "input_shape": list(ds.input_shape),
        "num_outputs": int(ds.num_outputs),
        "classes": classes,
        "mean": t.mean if isinstance(t, Standardizer) else None,
        "std": t.std if isinstance(t, Standardizer) else None,
    }
    return save_checkpoint(state, out, PREPROCESS_NAME)


@dataclasses.dataclass
class LoadedRun:
    """A trained run ready to predict: its config, the model in eval mode and the
    preprocessing (``mean``/``std`` broadcastable to a batch, or ``None``)."""

    config: Any
    model: nn.Module
    task: str
    input_shape: tuple[int, ...]
    classes: list[Any] | None
    mean: torch.Tensor | None
    std: torch.Tensor | None

    def preprocess(self, X: torch.Tensor) -> torch.Tensor:
        """The run's standardization, ``(X - mean) / std`` in float32 (identity without one)."""
        X = torch.as_tensor(X, dtype=torch.float32)
        if self.mean is None:
            return X
        return ((X - self.mean) / self.std).to(torch.float32)


def load_run(run_dir: str | Path) -> LoadedRun:
    """The model of a finished ``goodfit train`` run folder, rebuilt from its ``config.toml``
    and loaded with ``weights_only=True``, with the run's preprocessing."""
    from goodfit.app.build import build_model
    from goodfit.app.config import load_config
    from goodfit.train.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    for name in ("config.toml", "model.pt", PREPROCESS_NAME):
        if not (run_dir / name).is_file():
            raise CheckpointError(
                f"{run_dir}: no {name} there; give the folder of a finished `goodfit train` run"
            )
    cfg = load_config(run_dir / "config.toml")
    pre = load_checkpoint(run_dir / PREPROCESS_NAME)
    shape = tuple(int(s) for s in pre["input_shape"])
    model = build_model(cfg.model, shape, int(pre["num_outputs"]))
    try:
        model.load_state_dict(load_checkpoint(run_dir / "model.pt"))
    except RuntimeError as err:
        raise CheckpointError(
            f"{run_dir / 'model.pt'} does not fit the model of its config.toml ({err})"
        ) from None
    model.eval()
    return LoadedRun(cfg, model, pre["task"], shape, pre["classes"], pre["mean"], pre["std"])


# -- reading the data to predict -------------------------------------------------------------


def read_predict_data(path: str | Path, run: LoadedRun) -> tuple[np.ndarray, list[Any] | None]:
    """``(X, labels)`` of a ``.npz``, ``.csv`` or image folder, ``X`` shaped like the run's
    inputs; ``labels`` (original label values) or ``None`` when the data carry none."""
    path = Path(path).expanduser()
    if path.is_dir():
        from goodfit.data.images import read_images_for_prediction

        X, labels = read_images_for_prediction(path, run.input_shape)
    elif not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    elif path.suffix.lower() == ".npz":
        X, labels = _read_npz(path)
    elif path.suffix.lower() == ".csv":
        X, labels = _read_csv(path, run)
    else:
        raise DataError(f"{path}: expected a .npz, a .csv or an image folder")
    n_features = int(np.prod(run.input_shape))
    if X.size != len(X) * n_features:
        raise DataError(
            f"{path}: samples have shape {X.shape[1:]} but the run's model takes "
            f"{run.input_shape} ({n_features} values)"
        )
    return X.reshape(len(X), *run.input_shape), labels


def _read_npz(path: Path) -> tuple[np.ndarray, list[Any] | None]:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "X" not in f.files:
                raise DataError(f"{path}: no array 'X' (arrays: {', '.join(f.files)})")
            X = np.asarray(f["X"], dtype=np.float64)
            y = f["y"] if "y" in f.files else None
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    if len(X) == 0:
        raise DataError(f"{path}: X is empty (0 samples)")
    labels = None if y is None else [v.item() for v in np.asarray(y).reshape(len(y), -1)[:, 0]]
    return X, labels


def _read_csv(path: Path, run: LoadedRun) -> tuple[np.ndarray, list[Any] | None]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one sample")
    header, body = rows[0], rows[1:]
    n_features = int(np.prod(run.input_shape))
    label_col = None
    if len(header) == n_features + 1:
        name = run.config.data.label or ("label" if "label" in header else header[-1])
        if name not in header:
            raise DataError(f"{path}: no label column {name!r}")
        label_col = header.index(name)
    cols = [i for i in range(len(header)) if i != label_col]
    try:
        X = np.array([[float(r[i]) for i in cols] for r in body], dtype=np.float64)
    except (ValueError, IndexError) as err:
        raise DataError(f"{path}: a feature is not a number ({err})") from None
    labels = [_number_or_text(r[label_col]) for r in body] if label_col is not None else None
    return X, labels


def _number_or_text(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value


# -- predicting --------------------------------------------------------------------------------


@torch.no_grad()
def predict_arrays(run: LoadedRun, X: np.ndarray | torch.Tensor, batch_size: int = 2048) -> Any:
    """The model's outputs on raw inputs ``X`` (the run's preprocessing applied first): class
    probabilities (softmax) for classification, the predicted values for regression."""
    X = run.preprocess(torch.as_tensor(np.asarray(X), dtype=torch.float32))
    outs = [run.model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    out = torch.cat(outs) if outs else torch.empty(0)
    return torch.softmax(out, dim=1) if run.task == "classification" else out


def _label_codes(run: LoadedRun, labels: list[Any]) -> np.ndarray:
    """Original labels -> class indices (by the run's class labels, compared as text)."""
    names = {str(c): k for k, c in enumerate(run.classes or [])}
    unknown = sorted({str(v) for v in labels} - set(names))
    if unknown:
        raise DataError(
            f"labels {unknown[:5]} are not classes of the run; its classes: {sorted(names)}"
        )
    return np.array([names[str(v)] for v in labels])


def run_predict(
    run_dir: str | Path, data: str | Path, out: str | Path | None = None
) -> dict[str, Any]:
    """Predict with the run at ``run_dir`` on ``data`` and write the CSV (default
    ``predictions.csv``); returns ``{"path", "n", "accuracy" (with labels)}``."""
    from goodfit.atomic import atomic_write_text

    run = load_run(run_dir)
    X, labels = read_predict_data(data, run)
    pred = predict_arrays(run, X).numpy()
    buf = io.StringIO()
    writer = csv.writer(buf)
    result: dict[str, Any] = {"n": len(X)}
    if run.task == "classification":
        classes = list(run.classes or [])
        writer.writerow(["index", "class", *(f"prob_{c}" for c in classes)]
                        + (["label"] if labels is not None else []))  # fmt: skip
        best = pred.argmax(axis=1)
        for i, row in enumerate(pred):
            extra = [labels[i]] if labels is not None else []
            writer.writerow([i, classes[best[i]], *(repr(float(p)) for p in row), *extra])
        if labels is not None:
            result["accuracy"] = float(np.mean(best == _label_codes(run, labels)))
    else:
        cols = ["value"] if pred.shape[1] == 1 else [f"value_{j}" for j in range(pred.shape[1])]
        writer.writerow(["index", *cols] + (["label"] if labels is not None else []))
        for i, row in enumerate(pred):
            extra = [labels[i]] if labels is not None else []
            writer.writerow([i, *(repr(float(v)) for v in row), *extra])
    path = Path(out) if out is not None else Path("predictions.csv")
    atomic_write_text(path, buf.getvalue())
    result["path"] = str(path)
    return result


def describe(result: dict[str, Any]) -> str:
    """One line for the command: how many predictions, where, and the accuracy if known."""
    text = f"{result['n']} predictions -> {result['path']}"
    if "accuracy" in result:
        text += f" (accuracy {result['accuracy']:.4f} on the given labels)"
    return text
