"""``goodfit search``: hyperparameter search over any config key, on Optuna, each trial
cross-validated, pruned on its per-epoch curve, stored in the search folder and resumable.

A search config is a training config with a ``[search]`` table::

    [search]
    metric = "val_accuracy"                          # direction from the metric (loss: minimize)
    trials = 40                                      # finished trials the study should hold
    splits = { kind = "stratified_kfold", k = 3 }    # goodfit.data.splits kinds (holdout too)
    sampler = "tpe"                                  # tpe | random | grid | cmaes
    pruner = "median"                                # median | hyperband | none
    pruner_options = { n_startup_trials = 5 }        # Optuna's keyword arguments
    [search.space]
    "optimizer.lr" = { log_uniform = [1e-4, 1e-1] }  # see goodfit.app.search_space

Each trial trains the base config with the sampled values on every split (the fold's training
part prepared exactly as a study's fold; its held-out part scores the trial) and reports, after
every epoch, the mean over the folds so far of the held-out metric at that epoch
(``trial.report(value, step=fold * epochs + epoch)``); Optuna's pruner may stop it. The trial's
value is the mean over folds of the held-out metric of the (early-stopping restored) model.

The Optuna study lives in ``study.journal`` (Optuna's journal file storage) in the search
folder: ``optuna.load_study(study_name="goodfit", storage=journal_storage(folder))`` opens it.
Rerunning the same command continues the study (finished trials kept; a trial a kill
interrupted is recorded as failed and its parameters run again, ``rerun_of`` it);
``--trials N`` extends a finished search to N finished trials. Every trial's sampler is seeded
from ``(train.seed, trial number)``, so ``--workers N`` (processes sharing the storage) draws
the same parameters as a serial search with the random sampler.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from goodfit.app.config import (
    Config,
    apply_overrides,
    config_to_toml,
    format_validation_error,
    parse_config,
)
from goodfit.app.search_space import Param, check_space, grid_space, parse_space, suggest
from goodfit.app.sections import SearchConfig
from goodfit.errors import ConfigError, GoodfitError
from goodfit.hooks import Callback

__all__ = ["STUDY_NAME", "SearchPlan", "journal_storage", "prepare_search", "run_search"]

#: The Optuna study's name inside ``study.journal``.
STUDY_NAME = "goodfit"
STORAGE_NAME = "study.journal"
ASK_LOCK = ".search-ask.lock"
#: Config keys that may change when a search is resumed (the budget and the parallelism).
RESUMABLE = ("trials", "workers")


@dataclasses.dataclass
class SearchPlan:
    """A validated search: the base config (data and parsed), the ``[search]`` table, the
    space, the dataset (loaded once), the splits, the metric and its direction."""

    data: dict[str, Any]
    base: Config
    search: SearchConfig
    params: list[Param]
    dataset: Any
    splits: list[Any]
    splits_kind: str
    metric: str
    direction: str
    config_hash: str
    source: str


def journal_storage(folder: str | Path) -> Any:
    """The search folder's Optuna storage (``study.journal``, Optuna's journal file storage)."""
    import optuna

    backend = optuna.storages.journal.JournalFileBackend(str(Path(folder) / STORAGE_NAME))
    return optuna.storages.JournalStorage(backend)


def _parse_search(data: Any, source: str) -> SearchConfig:
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as err:
        text = format_validation_error(err, source)
        raise ConfigError(text.replace(f"{source}: ", f"{source}: search.")) from None


def _splits(search: SearchConfig, dataset: Any, seed: int, source: str) -> tuple[str, list]:
    from goodfit.data.splits import make_splits, n_splits

    params = dict(search.splits)
    kind = params.pop("kind", "stratified_kfold")
    if dataset.task != "classification":
        kind = {"stratified_kfold": "kfold", "repeated_stratified_kfold": "repeated_kfold"}.get(
            kind, kind
        )
    y = dataset.y_train.numpy() if dataset.task == "classification" else None
    try:
        n_splits(kind, dataset.n_train, **params)
        return kind, make_splits(kind, dataset.n_train, y, seed=seed, **params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: search.splits: {err}") from None


def _metric(search: SearchConfig, task: str, source: str) -> tuple[str, str]:
    if task == "multitask":
        raise ConfigError(
            f"{source}: goodfit search does not support multitask data yet; compare multitask "
            "settings with goodfit study (study.metric may name a task's metric)"
        )
    allowed = ["val_loss", "val_accuracy"] if task == "classification" else ["val_loss"]
    metric = search.metric or allowed[-1]
    if metric not in allowed:
        raise ConfigError(
            f"{source}: search.metric = {metric!r} is not a held-out metric of this {task} "
            f"search; allowed: {', '.join(allowed)} (the test set is kept for the final estimate)"
        )
    return metric, "maximize" if metric.endswith("accuracy") else "minimize"


def _hash(data: dict[str, Any]) -> str:
    """The search's identity: the whole config but the keys a resume may change."""
    data = copy.deepcopy(data)
    for key in RESUMABLE:
        data.get("search", {}).pop(key, None)
    return hashlib.sha256(config_to_toml(data).encode()).hexdigest()[:16]


