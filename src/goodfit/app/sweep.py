"""``goodfit sweep CONFIG.toml``: one config key swept over values, every point trained to the
end — model-wise, epoch-wise and sample-wise double descent (seed 003: Belkin et al. 2019;
Nakkiran et al. 2019, *Deep Double Descent*).

A sweep config is a training config with a ``[sweep]`` table::

    [data]
    name = "mnist1d"
    label_noise = 0.15

    [sweep]
    param = "model.widths"                 # any dotted config key
    values = [[4, 4], [8, 8], [16, 16], [32, 32]]
    interpolation_eps = 0.005

Each point is the base config with ``param = value``, run by the same code as ``goodfit train``
(:func:`goodfit.app.run.run_config`, into ``points/<i>-<value>/``, a normal run folder), with a
callback that records the training and test error every ``eval_every`` epochs. So a point is
exactly the run ``goodfit train`` makes of that config (the extra evaluations use no random
numbers and leave the model in training mode). Early stopping is off unless the config has an
``[early_stopping]`` table. Finished points are skipped when the sweep is run again with the
same config (a killed point resumes from its checkpoint); another config's folder is refused.

Outputs: ``sweep.json`` (``param``, ``points``: ``value``, ``n_params``, final ``train_error``,
``test_error``, ``train_loss``, ``test_loss``, ``epochs`` with ``train_error_by_epoch`` and
``test_error_by_epoch``; ``interpolation_threshold``, and for ``data.train_size`` the effective
model complexity ``emc``) and ``report.html`` (:mod:`goodfit.app.sweep_report`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from goodfit.app.config import Config, apply_overrides, config_to_toml, parse_config
from goodfit.app.sections_sweep import SweepConfig
from goodfit.atomic import atomic_write_text
from goodfit.errors import ConfigError
from goodfit.hooks import Callback
from goodfit.train.history import json_safe

__all__ = ["ErrorTracker", "SweepPlan", "effective_model_complexity", "prepare_sweep", "run_sweep"]

POINT_FILE = "point.json"


class ErrorTracker(Callback):
    """Records ``sweep_{train,test}_{error,loss}`` in the epoch's history record every
    ``every`` epochs and at the last one (error: ``1 - accuracy``, or the MSE for regression),
    on the part the model trains on (its labels, noisy ones included) and the test set."""

    def __init__(self, train: Any, test: Any, task: str, every: int = 1) -> None:
        self.train, self.test, self.task, self.every = train, test, task, every

    def on_epoch_end(self, trainer: Any) -> None:
        epoch = trainer.epoch + 1
        if epoch % self.every and epoch != trainer.epochs:
            return
        for name, (X, y) in (("train", self.train), ("test", self.test)):
            for key, value in error_and_loss(trainer.model, X, y, self.task).items():
                trainer.log(f"sweep_{name}_{key}", value)


def error_and_loss(model: Any, X: Any, y: Any, task: str) -> dict[str, float]:
    """``{"error": ..., "loss": ...}`` of ``model`` on ``(X, y)`` in eval mode (mode restored)."""
    from goodfit.train.loop import evaluate

    m = evaluate(model, X, y, task=task)
    error = 1.0 - m["accuracy"] if task == "classification" else m["loss"]
    return {"error": float(error), "loss": float(m["loss"])}


class SweepPlan:
    """A validated sweep: the ``[sweep]`` table, each point's config (as plain data and
    validated), the folder name of each point and the config's hash."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        cfg = parse_config(data, source)
        if cfg.sweep is None:
            raise ConfigError(f"{source}: goodfit sweep needs a [sweep] table (param, values)")
        self.sweep: SweepConfig = cfg.sweep
        base = {k: v for k, v in data.items() if k != "sweep"}
        self.points: list[dict[str, Any]] = []
        self.configs: list[Config] = []
        for i, value in enumerate(self.sweep.values):
            point = apply_overrides(base, {self.sweep.param: value})
            where = f"{source}: [sweep] values[{i}] = {value!r} for {self.sweep.param}"
            self.configs.append(parse_config(point, where))
            self.points.append(point)
        self.names = [f"{i:03d}-{_label(v)}" for i, v in enumerate(self.sweep.values)]
        text = json.dumps(data, sort_keys=True, default=str)
        self.config_hash = hashlib.sha256(text.encode()).hexdigest()[:16]


def _label(value: Any) -> str:
    text = "x".join(map(str, value)) if isinstance(value, list) else str(value)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)[:40] or "value"


