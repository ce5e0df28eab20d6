"""``[study] vectorize = true`` gives the serial study's fold results within float32 rounding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from goodfit.app.study import run_study

STUDY = {
    "data": {"name": "moons", "val_fraction": 0.25},
    "model": {"kind": "mlp", "hidden": [16]},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "train": {"epochs": 3, "batch_size": 64, "seed": 0},
    "early_stopping": {"monitor": "val_loss", "patience": 2},
    "study": {
        "splits": {"kind": "stratified_kfold", "k": 2},
        "metric": "val_accuracy",
        "variants": [
            {"name": "dropout", "set": {"model.dropout": {"kind": "standard", "p": 0.3}}},
            {"name": "l2", "set": {"regularize.l2": 1e-3}},
            {"name": "l1", "set": {"regularize.l1": 1e-4}},
        ],
    },
}


def _folds(path):
    results = json.loads((path / "results.json").read_text())
    return {n: v["folds"] for n, v in results["variants"].items()}


def test_vectorized_study_equals_serial(tmp_path, torch_globals, capsys):
    serial = run_study(STUDY, tmp_path / "serial", progress=False)
    vec_cfg = {**STUDY, "study": {**STUDY["study"], "vectorize": True}}
    vec = run_study(vec_cfg, tmp_path / "vec", progress=False)
    assert serial and vec
    err = capsys.readouterr().err
    # l2's penalty is added member by member; l1 also logs sparsity through a callback per
    # model, so it alone trains serially, with a notice
    assert err.count("study folds train one after another") == 1 and "Sparsity" in err
    a, b = _folds(tmp_path / "serial"), _folds(tmp_path / "vec")
    for name in a:
        for fa, fb in zip(a[name], b[name], strict=True):
            assert fa["epochs_run"] == fb["epochs_run"] and fa["best_epoch"] == fb["best_epoch"]
            for key, value in fa["scores"].items():
                # float32: ~20 steps of SGD on O(1) weights stay within 1e-5 of each other
                assert fb["scores"][key] == pytest.approx(value, abs=1e-5), (name, key)
    # the gradient flow (on by default) is recorded per fold as in the serial study
    for run in sorted((tmp_path / "serial" / "runs").glob("*/fold*")):
        fa = json.loads((run / "summary.json").read_text())["gradient_flow"]
        vec_run = tmp_path / "vec" / "runs" / run.parent.name / run.name
        fb = json.loads((vec_run / "summary.json").read_text())["gradient_flow"]
        assert fa["layers"] == fb["layers"] and fa["steps"] == fb["steps"], run
        np.testing.assert_allclose(fb["norms"], fa["norms"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batch_size", [64, 199])
def test_folds_of_different_sizes(tmp_path, torch_globals, capsys, batch_size):
    """k = 3 on moons' 800 rows: training parts of 399, 399 and 400 rows. In batches of 64 all
    three make seven batches (the last of 15, 15 and 16 rows) and train as one group; in
    batches of 199, 399 rows make two (199 + 200: a lone last row joins the batch before) and
    400 rows three, so fold 3 trains alone. Either way the results equal the serial study's."""
    study = {
        **STUDY,
        "train": {**STUDY["train"], "batch_size": batch_size},
        "study": {
            **STUDY["study"],
            "splits": {"kind": "kfold", "k": 3},
            "variants": [STUDY["study"]["variants"][0]],
        },
    }
    run_study(study, tmp_path / "serial", progress=False)
    run_study({**study, "study": {**study["study"], "vectorize": True}}, tmp_path / "vec",
              progress=False)  # fmt: skip
    err = capsys.readouterr().err
    assert "one after another" not in err
    assert ("fold(s) [3] train alone" in err) == (batch_size == 199)
    a, b = _folds(tmp_path / "serial"), _folds(tmp_path / "vec")
    for name in a:
        assert len(a[name]) == len(b[name]) == 3
        for fa, fb in zip(a[name], b[name], strict=True):
            assert fa["epochs_run"] == fb["epochs_run"]
            for key, value in fa["scores"].items():
                assert fb["scores"][key] == pytest.approx(value, abs=1e-5), (name, key)