def prepare_search(
    data: dict[str, Any], source: str = "search", *, validate: bool = True
) -> SearchPlan:
    """Validate the base config, the ``[search]`` table and the whole space (each range end and
    each choice built on the dataset), the sampler and the pruner, before any trial."""
    from goodfit.app.build import check_buildable, load_dataset_from_config, prepare_from_config

    data = copy.deepcopy(data)
    if data.get("search") is None:
        raise ConfigError(f"{source}: a search config needs a [search] table with a space")
    search = _parse_search(data["search"], source)
    base_data = {k: v for k, v in data.items() if k not in ("search", "study")}
    base = parse_config(base_data, source)
    params = parse_space(search.space, source)
    dataset = load_dataset_from_config(base.data)
    metric, direction = _metric(search, dataset.task, source)
    kind, splits = _splits(search, dataset, base.train.seed, source)
    plan = SearchPlan(
        base_data,
        base,
        search,
        params,
        dataset,
        splits,
        kind,
        metric,
        direction,
        _hash(data),
        source,
    )
    if validate:
        check_buildable(base, prepare_from_config(base, dataset))
        check_space(params, base_data, dataset, source)
        make_sampler(plan, 0)
        make_pruner(plan)
        _enqueued(plan)
    return plan


def make_sampler(plan: SearchPlan, number: int) -> Any:
    """The sampler for trial ``number``, seeded from ``(train.seed, number)``."""
    import numpy as np
    import optuna

    seed = int(np.random.SeedSequence([plan.base.train.seed, number]).generate_state(1)[0])
    name, options = plan.search.sampler, dict(plan.search.sampler_options)
    where = f"{plan.source}: search.sampler_options"
    if name == "grid":  # the grid's order is shuffled by the seed: one seed for all trials
        if options:
            raise ConfigError(f"{where}: the grid sampler takes no options")
        grid = grid_space(plan.params, plan.source)
        return optuna.samplers.GridSampler(grid, seed=plan.base.train.seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CMA-ES sampler needs it)
        except ImportError:
            raise ConfigError(
                f"{plan.source}: search.sampler = 'cmaes' needs the cmaes package "
                "(pip install cmaes)"
            ) from None
    factories = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
    }
    return _built(factories[name], where, seed=seed, **options)


def make_pruner(plan: SearchPlan) -> Any:
    """Optuna's pruner named by ``search.pruner`` with ``search.pruner_options``."""
    import optuna

    name, options = plan.search.pruner, dict(plan.search.pruner_options)
    factories = {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }
    return _built(factories[name], f"{plan.source}: search.pruner_options", **options)


