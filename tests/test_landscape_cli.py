"""``goodfit landscape RUN_DIR``: the losses it writes against the run's own weights."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from goodfit.app.cli import main
from goodfit.app.landscape import load_run

CONFIG = """
[data]
name = "digits"
[model]
kind = "mlp"
widths = [16]
[train]
epochs = 2
batch_size = 64
seed = {seed}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("landscape")
    out = []
    for seed in (0, 1):
        cfg = base / f"c{seed}.toml"
        cfg.write_text(CONFIG.format(seed=seed))
        assert main(["train", str(cfg), "--out", str(base / f"run{seed}")]) == 0
        out.append(base / f"run{seed}")
    return out


def _loss(run, weights, n):
    _, prepared, model, _ = load_run(run)
    model.load_state_dict(torch.load(weights, weights_only=True))
    X, y = prepared.train
    with torch.no_grad():
        return float(F.cross_entropy(model.eval()(X[:n]), y[:n]))


def test_interpolation_from_init_to_final(runs, tmp_path):
    run = runs[0]
    out = tmp_path / "line"
    assert main(["landscape", str(run), "--kind", "interpolation", "--samples", "300",
                 "--out", str(out)]) == 0  # fmt: skip
    data = json.loads((out / "landscape.json").read_text())
    alphas = data["axes"][0]
    assert data["losses"][alphas.index(0.0)] == pytest.approx(
        _loss(run, run / "init.pt", 300), abs=1e-6
    )
    assert data["losses"][alphas.index(1.0)] == pytest.approx(
        _loss(run, run / "model.pt", 300), abs=1e-6
    )
    assert (out / "landscape.png").exists()


def test_random_plane_and_line_between_runs(runs, tmp_path):
    run, other = runs
    assert main(["landscape", str(run), "--steps", "5", "--samples", "200", "--val",
                 "--out", str(tmp_path / "plane")]) == 0  # fmt: skip
    data = json.loads((tmp_path / "plane" / "landscape.json").read_text())
    assert data["kind"] == "random_2d" and len(data["losses"]) == 5
    assert data["center_loss"] == pytest.approx(_loss(run, run / "model.pt", 200), abs=1e-6)
    assert data["val_losses"] is not None
    assert main(["landscape", str(run), "--kind", "between", "--to", str(other),
                 "--samples", "200", "--out", str(tmp_path / "between")]) == 0  # fmt: skip
    data = json.loads((tmp_path / "between" / "landscape.json").read_text())
    alphas = data["axes"][0]
    assert data["losses"][alphas.index(1.0)] == pytest.approx(
        _loss(run, other / "model.pt", 200), abs=1e-6
    )


def test_hessian_line(runs, tmp_path):
    out = tmp_path / "hessian"
    assert main(["landscape", str(runs[0]), "--kind", "hessian", "--dims", "1", "--steps", "5",
                 "--samples", "200", "--distance", "0.1", "--out", str(out)]) == 0  # fmt: skip
    data = json.loads((out / "landscape.json").read_text())
    assert data["kind"] == "hessian_1d" and data["info"]["eigenvalues"][0] > 0
    assert data["center_loss"] == pytest.approx(_loss(runs[0], runs[0] / "model.pt", 200), abs=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "bogus"], "--kind"),
        (["--dims", "3"], "--dims"),
        (["--kind", "between"], "--to"),
        (["--bn", "train"], "--bn"),
    ],
)
def test_bad_options_exit_2(runs, capsys, args, message):
    assert main(["landscape", str(runs[0]), *args]) == 2
    assert message in capsys.readouterr().err


def test_not_a_run_folder_exits_2(tmp_path, capsys, runs):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("hello")
    assert main(["landscape", str(tmp_path / "mine")]) == 2
    assert "not a goodfit run folder" in capsys.readouterr().err
    assert main(["landscape", str(tmp_path / "missing")]) == 2
    no_init = tmp_path / "old"
    import shutil

    shutil.copytree(runs[0], no_init)
    (no_init / "init.pt").unlink()
    assert main(["landscape", str(no_init), "--kind", "interpolation"]) == 2
    assert "init.pt" in capsys.readouterr().err


def test_study_landscape_section(tmp_path):
    from goodfit.app.study import run_study

    data = {
        "data": {"name": "digits", "val_fraction": 0.3},
        "model": {"kind": "mlp", "widths": [8]},
        "train": {"epochs": 2, "batch_size": 64},
        "study": {
            "splits": {"kind": "stratified_kfold", "k": 2},
            "gradient_flow": False,
            "landscape": True,
            "variants": [{"name": "narrow"}, {"name": "wide", "set": {"model.widths": [32]}}],
        },
    }
    results = run_study(data, tmp_path / "out", progress=False)
    for name in ("narrow", "wide"):
        first, second = results["variants"][name]["folds"]
        ls = first["landscape"]
        assert ls["kind"] == "random_1d" and len(ls["losses"]) == 21
        assert ls["n_samples"] <= 512 and len(ls["val_losses"]) == 21
        # the centre of the line is the trained model: its loss on the part it trained on
        # (about 500 rows of a 718-row fold after the 30 % early-stopping holdout: all of it)
        assert ls["n_samples"] < 512
        assert ls["center_loss"] == pytest.approx(first["scores"]["train_loss"], abs=1e-6)
        assert "landscape" not in second  # first fold only
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Loss landscape" in html
