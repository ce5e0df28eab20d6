"""From ``[multitask]``, ``[model] heads`` and multitask data to a run's parts: the multi-head
model (with the learned task weights of an uncertainty weighting), the loss, the per-task
metrics callback, and the per-task figures of the summary and of a study's scores.

A dataset is multitask when :mod:`goodfit.data.multitask` loaded it (``task = "multitask"``,
``info["tasks"]``). Task names in ``multitask.weights`` and ``model.heads`` must be the data's.
Per-task metric names: ``<part>_<task>_loss`` and, for a classification task,
``<part>_<task>_accuracy`` (``part`` = ``val``, ``train``, ``test``); ``val_loss`` is the
weighted sum.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from goodfit.app.config import Config
from goodfit.errors import ConfigError

__all__ = [
    "build_multitask_model",
    "eval_loss",
    "metric_names",
    "multitask_callback",
    "multitask_loss",
    "summary_metrics",
    "task_scores",
    "tasks_of",
]


def tasks_of(ds: Any) -> list[dict[str, Any]] | None:
    """The data's task specs, ``None`` for single-target data."""
    return list(ds.info["tasks"]) if getattr(ds, "task", None) == "multitask" else None


def metric_names(ds: Any, parts: tuple[str, ...] = ("val", "train", "test")) -> list[str]:
    """Every per-task metric name of ``ds`` (empty for single-target data)."""
    out = []
    for t in tasks_of(ds) or []:
        kinds = ("loss", "accuracy") if t["kind"] == "classification" else ("loss",)
        out += [f"{p}_{t['name']}_{k}" for p in parts for k in kinds]
    return out


def _check(cfg: Config, ds: Any) -> list[dict[str, Any]] | None:
    tasks = tasks_of(ds)
    names = [t["name"] for t in tasks or []]
    mt = cfg.multitask
    if tasks is None:
        if mt is not None or cfg.model.heads:
            raise ConfigError(
                f"[multitask] and model.heads need data with several targets; {ds.name!r} has "
                "one (a .npz with y_<task> arrays, a .csv with label = [...], or digits_parity)"
            )
        return None
    for key, given in (
        ("multitask.weights", mt.weights if mt else {}),
        ("model.heads", cfg.model.heads),
    ):
        for name in given:
            if name not in names:
                raise ConfigError(
                    f"{key}: {name!r} is not a task of {ds.name!r}; its tasks: {', '.join(names)}"
                )
    if (
        cfg.curriculum is not None
        and cfg.curriculum.scoring != "given"
        and cfg.curriculum.order != "random"
    ):
        raise ConfigError(
            "[curriculum] with multitask data: per-sample losses are single-task; use "
            "curriculum.scoring = 'given' or order = 'random'"
        )
    return tasks


def build_multitask_model(cfg: Config, model: nn.Module, ds: Any) -> nn.Module:
    """The builder's model with its last layer split into one head per task (and, with
    ``weighting = "uncertainty"``, a ``task_uncertainty`` submodule holding ``log sigma^2``);
    ``model`` itself for single-target data."""
    tasks = _check(cfg, ds)
    if tasks is None:
        return model
    from goodfit.nn.models import _activation
    from goodfit.nn.multihead import multihead
    from goodfit.train.multitask import TaskUncertainty

    widths = {t["name"]: t["width"] for t in tasks}
    try:
        out = multihead(model, widths, cfg.model.heads, lambda: _activation(cfg.model.activation))
    except ValueError as err:
        raise ConfigError(f"[model] heads: {err}") from None
    if cfg.multitask is not None and cfg.multitask.weighting == "uncertainty":
        out.task_uncertainty = TaskUncertainty(len(tasks))
    return out


def _weights(cfg: Config, tasks: list[dict[str, Any]]) -> list[float]:
    given = cfg.multitask.weights if cfg.multitask is not None else {}
    return [given.get(t["name"], 1.0) for t in tasks]


def multitask_loss(cfg: Config, model: nn.Module, ds: Any) -> Any:
    """The training loss (``None`` for single-target data)."""
    tasks = tasks_of(ds)
    if tasks is None:
        return None
    from goodfit.train.multitask import MultiTaskLoss

    return MultiTaskLoss(tasks, _weights(cfg, tasks), getattr(model, "task_uncertainty", None))


def eval_loss(cfg: Config, ds: Any) -> Any:
    """The evaluation loss ``sum_t w_t L_t`` (``None`` for single-target data)."""
    tasks = tasks_of(ds)
    if tasks is None:
        return None
    from goodfit.train.multitask import MultiTaskLoss

    return MultiTaskLoss(tasks, _weights(cfg, tasks))


def multitask_callback(model: nn.Module, ds: Any, val: tuple[Tensor, Tensor] | None) -> Any:
    """The per-task validation metrics callback (``None`` for single-target data)."""
    tasks = tasks_of(ds)
    if tasks is None:
        return None
    from goodfit.train.multitask import MultiTaskMetrics

    return MultiTaskMetrics(tasks, val, getattr(model, "task_uncertainty", None))


def task_scores(model: nn.Module, X: Tensor, y: Tensor, ds: Any, prefix: str) -> dict[str, float]:
    """Per-task metrics of ``model`` on ``(X, y)`` (empty for single-target data)."""
    tasks = tasks_of(ds)
    if tasks is None:
        return {}
    from goodfit.train.multitask import task_metrics

    return task_metrics(model, X, y, tasks, prefix)


def summary_metrics(
    records: list[dict[str, Any]], best_epoch: int | None, ds: Any
) -> dict[str, Any]:
    """``final_`` and ``best_`` per-task validation metrics from the history."""
    names = metric_names(ds, ("val",))
    out: dict[str, Any] = {}
    if not records or not names:
        return out
    best = next((r for r in records if r.get("epoch") == best_epoch), None)
    for name in names:
        if name in records[-1]:
            out[f"final_{name}"] = records[-1][name]
        if best is not None and name in best:
            out[f"best_{name}"] = best[name]
    return out
