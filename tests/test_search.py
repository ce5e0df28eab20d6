"""``goodfit search``: the space parser and every validation error, a tiny search end to end
through the CLI, pruning of a clearly worse trial, resume (extension, and after a SIGKILL
mid-trial), ``best.toml`` trains, and ``--workers 2`` draws the same trials as a serial search."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from goodfit.app.cli import main
from goodfit.app.config import config_to_toml
from goodfit.app.search import STUDY_NAME, finished_count, journal_storage, run_search
from goodfit.app.search_space import parse_space, suggest
from goodfit.errors import ConfigError

#: A tiny search: moons (200 samples), a tiny MLP, 2 epochs, 2 folds.
TINY: dict = {
    "data": {"name": "moons", "options": {"n_samples": 200}},
    "model": {"kind": "mlp", "widths": [8]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 32, "seed": 0},
    "search": {
        "metric": "val_accuracy",
        "trials": 4,
        "splits": {"kind": "stratified_kfold", "k": 2},
        "sampler": "random",
        "pruner": "none",
        "space": {
            "optimizer.lr": {"log_uniform": [1e-3, 1e-1]},
            "optimizer.name": {"choice": ["adam", "sgd"]},
            "optimizer.momentum": {"uniform": [0.0, 0.9], "when": {"optimizer.name": "sgd"}},
            "model.widths": {"choice": [[8], [16, 16]]},
        },
    },
}


def _config(tmp_path: Path, data: dict, name: str = "search.toml") -> Path:
    path = tmp_path / name
    path.write_text(config_to_toml(data))
    return path


def _with(**search) -> dict:
    data = copy.deepcopy(TINY)
    data["search"].update(search)
    return data


def _study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY_NAME, storage=journal_storage(folder))


# -- the space ---------------------------------------------------------------------------------


def test_parse_space_orders_conditions_and_decodes_lists():
    params = parse_space(TINY["search"]["space"])
    keys = [p.key for p in params]
    assert keys.index("optimizer.momentum") > keys.index("optimizer.name")
    widths = next(p for p in params if p.key == "model.widths")
    assert widths.encoded == ("[8]", "[16, 16]")
    assert widths.decode("[16, 16]") == [16, 16]

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        values = suggest(trial, params)
        assert ("optimizer.momentum" in values) == (values["optimizer.name"] == "sgd")
        assert 1e-3 <= values["optimizer.lr"] <= 1e-1
        seen.add(json.dumps(values["model.widths"]))
        study.tell(trial, 0.0)
    assert seen == {"[8]", "[16, 16]"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a.b": {"uniform": [1.0, 1.0]}}, "empty range"),
        ({"a.b": {"int": [5, 2]}}, "empty range"),
        ({"a.b": {"log_uniform": [0.0, 1.0]}}, "above 0"),
        ({"a.b": {"int": [0, 8], "log": True}}, "above 0"),
        ({"a.b": {"normal": [0, 1]}}, "exactly one distribution"),
        ({"a.b": {"uniform": [0, 1], "choice": [1]}}, "exactly one distribution"),
        ({"a.b": {"uniform": [0, 1], "steps": 0.1}}, "unknown key 'steps'"),
        ({"a.b": {"uniform": [0, "x"]}}, "two finite numbers"),
        ({"a.b": {"choice": []}}, "non-empty list"),
        ({"a.b": {"choice": [1, 1]}}, "twice"),
        ({"a.b": {"uniform": [0, 1], "step": 2}}, "step"),
        ({"a.b": 0.1}, "expected a table"),
        ({"a.b": {"uniform": [0, 1], "when": {"c.d": "x"}}}, "not another choice"),
        (
            {"c.d": {"choice": ["x"]}, "a.b": {"uniform": [0, 1], "when": {"c.d": "y"}}},
            "not one of its choices",
        ),
        (
            {
                "a.b": {"choice": [1], "when": {"c.d": 2}},
                "c.d": {"choice": [2], "when": {"a.b": 1}},
            },
            "cycle",
        ),
    ],
)
def test_space_grammar_errors_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_space(spec, "cfg.toml")
    assert "cfg.toml: search.space" in str(info.value)


@pytest.mark.parametrize(
    ("space", "key"),
    [
        ({"train.epochz": {"int": [1, 3]}}, "train.epochz"),  # a key the config lacks
        ({"optimizer.lrr": {"log_uniform": [1e-3, 1e-1]}}, "optimizer.lrr"),  # not adam's
        ({"data.val_fraction": {"uniform": [0.1, 1.2]}}, "data.val_fraction"),  # out of range
        ({"model.dropout": {"uniform": [0.0, 1.0]}}, "model.dropout"),  # 1.0 not allowed
        ({"optimizer.name": {"choice": ["adam", "nosuch"]}}, "optimizer.name"),
        (  # momentum is valid for sgd (its condition), not as written for adam-only
            {
                "optimizer.name": {"choice": ["adam"]},
                "optimizer.momentum": {"uniform": [0.0, 0.9], "when": {"optimizer.name": "adam"}},
            },
            "optimizer.momentum",
        ),
    ],
)
def test_space_values_are_built_before_the_first_trial(tmp_path, capsys, space, key):
    cfg = _config(tmp_path, _with(space=space))
    assert main(["search", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f'search.space."{key}"' in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "study.journal").exists()


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"metric": "test_accuracy"}, "search.metric"),
        ({"sampler": "nosuch"}, "search.sampler"),
        ({"pruner_options": {"nosuch": 1}}, "search.pruner_options"),
        ({"sampler": "grid"}, "grid sampler"),
        ({"splits": {"kind": "kfold", "k": 1000}}, "search.splits"),
        ({"enqueue": [{"optimizer.lr": 5.0}]}, "search.enqueue"),
        ({"trials": 0}, "search.trials"),
    ],
)
def test_search_settings_are_validated(tmp_path, capsys, search, message):
    cfg = _config(tmp_path, _with(**search))
    assert main(["search", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err, err


# -- searches ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory):
    """The tiny search run once through the CLI (4 trials, random sampler)."""
    tmp = tmp_path_factory.mktemp("search")
    cfg = _config(tmp, TINY)
    out = tmp / "out"
    assert main(["search", str(cfg), "--out", str(out)]) == 0
    return cfg, out


def test_tiny_search_end_to_end(tiny_search, tmp_path):
    cfg, out = tiny_search
    for name in ("best.toml", "trials.csv", "search.json", "report.html", "study.journal"):
        assert (out / name).exists(), name
    study = _study(out)  # Optuna opens the storage itself
    assert len(study.trials) == 4
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len(study.trials[0].intermediate_values) == 2 * TINY["train"]["epochs"]
    result = json.loads((out / "search.json").read_text())
    assert result["best"]["number"] == study.best_trial.number
    assert result["best"]["value"] == pytest.approx(study.best_value)
    assert 0.0 <= result["final"]["best"]["test_accuracy"] <= 1.0
    assert "test_accuracy" in result["final"]["base"]
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("number,value,datetime_start")
    page = (out / "report.html").read_text()
    assert "<script" not in page and "http" not in page.split("</style>")[1]
    assert page.count("data:image/png;base64") >= 2

    # best.toml is a complete config that goodfit train runs, with the best trial's values
    best_toml = (out / "best.toml").read_text()
    assert "[search]" not in best_toml
    assert main(["train", str(out / "best.toml"), "--out", str(tmp_path / "best")]) == 0
    summary = json.loads((tmp_path / "best" / "summary.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(result["final"]["best"]["test_accuracy"])

    # the same command again: nothing to do, the same study; another config is refused
    assert main(["search", str(cfg), "--out", str(out)]) == 0
    assert len(_study(out).trials) == 4
    other = _config(tmp_path, _with(sampler="tpe"))
    assert main(["search", str(other), "--out", str(out)]) == 2


def test_trials_extends_a_finished_search(tiny_search, tmp_path):
    import shutil

    cfg, out = tiny_search
    copy_dir = tmp_path / "copy"
    shutil.copytree(out, copy_dir)
    before = [t.params for t in _study(copy_dir).trials]
    assert main(["search", str(cfg), "--out", str(copy_dir), "--trials", "6"]) == 0
    trials = _study(copy_dir).trials
    assert len(trials) == 6 and [t.params for t in trials[:4]] == before


def test_workers_draw_the_same_trials_as_serial(tiny_search, tmp_path):
    cfg, out = tiny_search
    par = tmp_path / "par"
    assert main(["search", str(cfg), "--out", str(par), "--workers", "2"]) == 0
    serial = {t.number: t.params for t in _study(out).trials}
    parallel = {t.number: t.params for t in _study(par).trials}
    assert parallel == serial


def test_pruning_stops_a_clearly_worse_trial(tmp_path):
    data = _with(
        trials=2,
        pruner="median",
        pruner_options={"n_startup_trials": 1},
        space={
            "optimizer.name": {"choice": ["adam", "sgd"]},
            "optimizer.lr": {"log_uniform": [1e-6, 1e-1]},
        },
        enqueue=[
            {"optimizer.name": "adam", "optimizer.lr": 0.05},  # learns
            {"optimizer.name": "sgd", "optimizer.lr": 1e-6},  # cannot learn: pruned
        ],
    )
    data["train"].update(epochs=4, batch_size=16)
    result = run_search(data, tmp_path / "out", progress=False)
    study = _study(tmp_path / "out")
    good, bad = study.trials
    assert good.state == TrialState.COMPLETE and bad.state == TrialState.PRUNED
    assert len(bad.intermediate_values) < 2 * 4  # stopped before its last epoch
    assert result["counts"] == {"complete": 1, "pruned": 1}


def test_a_killed_search_resumes_to_the_requested_trials(tmp_path):
    data = _with(trials=3)
    data["train"]["epochs"] = 12
    cfg = _config(tmp_path, data)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "goodfit.app", "search", str(cfg), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # kill once a trial is mid-way (reported epochs)
            time.sleep(0.05)
            if not (out / "study.journal").exists():
                continue
            running = _study(out).get_trials(states=(TrialState.RUNNING,))
            if running and len(running[0].intermediate_values) >= 2:
                break
        else:
            pytest.fail("the search never reached a running trial")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = _study(out).get_trials(states=(TrialState.RUNNING,))[0]
    assert main(["search", str(cfg), "--out", str(out)]) == 0
    trials = _study(out).trials
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3 and finished_count(trials) == 3
    assert trials[killed.number].state == TrialState.FAIL
    rerun = [t for t in trials if t.user_attrs.get("rerun_of") == killed.number]
    assert len(rerun) == 1 and rerun[0].params == killed.params


def test_confirm_runs_base_vs_best_as_a_two_variant_study(tmp_path):
    result = run_search(_with(trials=2), tmp_path / "out", confirm=True, progress=False)
    confirm = result["confirm"]
    assert confirm["test"] == "corrected_t"  # the study's corrected test on k-fold splits
    assert confirm["seed"] == TINY["train"]["seed"] + 1  # fresh folds, not the search's
    assert confirm["comparison"] is not None and confirm["verdict"]
    folder = tmp_path / "out" / f"confirm-trial{result['best']['number']}"
    assert confirm["folder"] == folder.name
    study = json.loads((folder / "results.json").read_text())
    assert list(study["variants"]) == ["base", "best"]
    assert study["variants"]["best"]["overrides"] == result["best"]["values"]
    assert "--confirm" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize("name", ["search_digits.toml", "search_mnist1d.toml"])
def test_examples_validate(name):
    from goodfit.app.config import read_toml
    from goodfit.app.search import prepare_search

    path = Path(__file__).parent.parent / "examples" / name
    plan = prepare_search(read_toml(path), str(path))  # the whole space built on the dataset
    assert len(plan.splits) == 3 and plan.direction == "maximize"


@pytest.mark.parametrize(
    ("sampler", "pruner", "space"),
    [
        ("tpe", "hyperband", None),
        (
            "cmaes",
            "median",
            {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}, "train.batch_size": {"int": [16, 64]}},
        ),
        (
            "grid",
            "none",
            {"optimizer.name": {"choice": ["adam", "sgd"]}, "train.batch_size": {"int": [16, 17]}},
        ),
    ],
)
def test_every_sampler_and_pruner_runs(tmp_path, sampler, pruner, space):
    data = _with(trials=3, sampler=sampler, pruner=pruner)
    if space is not None:
        data["search"]["space"] = space
    result = run_search(data, tmp_path / "out", progress=False)
    trials = _study(tmp_path / "out").trials
    assert finished_count(trials) == 3 and result["best"]["number"] in range(3)
    if sampler == "grid":  # distinct grid points; the budget ends with the grid (4 points)
        assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 3
        run_search(data, tmp_path / "out", trials=10, progress=False)
        params = {json.dumps(t.params, sort_keys=True) for t in _study(tmp_path / "out").trials}
        assert len(params) == len(_study(tmp_path / "out").trials) == 4
