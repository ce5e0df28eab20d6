"""Multitask learning: several targets from .npz/.csv/digits_parity, one head per task on the
shared trunk, per-task losses (fixed or Kendall et al.'s uncertainty weighting) and metrics equal
to hand computations, per-task metrics in the history/summary, early stopping on a task, and
``regularize.share`` reaching ``share_parameters``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from goodfit.app.build import build_run, prepare_from_config
from goodfit.app.cli import main
from goodfit.app.config import parse_config
from goodfit.data import load_dataset
from goodfit.nn.models import mlp
from goodfit.nn.multihead import multihead
from goodfit.train.multitask import MultiTaskLoss, TaskUncertainty, task_losses, task_metrics

TASKS = [
    {"name": "a", "kind": "classification", "width": 3},
    {"name": "b", "kind": "regression", "width": 1},
]


def _batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(n, 4, generator=g)
    y = torch.stack(
        [torch.randint(0, 3, (n,), generator=g).float(), torch.randn(n, generator=g)], 1
    )
    return out, y


def test_task_losses_and_weighted_loss_equal_hand_computations():
    out, y = _batch()
    ce = F.cross_entropy(out[:, :3], y[:, 0].long())
    mse = ((out[:, 3] - y[:, 1]) ** 2).mean()
    la, lb = task_losses(out, y, TASKS)
    torch.testing.assert_close(la, ce)
    torch.testing.assert_close(lb, mse)
    torch.testing.assert_close(MultiTaskLoss(TASKS, [0.3, 2.0])(out, y), 0.3 * ce + 2.0 * mse)


def test_uncertainty_weighting_is_kendalls_formula_and_eval_uses_the_fixed_weights():
    out, y = _batch()
    unc = TaskUncertainty(2)
    with torch.no_grad():
        unc.log_var.copy_(torch.tensor([0.4, -0.7]))
    loss = MultiTaskLoss(TASKS, uncertainty=unc)
    ce, mse = task_losses(out, y, TASKS)
    s = unc.log_var
    # Kendall et al. 2018: L/sigma^2 + log sigma (classification), L/(2 sigma^2) + log sigma
    # (regression), with s = log sigma^2 so log sigma = s / 2
    want = torch.exp(-s[0]) * ce + 0.5 * s[0] + 0.5 * torch.exp(-s[1]) * mse + 0.5 * s[1]
    torch.testing.assert_close(loss(out, y), want)
    loss(out, y).backward()
    assert unc.log_var.grad is not None and (unc.log_var.grad != 0).all()
    with torch.no_grad():
        torch.testing.assert_close(loss(out, y), ce + mse)


def test_task_metrics_equal_hand_computations():
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 4)
    X = torch.randn(30, 5)
    _, y = _batch(30, seed=1)
    m = task_metrics(net, X, y, TASKS, "val_", batch_size=7)
    out = net(X).detach()
    assert m["val_a_accuracy"] == pytest.approx(
        float((out[:, :3].argmax(1) == y[:, 0]).float().mean())
    )
    assert m["val_a_loss"] == pytest.approx(float(F.cross_entropy(out[:, :3], y[:, 0].long())))
    assert m["val_b_loss"] == pytest.approx(float(((out[:, 3] - y[:, 1]) ** 2).mean()), rel=1e-5)
    assert "val_b_accuracy" not in m


def test_linear_heads_are_the_builders_last_layer_split_by_task():
    torch.manual_seed(0)
    base = mlp((6,), [8], 4)
    x = torch.randn(5, 6)
    expected = base(x)
    net = multihead(base, {"a": 3, "b": 1}, {})
    torch.testing.assert_close(net(x), expected)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["trunk.0.weight", "trunk.0.bias", "heads.a.weight", "heads.a.bias",
                     "heads.b.weight", "heads.b.bias"]  # fmt: skip
    deep = multihead(mlp((6,), [8], 4), {"a": 3, "b": 1}, {"b": [5]})
    assert deep(x).shape == (5, 4) and deep.heads["b"][0].out_features == 5


def test_npz_csv_and_digits_parity_load_several_tasks(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    npz = tmp_path / "mt.npz"
    np.savez(npz, X=X, y_kind=rng.integers(0, 3, 50), y_size=rng.normal(size=50))
    ds = load_dataset(str(npz), standardize=False)
    assert ds.task == "multitask" and ds.num_outputs == 4
    assert ds.info["tasks"] == [
        {"name": "kind", "kind": "classification", "width": 3},
        {"name": "size", "kind": "regression", "width": 1},
    ]
    csv = tmp_path / "mt.csv"
    rows = ["f1,f2,c,r"] + [f"{a:.3f},{b:.3f},{i % 2},{a * b:.4f}" for i, (a, b, _) in enumerate(X)]
    csv.write_text("\n".join(rows) + "\n")
    ds = load_dataset(str(csv), standardize=False, label=["c", "r"])
    assert [t["name"] for t in ds.info["tasks"]] == ["c", "r"] and ds.input_shape == (2,)
    dp, digits = (
        load_dataset("digits_parity", standardize=False),
        load_dataset("digits", standardize=False),
    )
    assert torch.equal(dp.X_test, digits.X_test)  # the digits split
    assert torch.equal(dp.y_test[:, 0].long(), digits.y_test)
    assert torch.equal(dp.y_test[:, 1].long(), digits.y_test % 2)


def test_a_run_reports_per_task_metrics_and_early_stops_on_a_task(
    write_toml, tmp_path, torch_globals
):
    cfg = write_toml("""
