"""``goodfit clean CONFIG.toml``: suspect labels by out-of-fold confident learning.

1. Out-of-fold probabilities: the config's model is trained ``clean.k`` times (stratified
   k-fold over the training part, each fold's training part prepared as a study fold is:
   validation holdout, standardization fitted on it), and every training sample is scored by
   the model that did not see it (softmax of its outputs).
2. :func:`goodfit.select.confident_learning.confident_learning` (Northcutt, Jiang & Chuang 2021)
   flags the samples whose given label is likely wrong, most suspect first.

The output folder gets ``clean.json`` (the thresholds, confident joint, calibrated joint,
per-class out-of-fold error and the suspects), ``clean.csv`` (``index`` into the dataset's
training array, ``given`` and ``suggested`` labels, ``score`` = the self-confidence
``p̂(given; x)``, lower is more suspect) and ``clean.html`` (thumbnails or traces of the top
suspects, per-class difficulty). ``--write-npz PATH`` writes the training data without the
suspects (and the test set unchanged) as a ``.npz`` that ``data.name`` reads.

``clean.exclude = true`` with ``clean.suspects = "…/clean.json"`` drops those samples from the
part a run trains on (:func:`excluded_pool`), in ``goodfit train`` and in every study fold. In a
study, the suspects were found with every training label, the held-out folds' included, so the
"cleaned" variant's held-out score is not fully independent of the cleaning: compare on the
test set (``test_*``) for an untouched estimate.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goodfit.app.config import Config
from goodfit.app.sections_clean import CleanConfig
from goodfit.errors import ConfigError

__all__ = ["excluded_pool", "find_suspects", "out_of_fold_probabilities", "run_clean"]


def out_of_fold_probabilities(
    cfg: Config, dataset: Any, k: int, *, verbose: bool = True
) -> np.ndarray:
    """``(n_train, K)`` class probabilities, each row from the model of the fold that held that
    sample out (stratified ``k``-fold, seeded by ``train.seed``)."""
    from goodfit.app.build import prepare_from_config
    from goodfit.app.run import run_config
    from goodfit.data.splits import make_splits

    if dataset.task != "classification":
        raise ConfigError(
            "goodfit clean finds suspect class labels: it needs a classification dataset"
        )
    y = dataset.y_train.numpy()
    try:
        splits = make_splits("stratified_kfold", dataset.n_train, y, seed=cfg.train.seed, k=k)
    except ValueError as err:
        raise ConfigError(f"clean.k = {k}: {err}") from None
    cfg = cfg.model_copy(deep=True)
    cfg.checkpoint.enabled = False
    cfg.clean = None  # the suspects are searched among all the given labels
    probs = np.full((dataset.n_train, dataset.num_classes), np.nan)
    for fold, (train_idx, held_idx) in enumerate(splits):
        prepared = prepare_from_config(cfg, dataset, seed=cfg.train.seed + fold, pool=train_idx)
        result = run_config(cfg, None, data=prepared, progress=False, write_plots=False)
        X_held, _ = prepared.rows(held_idx)
        model = result.model.eval()
        with torch.no_grad():
            first = next(model.parameters())
            out = torch.cat([model(X_held[i : i + 2048].to(first.device)).cpu()
                             for i in range(0, len(X_held), 2048)])  # fmt: skip
        probs[held_idx] = torch.softmax(out.double(), dim=1).numpy()
        if verbose:
            acc = float(np.mean(probs[held_idx].argmax(1) == y[held_idx]))
            print(f"clean: fold {fold + 1}/{k}: held-out accuracy {acc:.4f}", file=sys.stderr)
    return probs


def _label(dataset: Any, code: int) -> Any:
    c = dataset.classes[code] if dataset.classes is not None else code
    return c.item() if hasattr(c, "item") else c


def find_suspects(cfg: Config, dataset: Any, k: int, *, verbose: bool = True) -> dict[str, Any]:
    """Out-of-fold confident learning on the training part: the JSON-ready result (with the
    suspects, most suspect first) and the out-of-fold probabilities (key ``"probs"``)."""
    from goodfit.select.confident_learning import confident_learning

    probs = out_of_fold_probabilities(cfg, dataset, k, verbose=verbose)
    y = dataset.y_train.numpy()
    cl = confident_learning(y, probs)
    pred = probs.argmax(axis=1)
    support = np.bincount(y, minlength=dataset.num_classes)
    wrong = np.bincount(y[pred != y], minlength=dataset.num_classes)
    suspects = [
        {
            "index": int(i),
            "given": _label(dataset, int(y[i])),
            "suggested": _label(dataset, int(cl.suggested[i])),
            "score": float(cl.self_confidence[i]),
        }
        for i in cl.issues
    ]
    return {
        "dataset": dataset.name,
        "n_train": dataset.n_train,
        "k": k,
        "classes": [_label(dataset, j) for j in range(dataset.num_classes)],
        **cl.to_dict(),
        "per_class_error": (wrong / np.maximum(support, 1)).tolist(),
        "out_of_fold_accuracy": float(np.mean(pred == y)),
        "suspects": suspects,
        "probs": probs,
    }


def _csv(suspects: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "given", "suggested", "score"])
    for s in suspects:
        w.writerow([s["index"], s["given"], s["suggested"], repr(s["score"])])
    return buf.getvalue()


def write_cleaned_npz(dataset: Any, drop: list[int], path: str | Path) -> Path:
    """The training data without the rows ``drop`` (and the test set as it is) as a ``.npz``
    (``X``, ``y``, ``X_test``, ``y_test``; the original labels; raw, not standardized)."""
    from goodfit.atomic import atomic_write

    keep = np.setdiff1d(np.arange(dataset.n_train), np.asarray(drop, dtype=np.int64))
    labels = np.asarray([_label(dataset, j) for j in range(dataset.num_classes)])
    arrays = {
        "X": dataset.X_train.numpy()[keep],
        "y": labels[dataset.y_train.numpy()[keep]],
        "X_test": dataset.X_test.numpy(),
        "y_test": labels[dataset.y_test.numpy()],
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write(Path(path), lambda handle: handle.write(buf.getvalue()))


def run_clean(
    cfg: Config, out: str | Path, *, write_npz: str | Path | None = None, force: bool = False
) -> dict[str, Any]:
    """``goodfit clean``: find the suspects of ``cfg``'s training data and write ``out``
    (see the module docstring); returns the result (without the probabilities)."""
    from goodfit.app.build import check_buildable, load_dataset_from_config, prepare_from_config
    from goodfit.app.run_folder import claim_run_folder
    from goodfit.atomic import atomic_write, atomic_write_text
    from goodfit.report.clean_report import write_clean_report
    from goodfit.train.history import json_safe

    spec = cfg.clean if cfg.clean is not None else CleanConfig()
    dataset = load_dataset_from_config(cfg.data)
    plain = cfg.model_copy(update={"clean": None})
    check_buildable(plain, prepare_from_config(plain, dataset))
    out = Path(out)
    with claim_run_folder(out, kind="clean", force=force):
        result = find_suspects(plain, dataset, spec.k)
        probs = result.pop("probs")
        atomic_write_text(out / "clean.json", json.dumps(json_safe(result), indent=1) + "\n")
        atomic_write_text(out / "clean.csv", _csv(result["suspects"]))
        atomic_write(out / "out_of_fold_probs.npy", lambda handle: np.save(handle, probs))
        top = [s["index"] for s in result["suspects"][: spec.top]]
        write_clean_report(result, dataset.X_train[top].numpy(), out / "clean.html")
        if write_npz is not None:
            write_cleaned_npz(dataset, [s["index"] for s in result["suspects"]], write_npz)
            result["cleaned_npz"] = str(write_npz)
    return result


def excluded_pool(cfg: Config, dataset: Any, pool: Any) -> Any:
    """``pool`` (training-array rows; ``None``: all) without the suspects of
    ``clean.suspects`` when ``clean.exclude`` is set; unchanged otherwise."""
    spec = cfg.clean
    if spec is None or not spec.exclude:
        return pool
    if spec.suspects is None:
        raise ConfigError(
            "clean.exclude = true needs clean.suspects = the clean.json of `goodfit clean` "
            "on this config's data"
        )
    path = Path(spec.suspects).expanduser()
    try:
        found = json.loads(path.read_text())
        drop = [int(s["index"]) for s in found["suspects"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"clean.suspects = {spec.suspects!r}: not a readable clean.json ({err})"
        ) from None
    if found.get("n_train") != dataset.n_train:
        raise ConfigError(
            f"clean.suspects = {spec.suspects!r} was found on {found.get('n_train')} training "
            f"samples but this dataset has {dataset.n_train}; run `goodfit clean` on this data"
        )
    rows = torch.arange(dataset.n_train) if pool is None else torch.as_tensor(pool)
    keep = ~torch.isin(rows, torch.as_tensor(drop, dtype=rows.dtype))
    return rows[keep]
