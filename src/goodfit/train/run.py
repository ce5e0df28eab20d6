"""Run one config end to end (what ``goodfit train`` does): build, fit, evaluate, write outputs.

The run folder receives ``config.toml`` (the resolved config), ``history.jsonl`` (one line per
epoch), ``summary.json`` (final and best metrics, test metrics, ``best_epoch``,
``wall_seconds``), ``checkpoints/last.pt`` and, with a schedule, ``lr.png``. Files are written
atomically, and a folder that already holds a run is never overwritten unless resumed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from goodfit.atomic import atomic_write_text
from goodfit.build import (
    build_augment,
    build_callbacks,
    build_model,
    build_optimizer,
    build_penalty,
    build_schedule,
    check_buildable,
    prepare_data,
)
from goodfit.config import Config, config_to_toml
from goodfit.errors import ConfigError
from goodfit.train.history import History, json_safe
from goodfit.train.loop import evaluate, fit, seed_everything

__all__ = ["RunResult", "run_config", "summarize_history"]


@dataclasses.dataclass
class RunResult:
    """What :func:`run_config` returns: the summary (as written to ``summary.json``), the trained
    model and its history records."""

    summary: dict[str, Any]
    model: torch.nn.Module
    records: list[dict[str, Any]]


def summarize_history(records: list[dict[str, Any]], best_epoch: int | None) -> dict[str, Any]:
    """``final_*`` metrics from the last epoch and ``best_*`` from the best epoch (early
    stopping's, else the epoch of lowest validation loss)."""
    out: dict[str, Any] = {}
    if not records:
        return out
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "penalty")
    for key in keys:
        if key in records[-1]:
            out[f"final_{key}"] = records[-1][key]
    if best_epoch is None:
        with_val = [r for r in records if isinstance(r.get("val_loss"), float)]
        best_epoch = min(with_val, key=lambda r: r["val_loss"])["epoch"] if with_val else None
    if best_epoch:
        best = next((r for r in records if r["epoch"] == best_epoch), None)
        if best is not None:
            out["best_epoch"] = best_epoch
            for key in keys:
                if key in best:
                    out[f"best_{key}"] = best[key]
    return out


def _prepare_out_dir(out_dir: Path, resume: bool, create: bool = True) -> None:
    if resume:
        if not (out_dir / "checkpoints" / "last.pt").exists():
            raise ConfigError(
                f"--resume {out_dir}: no checkpoint there (expected {out_dir}/checkpoints/last.pt)"
            )
        return
    if out_dir.exists() and any(
        (out_dir / name).exists() for name in ("summary.json", "checkpoints", "history.jsonl")
    ):
        raise ConfigError(
            f"output folder {out_dir} already holds a run; continue it with --resume {out_dir} "
            "or choose another --out"
        )
    if create:
        out_dir.mkdir(parents=True, exist_ok=True)


def run_config(
    cfg: Config,
    out_dir: str | Path | None,
    *,
    resume: bool = False,
    progress: Any = None,
    data: Any = None,
    write_plots: bool = True,
    extra_callbacks: list[Any] | None = None,
) -> RunResult:
    """Train the configured model and write the run folder; returns a :class:`RunResult`.

    ``out_dir=None`` trains without writing anything (used by studies for in-memory runs).
    ``data`` may be a prepared :class:`goodfit.build.PreparedData` (e.g. a CV fold).
    """
    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        _prepare_out_dir(out, resume, create=False)
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.device != "cpu":  # CPU kernels are deterministic already
        torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
    seed = cfg.train.seed
    seed_everything(seed)
    prepared = data if data is not None else prepare_data(cfg.data, seed)
    ds = prepared.dataset
    if out is not None:  # bad config values fail here, before the run folder is written
        check_buildable(cfg, ds, prepared.val is not None)
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            atomic_write_text(out / "config.toml", config_to_toml(cfg.to_dict()))
    seed_everything(seed)
    model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
    n_train = len(prepared.train[0])
    steps_per_epoch = max(1, math.ceil(n_train / cfg.train.batch_size))

    from goodfit import optim as gf_optim

    second_order = getattr(gf_optim, "SECOND_ORDER", {})
    if cfg.optimizer.name in second_order:
        summary, records = _run_second_order(cfg, model, prepared, out)
    else:
        es = cfg.early_stopping
        algorithm = es.algorithm if es is not None and es.enabled else "7.1"
        if algorithm == "7.1":
            fit_summary, records = _run_fit(
                cfg, model, prepared, out, resume, progress, extra_callbacks, steps_per_epoch
            )
        else:
            model, fit_summary, records = _run_meta(
                cfg, algorithm, prepared, progress, extra_callbacks, steps_per_epoch
            )
        summary = {
            **summarize_history(records, fit_summary.get("best_epoch")),
            **{k: v for k, v in fit_summary.items() if k != "wall_seconds"},
        }
        if out is not None:
            History(records).to_jsonl(out / "history.jsonl")
            schedule = build_schedule(cfg, steps_per_epoch)
            if schedule is not None and write_plots:
                from goodfit.schedules import plot_schedule

                per_step = cfg.schedule.interval == "step"
                plot_schedule(
                    schedule,
                    cfg.train.epochs * (steps_per_epoch if per_step else 1),
                    path=out / "lr.png",
                    xlabel="step" if per_step else "epoch",
                )
        summary["train_seconds"] = fit_summary.get("wall_seconds")
    test = evaluate(model, *prepared.test, task=ds.task, prefix="test_")
    summary.update(test)
    summary["n_parameters"] = sum(p.numel() for p in model.parameters())
    summary["dataset"] = ds.name
    summary["wall_seconds"] = time.perf_counter() - t0
    if out is not None:
        _save_model(model, out / "model.pt")
        atomic_write_text(out / "summary.json", json.dumps(json_safe(summary), indent=2) + "\n")
    return RunResult(summary, model, records)


