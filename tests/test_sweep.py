"""``goodfit sweep``: points are ``goodfit train`` runs; threshold, EMC, regimes, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from goodfit.app.cli import main
from goodfit.app.sweep import effective_model_complexity, interpolation_threshold, regimes

BASE = """
[data]
name = "digits"
label_noise = 0.1

[model]
kind = "mlp"
widths = [4]

[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9

[train]
epochs = 3
batch_size = 64
seed = 3
"""

SWEEP = (
    BASE
    + """
[sweep]
param = "model.widths"
values = [[4], [24]]
eval_every = 2
"""
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    base = tmp_path_factory.mktemp("sweep")
    cfg = base / "sweep.toml"
    cfg.write_text(SWEEP)
    out = base / "out"
    assert main(["sweep", str(cfg), "--out", str(out)]) == 0
    return base, out


def test_sweep_json_holds_every_point(sweep):
    _, out = sweep
    data = json.loads((out / "sweep.json").read_text())
    assert data["param"] == "model.widths" and len(data["points"]) == 2
    for p in data["points"]:
        for key in ("value", "n_params", "train_error", "test_error", "train_loss", "test_loss",
                    "train_error_by_epoch", "test_error_by_epoch"):  # fmt: skip
            assert key in p
        assert p["epochs"] == [2, 3]  # every 2 epochs and the last
        assert p["test_error_by_epoch"][-1] == pytest.approx(p["test_error"], abs=1e-12)
    assert data["points"][1]["n_params"] > data["points"][0]["n_params"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    assert "Error over model size and training time" in html


def test_sweep_point_matches_a_separate_train_run(sweep):
    base, out = sweep
    cfg = base / "point.toml"
    cfg.write_text(BASE.replace("widths = [4]", "widths = [24]"))
    run = base / "train"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    point = json.loads((out / "sweep.json").read_text())["points"][1]
    folder = out / point["folder"]
    a = torch.load(folder / "model.pt", weights_only=True)
    b = torch.load(run / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(*(torch.load(f / "init.pt", weights_only=True)["1.weight"]
                         for f in (folder, run)))  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert point["test_error"] == pytest.approx(1 - summary["test_accuracy"], abs=1e-12)
    assert point["test_loss"] == pytest.approx(summary["test_loss"], rel=1e-6)
    noise = [json.loads((f / "label_noise.json").read_text()) for f in (folder, run)]
    assert noise[0] == noise[1]


def test_rerun_skips_finished_points(sweep, capsys):
    base, out = sweep
    before = [(p / "point.json").stat().st_mtime_ns for p in sorted((out / "points").iterdir())]
    capsys.readouterr()
    assert main(["sweep", str(base / "sweep.toml"), "--out", str(out)]) == 0
    after = [(p / "point.json").stat().st_mtime_ns for p in sorted((out / "points").iterdir())]
    assert before == after
    assert "train error" not in capsys.readouterr().out  # nothing trained again


def _points(xs, train):
    return [
        {"value": x, "x": float(x), "n_train": x, "train_error": e}
        for x, e in zip(xs, train, strict=True)
    ]


def test_threshold_emc_and_regimes():
    pts = _points([2, 4, 8, 16, 32, 64, 128], [0.5, 0.3, 0.1, 0.004, 0.0, 0.001, 0.0])
    assert interpolation_threshold(pts, 0.005) == 16
    assert interpolation_threshold(pts, 0.0) == 32
    assert interpolation_threshold(_points([2, 4], [0.5, 0.4]), 0.005) is None
    spans = regimes(pts, "model.widths", 0.005)
    assert [r["regime"] for r in spans] == ["under", "critical", "over"]
    assert spans[1]["from"] == 8 and spans[1]["to"] == 32
    sample = _points([100, 200, 400, 800, 1600], [0.0, 0.0, 0.003, 0.05, 0.2])
    assert effective_model_complexity(sample, 0.005) == 400
    names = [r["regime"] for r in regimes(sample, "data.train_size", 0.005)]
    assert names == ["over", "critical", "under"]


@pytest.mark.parametrize(
    ("sweep_table", "message"),
    [
        ('param = "model.widthz"\nvalues = [[4]]', "widthz"),
        ('param = "model.widths"\nvalues = []', "values"),
        ('param = "study.title"\nvalues = ["a"]', "cannot be swept"),
        ('param = "epochs"\nvalues = [1]', "dotted config key"),
        ('param = "model.widths"\nvalues = [[0]]', "values[0]"),
        ('param = "data.label_noise"\nvalues = [1.5]', "data.label_noise"),
    ],
)
def test_bad_sweeps_exit_2_before_training(tmp_path, capsys, sweep_table, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(BASE + "\n[sweep]\n" + sweep_table + "\n")
    out = tmp_path / "out"
    assert main(["sweep", str(cfg), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "points").exists()


def test_sweep_needs_a_sweep_table_and_a_classification_set_for_noise(tmp_path, capsys):
    cfg = tmp_path / "plain.toml"
    cfg.write_text(BASE)
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "a")]) == 2
    assert "[sweep]" in capsys.readouterr().err
    cfg.write_text(
        BASE.replace('"digits"', '"poly"') + '[sweep]\nparam = "train.epochs"\nvalues = [1]\n'
    )
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "b")]) == 2
    assert "classification" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name",
    ["double_descent_mnist1d.toml", "double_descent_mnist1d_quick.toml", "landscape_skip.toml"],
)
def test_example_sweeps_parse(name):
    from pathlib import Path

    from goodfit.app.config import read_toml
    from goodfit.app.sweep import SweepPlan

    path = Path(__file__).parent.parent / "examples" / name
    plan = SweepPlan(read_toml(path), str(path))
    assert len(plan.configs) == len(plan.sweep.values) >= 2


def test_sample_wise_sweep_reports_emc(tmp_path):
    from goodfit.app.sweep import run_sweep

    data = {
        "data": {"name": "digits", "val_fraction": 0.0},
        "model": {"kind": "mlp", "widths": [16]},
        "train": {"epochs": 2, "batch_size": 50},
        "sweep": {"param": "data.train_size", "values": [50, 400], "interpolation_eps": 0.5},
    }
    result = run_sweep(data, tmp_path / "s", progress=False)
    assert [p["n_train"] for p in result["points"]] == [50, 400]
    fits = [p["n_train"] for p in result["points"] if p["train_error"] <= 0.5]
    assert result["emc"] == (max(fits) if fits else None)
    assert "Effective model complexity" in (tmp_path / "s" / "report.html").read_text()


@pytest.mark.slow
def test_parallel_sweep_matches_serial(tmp_path):
    """--workers 2 (spawned processes, one torch thread each) gives the serial sweep's points."""
    from goodfit.app.config import read_toml
    from goodfit.app.sweep import run_sweep

    cfg = tmp_path / "s.toml"
    cfg.write_text(SWEEP)
    data = read_toml(cfg)
    data["train"]["threads"] = 1
    serial = run_sweep(data, tmp_path / "serial", workers=1, progress=False)
    parallel = run_sweep(data, tmp_path / "parallel", workers=2, progress=False)
    for a, b in zip(serial["points"], parallel["points"], strict=True):
        assert a["test_error_by_epoch"] == b["test_error_by_epoch"]
        assert a["train_loss"] == b["train_loss"]
