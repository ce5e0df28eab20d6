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
fitted on the part the model trains on only (:func:`goodfit.data.prepare.prepare_data`).

Each finished run is written to ``runs/<variant>/fold<k>/`` (``summary.json`` last, holding the
study config's hash), so a killed study resumed with the same command skips them, and results
of another config are never mixed in. Every variant and setting is validated before any training.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from goodfit.app.build import (
    check_buildable,
    load_dataset_from_config,
    prepare_from_config,
)
from goodfit.app.config import (
    Config,
    apply_overrides,
    config_to_toml,
    format_validation_error,
    parse_config,
)
from goodfit.app.default_study import DEFAULT_STUDY
from goodfit.app.progress import StudyProgress
from goodfit.app.sections import StudyConfig
from goodfit.app.study_fold import fold_record, one_network, write_fold
from goodfit.atomic import atomic_write_text
from goodfit.errors import ConfigError
from goodfit.select.compare import default_test
from goodfit.train.history import json_safe

__all__ = ["DEFAULT_STUDY", "StudyPlan", "prepare_study", "run_study"]


@dataclasses.dataclass
class StudyPlan:
    """A validated study: the base config, the ``[study]`` table, every variant's config, the
    dataset (loaded once), the splits and the ranking metric."""

    base: Config
    study: StudyConfig
    variants: dict[str, Config]
    dataset: Any
    splits_kind: str
    splits_params: dict[str, Any]
    splits: list[Any]
    metric: str
    test: str
    config_hash: str


def _parse_study(data: dict[str, Any], source: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        text = format_validation_error(err, source)
        raise ConfigError(text.replace(f"{source}: ", f"{source}: study.")) from None


def _metrics_of(task: str) -> list[str]:
    kinds: tuple[str, ...] = ("loss",)
    if task == "classification":  # + goodfit.train.class_metrics.CLASS_METRICS
        kinds = ("loss", "accuracy", "balanced_accuracy", "macro_f1")
    out = [f"{part}_{k}" for part in ("val", "train", "test") for k in kinds]
    if task == "classification":  # with [adversarial] in every variant (goodfit.app.strategies)
        out += [f"{p}_robust_accuracy_{m}" for p in ("val", "test") for m in ("fgsm", "pgd")]
    return out


def _check_study(study: StudyConfig, dataset: Any, source: str) -> tuple[str, dict, str, str]:
    """The splits (kind, parameters), the metric and the test, validated against the dataset."""
    from goodfit.data.splits import n_splits

    names = [v.name for v in study.variants]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: study.variants: duplicate names {dupes}")
    if study.baseline is not None and study.baseline not in names:
        raise ConfigError(
            f"{source}: study.baseline = {study.baseline!r} is not a variant; variants: {names}"
        )
    params = dict(study.splits)
    kind = params.pop("kind", "5x2")
    if dataset.task != "classification":  # no labels to stratify by
        kind = {"stratified_kfold": "kfold", "repeated_stratified_kfold": "repeated_kfold"}.get(
            kind, kind
        )
    try:
        count = n_splits(kind, dataset.n_train, **params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: study.splits: {err}") from None
    test = study.test or default_test(kind)
    if test.startswith("5x2cv") and (kind != "5x2" or count != 10):
        raise ConfigError(
            f'{source}: study.test = {test!r} needs study.splits = {{kind = "5x2"}} '
            f"(five repetitions of a 2-fold split), got kind = {kind!r}"
        )
    from goodfit.app.multitask import metric_names

    allowed = _metrics_of(dataset.task) + metric_names(dataset)
    metric = study.metric or ("val_accuracy" if dataset.task == "classification" else "val_loss")
    if metric not in allowed:
        raise ConfigError(
            f"{source}: study.metric = {metric!r} is not a metric of this {dataset.task} "
            f"study; allowed: {', '.join(allowed)}"
        )
    return kind, params, metric, test


def _check_robust_metric(cfg: Config, metric: str) -> None:
    """A robust-accuracy metric needs ``[adversarial]`` evaluating that attack in the variant."""
    if "_robust_accuracy_" not in metric:
        return
    method = metric.rsplit("_", 1)[1]
    if cfg.adversarial is None or method not in cfg.adversarial.evaluate:
        raise ConfigError(
            f"study.metric = {metric!r} needs [adversarial] with {method!r} in "
            "adversarial.evaluate (set adversarial.method = 'none' to measure it without "
            "adversarial training)"
        )


def prepare_study(data: dict[str, Any], source: str = "study") -> StudyPlan:
    """Validate the base config, the ``[study]`` table and **every** variant (overrides applied,
    each variant's parts built once on the dataset) before any training starts."""
    data = copy.deepcopy(data)
    study_data = data.pop("study", None)
    if study_data is None:
        raise ConfigError(f"{source}: a study config needs a [study] table with variants")
    study = _parse_study(study_data, source)
    base = parse_config(data, source)
    dataset = load_dataset_from_config(base.data)
    kind, params, metric, test = _check_study(study, dataset, source)
    if dataset.task == "multitask" and (study.lr_find or study.curvature):
        raise ConfigError(
            f"{source}: study.lr_find and study.curvature use a single-task loss; set them to "
            "false for multitask data"
        )
    variants: dict[str, Config] = {}
    for v in study.variants:
        where = f"{source} (variant {v.name!r})"
        try:
            cfg = parse_config(apply_overrides(data, v.set), where)
            check_buildable(cfg, prepare_from_config(cfg, dataset))
            _check_robust_metric(cfg, metric)
        except ConfigError as err:
            msg = str(err)
            raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        variants[v.name] = cfg
    from goodfit.data.splits import make_splits

    y = dataset.y_train.numpy() if dataset.task == "classification" else None
    splits = make_splits(kind, dataset.n_train, y, seed=base.train.seed, **params)
    where = ("backend", "address")  # where it runs changes no result: not in the hash
    kept = {k: v for k, v in study_data.items() if k not in where}
    full = config_to_toml({**data, "study": kept})
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return StudyPlan(base, study, variants, dataset, kind, params, splits, metric, test, digest)


def _run_one(
    cfg: Config,
    dataset: Any,
    fold: int,
    split: tuple[Any, Any],
    run_dir: Path | None,
    progress: Any,
    diagnostics: dict[str, bool],
    config_hash: str,
) -> dict[str, Any]:
    from goodfit.app.run import run_config

    prepared = prepare_from_config(cfg, dataset, seed=cfg.train.seed + fold, pool=split[0])
    held_out = prepared.rows(split[1])
    cfg = cfg.model_copy(deep=True)
    cfg.checkpoint.enabled = False
    extra = []
    lr_found = _lr_find(cfg, prepared) if diagnostics["lr_find"] and fold == 0 else None
    if diagnostics["gradient_flow"] and one_network(cfg):
        from goodfit.diagnose.gradient_flow import GradientFlowCallback

        extra.append(GradientFlowCallback())
    result = run_config(
        cfg, None, data=prepared, progress=progress, extra_callbacks=extra, write_plots=False
    )
    fold_result = fold_record(
        cfg, result.model, dataset, prepared, held_out, fold, split, result, config_hash
    )
    if extra:
        fold_result["gradient_flow"] = extra[0].to_dict()
    if lr_found is not None:
        fold_result["lr_find"] = lr_found
    if diagnostics["curvature"] and fold == 0:
        from goodfit.diagnose.curvature import curvature_report
        from goodfit.train.loop import default_loss

        X, y = prepared.train
        report = curvature_report(result.model, default_loss(dataset.task), X[:1024], y[:1024], k=3)
        fold_result["curvature"] = report.to_dict()
    if diagnostics.get("landscape") and fold == 0:
        fold_result["landscape"] = _landscape(cfg, result.model, prepared, held_out)
    if run_dir is not None:  # None: the driver writes (a Ray task)
        write_fold(run_dir, fold_result)
    return fold_result


def _landscape(cfg: Config, model: Any, prepared: Any, held_out: Any) -> dict[str, Any]:
    """The 1-D filter-normalized random-direction landscape (Li et al. 2018) of a trained
    model on up to 512 samples of its training part and of the fold's held-out part."""
    from goodfit.diagnose.landscape import random_landscape
    from goodfit.train.loop import default_loss

    X, y = (t[:512] for t in prepared.train)
    val = tuple(t[:512] for t in held_out)
    ls = random_landscape(model, X, y, dims=1, steps=21, distance=1.0, seed=cfg.train.seed,
                          val=val, loss_fn=default_loss(prepared.dataset.task))  # fmt: skip
    return {**ls.to_dict(), "rise_at_0.5": ls.rise_at(0.5), "rise_at_1": ls.rise_at(1.0)}


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


_WORKER_DATA: dict[str, Any] = {}


def _worker_run(cfg_data: dict[str, Any], *args: Any) -> dict[str, Any]:
    """One (variant, fold) run in a worker process (the dataset is loaded once per process)."""
    cfg = parse_config(cfg_data)
    key = json.dumps(cfg_data["data"], sort_keys=True)
    if key not in _WORKER_DATA:
        _WORKER_DATA[key] = load_dataset_from_config(cfg.data)
    fold, split, run_dir, diagnostics, config_hash = args
    run_dir = Path(run_dir) if run_dir is not None else None  # None: the driver writes
    return _run_one(cfg, _WORKER_DATA[key], fold, split, run_dir, False, diagnostics, config_hash)


def _run_parallel(
    plan: StudyPlan, jobs: list[tuple[str, int]], out: Path, workers: int, finished: Any
) -> None:
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # fork after torch threads start can hang
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(threads,)
    ) as pool:
        futures = {
            pool.submit(
                _worker_run,
                plan.variants[name].to_dict(),
                fold,
                plan.splits[fold],
                str(out / "runs" / name / f"fold{fold}"),
                plan.study.diagnostics(),
                plan.config_hash,
            ): (name, fold)
            for name, fold in jobs
        }
        for future in as_completed(futures):
            name, fold = futures[future]
            finished(name, fold, future.result())


def _lr_find(cfg: Config, prepared: Any) -> dict[str, Any]:
    """The LR range test (seed 000's reading) on the run's model and optimizer at
    initialization; the model and optimizer are rebuilt from the seed, so the run is unaffected."""
    from goodfit.app.build import build_model, build_optimizer
    from goodfit.diagnose.lr_find import lr_find
    from goodfit.train.loop import seed_everything

    seed_everything(cfg.train.seed)
    ds = prepared.dataset
    model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
    optimizer = build_optimizer(cfg.optimizer, model)
    result = lr_find(
        model,
        prepared.train,
        optimizer=optimizer,
        batch_size=cfg.train.batch_size,
        steps=100,
        seed=cfg.train.seed,
    )
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


def _results_header(plan: StudyPlan, data: dict[str, Any]) -> dict[str, Any]:
    ds, study = plan.dataset, plan.study
    return {
        "schema_version": 2,
        "title": study.title,
        "dataset": {
            "name": ds.name,
            "task": ds.task,
            "n_train": ds.n_train,
            "n_test": ds.n_test,
            "input_shape": list(ds.input_shape),
            "num_classes": ds.num_classes,
        },
        "classes": [str(c) for c in ds.classes] if ds.classes is not None else None,
        "metric": plan.metric,
        "baseline": study.baseline or study.variants[0].name,
        "reference_error": study.reference_error,
        "test": plan.test,
        "alpha": study.alpha,
        "rope": study.rope,
        "config_hash": plan.config_hash,
        "splits": {
            "kind": plan.splits_kind,
            "params": plan.splits_params,
            "seed": plan.base.train.seed,
            "n_splits": len(plan.splits),
        },
        "variants": {
            v.name: {"overrides": v.set, "description": v.description, "folds": []}
            for v in study.variants
        },
        "config": config_to_toml(data),
    }


def _finished(run_dir: Path, config_hash: str) -> bool:
    """Whether ``run_dir`` holds a finished run of this study config (another config's result
    is refused, never mixed in)."""
    done = run_dir / "summary.json"
    if not done.exists():
        return False
    try:
        stored = json.loads(done.read_text()).get("config_hash")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        stored = None
    if stored != config_hash:
        raise ConfigError(
            f"{run_dir} holds a result of another study configuration (or a damaged one); "
            "resume a study with the config it started with, or choose another --out"
        )
    return True


def _train_all(
    plan: StudyPlan,
    out: Path,
    bar: StudyProgress,
    workers: int,
    backend: str = "process",
    address: str | None = None,
) -> None:
    jobs: list[tuple[str, int]] = []
    for name, cfg in plan.variants.items():
        for fold in range(len(plan.splits)):
            run_dir = out / "runs" / name / f"fold{fold}"
            if _finished(run_dir, plan.config_hash):
                bar.advance(f"{name} fold {fold + 1} (done before)")
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "config.toml", config_to_toml(cfg.to_dict()))
            jobs.append((name, fold))

    def finished(name: str, fold: int, fold_result: dict[str, Any]) -> None:
        score = fold_result["scores"].get(plan.metric, float("nan"))
        bar.advance(f"{name} fold {fold + 1}: {plan.metric}={score:.4f}")

    if backend == "ray":  # a Ray task per run (app/backend_ray.py)
        from goodfit.app.backend_ray import run_study_jobs

        run_study_jobs(plan, jobs, out, finished, address, write_fold)
        return
    if workers > 1 and len(jobs) > 1:
        _run_parallel(plan, jobs, out, workers, finished)
        return
    if plan.study.vectorize:
        jobs = _train_vectorized(plan, jobs, out, bar, finished)
    for name, fold in jobs:
        bar.describe(f"{name} fold {fold + 1}/{len(plan.splits)}")
        run_dir = out / "runs" / name / f"fold{fold}"
        result = _run_one(
            plan.variants[name],
            plan.dataset,
            fold,
            plan.splits[fold],
            run_dir,
            bar.inner,
            plan.study.diagnostics(),
            plan.config_hash,
        )
        finished(name, fold, result)


def _train_vectorized(
    plan: StudyPlan, jobs: list[tuple[str, int]], out: Path, bar: StudyProgress, finished: Any
) -> list[tuple[str, int]]:
    """Each variant's pending folds as vectorized groups (one per fold size); returns the jobs
    left to run serially (variants that cannot be vectorized, folds alone in their size)."""
    from goodfit.app.study_vectorized import train_variant_vectorized

    left = []
    for name in plan.variants:
        folds = [f for n, f in jobs if n == name]
        if not folds:
            continue
        bar.describe(f"{name}: {len(folds)} folds as vectorized groups")
        cfg = plan.variants[name]
        trained, serial = train_variant_vectorized(
            cfg, plan.dataset, folds, plan.splits, plan.study.diagnostics()
        )
        left += [(name, f) for f in serial]
        for f, (model, prepared, held_out, result) in sorted(trained.items()):
            record = fold_record(
                cfg,
                model,
                plan.dataset,
                prepared,
                held_out,
                f,
                plan.splits[f],
                result,
                plan.config_hash,
            )
            record.update(result.extra)
            write_fold(out / "runs" / name / f"fold{f}", record)
            finished(name, f, record)
    return left


def run_study(
    data: dict[str, Any],
    out_dir: str | Path,
    *,
    source: str = "study",
    progress: bool | None = None,
    workers: int | None = None,
    force: bool = False,
    backend: str | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Run a study config (a dict as read from TOML) into ``out_dir``; returns the results dict
    (also written as ``results.json``, with ``report.html`` beside it).

    ``workers`` (default: the study's ``workers``, 1 unless set) runs that many (variant, fold)
    runs at once in separate processes (the study's progress bar only; no per-run bar), each with
    ``cores // workers`` torch threads; every run is seeded alone, so results match a serial
    study (up to the summation order of multithreaded kernels; identical in our CPU tests).
    ``backend="ray"`` (or ``[study] backend``) runs each run as a Ray task instead, on the cluster
    at ``address`` (else a local instance), see :mod:`goodfit.app.backend_ray`.
    """
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ConfigError(f"--workers must be an integer >= 1, got {workers!r}")
    t0 = time.perf_counter()
    plan = prepare_study(data, source)
    workers = plan.study.workers if workers is None else workers
    from goodfit.app.backend_ray import check_backend

    address = address or plan.study.address
    backend = check_backend(backend or plan.study.backend, address)
    out = Path(out_dir)
    from goodfit.app.run_folder import claim_run_folder

    def no_other_config(marker: dict[str, Any] | None) -> None:
        for done in sorted(out.glob("runs/*/fold*")):
            _finished(done, plan.config_hash)  # refuses another config's result

    with claim_run_folder(
        out, kind="study", config_hash=plan.config_hash, force=force, check=no_other_config
    ):
        atomic_write_text(out / "study.toml", config_to_toml(data))
        results = _results_header(plan, data)
        with StudyProgress(progress, len(plan.variants) * len(plan.splits)) as bar:
            _train_all(plan, out, bar, workers, backend, address)
        for name in plan.variants:
            for fold in range(len(plan.splits)):
                done = out / "runs" / name / f"fold{fold}" / "summary.json"
                results["variants"][name]["folds"].append(json.loads(done.read_text()))
        schedule = _schedule_curve(plan)
        if schedule is not None:
            results["schedule"] = schedule
        results["environment"] = _environment(plan.base.train.device, time.perf_counter() - t0)
        from goodfit.report.html import write_report
        from goodfit.select.analysis import analyze_results

        results["analysis"] = analyze_results(results)
        for name, comparison in results["analysis"]["comparisons"].items():
            results["variants"][name]["comparison"] = comparison
        atomic_write_text(out / "results.json", json.dumps(json_safe(results), indent=1) + "\n")
        write_report(results, out / "report.html")
    return results


def _schedule_curve(plan: StudyPlan) -> dict[str, Any] | None:
    """The base config's schedule as it trains on the first fold (the same builder as a run)."""
    base = plan.base
    if base.schedule is None or base.schedule.name == "reduce_on_plateau":
        return None
    from goodfit.app.build import build_run

    prepared = prepare_from_config(base, plan.dataset, pool=plan.splits[0][0])
    parts = build_run(base, prepared)
    unit = parts.steps_per_epoch if base.schedule.interval == "step" else 1
    n = base.train.epochs * unit
    stride = max(1, n // 400)
    steps = list(range(0, n, stride))
    return {
        "name": base.schedule.name,
        "steps": steps,
        "lr": [float(parts.schedule(s)) for s in steps],
    }