def _save_model(model: torch.nn.Module, path: Path) -> None:
    """The final (early-stopping-restored) weights, loadable with ``weights_only=True``."""
    from goodfit.train.checkpoint import save_checkpoint

    save_checkpoint(model.state_dict(), path.parent, path.name)


def _run_fit(
    cfg: Config,
    model: Any,
    prepared: Any,
    out: Path | None,
    resume: bool,
    progress: Any,
    extra_callbacks: list[Any] | None,
    steps_per_epoch: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ds = prepared.dataset
    optimizer = build_optimizer(cfg.optimizer, model)
    callbacks = build_callbacks(cfg, model, steps_per_epoch, prepared.val is not None, task=ds.task)
    callbacks += extra_callbacks or []
    history = fit(
        model,
        prepared.train,
        prepared.val,
        optimizer=optimizer,
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        task=ds.task,
        penalty=build_penalty(cfg, model, len(prepared.train[0])),
        augment=build_augment(cfg, ds.input_shape, ds.num_classes),
        callbacks=callbacks,
        seed=cfg.train.seed,
        val_every=cfg.train.val_every,
        progress=progress,
        checkpoint_dir=(out / "checkpoints")
        if out is not None and cfg.checkpoint.enabled
        else None,
        checkpoint_every=cfg.checkpoint.every,
        resume=resume,
        device=cfg.train.device,
    )
    return history.summary, history.records


def _run_meta(
    cfg: Config,
    algorithm: str,
    prepared: Any,
    progress: Any,
    extra_callbacks: list[Any] | None,
    steps_per_epoch: int,
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """GBC Algorithm 7.2 or 7.3 (``early_stopping.algorithm``); no mid-run checkpoints."""
    from goodfit.select.meta_early_stopping import algorithm_7_2, algorithm_7_3
    from goodfit.train.early_stopping import EarlyStopping

    ds = prepared.dataset
    if prepared.val is None:
        raise ConfigError(
            f"[early_stopping] algorithm = {algorithm!r} needs validation data: set "
            "data.val_fraction > 0"
        )
    n_train = len(prepared.train[0])

    def build() -> tuple[Any, Any, list[Any], Any]:
        model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
        optimizer = build_optimizer(cfg.optimizer, model)
        callbacks = [
            c
            for c in build_callbacks(cfg, model, steps_per_epoch, True, task=ds.task)
            if not isinstance(c, EarlyStopping)
        ]
        return (
            model,
            optimizer,
            callbacks + list(extra_callbacks or []),
            build_penalty(cfg, model, n_train),
        )

    es = cfg.early_stopping
    stopper = EarlyStopping(es.monitor, es.patience, es.min_delta, es.mode, es.restore_best)
    meta = algorithm_7_2 if algorithm == "7.2" else algorithm_7_3
    result = meta(
        build,
        prepared.train,
        prepared.val,
        early_stopping=stopper,
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        seed=cfg.train.seed,
        task=ds.task,
        augment=build_augment(cfg, ds.input_shape, ds.num_classes),
        progress=progress,
        device=cfg.train.device,
    )

    summary = {
        **result.first.summary,
        "algorithm": algorithm,
        "best_step": result.best_step,
        "eps": result.eps,
        "eps_reached": result.reached,
        "second_phase_epochs": len(result.second),
        "wall_seconds": result.first.summary.get("wall_seconds", 0.0)
        + result.second.summary.get("wall_seconds", 0.0),
    }
    return result.model, summary, result.records


def _run_second_order(
    cfg: Config, model: Any, prepared: Any, out: Path | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from goodfit import optim as gf_optim
    from goodfit.build import call_with_config

    if prepared.dataset.task != "regression":
        raise ConfigError(
            f"[optimizer] {cfg.optimizer.name!r} solves least-squares problems: it needs a "
            "regression dataset; use a first-order optimizer (e.g. adam) for classification"
        )
    X, y = prepared.train
    model.double()
    kwargs = cfg.optimizer.kwargs()
    result = call_with_config(
        "optimizer",
        gf_optim.fit_least_squares,
        model,
        X.double(),
        y.double(),
        method=cfg.optimizer.name,
        **kwargs,
    )
    model.float()
    # one record per solver iteration, "epoch" counting iterations; train_loss is the MSE
    records = [
        {"epoch": i + 1, "train_loss": float(r["train_loss"]), "solver_loss": float(r["loss"])}
        for i, r in enumerate(result.records)
    ]
    if prepared.val is not None:
        val = evaluate(model, *prepared.val, task="regression", prefix="val_")
        if records:
            records[-1].update(val)
    if out is not None:
        History(records).to_jsonl(out / "history.jsonl")
    summary = summarize_history(records, None)
    summary.update(
        converged=bool(result.converged),
        n_iter=int(result.n_iter),
        n_fev=int(result.n_fev),
        n_jev=int(result.n_jev),
        solver_message=result.message,
    )
    return summary, records
