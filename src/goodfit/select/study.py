"""``goodfit study``: a base config plus named variants, run over cross-validation folds, compared
with paired statistics, diagnosed (bias/variance, overfitting onset, gradient flow) and reported.

A study config is a training config with a ``[study]`` table::

    [study]
    title = "Which regularizer helps my CNN?"
    splits = { kind = "stratified_kfold", k = 5 }    # goodfit.data.splits kinds
    metric = "val_accuracy"                          # ranking metric (fold held-out part)
    baseline = "baseline"

    [[study.variants]]
    name = "baseline"

    [[study.variants]]
    name = "l2"
    set = { "regularize.l2" = 1e-4 }                 # dotted overrides of the base config

Every fold's training part is split again (``data.val_fraction``) into the part the model trains
on and the part early stopping watches; the fold's held-out part scores the run
(``val_*``) and the dataset's test set (never in any fold) gives ``test_*``. Standardization is
fitted on the part the model trains on only.

Each finished run is written to ``runs/<variant>/fold<k>/`` (``summary.json`` last), so a killed
study resumed with the same command skips them. All variants are validated before any training.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from goodfit.atomic import atomic_write_text
from goodfit.config import Config, apply_overrides, config_to_toml, parse_config, read_toml
from goodfit.errors import ConfigError
from goodfit.train.history import History, json_safe

__all__ = ["DEFAULT_STUDY", "StudyConfig", "Variant", "prepare_study", "run_study"]

#: The built-in study: digits, a small CNN, six strategies with early stopping, 5 folds.
DEFAULT_STUDY: dict[str, Any] = {
    "data": {"name": "digits", "val_fraction": 0.15},
    "model": {"kind": "cnn2d", "channels": [16, 32], "hidden": [64], "kernel_size": 3},
    "optimizer": {"name": "adam", "lr": 3e-3},
    "train": {"epochs": 20, "batch_size": 64, "seed": 0},
    "early_stopping": {"monitor": "val_loss", "patience": 4},
    "study": {
        "title": "digits: which regularization makes a small CNN fit well?",
        "splits": {"kind": "stratified_kfold", "k": 5},
        "metric": "val_accuracy",
        "baseline": "baseline",
        "variants": [
            {"name": "baseline", "description": "no regularization (early stopping only)"},
            {
                "name": "l2",
                "description": "L2 weight penalty",
                "set": {"regularize.l2": 1e-3},
            },
            {
                "name": "dropout",
                "description": "dropout p=0.3 after every hidden layer",
                "set": {"model.dropout": {"kind": "standard", "p": 0.3}},
            },
            {
                "name": "batchnorm",
                "description": "batch normalization before every activation",
                "set": {"model.norm": "batch"},
            },
            {
                "name": "augment",
                "description": "random affine + erasing augmentation",
                "set": {
                    "augment.ops": [
                        {"name": "affine", "degrees": 10.0, "translate": 0.1, "scale": [0.9, 1.1]},
                    ]
                },
            },
            {
                "name": "combined",
                "description": "L2 + dropout + batch norm + augmentation",
                "set": {
                    "regularize.l2": 1e-3,
                    "model.dropout": {"kind": "standard", "p": 0.3},
                    "model.norm": "batch",
                    "augment.ops": [
                        {"name": "affine", "degrees": 10.0, "translate": 0.1, "scale": [0.9, 1.1]},
                    ],
                },
            },
        ],
    },
}


class Variant(BaseModel):
    """One strategy of a study: a name (a folder name), a description, dotted overrides."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    set: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", v):
            raise ValueError(
                f"variant names must be letters, digits, '_', '-', '.', '+' (a folder name), "
                f"got {v!r}"
            )
        return v


