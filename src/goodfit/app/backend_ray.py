"""Studies and searches on Ray (``--backend ray [--address ADDRESS]``, ``[study] backend``).

Each (variant, fold) run of a study is one Ray task asking for the CPUs it trains with
(``train.threads``, default 1) and one GPU when ``train.device`` is CUDA. Without an address a
local Ray instance is started (and stopped at the end); with one, the driver joins that cluster
(``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others). Results
come back to the driver, which writes the study folder exactly as the process pool does, so the
cluster needs no shared file system; a resumed study skips the runs whose ``summary.json`` the
driver wrote before.

A search runs its trials as Ray tasks too. The driver alone asks Optuna for trials and tells their
results (so one sampler sequence, as with one worker); the tasks reach the search's storage (the
folder's journal) through Optuna's gRPC storage proxy served by the driver, so
``trial.report`` / ``trial.should_prune`` (pruning) and the trials' attributes work from any
machine.

Ray is an optional extra: ``pip install "goodfit[ray]"``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from goodfit.errors import ConfigError, GoodfitError

__all__ = [
    "BACKENDS",
    "RAY_HINT",
    "check_backend",
    "ray_session",
    "run_study_jobs",
    "run_sweep_points",
]

BACKENDS = ("process", "ray")
RAY_HINT = 'install the extra with: pip install "goodfit[ray]" (or pip install ray)'


def check_backend(backend: str | None, address: str | None) -> str:
    """The backend name, checked; ``ray`` needs Ray importable (else a ConfigError, exit 2,
    saying how to install the extra)."""
    backend = backend or "process"
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise ConfigError("--address connects to a Ray cluster: use it with --backend ray")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError(f"--backend ray: Ray is not installed; {RAY_HINT}") from None
    return backend


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray, initialized: the running instance if there is one, else the cluster at ``address``,
    else a new local instance (shut down on exit)."""
    import ray

    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise ConfigError(f"--backend ray: could not start or join {where}: {err}") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _resources(cfg: Any) -> dict[str, float]:
    gpu = cfg.train.device.startswith("cuda")
    return {"num_cpus": cfg.train.threads or 1, "num_gpus": 1 if gpu else 0}


def _study_task(cfg_data: dict[str, Any], *args: Any) -> dict[str, Any]:
    """One (variant, fold) run on a Ray worker; nothing is written there."""
    import torch

    from goodfit.app.study import _worker_run

    torch.set_num_threads(int(cfg_data.get("train", {}).get("threads") or 1))
    return _worker_run(cfg_data, *args)


def run_study_jobs(
    plan: Any,
    jobs: list[tuple[str, int]],
    out: Path,
    finished: Callable[[str, int, dict[str, Any]], None],
    address: str | None,
    write: Callable[[Path, dict[str, Any]], None],
) -> None:
    """The study's runs as Ray tasks; each result is written by the driver as it arrives."""
    with ray_session(address) as ray:
        task = ray.remote(_study_task)
        refs = {}
        for name, fold in jobs:
            cfg = plan.variants[name]
            ref = task.options(**_resources(cfg)).remote(
                cfg.to_dict(), fold, plan.splits[fold], None, plan.study.diagnostics(),
                plan.config_hash,
            )  # fmt: skip
            refs[ref] = (name, fold)
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            name, fold = refs.pop(done[0])
            result = _get(ray, done[0])
            write(out / "runs" / name / f"fold{fold}", result)
            finished(name, fold, result)


def _sweep_task(cfg_data: dict[str, Any], every: int, config_hash: str) -> tuple[dict, dict]:
    """One sweep point on a Ray worker, trained into a temporary run folder: its record and the
    folder's files (checkpoints left out) for the driver to write."""
    import tempfile

    import torch

    from goodfit.app.sweep import run_point

    torch.set_num_threads(int(cfg_data.get("train", {}).get("threads") or 1))
    with tempfile.TemporaryDirectory() as tmp:
        point = Path(tmp) / "point"
        record = run_point(cfg_data, str(point), every, config_hash)
        files = {
            str(f.relative_to(point)): f.read_bytes()
            for f in sorted(point.rglob("*"))
            if f.is_file() and f.name != ".goodfit.lock" and "checkpoints" not in f.parts
        }
    return record, files


