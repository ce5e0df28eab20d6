"""Studies and searches on Ray (goodfit.app.backend_ray), on one local Ray instance for the module
(``ray.init(num_cpus=2)``; starting Ray costs seconds, so the tests are few).

Reference: the same study run serially in this process. Every run is seeded alone and trains with
one thread (``train.threads = 1``) in both, so the fold scores are equal exactly.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from goodfit.app.cli import main
from goodfit.app.study import run_study

ray = pytest.importorskip("ray", reason='the Ray backend tests need pip install "goodfit[ray]"')

SRC = str(Path(__file__).parents[1] / "src")
STUDY: dict = {
    "data": {"name": "digits", "val_fraction": 0.2},
    "model": {"kind": "mlp", "widths": [16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 64, "seed": 0, "threads": 1},
    "early_stopping": {"monitor": "val_loss", "patience": 2},
    "study": {
        "splits": {"kind": "stratified_kfold", "k": 2},
        "metric": "val_accuracy",
        "gradient_flow": False,
        "variants": [{"name": "base"}, {"name": "l2", "set": {"regularize.l2": 1e-3}}],
    },
}


@pytest.fixture(scope="module")
def local_ray():
    env = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = SRC + (os.pathsep + env if env else "")  # for Ray's workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        os.environ["PYTHONPATH"] = env


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    threads = torch.get_num_threads()
    try:
        return run_study(copy.deepcopy(STUDY), tmp_path_factory.mktemp("serial"), progress=False)
    finally:
        torch.set_num_threads(threads)


def _scores(results: dict) -> dict:
    return {n: [f["scores"] for f in v["folds"]] for n, v in results["variants"].items()}


def test_ray_study_writes_the_serial_fold_scores(local_ray, serial, tmp_path, torch_globals):
    data = copy.deepcopy(STUDY)
    data["study"]["backend"] = "ray"  # the [study] table's way; the CLI's is --backend ray
    results = run_study(data, tmp_path / "ray", progress=False)
    assert _scores(results) == _scores(serial)
    assert results["config_hash"] == serial["config_hash"]  # where it runs is not in the hash
    assert len(list((tmp_path / "ray").glob("runs/*/fold*/history.jsonl"))) == 4


def test_killed_ray_study_resumes(local_ray, serial, tmp_path, torch_globals):
    """A study driver SIGKILLed mid-study (its Ray tasks die with it) resumes with --backend ray:
    the runs it wrote are skipped, the rest run, and the scores are the serial ones."""
    config = tmp_path / "study.toml"
    from goodfit.app.config import config_to_toml

    config.write_text(config_to_toml(STUDY))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "goodfit", "study", str(config), "--out", str(out),
           "--backend", "ray", "--address", local_ray]  # fmt: skip
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not list(out.glob("runs/*/fold*/summary.json")) and driver.poll() is None:
            time.sleep(0.01)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    done = sorted(out.glob("runs/*/fold*/summary.json"))
    assert 1 <= len(done) < 4 and not (out / "results.json").exists()  # killed mid-study
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    status = main(["study", str(config), "--out", str(out), "--backend", "ray"])
    assert status == 0
    assert {p: p.stat().st_mtime_ns for p in done} == mtimes  # finished runs were skipped
    results = json.loads((out / "results.json").read_text())
    assert _scores(results) == _scores(serial)


def test_ray_missing_exits_2_with_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    config = tmp_path / "study.toml"
    from goodfit.app.config import config_to_toml

    config.write_text(config_to_toml(STUDY))
    assert main(["study", str(config), "--out", str(tmp_path / "o"), "--backend", "ray"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "goodfit[ray]"' in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


SEARCH: dict = {
    "data": {"name": "moons", "options": {"n_samples": 200}},
    "model": {"kind": "mlp", "widths": [8]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 4, "batch_size": 16, "seed": 0, "threads": 1},
    "search": {
        "metric": "val_accuracy",
        "trials": 4,
        "splits": {"kind": "stratified_kfold", "k": 2},
        "sampler": "random",
        "pruner": "median",
        "pruner_options": {"n_startup_trials": 1},
        "space": {
            "optimizer.name": {"choice": ["adam", "sgd"]},
            "optimizer.lr": {"log_uniform": [1e-6, 1e8]},
        },
        "enqueue": [
            {"optimizer.name": "adam", "optimizer.lr": 0.05},  # learns
            {"optimizer.name": "sgd", "optimizer.lr": 1e-6},  # cannot learn: pruned
            {"optimizer.name": "sgd", "optimizer.lr": 1e8},  # diverges: failed
        ],
    },
}


def test_ray_search_draws_prunes_and_scores_as_serial(local_ray, tmp_path, torch_globals):
    """Trials as Ray tasks (reporting through the driver's gRPC storage proxy) are the serial
    search's: the same parameters, values, pruned and failed trials and intermediate values."""
    import optuna

    from goodfit.app.search import STUDY_NAME, journal_storage, run_search

    def trials(folder: Path) -> list:
        study = optuna.load_study(study_name=STUDY_NAME, storage=journal_storage(folder))
        return [
            (t.params, t.state, t.value, t.intermediate_values, "failed" in t.user_attrs)
            for t in study.trials
        ]

    run_search(copy.deepcopy(SEARCH), tmp_path / "serial", progress=False)
    run_search(copy.deepcopy(SEARCH), tmp_path / "ray", progress=False, backend="ray")
    assert trials(tmp_path / "ray") == trials(tmp_path / "serial")
    states = [t[1] for t in trials(tmp_path / "ray")]
    State = optuna.trial.TrialState
    assert states[1:3] == [State.PRUNED, State.FAIL] and states[0] == State.COMPLETE


def test_ray_sweep_writes_the_serial_points(local_ray, tmp_path, torch_globals):
    """A sweep's points as Ray tasks: the driver writes each point's run folder from what the
    task returns (no shared file system), with the serial sweep's records and weights."""
    from goodfit.app.sweep import run_sweep

    sweep = {
        "data": {"name": "digits", "val_fraction": 0.2},
        "model": {"kind": "mlp", "widths": [4]},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "train": {"epochs": 2, "batch_size": 64, "seed": 3, "threads": 1},
        "sweep": {"param": "model.widths", "values": [[4], [12]], "eval_every": 1},
    }
    serial = run_sweep(copy.deepcopy(sweep), tmp_path / "serial", progress=False)
    on_ray = run_sweep(copy.deepcopy(sweep), tmp_path / "ray", progress=False, backend="ray")
    keys = ("n_params", "train_error", "test_error", "train_loss", "test_error_by_epoch")
    for a, b in zip(serial["points"], on_ray["points"], strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    for point in sorted((tmp_path / "serial" / "points").iterdir()):
        twin = tmp_path / "ray" / "points" / point.name
        assert (twin / "point.json").exists() and (twin / "config.toml").exists()
        a, b = (torch.load(d / "model.pt", weights_only=True) for d in (point, twin))
        assert all(torch.equal(a[k], b[k]) for k in a)
