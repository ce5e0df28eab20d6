"""``[ensemble]`` end to end: `goodfit train` with an ensemble writes the ensemble's metrics, a
study variant scores the ensemble, and bad input exits 2 before training."""

from __future__ import annotations

import json

import pytest
import torch

from goodfit.app.cli import main
from goodfit.app.config import parse_config
from goodfit.app.run import run_config
from goodfit.data.prepare import prepare_data

TINY = """
[data]
name = "moons"

[model]
kind = "mlp"
hidden = [8]

[optimizer]
name = "adam"
lr = 0.01

[train]
epochs = 2
batch_size = 64
"""


def _error(status, capsys, *needles):
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("goodfit train: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize(
    ("sets", "needles"),
    [
        (['ensemble.method="bagging"', "ensemble.members=1"], ["ensemble.members", "2"]),
        (['ensemble.method="boost"'], ["ensemble.method", "'bagging'", "'boost'"]),
        (['ensemble.method="bagging"', 'ensemble.aggregation="median"'], ["ensemble.aggregation"]),
        (['ensemble.method="samme"', 'data.name="poly"'], ["samme", "regression", "adaboost_r2"]),
        (['ensemble.method="stacking"', 'ensemble.split="holdout"'], ["holdout", "kfold"]),
        (['ensemble.method="stacking"', 'ensemble.meta="ridge"'], ["meta = 'ridge'"]),
        (['ensemble.method="snapshot"', "early_stopping.patience=3"], ["early_stopping.enabled"]),
        (['ensemble.method="samme"', "regularize.l1=1e-4"], ["samme", "penalty"]),
        (['ensemble.method="bagging"', 'train.class_weights="balanced"'], ["train.class_weights"]),
        (['ensemble.method="swa"', "output_noise.label_smoothing=0.1"], ["label_smoothing"]),
    ],
)
def test_bad_ensemble_input_exits_2(sets, needles, write_toml, tmp_path, capsys, torch_globals):
    args = ["train", str(write_toml(TINY)), "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    _error(main(args), capsys, *needles)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_train_bagging_writes_ensemble_metrics(write_toml, tmp_path, torch_globals):
    out = tmp_path / "run"
    args = [
        "train",
        str(write_toml(TINY)),
        "--out",
        str(out),
        "--set",
        'ensemble.method="bagging"',
        "--set",
        "ensemble.members=3",
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    ens = summary["ensemble"]
    assert ens["method"] == "bagging" and ens["vectorized"]
    assert len(ens["test"]["member_accuracy"]) == 3
    # the run's test metrics are the ensemble's (EnsembleModule scores the combination)
    assert summary["test_accuracy"] == pytest.approx(ens["test"]["ensemble_accuracy"])
    assert summary["test_loss"] == pytest.approx(ens["test"]["ensemble_loss"], rel=1e-5)


@pytest.mark.parametrize("method", ["snapshot", "swa", "ema", "stacking", "samme"])
def test_every_method_trains_from_the_config(method, torch_globals):
    data = {**_tiny(), "ensemble": {"method": method, "members": 2, "folds": 2}}
    if method == "snapshot":
        data["train"]["epochs"] = 2
    result = run_config(parse_config(data), None, progress=False)
    assert result.summary["ensemble"]["method"] == method
    assert 0.0 <= result.summary["test_accuracy"] <= 1.0


def test_member_k_is_the_plain_run_with_seed_plus_k(torch_globals):
    # bagging member 0 trains on a bootstrap sample, so compare the init instead: member k's
    # parameters before training equal a plain build with seed + k (checked through build_run)
    from goodfit.app.ensemble_run import _member_parts

    cfg = parse_config({**_tiny(), "ensemble": {"method": "bagging", "members": 2}})
    from goodfit.app.build import build_run, load_dataset_from_config
    from goodfit.train.loop import seed_everything

    prepared = prepare_data(load_dataset_from_config(cfg.data), val_fraction=0.2, seed=0)
    a = _member_parts(cfg, prepared, 1).model
    seed_everything(1)
    b = build_run(cfg, prepared).model
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def _tiny():
    import tomllib

    return tomllib.loads(TINY)


def test_study_variant_reports_ensemble_metrics(tmp_path, torch_globals):
    from goodfit.app.study import run_study

    study = {
        **_tiny(),
        "study": {
            "splits": {"kind": "stratified_kfold", "k": 2},
            "metric": "val_accuracy",
            "gradient_flow": False,
            "variants": [
                {"name": "single"},
                {"name": "bag", "set": {"ensemble.method": "bagging", "ensemble.members": 2}},
            ],
        },
    }
    run_study(study, tmp_path / "s", progress=False)
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    fold = results["variants"]["bag"]["folds"][0]
    assert len(fold["ensemble"]["member_accuracy"]) == 2
    assert fold["scores"]["val_accuracy"] == pytest.approx(fold["ensemble"]["ensemble_accuracy"])
    assert (
        "val_diversity" in fold["scores"]
        and "val_diversity" not in (results["variants"]["single"]["folds"][0]["scores"])
    )
    assert "val_diversity" in (tmp_path / "s" / "report.html").read_text()