def run_sweep_points(
    plan: Any,
    todo: list[int],
    out: Path,
    address: str | None,
    finished: Callable[[int, dict[str, Any]], None],
) -> None:
    """The sweep's unfinished points as Ray tasks; the driver writes each point's run folder as
    it arrives (``point.json`` last: it marks the point done), so no shared file system is
    needed. A killed sweep resumed with the same command retrains the points it had not received
    (from their start: their checkpoints stay on the workers)."""
    from goodfit.app.config import parse_config
    from goodfit.app.sweep import POINT_FILE
    from goodfit.atomic import atomic_write_bytes

    with ray_session(address) as ray:
        task = ray.remote(_sweep_task)
        refs = {}
        for i in todo:
            cfg = parse_config(plan.points[i])
            ref = task.options(**_resources(cfg)).remote(
                plan.points[i], plan.sweep.eval_every, plan.config_hash
            )
            refs[ref] = i
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            i = refs.pop(done[0])
            record, files = _get(ray, done[0])
            point_dir = out / "points" / plan.names[i]
            for rel in sorted(files, key=lambda name: name == POINT_FILE):
                (point_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(point_dir / rel, files[rel])
            finished(i, record)


def _get(ray: Any, ref: Any) -> Any:
    """``ray.get``, with a goodfit error raised on a worker re-raised as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = err.cause if isinstance(getattr(err, "cause", None), BaseException) else None
        if isinstance(cause, GoodfitError):
            raise cause from None
        raise


# ------------------------------------------------------------------------------------------------
# search
# ------------------------------------------------------------------------------------------------
def _trial_task(data: dict[str, Any], source: str, proxy: tuple[str, int], number: int, tid: int):
    """Trial ``number`` on a Ray worker, through the driver's gRPC storage proxy: its outcome
    (``("complete", value)``, ``("pruned", None)`` or ``("fail", message)``)."""
    import optuna
    import torch

    from goodfit.app.search import STUDY_NAME, make_pruner, make_sampler, prepare_search, run_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = prepare_search(data, source, validate=False)
    torch.set_num_threads(plan.base.train.threads or 1)
    storage = optuna.storages.GrpcStorageProxy(host=proxy[0], port=proxy[1])
    study = optuna.load_study(
        study_name=STUDY_NAME, storage=storage, sampler=make_sampler(plan, number),
        pruner=make_pruner(plan),
    )  # fmt: skip
    trial = optuna.trial.Trial(study, tid)
    try:
        return ("complete", run_trial(plan, trial))
    except optuna.TrialPruned:
        return ("pruned", None)
    except GoodfitError as err:  # diverged, or values that do not build
        trial.set_user_attr("failed", str(err))
        return ("fail", str(err))
    finally:
        storage.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _storage_proxy(storage: Any, ray: Any) -> Iterator[tuple[str, int]]:
    """Optuna's gRPC storage proxy for ``storage``, served by the driver while the search runs."""
    from optuna.storages._grpc.server import make_server

    port = _free_port()
    server = make_server(storage, "0.0.0.0", port)
    server.start()
    try:
        yield ray.util.get_node_ip_address(), port
    finally:
        server.stop(grace=None)


def run_search_trials(plan: Any, out: Path, target: int, workers: int, bar: Any, address: Any):
    """Trials as Ray tasks, at most ``workers`` at a time, until ``target`` have finished."""
    from optuna.trial import TrialState

    from goodfit.app.search import _next_trial, _tell, journal_storage

    storage = journal_storage(out)
    data = plan.data | {"search": plan.search.model_dump()}
    states = {"complete": None, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}
    with ray_session(address) as ray, _storage_proxy(storage, ray) as proxy:
        task = ray.remote(_trial_task).options(**_resources(plan.base))
        running: dict[Any, tuple[Any, Any]] = {}
        while True:
            while len(running) < workers:
                study, trial = _next_trial(plan, storage, out, target)
                if study is None:
                    break
                bar.start_trial(trial.number)
                ref = task.remote(data, plan.source, proxy, trial.number, trial._trial_id)
                running[ref] = (study, trial)
            if not running:
                return
            done, _ = ray.wait(list(running), num_returns=1)
            study, trial = running.pop(done[0])
            try:
                kind, value = _get(ray, done[0])
            except Exception as err:  # a bug on the worker: recorded, then raised
                trial.set_user_attr("failed", f"{type(err).__name__}: {err}")
                _tell(study, trial, state=TrialState.FAIL)
                raise
            frozen = _tell(study, trial, value if kind == "complete" else None, states[kind])
            bar.finished(frozen, study)
