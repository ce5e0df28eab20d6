"""``[ensemble]`` in ``goodfit train`` and in a study: the config's network trained as an
ensemble (:mod:`goodfit.ensemble`), returned as one :class:`goodfit.ensemble.EnsembleModule` so
the run's test metrics and a study's fold scores are the ensemble's.

Member ``k`` is built (model, optimizer, schedule, penalty, callbacks) exactly as a plain run
with ``train.seed + k`` would be. Bagging and stacking train their members as one
``fit_many`` group (sequential, with a notice, when something prevents it); boosting rounds are
sequential; snapshot, SWA and EMA are one run. ``history.jsonl`` holds member 0's epochs (the
other members' epochs run and best epochs are in the summary's ``ensemble``).
"""

from __future__ import annotations

import math
from typing import Any

from goodfit.app.build import build_optimizer, build_run, is_second_order
from goodfit.app.config import Config
from goodfit.ensemble import (
    EnsembleModule,
    SnapshotEnsemble,
    WeightAveraging,
    adaboost_r2,
    bagging,
    samme,
    stacking,
)
from goodfit.ensemble.averaging import snapshot_schedule
from goodfit.errors import ConfigError
from goodfit.train.loop import fit, seed_everything
from goodfit.train.schedule_callbacks import ScheduleCallback

__all__ = ["ONE_RUN_METHODS", "check_ensemble", "run_ensemble"]

#: Methods that are one training run (the study's per-run diagnoses apply to them).
ONE_RUN_METHODS = ("snapshot", "swa", "ema")


def check_ensemble(cfg: Config, prepared: Any) -> None:
    """Refuse, before training, an ensemble the task or the config cannot have."""
    ens = cfg.ensemble
    if ens is None:
        return
    task = prepared.dataset.task
    if is_second_order(cfg):
        raise ConfigError("[ensemble] trains first-order networks; the optimizer is second-order")
    if ens.method == "samme" and task != "classification":
        raise ConfigError(
            f"[ensemble] method = 'samme' is multi-class AdaBoost for classification; this "
            f"dataset is a {task} task: use method = 'adaboost_r2'"
        )
    if ens.method == "adaboost_r2" and task != "regression":
        raise ConfigError(
            f"[ensemble] method = 'adaboost_r2' is for regression; this dataset is a {task} "
            "task: use method = 'samme'"
        )
    if ens.method == "stacking" and ens.split != "kfold":
        raise ConfigError(
            "[ensemble] split = 'holdout' cannot stack: the meta-learner needs an out-of-fold "
            "prediction for every training row; use split = 'kfold'"
        )
    if ens.meta is not None and (ens.meta == "logistic") != (task == "classification"):
        raise ConfigError(
            f"[ensemble] meta = {ens.meta!r} does not fit a {task} task "
            "(logistic: classification, ridge: regression)"
        )
    if ens.method in ("samme", "adaboost_r2"):
        parts = _member_parts(cfg, prepared, 0)
        if parts.penalty is not None or parts.augment is not None:
            raise ConfigError(
                f"[ensemble] method = {ens.method!r} puts sample weights into the loss of one "
                "vectorized network per round, which a penalty ([regularize] l1/l2/...) or an "
                "augmentation ([augment]) cannot join; remove them or use method = 'bagging'"
            )
    es = cfg.early_stopping
    if ens.method == "snapshot" and es is not None and es.enabled:
        raise ConfigError(
            "[ensemble] method = 'snapshot' trains whole learning-rate cycles: set "
            "early_stopping.enabled = false"
        )
    if ens.method in ("snapshot", "swa", "ema") and es is not None and es.algorithm != "7.1":
        raise ConfigError(f"[ensemble] method = {ens.method!r} needs early_stopping.algorithm 7.1")
    _check_combinations(cfg)
    if ens.start_epoch is not None and ens.start_epoch >= cfg.train.epochs:
        raise ConfigError(
            f"[ensemble] start_epoch = {ens.start_epoch} must be < train.epochs = "
            f"{cfg.train.epochs} (0-based)"
        )


def _check_combinations(cfg: Config) -> None:
    """The sections an ensemble's members do not train with yet: refused, not ignored."""
    t, ens = cfg.train, cfg.ensemble
    on = [f"[{n}]" for n in ("curriculum", "multitask") if getattr(cfg, n) is not None]
    if cfg.output_noise is not None and cfg.output_noise.label_smoothing > 0:
        on.append("output_noise.label_smoothing")
    if t.class_weights is not None or t.sampler != "random":
        on.append("train.class_weights / train.sampler")
    if cfg.weight_noise is not None and ens.method not in ("snapshot", "swa", "ema"):
        on.append("[weight_noise]")
    if on:
        raise ConfigError(
            f"[ensemble] method = {ens.method!r} does not train its members with "
            f"{', '.join(on)} yet; remove them, or compare them in a study without [ensemble]"
        )


def _member_parts(cfg: Config, prepared: Any, k: int) -> Any:
    seed_everything(cfg.train.seed + k)  # member k's init, as a plain run with seed + k
    return build_run(cfg, prepared)