def _built(factory: Any, where: str, **options: Any) -> Any:
    """``factory(**options)``, a bad option becoming a :class:`ConfigError` naming ``where``."""
    try:
        return factory(**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _enqueued(plan: SearchPlan) -> list[dict[str, Any]]:
    """``search.enqueue``: the trials to run first, as Optuna's encoded parameters."""
    by_key = {p.key: p for p in plan.params}
    out = []
    for i, values in enumerate(plan.search.enqueue):
        where = f"{plan.source}: search.enqueue[{i}]"
        encoded = {}
        for key, value in values.items():
            p = by_key.get(key)
            if p is None:
                raise ConfigError(f"{where}: {key!r} is not a key of [search.space]")
            if p.kind == "choice":
                if value not in p.choices:
                    raise ConfigError(f"{where}: {key} = {value!r} is not one of {list(p.choices)}")
                value = p.encoded[p.choices.index(value)]
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (p.low <= value <= p.high)
            ):
                raise ConfigError(f"{where}: {key} = {value!r} is outside [{p.low}, {p.high}]")
            encoded[key] = value
        out.append(encoded)
    return out


def trial_config(plan: SearchPlan, values: dict[str, Any], where: str = "trial") -> Config:
    """The base config with a trial's values (dotted key -> config value) set."""
    return parse_config(apply_overrides(plan.data, values), where)


def trial_values(plan: SearchPlan, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's stored (encoded) parameters -> dotted key -> config value, in space order."""
    return {p.key: p.decode(params[p.key]) for p in plan.params if p.key in params}


class TrialReporter(Callback):
    """After each epoch: the held-out metric of this fold, averaged with the earlier folds'
    curves at the same epoch, reported to the Optuna trial; a stop is requested when the
    pruner says so."""

    def __init__(self, trial: Any, held_out: Any, plan: SearchPlan, fold: int, curves: list):
        self.trial, self.held_out, self.plan, self.fold = trial, held_out, plan, fold
        self.curves = curves
        self.curve: list[float] = []
        curves.append(self.curve)
        self.pruned = False

    def on_epoch_end(self, trainer: Any) -> None:
        from goodfit.train.loop import evaluate

        scores = evaluate(trainer.model, *self.held_out, task=trainer.task, prefix="val_")
        self.curve.append(float(scores[self.plan.metric]))
        epoch = len(self.curve) - 1
        at_epoch = [c[min(epoch, len(c) - 1)] for c in self.curves if c]
        value = sum(at_epoch) / len(at_epoch)
        if not math.isfinite(value):
            return
        self.trial.report(value, step=self.fold * self.plan.base.train.epochs + epoch)
        if self.trial.should_prune():
            self.pruned = True
            trainer.request_stop("pruned")


def run_trial(plan: SearchPlan, trial: Any, progress: Any = False) -> float:
    """Train one trial on every split; its value is the mean held-out metric. Raises
    :class:`optuna.TrialPruned` when the pruner stops it."""
    import optuna

    from goodfit.app.build import prepare_from_config
    from goodfit.app.run import run_config
    from goodfit.train.loop import evaluate

    values = suggest(trial, plan.params)
    cfg = trial_config(plan, values, f"{plan.source} (trial {trial.number})")
    cfg.checkpoint.enabled = False
    curves: list[list[float]] = []
    scores, folds = [], []
    for fold, (train_idx, held_idx) in enumerate(plan.splits):
        prepared = prepare_from_config(
            cfg, plan.dataset, seed=cfg.train.seed + fold, pool=train_idx
        )
        held_out = prepared.rows(held_idx)
        reporter = TrialReporter(trial, held_out, plan, fold, curves)
        result = run_config(
            cfg,
            None,
            data=prepared,
            progress=progress,
            extra_callbacks=[reporter],
            write_plots=False,
        )
        if reporter.pruned:
            trial.set_user_attr("pruned_at", f"fold {fold + 1}, epoch {len(reporter.curve)}")
            raise optuna.TrialPruned()
        held = evaluate(result.model, *held_out, task=plan.dataset.task, prefix="val_")
        scores.append(float(held[plan.metric]))
        folds.append({"fold": fold, **held, "epochs_run": result.summary.get("epochs_run")})
    trial.set_user_attr("folds", folds)
    trial.set_user_attr("curves", curves)
    return sum(scores) / len(scores)


@contextlib.contextmanager
def _ask_lock(out: Path) -> Iterator[None]:
    """Serializes "count the trials, then ask for one" between the workers of one search."""
    import fcntl

    with open(out / ASK_LOCK, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def finished_count(trials: list[Any]) -> int:
    """Trials that count towards the budget: complete, pruned, or failed (but not the ones a
    kill interrupted, which a later trial re-runs: ``rerun_of``)."""
    from optuna.trial import TrialState

    rerun = {t.user_attrs.get("rerun_of") for t in trials}
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.number not in rerun)
        for t in trials
    )


