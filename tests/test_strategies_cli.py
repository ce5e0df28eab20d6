"""The strategies from the config and the CLI: bad values exit 2 before training, a run's
summary holds robust accuracy, and a study compares the strategies as variants."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from goodfit.app.cli import main
from goodfit.app.study import run_study

TINY = """
[data]
name = "moons"
options = {n_samples = 200}

[model]
kind = "mlp"
widths = [8]

[train]
epochs = 2
"""


def _user_error(status, capsys, *needles):
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize(
    ("sets", "needles"),
    [
        (["curriculum.start=0"], ["curriculum.start", "greater than 0"]),
        (["curriculum.start=1.5"], ["curriculum.start", "less than or equal to 1"]),
        (
            ['curriculum.pacing="cosine"'],
            ["curriculum.pacing", "'linear', 'step' or 'exponential'"],
        ),
        (['curriculum.order="hardest"'], ["curriculum.order"]),
        (['curriculum.scoring="given"'], ["curriculum.scores"]),
        (['curriculum.scoring="given"', 'curriculum.scores="none.npy"'], ["none.npy"]),
        (["adversarial.eps=-0.1"], ["adversarial.eps", "greater than or equal to 0"]),
        (['adversarial.method="deepfool"', "adversarial.eps=0.1"], ["adversarial.method"]),
        (["adversarial.eps=0.1", "adversarial.clip=[1, 0]"], ["low < high"]),
        (['model.init_from="no/such/run"'], ["model.init_from", "no finished run"]),
        (['train.freeze=["head.*"]'], ["train.freeze", "head.*", "matches no parameter"]),
        (['train.lr_multipliers={"0.*" = -1}'], ["train.lr_multipliers"]),
        (["weight_noise.sigma=0"], ["weight_noise.sigma"]),
        (["weight_noise.sigma=0.1", 'weight_noise.types=["Conv2d"]'], ["match no layer"]),
        (["output_noise.label_smoothing=1.0"], ["output_noise.label_smoothing"]),
        (["output_noise.target_std=0.1"], ["target_std needs a regression dataset"]),
    ],
)
def test_bad_strategy_values_exit_2_before_training(
    sets, needles, write_toml, tmp_path, capsys, torch_globals
):
    args = ["train", str(write_toml(TINY)), "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    _user_error(main(args), capsys, *needles)
    assert not (tmp_path / "run" / "summary.json").exists()


def test_label_smoothing_on_regression_exits_2(write_toml, tmp_path, capsys, torch_globals):
    cfg = write_toml('[data]\nname = "poly"\n[train]\nepochs = 1\n')
    status = main(["train", str(cfg), "--set", "output_noise.label_smoothing=0.1",
                   "--out", str(tmp_path / "run")])  # fmt: skip
    _user_error(status, capsys, "label_smoothing needs a classification dataset")


def test_a_run_with_every_strategy_writes_robust_accuracy(write_toml, tmp_path, torch_globals):
    text = (
        TINY
        + """
[output_noise]
soft_target = 0.1
[weight_noise]
kind = "multiplicative"
sigma = 0.05
[adversarial]
method = "pgd"
eps = 0.1
steps = 3
[curriculum]
scoring = "given"
scores = "SCORES"
pacing = "step"
full_epoch = 2
"""
    )
    scores = tmp_path / "scores.npy"
    np.save(scores, np.arange(160, dtype=np.float64))  # moons n_samples=200: 160 train rows
    cfg = write_toml(text.replace("SCORES", str(scores)))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("test_robust_accuracy_fgsm", "test_robust_accuracy_pgd",
                "val_robust_accuracy_fgsm", "val_robust_accuracy_pgd"):  # fmt: skip
        assert 0.0 <= summary[key] <= 1.0
    assert summary["test_robust_accuracy_pgd"] <= summary["test_accuracy"] + 0.05
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    # 160 training rows, 128 after the validation holdout: ceil(0.2 * 128) = 26 admitted first
    assert [r["curriculum_fraction"] for r in history] == [26 / 128, 1.0]


STUDY = {
    "data": {"name": "moons", "options": {"n_samples": 200}, "val_fraction": 0.0},
    "model": {"kind": "mlp", "widths": [16]},
    "train": {"epochs": 1, "batch_size": 32},
    "adversarial": {"method": "none", "eps": 0.2, "evaluate": ["fgsm"]},
    "study": {
        "splits": {"kind": "stratified_kfold", "k": 2},
        "metric": "val_robust_accuracy_fgsm",
        "gradient_flow": False,
        "test": "paired_t",
        "variants": [
            {"name": "clean"},
            {"name": "fgsm", "set": {"adversarial.method": "fgsm"}},
            {"name": "smooth", "set": {"output_noise.label_smoothing": 0.1}},
            {"name": "anti", "set": {"curriculum.order": "anti", "curriculum.reference_epochs": 1}},
        ],
    },
}


def test_a_study_compares_strategies_on_robust_accuracy(tmp_path, torch_globals):
    results = run_study(copy.deepcopy(STUDY), tmp_path / "out", progress=False)
    text = json.dumps(results)
    assert "val_robust_accuracy_fgsm" in text
    fold = json.loads((tmp_path / "out" / "runs" / "fgsm" / "fold0" / "summary.json").read_text())
    assert 0.0 <= fold["scores"]["val_robust_accuracy_fgsm"] <= 1.0


def test_a_robust_metric_without_adversarial_is_refused(tmp_path, capsys):
    data = copy.deepcopy(STUDY)
    del data["adversarial"]
    data["study"]["variants"] = data["study"]["variants"][:1]
    path = tmp_path / "s.toml"
    from goodfit.app.config import config_to_toml

    path.write_text(config_to_toml(data))
    status = main(["study", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and "needs [adversarial]" in err
    assert torch.get_num_threads() >= 1


def test_a_resumed_run_with_strategies_continues_bit_for_bit(write_toml, tmp_path, torch_globals):
    text = (
        TINY.replace("epochs = 2", "epochs = 3")
        + """
[weight_noise]
sigma = 0.05
[adversarial]
method = "fgsm"
eps = 0.1
evaluate = ["fgsm"]
[curriculum]
scoring = "reference"
reference_epochs = 2
full_epoch = 3
"""
    )
    cfg = write_toml(text)
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(["train", str(cfg), "--out", str(whole)]) == 0
    assert main(["train", str(cfg), "--out", str(part), "--set", "train.epochs=2"]) == 0
    assert main(["train", "--resume", str(part), "--set", "train.epochs=3"]) == 0
    a = torch.load(whole / "model.pt", weights_only=True)
    b = torch.load(part / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = json.loads((whole / "summary.json").read_text())
    sb = json.loads((part / "summary.json").read_text())
    assert sa["test_robust_accuracy_fgsm"] == sb["test_robust_accuracy_fgsm"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "extra",
    [
        "[weight_noise]\nsigma = 0.05\n[output_noise]\nsoft_target = 0.1\n"
        '[adversarial]\nmethod = "pgd"\neps = 0.1\nsteps = 2\n'
        '[curriculum]\nscoring = "self_paced"\nfull_epoch = 2\n',
        '[multitask]\nweighting = "uncertainty"\n',
    ],
)
def test_strategies_train_on_cuda(extra, write_toml, tmp_path, torch_globals):
    text = TINY
    if "multitask" in extra:
        text = text.replace('name = "moons"\noptions = {n_samples = 200}', 'name = "digits_parity"')
    cfg = write_toml(text + extra)
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--set", 'train.device="cuda"', "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_loss"] == summary["test_loss"]  # finite, not NaN