def prepare_sweep(data: dict[str, Any], source: str = "sweep") -> SweepPlan:
    """Validate a sweep config (a dict as read from TOML) and build every point: an unknown
    key, an empty ``values`` or a value a point cannot build is a :class:`ConfigError` here,
    before any training."""
    from goodfit.app.build import check_buildable, load_dataset_from_config, prepare_from_config

    plan = SweepPlan(data, source)
    datasets: dict[str, Any] = {}
    for i, cfg in enumerate(plan.configs):
        key = json.dumps(cfg.data.model_dump(mode="json"), sort_keys=True)
        if key not in datasets:
            datasets[key] = load_dataset_from_config(cfg.data)
        try:
            check_buildable(cfg, prepare_from_config(cfg, datasets[key]))
        except ConfigError as err:
            raise ConfigError(f"{source}: [sweep] values[{i}]: {err}") from None
    return plan


def run_point(cfg_data: dict[str, Any], point_dir: str, every: int, config_hash: str) -> dict:
    """Train one point through :func:`goodfit.app.run.run_config` (``goodfit train``'s path)
    into ``point_dir`` and return (and write to ``point.json``) its sweep record."""
    from goodfit.app.build import load_dataset_from_config, prepare_from_config
    from goodfit.app.run import run_config

    cfg = parse_config(cfg_data)
    prepared = prepare_from_config(cfg, load_dataset_from_config(cfg.data))
    task = prepared.dataset.task
    tracker = ErrorTracker(prepared.train, prepared.test, task, every)
    out = Path(point_dir)
    resume = (out / "checkpoints").exists()
    result = run_config(
        cfg, out, resume=resume, data=prepared, extra_callbacks=[tracker], progress=False
    )
    final_train = error_and_loss(result.model, *prepared.train, task)
    final_test = error_and_loss(result.model, *prepared.test, task)
    tracked = [r for r in result.records if "sweep_test_error" in r]
    record = {
        "config_hash": config_hash,
        "n_params": result.summary["n_parameters"],
        "n_train": len(prepared.train[0]),
        "train_error": final_train["error"],
        "test_error": final_test["error"],
        "train_loss": final_train["loss"],
        "test_loss": final_test["loss"],
        "epochs": [r["epoch"] for r in tracked],
        "train_error_by_epoch": [r["sweep_train_error"] for r in tracked],
        "test_error_by_epoch": [r["sweep_test_error"] for r in tracked],
        "train_loss_by_epoch": [r["sweep_train_loss"] for r in tracked],
        "test_loss_by_epoch": [r["sweep_test_loss"] for r in tracked],
        "epochs_run": result.summary.get("epochs_run"),
        "wall_seconds": result.summary.get("wall_seconds"),
    }
    atomic_write_text(out / POINT_FILE, json.dumps(json_safe(record)) + "\n")
    return record


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _finished(point_dir: Path, config_hash: str) -> dict[str, Any] | None:
    try:
        record = json.loads((point_dir / POINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("config_hash") == config_hash else None


def _run_points(
    plan: SweepPlan,
    out: Path,
    workers: int,
    progress: bool,
    backend: str = "process",
    address: str | None = None,
) -> list[dict]:
    """Every point's record: finished ones read back, the others trained (``workers`` at a
    time in spawned processes, ``cores // workers`` torch threads each, or as Ray tasks)."""
    records: dict[int, dict[str, Any]] = {}
    todo = []
    for i, name in enumerate(plan.names):
        done = _finished(out / "points" / name, plan.config_hash)
        if done is not None:
            records[i] = done
        else:
            todo.append(i)
    args = {
        i: (plan.points[i], str(out / "points" / plan.names[i]), plan.sweep.eval_every,
            plan.config_hash)
        for i in todo
    }  # fmt: skip
    if backend == "ray" and todo:
        from goodfit.app.backend_ray import run_sweep_points

        def finished(i: int, record: dict[str, Any]) -> None:
            records[i] = record
            _say(progress, plan, i, record)

        run_sweep_points(plan, todo, out, address, finished)
    elif workers > 1 and len(todo) > 1:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_worker_init, initargs=(threads,)
        ) as pool:
            futures = {i: pool.submit(run_point, *args[i]) for i in todo}
            for i, future in futures.items():
                records[i] = future.result()
                _say(progress, plan, i, records[i])
    else:
        for i in todo:
            records[i] = run_point(*args[i])
            _say(progress, plan, i, records[i])
    return [records[i] for i in range(len(plan.names))]


def _say(progress: bool, plan: SweepPlan, i: int, r: dict[str, Any]) -> None:
    if progress:
        print(f"{plan.sweep.param} = {plan.sweep.values[i]!r}: train error "
              f"{r['train_error']:.4f}, test error {r['test_error']:.4f} "
              f"({r['n_params']} parameters, {r['wall_seconds']:.1f} s)", flush=True)  # fmt: skip


def x_of(value: Any, index: int) -> float:
    """The value's position on the x axis: the number itself, the largest entry of a list (a
    width list such as ``[64, 64]``), else its index."""
    if isinstance(value, bool):
        return float(index)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return float(max(value))
    return float(index)


def interpolation_threshold(points: list[dict[str, Any]], eps: float) -> Any:
    """The first value (in increasing x) whose final training error is at most ``eps``."""
    for p in sorted(points, key=lambda p: p["x"]):
        if p["train_error"] <= eps:
            return p["value"]
    return None


def effective_model_complexity(points: list[dict[str, Any]], eps: float) -> int | None:
    """Seed 003's EMC of the training procedure: the largest number of training samples ``n``
    whose training error is at most ``eps`` (Nakkiran et al. 2019, Definition 1; one training
    run per ``n`` stands in for the expectation over training sets)."""
    fits = [p["n_train"] for p in points if p["train_error"] <= eps]
    return max(fits) if fits else None


#: The critical band of the EMC hypothesis, read as "EMC within this factor of n".
CRITICAL_FACTOR = 2.0


def regimes(points: list[dict[str, Any]], param: str, eps: float) -> list[dict[str, Any]]:
    """Seed 003's three regimes of the EMC hypothesis along the swept x: critically
    parameterized where EMC ~ n, read as within :data:`CRITICAL_FACTOR` of the interpolation
    threshold (model size, epochs: the first x with training error <= eps, where EMC reaches
    n) or of the EMC itself (``data.train_size``); under-/over-parameterized on either side
    (for a sample sweep, more samples than the EMC is under-parameterized)."""
    xs = sorted(p["x"] for p in points)
    lo, hi = xs[0], xs[-1]
    if param == "data.train_size":
        centre = effective_model_complexity(points, eps)
        below, above = "over", "under"
    else:
        t = interpolation_threshold(points, eps)
        centre = next((p["x"] for p in points if p["value"] == t), None) if t is not None else None
        below, above = "under", "over"
    if centre is None:  # no point interpolates: EMC < n everywhere (or no n fits)
        return [{"regime": "under", "from": lo, "to": hi}]
    a, b = centre / CRITICAL_FACTOR, centre * CRITICAL_FACTOR
    out = [
        {"regime": below, "from": lo, "to": a},
        {"regime": "critical", "from": max(lo, a), "to": min(hi, b)},
        {"regime": above, "from": b, "to": hi},
    ]
    return [r for r in out if r["from"] < r["to"]]


def summarize(plan: SweepPlan, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``sweep.json``'s content."""
    sweep = plan.sweep
    points = []
    for i, (value, name, r) in enumerate(zip(sweep.values, plan.names, records, strict=True)):
        point = {"value": value, "x": x_of(value, i), "folder": f"points/{name}"}
        point.update({k: v for k, v in r.items() if k != "config_hash"})
        points.append(point)
    out: dict[str, Any] = {
        "title": sweep.title,
        "param": sweep.param,
        "interpolation_eps": sweep.interpolation_eps,
        "points": points,
        "interpolation_threshold": interpolation_threshold(points, sweep.interpolation_eps),
    }
    if sweep.param == "data.train_size":
        out["emc"] = effective_model_complexity(points, sweep.interpolation_eps)
    out["regimes"] = regimes(points, sweep.param, sweep.interpolation_eps)
    return out


def run_sweep(
    data: dict[str, Any],
    out_dir: str | Path,
    *,
    source: str = "sweep",
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    backend: str | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Run a sweep config (a dict as read from TOML) into ``out_dir``; returns ``sweep.json``'s
    content (written with ``report.html`` beside it). ``backend = "ray"`` trains the points as
    Ray tasks (:mod:`goodfit.app.backend_ray`; ``address``: a cluster to join)."""
    from goodfit.app.backend_ray import check_backend
    from goodfit.app.run_folder import claim_run_folder
    from goodfit.app.sweep_report import write_sweep_report

    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ConfigError(f"--workers must be an integer >= 1, got {workers!r}")
    backend = check_backend(backend, address)
    t0 = time.perf_counter()
    plan = prepare_sweep(data, source)
    workers = plan.sweep.workers if workers is None else workers
    out = Path(out_dir)

    def same_config(marker: dict[str, Any] | None) -> None:
        if marker is not None and marker.get("config_hash") != plan.config_hash:
            raise ConfigError(
                f"{out} holds a sweep with a different configuration; run it again with the "
                "same config to finish it, or choose another --out"
            )

    with claim_run_folder(
        out, kind="sweep", config_hash=plan.config_hash, force=force, check=same_config
    ):
        atomic_write_text(out / "sweep.toml", config_to_toml(data))
        records = _run_points(plan, out, workers, progress, backend, address)
        result = summarize(plan, records)
        result["wall_seconds"] = time.perf_counter() - t0
        atomic_write_text(out / "sweep.json", json.dumps(json_safe(result), indent=1) + "\n")
        write_sweep_report(result, out / "report.html")
    return result