def _next_trial(plan: SearchPlan, storage: Any, out: Path, target: int) -> tuple[Any, Any]:
    """``(study, trial)`` for the next trial, ``(None, None)`` once the budget is reached."""
    import optuna
    from optuna.trial import TrialState

    with _ask_lock(out):
        probe = optuna.load_study(study_name=STUDY_NAME, storage=storage)
        trials = probe.get_trials(deepcopy=False)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if finished_count(trials) + running >= target:
            return None, None
        study = optuna.load_study(
            study_name=STUDY_NAME,
            storage=storage,
            sampler=make_sampler(plan, len(trials)),
            pruner=make_pruner(plan),
        )
        return study, study.ask()


def _tell(study: Any, trial: Any, value: float | None = None, state: Any = None) -> Any:
    """``study.tell``; the grid sampler's ``study.stop()`` once its grid is covered (which
    raises outside ``study.optimize``, after the result is stored) ends nothing here: the
    budget is capped at the grid's size."""
    try:
        return study.tell(trial, value, state=state)
    except RuntimeError:
        if study.get_trials(deepcopy=False)[trial.number].state.is_finished():
            return study.get_trials(deepcopy=False)[trial.number]
        raise


def grid_size(plan: SearchPlan) -> int | None:
    """The number of points of the grid sampler's grid (``None`` for the other samplers)."""
    if plan.search.sampler != "grid":
        return None
    return math.prod(len(v) for v in grid_space(plan.params, plan.source).values())


def work(plan: SearchPlan, out: Path, target: int, progress: Any = None) -> None:
    """Run trials until the study holds ``target`` finished ones (one worker's loop)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = journal_storage(out)
    while True:
        study, trial = _next_trial(plan, storage, out, target)
        if study is None:
            return
        if progress is not None:
            progress.start_trial(trial.number)
        try:
            value = run_trial(plan, trial, progress.inner if progress is not None else False)
        except optuna.TrialPruned:
            frozen = _tell(study, trial, state=TrialState.PRUNED)
        except GoodfitError as err:  # diverged, or a combination of values that does not build
            trial.set_user_attr("failed", str(err))
            frozen = _tell(study, trial, state=TrialState.FAIL)
        except Exception as err:  # a bug: recorded, then raised
            trial.set_user_attr("failed", f"{type(err).__name__}: {err}")
            _tell(study, trial, state=TrialState.FAIL)
            raise
        else:
            frozen = _tell(study, trial, value)
        if progress is not None:
            progress.finished(frozen, study)


def open_study(plan: SearchPlan, out: Path) -> Any:
    """Create (or load) the search folder's study; a trial a kill left running (the folder is
    locked, so no live process runs it) is recorded as failed and its parameters queued to run
    again (``rerun_of``); ``search.enqueue`` is queued when the study is new."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = journal_storage(out)
    new = STUDY_NAME not in optuna.get_all_study_names(storage)
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=storage, direction=plan.direction, load_if_exists=True
    )
    if new:
        study.set_user_attr("metric", plan.metric)
        study.set_user_attr("config_hash", plan.config_hash)
        for params in _enqueued(plan):
            study.enqueue_trial(params)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.enqueue_trial(dict(t.params), user_attrs={"rerun_of": t.number})
        study.tell(t.number, state=TrialState.FAIL)
    return study