[data]
name = "digits_parity"
[model]
kind = "mlp"
widths = [16]
[train]
epochs = 2
[multitask]
weights = {digit = 1.0, parity = 0.5}
[early_stopping]
monitor = "val_parity_accuracy"
""")
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # trained two epochs: far above chance (0.1 for the digit, 0.5 for the parity)
    assert summary["test_digit_accuracy"] > 0.3 and summary["test_parity_accuracy"] > 0.6
    assert summary["best_val_parity_accuracy"] == summary["final_val_parity_accuracy"] or (
        summary["best_epoch"] == 1
    )
    assert "final_val_digit_loss" in summary
    record = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    assert record["val_loss"] == pytest.approx(
        record["val_digit_loss"] + 0.5 * record["val_parity_loss"], rel=1e-5
    )


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["multitask.weights.colour=1.0"], "multitask.weights: 'colour' is not a task"),
        (["model.heads.colour=[4]"], "model.heads: 'colour' is not a task"),
        (['early_stopping.monitor="val_colour_accuracy"'], "val_parity_accuracy"),
        (['data.name="digits"', "multitask.weights.digit=1.0"], "need data with several targets"),
        (['regularize.share=[{a = "0", b = "nowhere"}]'], "regularize.share[0]"),
    ],
)
def test_bad_multitask_values_exit_2(sets, needle, write_toml, tmp_path, capsys, torch_globals):
    cfg = write_toml('[data]\nname = "digits_parity"\n[model]\nkind = "mlp"\nwidths = [8]\n'
                     "[train]\nepochs = 1\n")  # fmt: skip
    args = ["train", str(cfg), "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err


def test_regularize_share_makes_two_layers_use_one_parameter():
    cfg = parse_config({
        "data": {"name": "moons", "options": {"n_samples": 100}},
        "model": {"kind": "mlp", "widths": [8, 8, 8]},
        "regularize": {"share": [{"a": "2", "b": "4"}]},
    })  # fmt: skip
    ds = load_dataset("moons", standardize=False, n_samples=100)
    parts = build_run(cfg, prepare_from_config(cfg, ds))
    assert parts.model[4].weight is parts.model[2].weight
    n_params = sum(p.numel() for p in parts.model.parameters())
    assert n_params == (2 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2)  # layers 2 and 4: one set
