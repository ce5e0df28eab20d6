"""One study fold's record: its scores on every part, its history and stop facts, and how it is
written into its run folder (``summary.json`` last: it marks the run done)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from goodfit.app.config import Config
from goodfit.atomic import atomic_write_text
from goodfit.train.history import History, json_safe

__all__ = ["fold_record", "one_network", "write_fold"]


def write_fold(run_dir: Path, fold_result: dict[str, Any]) -> None:
    """A finished run's ``history.jsonl``, then its ``summary.json`` (last: it marks the run
    done, with the study config's hash)."""
    History(fold_result["history"]).to_jsonl(run_dir / "history.jsonl")
    atomic_write_text(run_dir / "summary.json", json.dumps(json_safe(fold_result)) + "\n")


def fold_record(
    cfg: Config,
    model: Any,
    dataset: Any,
    prepared: Any,
    held_out: Any,
    fold: int,
    split: tuple[Any, Any],
    result: Any,
    config_hash: str,
) -> dict[str, Any]:
    """A fold's result: scores on the training part, the held-out part (``val_``), the test set
    and the early-stopping part (``es_val_``) — per task for multitask data, robust accuracy
    with ``[adversarial]``, class metrics for classification, ensemble numbers — the history and
    the stop facts."""
    from goodfit.app import multitask as mt
    from goodfit.app.strategies import robust_scores
    from goodfit.train.loop import evaluate

    task, loss = dataset.task, mt.eval_loss(cfg, dataset)
    cm = task == "classification"
    scores = {
        **evaluate(
            model, *prepared.train, task=task, loss_fn=loss, prefix="train_", class_metrics=cm
        ),
        **evaluate(model, *held_out, task=task, loss_fn=loss, prefix="val_", class_metrics=cm),
        **mt.task_scores(model, *prepared.train, dataset, "train_"),
        **mt.task_scores(model, *held_out, dataset, "val_"),
        **{
            k: v
            for k, v in result.summary.items()
            if k.startswith("test_") and isinstance(v, float)
        },
    }
    if prepared.val is not None:
        scores.update(evaluate(model, *prepared.val, task=task, loss_fn=loss, prefix="es_val_"))
    scores.update(robust_scores(cfg, model, *held_out, prepared, "val_"))
    ensemble = model.ensemble_metrics(*held_out) if hasattr(model, "ensemble_metrics") else None
    if ensemble is not None:  # the ensemble's own scores are the val_ ones above
        scores["val_diversity"] = ensemble["diversity"]
        for key in ("member_loss", "member_accuracy"):
            if key in ensemble:
                scores[f"val_{key}"] = sum(ensemble[key]) / len(ensemble[key])
    fold_result: dict[str, Any] = {
        "fold": fold,
        "config_hash": config_hash,
        "n_train": len(split[0]),
        "n_test": len(split[1]),
        "scores": scores,
        "history": result.records,
        "best_epoch": result.summary.get("best_epoch"),
        "epochs_run": result.summary.get("epochs_run"),
        "stop_reason": result.summary.get("stop_reason"),
        "wall_seconds": result.summary.get("wall_seconds"),
    }
    if cm:  # the held-out part's confusion matrix, for the report's picture
        from goodfit.train.class_metrics import class_report, predict_classes

        report = class_report(held_out[1], predict_classes(model, held_out[0]), dataset.num_classes)
        fold_result["confusion_matrix"] = report["confusion_matrix"]
    if ensemble is not None:
        fold_result["ensemble"] = ensemble
    return fold_result


def one_network(cfg: Config) -> bool:
    """True unless ``[ensemble]`` trains several networks (per-run diagnoses need one)."""
    return cfg.ensemble is None or cfg.ensemble.method in ("snapshot", "swa", "ema")