def _worker_main(data: dict[str, Any], source: str, out: str, target: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    work(prepare_search(data, source, validate=False), Path(out), target)


def run_parallel(plan: SearchPlan, out: Path, target: int, workers: int, bar: Any) -> None:
    """``workers`` processes, each running :func:`work` on the shared storage; the parent
    follows the storage for the progress lines."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    import optuna

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # fork after torch threads start can hang
    storage = journal_storage(out)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [
            pool.submit(
                _worker_main,
                plan.data | {"search": plan.search.model_dump()},
                plan.source,
                str(out),
                target,
                threads,
            )
            for _ in range(workers)
        ]
        while True:
            done, pending = wait(futures, timeout=1.0, return_when=FIRST_EXCEPTION)
            study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
            for t in study.get_trials(deepcopy=False):
                if t.state.is_finished():
                    bar.finished(t, study)  # the bar counts each trial once
            if not pending or any(f.exception() for f in done):
                break
        for f in futures:
            f.result()  # a worker's error is raised here


def run_search(
    data: dict[str, Any],
    out_dir: str | Path,
    *,
    source: str = "search",
    trials: int | None = None,
    workers: int | None = None,
    confirm: bool = False,
    progress: bool | None = None,
    force: bool = False,
    backend: str | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Run (or continue) the search of a config (a dict as read from TOML) into ``out_dir``;
    returns the ``search.json`` dict (``best.toml``, ``trials.csv`` and ``report.html`` are
    written beside it). ``trials``/``workers`` override ``[search]``'s; ``confirm`` re-runs the
    best and the base config as a two-variant study on fresh folds
    (``out_dir/confirm-trial<k>``). ``backend="ray"`` runs ``workers`` trials at a time as Ray
    tasks (:mod:`goodfit.app.backend_ray`)."""
    from goodfit.app.run_folder import claim_run_folder
    from goodfit.app.search_progress import SearchProgress
    from goodfit.app.search_report import write_outputs

    for name, value in (("--trials", trials), ("--workers", workers)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    t0 = time.perf_counter()
    plan = prepare_search(data, source)
    target = plan.search.trials if trials is None else trials
    target = min(target, grid_size(plan) or target)  # a grid is covered once
    workers = plan.search.workers if workers is None else workers
    from goodfit.app.backend_ray import check_backend, run_search_trials

    backend = check_backend(backend, address)
    out = Path(out_dir)

    def same_search(marker: dict[str, Any] | None) -> None:
        if marker is not None and marker.get("config_hash") != plan.config_hash:
            raise ConfigError(
                f"{out} holds a search with a different configuration (only search.trials and "
                "search.workers may change on a resume); rerun it with its config or choose "
                "another --out"
            )

    with claim_run_folder(
        out, kind="search", config_hash=plan.config_hash, force=force, check=same_search
    ):
        from goodfit.atomic import atomic_write_text

        atomic_write_text(out / "search.toml", config_to_toml(data))
        study = open_study(plan, out)
        with SearchProgress(progress, target, plan.direction) as bar:
            bar.catch_up(study)
            if backend == "ray":
                run_search_trials(plan, out, target, workers, bar, address)
            elif workers > 1:
                run_parallel(plan, out, target, workers, bar)
            else:
                work(plan, out, target, bar)
        return write_outputs(plan, out, confirm=confirm, t0=t0)


def best_config(plan: SearchPlan, study: Any) -> Config:
    """The base config with the best trial's values: a complete config ``goodfit train`` runs."""
    try:
        best = study.best_trial
    except ValueError:
        raise GoodfitError(
            "no trial of the search completed (all were pruned or failed); widen the space or "
            "relax the pruner"
        ) from None
    return trial_config(plan, trial_values(plan, best.params), f"{plan.source} (best trial)")