class StudyConfig(BaseModel):
    """The ``[study]`` table: splits, ranking metric, baseline, diagnoses, workers, variants."""

    model_config = ConfigDict(extra="forbid")
    title: str = "goodfit study"
    splits: dict[str, Any] = Field(default_factory=lambda: {"kind": "stratified_kfold", "k": 5})
    metric: str | None = None
    baseline: str | None = None
    reference_error: float | None = Field(None, ge=0.0, le=1.0)
    gradient_flow: bool = True
    lr_find: bool = False
    curvature: bool = False
    workers: int = Field(1, ge=1)

    def diagnostics(self) -> dict[str, bool]:
        """Which per-run diagnoses to record (LR range test and curvature: first fold only)."""
        return {
            "gradient_flow": self.gradient_flow,
            "lr_find": self.lr_find,
            "curvature": self.curvature,
        }

    variants: list[Variant] = Field(min_length=1)


def _parse_study(data: dict[str, Any], source: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"])
            lines.append(f"{source}: study.{key}: {e['msg']}")
        raise ConfigError("\n".join(lines)) from None


def prepare_study(
    data: dict[str, Any], source: str = "study"
) -> tuple[Config, StudyConfig, dict[str, Config]]:
    """Validate the base config, the ``[study]`` table and **every** variant (overrides applied,
    each variant's model/optimizer/penalty/augmentation built once on the dataset's shape) before
    any training starts. Returns ``(base, study, {variant: config})``."""
    data = copy.deepcopy(data)
    study_data = data.pop("study", None)
    if study_data is None:
        raise ConfigError(f"{source}: a study config needs a [study] table with variants")
    study = _parse_study(study_data, source)
    base = parse_config(data, source)
    names = [v.name for v in study.variants]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: study.variants: duplicate names {dupes}")
    if study.baseline is not None and study.baseline not in names:
        raise ConfigError(
            f"{source}: study.baseline = {study.baseline!r} is not a variant; variants: {names}"
        )
    from goodfit.build import check_buildable, load_raw_dataset

    dataset = load_raw_dataset(base.data)
    from goodfit.data.splits import n_splits

    splits = dict(study.splits)
    kind = splits.pop("kind", "stratified_kfold")
    if kind == "stratified_kfold" and dataset.task != "classification":
        kind = "kfold"
    try:
        n_splits(kind, dataset.n_train, **splits)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: study.splits: {err}") from None
    variants: dict[str, Config] = {}
    for v in study.variants:
        where = f"{source} (variant {v.name!r})"
        try:
            cfg = parse_config(apply_overrides(data, v.set), where)
            check_buildable(cfg, dataset)
        except ConfigError as err:
            msg = str(err)
            raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        variants[v.name] = cfg
    return base, study, variants


def _fold_data(cfg: Config, dataset: Any, fold_train: Any, fold_val: Any, seed: int) -> Any:
    """Split the fold's training part into train / early-stopping part; standardize on train."""
    from goodfit.build import PreparedData
    from goodfit.data.datasets import fit_standardizer

    fold_train = torch.as_tensor(fold_train)
    fold_val = torch.as_tensor(fold_val)
    X, y = dataset.X_train, dataset.y_train
    if cfg.data.val_fraction > 0:
        from sklearn.model_selection import train_test_split

        strat = y[fold_train].numpy() if dataset.task == "classification" else None
        idx = fold_train.numpy()
        try:
            tr, es = train_test_split(
                idx, test_size=cfg.data.val_fraction, random_state=seed, stratify=strat
            )
        except ValueError:  # too few samples of a class to stratify (as build.split_indices)
            tr, es = train_test_split(idx, test_size=cfg.data.val_fraction, random_state=seed)
        train_idx, es_idx = torch.as_tensor(tr), torch.as_tensor(es)
    else:
        train_idx, es_idx = fold_train, None
    if cfg.data.standardize:
        s = fit_standardizer(X[train_idx])
        X, X_test = s(X), s(dataset.X_test)
    else:
        X_test = dataset.X_test
    prepared = PreparedData(
        dataset=dataset,
        train=(X[train_idx], y[train_idx]),
        val=(X[es_idx], y[es_idx]) if es_idx is not None else None,
        test=(X_test, dataset.y_test),
    )
    return prepared, (X[fold_val], y[fold_val])


def _run_one(
    cfg: Config,
    dataset: Any,
    fold: int,
    split: tuple[Any, Any],
    run_dir: Path,
    progress: Any,
    diagnostics: dict[str, bool],
) -> dict[str, Any]:
    from goodfit.train.loop import evaluate
    from goodfit.train.run import run_config

    prepared, held_out = _fold_data(cfg, dataset, split[0], split[1], cfg.train.seed + fold)
    cfg = cfg.model_copy(deep=True)
    cfg.checkpoint.enabled = False
    extra = []
    lr_found = _lr_find(cfg, prepared) if diagnostics["lr_find"] and fold == 0 else None
    if diagnostics["gradient_flow"]:
        from goodfit.diagnose.gradient_flow import GradientFlowCallback

        extra.append(GradientFlowCallback())
    result = run_config(
        cfg, None, data=prepared, progress=progress, extra_callbacks=extra, write_plots=False
    )
    model, task = result.model, dataset.task
    scores = {
        **evaluate(model, *prepared.train, task=task, prefix="train_"),
        **evaluate(model, *held_out, task=task, prefix="val_"),
        **{k: v for k, v in result.summary.items() if k.startswith("test_")},
    }
    if prepared.val is not None:
        scores.update(evaluate(model, *prepared.val, task=task, prefix="es_val_"))
    fold_result: dict[str, Any] = {
        "fold": fold,
        "scores": scores,
        "history": result.records,
        "best_epoch": result.summary.get("best_epoch"),
        "epochs_run": result.summary.get("epochs_run"),
        "stop_reason": result.summary.get("stop_reason"),
        "wall_seconds": result.summary.get("wall_seconds"),
    }
    if extra:
        fold_result["gradient_flow"] = extra[0].to_dict()
    if lr_found is not None:
        fold_result["lr_find"] = lr_found
    if diagnostics["curvature"] and fold == 0:
        from goodfit.diagnose.curvature import curvature_report
        from goodfit.train.loop import default_loss

        X, y = prepared.train
        report = curvature_report(model, default_loss(task), X[:1024], y[:1024], k=3)
        fold_result["curvature"] = report.to_dict()
    History(result.records).to_jsonl(run_dir / "history.jsonl")
    atomic_write_text(run_dir / "summary.json", json.dumps(json_safe(fold_result)) + "\n")
    return fold_result


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _worker_run(
    cfg_data: dict[str, Any],
    fold: int,
    split: tuple[Any, Any],
    run_dir: str,
    diagnostics: dict[str, bool],
) -> dict[str, Any]:
    """One (variant, fold) run in a worker process (the dataset is loaded once per process)."""
    cfg = parse_config(cfg_data)
    key = json.dumps(cfg_data["data"], sort_keys=True)
    if key not in _WORKER_DATA:
        from goodfit.build import load_raw_dataset

        _WORKER_DATA[key] = load_raw_dataset(cfg.data)
    return _run_one(cfg, _WORKER_DATA[key], fold, split, Path(run_dir), False, diagnostics)


_WORKER_DATA: dict[str, Any] = {}


def _run_parallel(
    jobs: list[tuple[str, int]],
    variants: dict[str, Config],
    splits: list[Any],
    out: Path,
    diagnostics: dict[str, bool],
    workers: int,
    finished: Any,
) -> None:
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # fork after torch threads start can hang
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                             initargs=(threads,)) as pool:  # fmt: skip
        futures = {
            pool.submit(
                _worker_run,
                variants[name].to_dict(),
                fold,
                splits[fold],
                str(out / "runs" / name / f"fold{fold}"),
                diagnostics,
            ): (name, fold)
            for name, fold in jobs
        }
        for future in as_completed(futures):
            name, fold = futures[future]
            finished(name, fold, future.result())


