"""Run one config end to end (what ``goodfit train`` does): build, fit, evaluate, write outputs.

The run folder receives ``config.toml`` (the resolved config), ``history.jsonl`` (one line per
epoch), ``summary.json`` (final and best metrics, test metrics, ``best_epoch``,
``wall_seconds``), ``init.pt`` (the weights at initialization, for the loss along the line
init -> final, Goodfellow et al. 2015), ``model.pt``, ``checkpoints/last.pt``, with label noise
``label_noise.json`` (the training rows whose label was replaced, and both labels) and, with a
schedule, ``lr.png``. Files are written
atomically, and a folder that already holds a run is never overwritten unless resumed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from goodfit.app.build import (
    RunParts,
    build_augment,
    build_model,
    build_run,
    call_with_config,
    check_buildable,
    is_second_order,
    load_dataset_from_config,
    prepare_from_config,
)
from goodfit.app.config import Config, config_to_toml
from goodfit.atomic import atomic_write_text
from goodfit.errors import ConfigError, DivergenceError
from goodfit.train.checkpoint import CHECKPOINT_NAME
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


def _refuse_finished(out: Path, marker: dict[str, Any] | None, resume: bool) -> None:
    """A folder that holds a run is not started again without ``resume``."""
    started = (out / "checkpoints" / CHECKPOINT_NAME).exists() or (out / "summary.json").exists()
    if not resume and marker is not None and started:
        raise ConfigError(
            f"output folder {out} already holds a run; continue it with --resume {out} "
            "or choose another --out"
        )


def run_config(
    cfg: Config,
    out_dir: str | Path | None,
    *,
    resume: bool = False,
    force: bool = False,
    progress: Any = None,
    data: Any = None,
    write_plots: bool = True,
    extra_callbacks: list[Any] | None = None,
    parallel: Any = None,
) -> RunResult:
    """Train the configured model and write the run folder; returns a :class:`RunResult`.

    ``out_dir=None`` trains without writing anything (used by studies for in-memory runs).
    The folder is locked for the run's life; ``resume`` continues its checkpoint bit-for-bit
    (a folder killed before its first checkpoint restarts from scratch); ``force`` writes into a
    non-empty folder that is not goodfit's. ``data`` may be a
    :class:`goodfit.data.prepare.PreparedData` (e.g. a CV fold). ``parallel`` (a
    :class:`goodfit.train.distributed.DataParallel`, under torchrun) trains data-parallel; only
    rank 0 writes the folder.
    """
    if parallel is not None:
        _check_parallel(cfg)
        if not parallel.is_main:
            out_dir, progress = None, False
    if out_dir is None:
        return _run(cfg, None, False, progress, data, write_plots, extra_callbacks, parallel)
    from goodfit.app.run_folder import claim_run_folder

    seed_everything(cfg.train.seed)
    if data is None:
        data = prepare_from_config(cfg, load_dataset_from_config(cfg.data))
    check_buildable(cfg, data)  # a bad value fails here, before anything is written
    out = Path(out_dir)
    from goodfit.app.run_folder import clear_unstarted_run

    def refuse(marker: dict[str, Any] | None) -> None:
        _refuse_finished(out, marker, resume)

    with claim_run_folder(out, kind="train", resume=resume, force=force, check=refuse) as marker:
        started = (out / "checkpoints" / CHECKPOINT_NAME).exists()
        if marker is not None and not started:  # killed before its first checkpoint: restart
            clear_unstarted_run(out)
        run = (cfg, out, resume and started, progress, data, write_plots, extra_callbacks)
        return _run(*run, parallel)


def _run(
    cfg: Config,
    out: Path | None,
    resume: bool,
    progress: Any,
    data: Any,
    write_plots: bool,
    extra_callbacks: list[Any] | None,
    parallel: Any = None,
) -> RunResult:
    t0 = time.perf_counter()
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.device != "cpu":  # CPU kernels are deterministic already
        torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
    seed = cfg.train.seed
    seed_everything(seed)
    if data is None:
        data = prepare_from_config(cfg, load_dataset_from_config(cfg.data))
    prepared = data
    ds = prepared.dataset
    if out is not None:
        atomic_write_text(out / "config.toml", config_to_toml(cfg.to_dict()))
    seed_everything(seed)
    if out is not None and len(prepared.noisy):
        _save_label_noise(cfg, prepared, out / "label_noise.json")
    if is_second_order(cfg):
        model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
        _save_init(model, out, resume)
        summary, records = _run_second_order(cfg, model, prepared, out)
    else:
        model, summary, records = _run_first_order(
            cfg, prepared, out, resume, progress, extra_callbacks, write_plots, parallel
        )
    from goodfit.app import multitask as mt

    test = evaluate(
        model, *prepared.test, task=ds.task, loss_fn=mt.eval_loss(cfg, ds), prefix="test_"
    )
    summary.update(test)
    summary.update(mt.task_scores(model, *prepared.test, ds, "test_"))
    summary.update(mt.summary_metrics(records, summary.get("best_epoch"), ds))
    summary.update(_robust(cfg, model, prepared))
    if ds.task == "classification":  # balanced accuracy, macro-F1, recall, confusion matrix
        from goodfit.train.class_metrics import class_report, predict_classes

        X_test, y_test = prepared.test
        pred = predict_classes(model, X_test)
        summary.update(class_report(y_test, pred, ds.num_classes, prefix="test_"))
    if hasattr(model, "ensemble_metrics") and len(prepared.test[0]):
        summary["ensemble"]["test"] = model.ensemble_metrics(*prepared.test)
    summary["n_parameters"] = sum(p.numel() for p in model.parameters())
    summary["dataset"] = ds.name
    summary["wall_seconds"] = time.perf_counter() - t0
    if out is not None:
        _save_model(model, out / "model.pt")
        from goodfit.app.predict import save_preprocessing

        save_preprocessing(prepared, out)  # what `goodfit predict` / `export` apply
        atomic_write_text(out / "summary.json", json.dumps(json_safe(summary), indent=2) + "\n")
    return RunResult(summary, model, records)


def _robust(cfg: Config, model: torch.nn.Module, prepared: Any) -> dict[str, float]:
    """Robust accuracy (``[adversarial]``) on the validation part and the test set."""
    from goodfit.app.strategies import robust_scores

    out = robust_scores(cfg, model, *prepared.test, prepared, "test_")
    if prepared.val is not None:
        out.update(robust_scores(cfg, model, *prepared.val, prepared, "val_"))
    return out


def _run_first_order(
    cfg: Config,
    prepared: Any,
    out: Path | None,
    resume: bool,
    progress: Any,
    extra_callbacks: list[Any] | None,
    write_plots: bool,
    parallel: Any = None,
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """GBC Algorithm 7.1 (a plain fit with early stopping) or the meta-algorithms 7.2/7.3."""
    es = cfg.early_stopping
    algorithm = es.algorithm if es is not None and es.enabled else "7.1"
    if cfg.ensemble is not None:
        from goodfit.app.ensemble_run import run_ensemble

        parts = None
        model, fit_summary, records = run_ensemble(cfg, prepared, progress, extra_callbacks)
    elif algorithm == "7.1":
        parts = build_run(cfg, prepared)
        _save_init(parts.model, out, resume)
        fit_summary, records = _run_fit(
            cfg, parts, prepared, out, resume, progress, extra_callbacks, parallel
        )
        model = parts.model
    else:
        parts = None
        model, fit_summary, records = _run_meta(
            cfg, algorithm, prepared, progress, extra_callbacks, out
        )
    summary = {
        **summarize_history(records, fit_summary.get("best_epoch")),
        **{k: v for k, v in fit_summary.items() if k != "wall_seconds"},
    }
    if out is not None:
        History(records).to_jsonl(out / "history.jsonl")
        if parts is not None and parts.schedule is not None and write_plots:
            _plot_schedule(cfg, parts, out / "lr.png")
    summary["train_seconds"] = fit_summary.get("wall_seconds")
    return model, summary, records


def _plot_schedule(cfg: Config, parts: RunParts, path: Path) -> None:
    """The schedule that trained, over the whole run."""
    from goodfit.schedules import plot_schedule

    per_step = cfg.schedule.interval == "step"
    steps = cfg.train.epochs * (parts.steps_per_epoch if per_step else 1)
    plot_schedule(parts.schedule, steps, path=path, xlabel="step" if per_step else "epoch")


def _save_init(model: torch.nn.Module, out: Path | None, resume: bool) -> None:
    """``init.pt``: the weights before the first step (a resumed run keeps its own)."""
    if out is not None and not (resume and (out / "init.pt").exists()):
        _save_model(model, out / "init.pt")


def _save_label_noise(cfg: Config, prepared: Any, path: Path) -> None:
    """Which training rows got a replaced label (indices into the dataset's training array),
    with the clean and the noisy label of each, so later analyses can use them."""
    rows = prepared.noisy
    record = {
        "label_noise": cfg.data.label_noise,
        "n_train": len(prepared.train[1]),
        "indices": rows.tolist(),
        "clean_labels": prepared.dataset.y_train[rows].tolist(),
        "noisy_labels": prepared.noisy_labels.tolist(),
    }
    atomic_write_text(path, json.dumps(record) + "\n")


def _save_model(model: torch.nn.Module, path: Path) -> None:
    """The final (early-stopping-restored) weights, loadable with ``weights_only=True``."""
    from goodfit.train.checkpoint import save_checkpoint

    save_checkpoint(model.state_dict(), path.parent, path.name)


def _run_fit(
    cfg: Config,
    parts: RunParts,
    prepared: Any,
    out: Path | None,
    resume: bool,
    progress: Any,
    extra_callbacks: list[Any] | None,
    parallel: Any = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from goodfit.app.strategies import build_sampler

    ds = prepared.dataset
    # resumed: the sampler's scores come from the checkpoint, no reference model to train
    sampler = build_sampler(cfg, prepared, progress=progress, dry_run=resume) or parts.sampler
    history = fit(
        parts.model,
        prepared.train,
        prepared.val,
        optimizer=parts.optimizer,
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        task=ds.task,
        penalty=parts.penalty,
        augment=parts.augment,
        callbacks=parts.callbacks + list(extra_callbacks or []),
        seed=cfg.train.seed,
        val_every=cfg.train.val_every,
        progress=progress,
        checkpoint_dir=(out / "checkpoints")
        if out is not None and cfg.checkpoint.enabled
        else None,
        checkpoint_every=cfg.checkpoint.every,
        resume=resume,
        device=cfg.train.device if parallel is None else parallel.device,
        loss=parts.loss,
        sampler=sampler,
        parallel=parallel,
        class_metrics=ds.task == "classification",
    )
    return history.summary, history.records


def _check_parallel(cfg: Config) -> None:
    """What torchrun cannot train data-parallel: second-order solvers, GBC 7.2/7.3 and
    ensembles (their members train in one process, vectorized or in turn)."""
    es = cfg.early_stopping
    if cfg.ensemble is not None:
        raise ConfigError(
            f"[ensemble] method = {cfg.ensemble.method!r} cannot run data-parallel under "
            "torchrun; launch it without torchrun"
        )
    if is_second_order(cfg) or (es is not None and es.enabled and es.algorithm != "7.1"):
        what = (
            f"optimizer.name = {cfg.optimizer.name!r}"
            if is_second_order(cfg)
            else (f"early_stopping.algorithm = {es.algorithm!r}")
        )
        raise ConfigError(
            f"{what} cannot run data-parallel under torchrun; launch it without torchrun "
            '(first-order optimizers with early_stopping.algorithm = "7.1" can)'
        )


def _run_meta(
    cfg: Config,
    algorithm: str,
    prepared: Any,
    progress: Any,
    extra_callbacks: list[Any] | None,
    out: Path | None = None,
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

    def build() -> tuple[Any, Any, list[Any], Any]:
        parts = build_run(cfg, prepared, early_stopping=False)
        if out is not None and not (out / "init.pt").exists():  # the first phase's start
            _save_init(parts.model, out, False)
        callbacks = parts.callbacks + list(extra_callbacks or [])
        return parts.model, parts.optimizer, callbacks, parts.penalty

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
    if result.diverged:
        first, last = (records[0]["train_loss"], records[-1]["train_loss"]) if records else (0, 0)
        raise DivergenceError(
            f"[optimizer] {cfg.optimizer.name} diverged: the training loss went from {first:.4g} "
            f"to {last:.4g} in {result.n_iter} iterations ({result.message}); try "
            "levenberg_marquardt (damped) or a smaller model"
        )
    summary = summarize_history(records, None)
    summary.update(
        converged=bool(result.converged),
        n_iter=int(result.n_iter),
        n_fev=int(result.n_fev),
        n_jev=int(result.n_jev),
        solver_message=result.message,
    )
    return summary, records


#: Config keys a resumed run may change: they act from the resumed epoch on (``train.epochs``
#: extends or shortens the run) and are written to ``config.toml``. Every other key (the
#: architecture, data, optimizer, schedule, callbacks, seed) shaped the checkpoint and is fixed.
RESUMABLE_KEYS = ("train.epochs", "train.threads", "train.val_every", "checkpoint.")


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose resolved values differ between two configs."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def resume_config(run_dir: Path, config: str | None, overrides: list[str]) -> Config:
    """The config a ``--resume run_dir`` continues with: the folder's ``config.toml`` with the
    ``--set`` overrides of :data:`RESUMABLE_KEYS` (written back to ``config.toml``). A
    ``config`` argument must resolve to the stored config; any other change is refused."""
    from goodfit.app.config import load_config
    from goodfit.app.run_folder import read_marker

    saved = run_dir / "config.toml"
    if read_marker(run_dir) is None or not saved.exists():
        raise ConfigError(f"--resume {run_dir}: not a goodfit run folder (no config.toml there)")
    stored = load_config(saved)
    if config is not None:
        differ = changed_keys(stored, load_config(config))
        if differ:
            raise ConfigError(
                f"--resume {run_dir}: {config} differs from the run's config.toml in "
                f"{', '.join(differ)}; resume without a CONFIG (change what may change with "
                "--set) or start a new run"
            )
    cfg = load_config(saved, overrides)
    fixed = [k for k in changed_keys(stored, cfg) if not k.startswith(RESUMABLE_KEYS)]
    if fixed:
        raise ConfigError(
            f"--resume {run_dir}: cannot change {', '.join(fixed)} when resuming (the checkpoint "
            f"was trained with them); keys that may change: {', '.join(RESUMABLE_KEYS)}*"
        )
    return cfg