def _fit_kwargs(cfg: Config, prepared: Any, parts: Any) -> dict[str, Any]:
    return {
        "batch_size": cfg.train.batch_size,
        "task": prepared.dataset.task,
        "callbacks": parts.callbacks,
        "penalty": parts.penalty,
        "augment": parts.augment,
        "vectorize": "auto" if cfg.ensemble.vectorize else False,
    }


def _plain(v: Any) -> bool:
    if isinstance(v, list):
        return all(isinstance(x, int | float) for x in v)
    return isinstance(v, str | int | float | bool)


def _group(cfg: Config, prepared: Any) -> tuple[Any, dict[str, Any]]:
    """Bagging, boosting and stacking: members built by the config, trained by the library."""
    ens = cfg.ensemble
    built: dict[int, Any] = {}

    def make_model(k: int) -> Any:
        built[k] = _member_parts(cfg, prepared, k)
        return built[k].model

    first = _member_parts(cfg, prepared, 0)
    kwargs = _fit_kwargs(cfg, prepared, first)

    def optimizer(module: Any) -> Any:
        return build_optimizer(cfg.optimizer, module)

    common = dict(
        members=ens.members, optimizer=optimizer, epochs=cfg.train.epochs, seed=cfg.train.seed
    )
    train, val = prepared.train, prepared.val
    if ens.method == "bagging":
        result = bagging(make_model, train, val, aggregation=ens.aggregation, **common, **kwargs)
    elif ens.method == "stacking":
        result = stacking(
            make_model, train, val, folds=ens.folds, meta=ens.meta, **common, **kwargs
        )
    else:
        kwargs.pop("vectorize")
        if ens.method == "samme":
            result = samme(make_model, train, val, **common, **kwargs)
        else:
            result = adaboost_r2(make_model, train, val, loss=ens.r2_loss, **common, **kwargs)
    histories = result.info.pop("histories", None)
    summary = {k: v for k, v in result.info.items() if _plain(v)}
    if histories:
        summary["member_epochs_run"] = [len(h) for h in histories]
        summary["member_best_epoch"] = [h.summary.get("best_epoch") for h in histories]
    records = histories[0].records if histories else []
    return EnsembleModule(result).eval(), {"ensemble": summary, "records": records}


def _one_run(cfg: Config, prepared: Any, progress: Any, extra: list[Any]) -> tuple[Any, dict]:
    """Snapshot ensembles, SWA and EMA: one run with an extra callback."""
    ens = cfg.ensemble
    parts = _member_parts(cfg, prepared, 0)
    callbacks = list(parts.callbacks)
    steps = cfg.train.epochs * parts.steps_per_epoch
    if ens.method == "snapshot":
        cycle = steps // ens.members
        if cycle < 1:
            raise ConfigError(
                f"[ensemble] members = {ens.members} snapshot cycles need at least that many "
                f"steps; this run has {steps}"
            )
        callbacks = [c for c in callbacks if not isinstance(c, ScheduleCallback)]
        extra_cb: Any = SnapshotEnsemble(cycle)
        callbacks += [ScheduleCallback(snapshot_schedule(parts.lr, cycle)), extra_cb]
    else:
        start = ens.start_epoch
        start = math.floor(0.75 * cfg.train.epochs) if start is None else start
        extra_cb = WeightAveraging(
            ens.method, start_epoch=start, decay=ens.decay, bn_data=prepared.train[0]
        )
        callbacks.append(extra_cb)
    history = fit(
        parts.model,
        prepared.train,
        prepared.val,
        optimizer=parts.optimizer,
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        task=prepared.dataset.task,
        penalty=parts.penalty,
        augment=parts.augment,
        callbacks=callbacks + extra,
        seed=cfg.train.seed,
        progress=progress,
        device=cfg.train.device,
    )
    task = prepared.dataset.task
    if ens.method == "snapshot":
        result = extra_cb.ensemble(parts.model, task=task, rule=ens.aggregation)
        info = {"members": len(result.models), "cycle_steps": extra_cb.cycle_steps}
    else:
        from goodfit.ensemble import Ensemble

        result = Ensemble([extra_cb.model()], task=task)
        info = {"updates": extra_cb.updates, "start_epoch": extra_cb.start_epoch}
    summary = {**history.summary, "ensemble": info, "records": history.records}
    return EnsembleModule(result).eval(), summary


def run_ensemble(
    cfg: Config, prepared: Any, progress: Any, extra_callbacks: list[Any] | None
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """``(model, fit summary, history records)`` of the configured ensemble (module docstring)."""
    check_ensemble(cfg, prepared)
    if cfg.ensemble.method in ONE_RUN_METHODS:
        model, summary = _one_run(cfg, prepared, progress, list(extra_callbacks or []))
    else:
        model, summary = _group(cfg, prepared)
    records = summary.pop("records")
    summary["ensemble"]["method"] = cfg.ensemble.method
    return model, summary, records