def _lr_find(cfg: Config, prepared: Any) -> dict[str, Any]:
    """The LR range test (seed 000's reading) on the run's model and optimizer at
    initialization; the model and optimizer are rebuilt from the seed, so the run is unaffected."""
    from goodfit.build import build_model, build_optimizer
    from goodfit.diagnose.lr_find import lr_find
    from goodfit.train.loop import seed_everything

    seed_everything(cfg.train.seed)
    ds = prepared.dataset
    model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
    optimizer = build_optimizer(cfg.optimizer, model)
    result = lr_find(
        model, prepared.train, optimizer=optimizer, batch_size=cfg.train.batch_size,
        steps=100, seed=cfg.train.seed,
    )  # fmt: skip
    out = result.to_dict()
    return {k: out[k] for k in ("suggestion", "reading", "lrs", "smoothed", "diverged_at")}


def _environment(device: str, wall: float) -> dict[str, Any]:
    import goodfit

    return {
        "goodfit": goodfit.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": device,
        "threads": torch.get_num_threads(),
        "wall_seconds": round(wall, 2),
    }


def run_study(
    data: dict[str, Any],
    out_dir: str | Path,
    *,
    source: str = "study",
    progress: bool | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run a study config (a dict as read from TOML) into ``out_dir``; returns the results dict
    (also written as ``results.json``, with ``report.html`` beside it).

    ``workers`` (default: the study's ``workers``, 1 unless set) runs that many (variant, fold)
    runs at once in separate processes (the study's progress bar only; no per-run bar), each with
    ``cores // workers`` torch threads; every run is seeded alone, so results match a serial
    study (up to the summation order of multithreaded kernels; identical in our CPU tests).
    """
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be an integer >= 1, got {workers!r}")
    t0 = time.perf_counter()
    base, study, variants = prepare_study(data, source)
    workers = study.workers if workers is None else workers
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from goodfit.build import load_raw_dataset
    from goodfit.data.splits import make_splits

    dataset = load_raw_dataset(base.data)
    splits_cfg = dict(study.splits)
    kind = splits_cfg.pop("kind", "stratified_kfold")
    if kind == "stratified_kfold" and dataset.task != "classification":
        kind = "kfold"
    y = dataset.y_train.numpy() if dataset.task == "classification" else None
    splits = make_splits(kind, dataset.n_train, y, seed=base.train.seed, **splits_cfg)
    metric = study.metric or ("val_accuracy" if dataset.task == "classification" else "val_loss")
    _check_resume(out, data)
    atomic_write_text(out / "study.toml", config_to_toml(data))

    results: dict[str, Any] = {
        "schema_version": 1,
        "title": study.title,
        "dataset": {
            "name": dataset.name,
            "task": dataset.task,
            "n_train": dataset.n_train,
            "n_test": dataset.n_test,
            "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes,
        },
        "metric": metric,
        "baseline": study.baseline or study.variants[0].name,
        "reference_error": study.reference_error,
        "splits": {"kind": kind, "params": splits_cfg, "seed": base.train.seed},
        "variants": {
            v.name: {"overrides": v.set, "description": v.description, "folds": []}
            for v in study.variants
        },
        "config": config_to_toml(data),
    }
    total = len(variants) * len(splits)
    jobs: list[tuple[str, int]] = []
    with _StudyProgress(progress, total) as bar:
        for name, cfg in variants.items():
            for fold in range(len(splits)):
                run_dir = out / "runs" / name / f"fold{fold}"
                if (run_dir / "summary.json").exists():
                    bar.advance(f"{name} fold {fold + 1} (done before)")
                    continue
                run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(run_dir / "config.toml", config_to_toml(cfg.to_dict()))
                jobs.append((name, fold))

        def finished(name: str, fold: int, fold_result: dict[str, Any]) -> None:
            score = fold_result["scores"].get(metric, float("nan"))
            bar.advance(f"{name} fold {fold + 1}: {metric}={score:.4f}")

        if workers <= 1 or len(jobs) <= 1:
            for name, fold in jobs:
                bar.describe(f"{name} fold {fold + 1}/{len(splits)}")
                run_dir = out / "runs" / name / f"fold{fold}"
                finished(
                    name,
                    fold,
                    _run_one(
                        variants[name], dataset, fold, splits[fold], run_dir, bar.inner,
                        study.diagnostics(),
                    ),
                )  # fmt: skip
        else:
            _run_parallel(jobs, variants, splits, out, study.diagnostics(), workers, finished)
    for name in variants:
        for fold in range(len(splits)):
            done = out / "runs" / name / f"fold{fold}" / "summary.json"
            results["variants"][name]["folds"].append(json.loads(done.read_text()))
    schedule = _schedule_curve(base, dataset, splits)
    if schedule is not None:
        results["schedule"] = schedule
    results["environment"] = _environment(base.train.device, time.perf_counter() - t0)
    from goodfit.report.html import analyze_results, write_report

    results["analysis"] = analyze_results(results)
    atomic_write_text(out / "results.json", json.dumps(json_safe(results), indent=1) + "\n")
    write_report(results, out / "report.html")
    return results


def _schedule_curve(base: Config, dataset: Any, splits: list[Any]) -> dict[str, Any] | None:
    if base.schedule is None:
        return None
    from goodfit.build import build_schedule

    n_train = int(len(splits[0][0]) * (1 - base.data.val_fraction))
    steps_per_epoch = max(1, math.ceil(n_train / base.train.batch_size))
    schedule = build_schedule(base, steps_per_epoch)
    unit = steps_per_epoch if base.schedule.interval == "step" else 1
    n = base.train.epochs * unit
    stride = max(1, n // 400)
    steps = list(range(0, n, stride))
    return {"name": base.schedule.name, "steps": steps, "lr": [float(schedule(s)) for s in steps]}


def _check_resume(out: Path, data: dict[str, Any]) -> None:
    saved = out / "study.toml"
    if saved.exists() and read_toml(saved) != read_toml_text(config_to_toml(data)):
        raise ConfigError(
            f"{out} holds a study with a different configuration; resume it with the same "
            "config or choose another --out"
        )


def read_toml_text(text: str) -> dict[str, Any]:
    """Parse TOML text (to compare a saved study config with the current one)."""
    from goodfit.config import tomllib

    return tomllib.loads(text)


class _StudyProgress:
    """One bar for the study (variant x fold) and one for the current run (epochs)."""

    def __init__(self, enabled: bool | None, total: int) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total, self.done = total, 0
        self.progress: Any = None
        self.inner: Any = False

    def __enter__(self) -> _StudyProgress:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[metrics]}"),
            )
            self.progress.start()
            self.task = self.progress.add_task("study", total=self.total, metrics="")
            self.inner = self.progress
        return self

    def describe(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"study: {text}")

    def advance(self, text: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1)
        elif self.enabled is not False:
            print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()


def run_study_cli(args: Any) -> int:
    """``goodfit study [CONFIG.toml] [--set k=v] [--out DIR]``."""
    if args.config is None:
        data, source = copy.deepcopy(DEFAULT_STUDY), "built-in study"
    else:
        data, source = read_toml(args.config), str(args.config)
    if args.set:
        data = apply_overrides(data, args.set)
    out = Path(args.out) if args.out else Path("runs") / f"study-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run_study(data, out, source=source, progress=None, workers=args.workers)
    a = results["analysis"]
    best = a["ranking"]["best"]
    print(a["verdict"])
    print(f"winner: {best}")
    print(f"report: {out / 'report.html'}")
    return 0
