"""End-to-end wiring: each capability of issues 3-6 (optimizers, schedules, penalties and
constraints, initializers, dropout/normalization layers) and augmentation is reachable from a TOML
config through ``goodfit train``, and a bad value there exits with status 2 and one message that
names the key or value, no traceback.

The references are the Python API itself (the object a config builds must be the one the factory
builds with the same hyperparameters) and torch.optim / closed-form formulas where they apply.
Runs are tiny (moons or digits, 1-3 epochs, a few steps each).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import goodfit as gf
from goodfit import schedules
from goodfit.app.build import (
    base_lr,
    build_model,
    build_optimizer,
    build_schedule,
    param_groups,
)
from goodfit.app.cli import main
from goodfit.app.config import config_to_toml, parse_config
from goodfit.app.optimizer_spec import OPTIMIZERS
from goodfit.app.regularize_spec import penalty_from_config
from goodfit.app.run import run_config
from goodfit.app.schedule_spec import SCHEDULES
from goodfit.hooks import Callback
from goodfit.nn.dropout import DROPOUTS, POOL_DROPOUTS, make_dropout, make_pool_dropout
from goodfit.nn.norm import NORMS, make_norm

#: moons: 800 training samples -> 640 train / 160 validation; batch 128 -> 5 steps per epoch
BASE: dict[str, Any] = {
    "data": {"name": "moons"},
    "model": {"kind": "mlp", "widths": [8]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 1, "batch_size": 128},
    "checkpoint": {"enabled": False},
}
DIGITS_CNN: dict[str, Any] = {
    "data": {"name": "digits"},
    "model": {"kind": "cnn2d", "channels": [4], "hidden": [8]},
    "train": {"batch_size": 256},
}


@pytest.fixture(autouse=True)
def _restore_torch_globals(torch_globals):
    """``run_config`` sets torch's thread count and deterministic mode; restore them."""
    yield


def merge(base: dict[str, Any], *overs: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of config dicts (later wins); a ``None`` value removes the key."""
    out = copy.deepcopy(base)
    for over in overs:
        for key, value in over.items():
            if value is None:
                out.pop(key, None)
            elif isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def train(tmp_path: Path, *overs: dict[str, Any], name: str = "run") -> tuple[int, Path]:
    """``goodfit train CONFIG --out DIR`` on BASE merged with ``overs``."""
    path = tmp_path / f"{name}.toml"
    path.write_text(config_to_toml(merge(BASE, *overs)))
    out = tmp_path / name
    return main(["train", str(path), "--out", str(out)]), out


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def assert_trained(status: int, out: Path, epochs: int = 1) -> list[dict[str, Any]]:
    assert status == 0
    recs = records(out)
    assert [r["epoch"] for r in recs] == list(range(1, epochs + 1))
    assert all(math.isfinite(r["train_loss"]) for r in recs)
    assert (out / "summary.json").exists() and (out / "model.pt").exists()
    return recs


def assert_user_error(status: int, capsys: pytest.CaptureFixture, *needles: str) -> str:
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert err.startswith("goodfit train: error:"), err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def config(*overs: dict[str, Any]):
    return parse_config(merge(BASE, *overs))


def model_for(cfg, input_shape=(2,), num_outputs=2) -> nn.Module:
    torch.manual_seed(0)
    return build_model(cfg.model, input_shape, num_outputs)


# -- optimizers (issue 3) --------------------------------------------------------------------------

# (config [optimizer] table, the torch.optim namesake with the same hyperparameters or None)
OPTIMIZER_CASES = {
    "sgd_nesterov": (
        {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "gd": ({"name": "gd", "lr": 0.05}, lambda g: torch.optim.SGD(g, lr=0.05)),
    # seed 000's heavy-ball form W_t = W_{t-1} - lr g + beta (W_{t-1} - W_{t-2}) equals torch's
    # momentum SGD (v = beta v + g, W -= lr v) at a constant rate: W_t - W_{t-1} = -lr v_t.
    "heavy_ball": (
        {"name": "heavy_ball", "lr": 0.05, "momentum": 0.8},
        lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.8),
    ),
    "rmsprop_centered": (
        {"name": "rmsprop", "lr": 0.01, "decay": 0.9, "momentum": 0.5, "centered": True},
        lambda g: torch.optim.RMSprop(g, lr=0.01, alpha=0.9, momentum=0.5, centered=True),
    ),
    "rmsprop_nesterov": ({"name": "rmsprop", "lr": 0.01, "momentum": 0.9, "nesterov": True}, None),
    "adam_amsgrad": (
        {"name": "adam", "lr": 0.01, "b2": 0.99, "amsgrad": True},
        lambda g: torch.optim.Adam(g, lr=0.01, betas=(0.9, 0.99), amsgrad=True),
    ),
    "adamw": (
        {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
        lambda g: torch.optim.AdamW(g, lr=0.01, weight_decay=0.1),
    ),
    "amsgrad": (
        {"name": "amsgrad", "lr": 0.01},
        lambda g: torch.optim.Adam(g, lr=0.01, amsgrad=True),
    ),
    "adagrad": (
        {"name": "adagrad", "lr": 0.1, "eps": 1e-6},
        lambda g: torch.optim.Adagrad(g, lr=0.1, eps=1e-6),
    ),
    "adadelta": (
        {"name": "adadelta", "lr": 1.0, "rho": 0.95},
        lambda g: torch.optim.Adadelta(g, lr=1.0, rho=0.95),
    ),
    "adamax": (
        {"name": "adamax", "lr": 0.01, "b1": 0.8},
        lambda g: torch.optim.Adamax(g, lr=0.01, betas=(0.8, 0.999)),
    ),
    "nadam": (
        {"name": "nadam", "lr": 0.01, "weight_decay": 0.01},
        lambda g: torch.optim.NAdam(g, lr=0.01, weight_decay=0.01),
    ),
}


def _run_steps(opt: torch.optim.Optimizer, model: nn.Module, steps: int = 5) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 2, generator=gen), torch.randint(0, 2, (32,), generator=gen)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_named_optimizer_from_config_is_goodfits_and_equals_the_reference(case):
    table, reference = OPTIMIZER_CASES[case]
    cfg = config({"optimizer": table})
    model = model_for(cfg)
    opt = build_optimizer(cfg.optimizer, model)
    assert isinstance(opt, gf.optim.Optimizer)
    got = _run_steps(opt, model)

    # the same hyperparameters through the Python API (and torch's namesake where it exists),
    # with the same param groups (biases out of the weight decay when there is one)
    kwargs = {k: v for k, v in table.items() if k != "name"}
    decay = bool(kwargs.get("weight_decay", 0.0))
    ref_model = model_for(cfg)
    api = OPTIMIZERS[table["name"]](param_groups(ref_model, decay), **kwargs)
    for a, b in zip(got, _run_steps(api, ref_model), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    if reference is not None:
        torch_model = model_for(cfg)
        for a, b in zip(got, _run_steps(reference(param_groups(torch_model, decay)), torch_model),
                        strict=True):  # fmt: skip
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_named_optimizer_trains_through_goodfit_train(tmp_path, case):
    table, _ = OPTIMIZER_CASES[case]
    recs = assert_trained(*train(tmp_path, {"optimizer": table}))
    assert recs[0]["lr"] == table["lr"]


def test_chain_of_transforms_from_config(tmp_path):
    chain = [
        {"name": "clip_by_global_norm", "max_norm": 1.0},
        {"name": "scale_by_adam", "b1": 0.8},
        {"name": "scale_by_lr", "lr": 0.01},
    ]
    cfg = config({"optimizer": {"name": "adam", "lr": None, "chain": chain}})
    model = model_for(cfg)
    opt = build_optimizer(cfg.optimizer, model)
    assert isinstance(opt, gf.optim.Optimizer)
    got = _run_steps(opt, model)
    ref_model = model_for(cfg)
    tx = gf.optim.chain(
        gf.optim.clip_by_global_norm(1.0),
        gf.optim.scale_by_adam(b1=0.8),
        gf.optim.scale_by_lr(0.01),
    )
    ref = _run_steps(gf.optim.Optimizer(ref_model.parameters(), tx), ref_model)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    status, out = train(tmp_path, {"optimizer": {"name": "adam", "lr": None, "chain": chain}})
    assert records(out)[0]["lr"] == 0.01 and status == 0


def test_compiled_optimizer_from_config(tmp_path):
    """``compiled = true`` reaches the optimizer for a named optimizer and for a chain, and a
    compiled Adam trains through ``goodfit train`` to the eager run's numbers (float32)."""
    chain = [{"name": "scale_by_adam"}, {"name": "scale_by_lr", "lr": 0.01}]
    for table in ({"name": "adam", "compiled": True}, {"chain": chain, "compiled": True}):
        cfg = config({"optimizer": {"lr": None, **table}})
        assert build_optimizer(cfg.optimizer, model_for(cfg)).compiled is True
    eager = assert_trained(*train(tmp_path, {"optimizer": {"name": "adam"}}, name="eager"))
    comp = assert_trained(
        *train(tmp_path, {"optimizer": {"name": "adam", "compiled": True}}, name="compiled")
    )
    assert comp[0]["train_loss"] == pytest.approx(eager[0]["train_loss"], rel=1e-4)


def test_torch_optimizer_by_name(tmp_path):
    cfg = config({"optimizer": {"name": "torch.SGD", "lr": 0.1, "momentum": 0.9}})
    opt = build_optimizer(cfg.optimizer, model_for(cfg))
    assert type(opt) is torch.optim.SGD and opt.param_groups[0]["momentum"] == 0.9
    assert_trained(*train(tmp_path, {"optimizer": {"name": "torch.SGD", "momentum": 0.9}}))


def test_lbfgs_full_batch(tmp_path):
    table = {"name": "lbfgs", "lr": 0.5, "max_iter": 5}
    opt = build_optimizer(config({"optimizer": table}).optimizer, model_for(config()))
    assert type(opt) is torch.optim.LBFGS
    recs = assert_trained(
        *train(tmp_path, {"optimizer": table, "train": {"epochs": 2, "batch_size": 1000}}),
        epochs=2,
    )
    assert recs[0]["step"] == 1 and recs[1]["train_loss"] < recs[0]["train_loss"]


@pytest.mark.parametrize("name", ["adamw", "torch.AdamW", "sgd"])
def test_weight_decay_leaves_out_biases_and_norm_parameters(name):
    table = {"name": name, "lr": 0.01}
    if name == "sgd":
        table["weight_decay"] = 1e-3
    # adamw's *default* weight decay (0.01, as torch) must also leave biases and BN out
    cfg = config({"optimizer": table, "model": {"norm": "batch"}})
    model = model_for(cfg)
    opt = build_optimizer(cfg.optimizer, model)
    weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == weights
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_chain_with_decayed_weights_leaves_out_biases():
    chain = [
        {"name": "scale_by_adam"},
        {"name": "add_decayed_weights", "weight_decay": 0.1},
        {"name": "scale_by_lr", "lr": 0.01},
    ]
    cfg = config({"optimizer": {"lr": None, "chain": chain}})
    model = model_for(cfg)
    opt = build_optimizer(cfg.optimizer, model)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}


@pytest.mark.parametrize(
    "optimizer, needles",
    [
        ({"name": "adamm"}, ["'adamm'", "did you mean 'adam'"]),
        ({"name": "sgd", "momentun": 0.9}, ["[optimizer]", "'momentun'", "momentum"]),
        ({"name": "sgd", "lr": -1.0}, ["optimizer.lr", "-1.0"]),
        ({"name": "adam", "b1": 1.0}, ["[optimizer]", "b1", "1.0"]),
        ({"name": "adam", "b2": -0.1}, ["[optimizer]", "b2", "-0.1"]),
        ({"name": "sgd", "momentum": 1.5}, ["[optimizer]", "momentum", "1.5"]),
        (
            {"chain": [{"name": "scale_by_adam"}, {"name": "scale_by_lrr", "lr": 0.1}]},
            ["chain[1]", "'scale_by_lrr'", "scale_by_lr"],
        ),
        ({"chain": [{"name": "scale_by_adam", "beta1": 0.9}]}, ["chain", "beta1"]),
        ({"name": "adam", "compiled": "yes"}, ["[optimizer]", "compiled", "'yes'"]),
        ({"chain": [{"name": "scale_by_adam"}], "compiled": 1}, ["[optimizer]", "compiled", "1"]),
    ],
    ids=[
        "name",
        "key",
        "lr",
        "b1",
        "b2",
        "momentum",
        "transform",
        "transform_key",
        "compiled",
        "chain_compiled",
    ],
)
def test_bad_optimizer_config_exits_2(tmp_path, capsys, optimizer, needles):
    status, _ = train(tmp_path, {"optimizer": {"lr": None, **optimizer}})
    assert_user_error(status, capsys, *needles)


# -- schedules (issue 4) ---------------------------------------------------------------------------


class _LrPerStep(Callback):
    """Records ``(optimizer steps done, lr)`` as each batch starts: the rate its step uses."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_batch_start(self, trainer) -> None:
        self.seen.append((trainer.step, float(trainer.optimizer.param_groups[0]["lr"])))


@pytest.mark.parametrize(
    "schedule, expected",
    [
        # step interval: decay_steps defaults to the whole run, 3 epochs x 5 steps
        ({"name": "cosine", "end_value": 0.01}, schedules.cosine(0.1, 15, end_value=0.01)),
        # *_epochs keys in step interval: warmup_epochs = 1 -> 5 steps
        ({"name": "warmup_cosine", "warmup_epochs": 1}, schedules.warmup_cosine(0.1, 5, 15)),
        # epoch interval: the position counts epochs, boundaries in epochs
        (
            {"name": "piecewise_constant", "interval": "epoch", "boundaries_epochs": [1, 2],
             "scales": [0.5, 0.1]},
            schedules.piecewise_constant([1, 2], init_value=0.1, scales=[0.5, 0.1]),
        ),
        ({"name": "exponential", "interval": "epoch", "decay_rate": 0.5},
         schedules.exponential(0.1, decay_rate=0.5)),
    ],
    ids=["cosine", "warmup_cosine_epochs", "piecewise_epoch", "exponential_epoch"],
)  # fmt: skip
def test_schedule_from_config_drives_the_lr(tmp_path, schedule, expected):
    cfg = config({"schedule": schedule, "train": {"epochs": 3}})
    spy = _LrPerStep()
    out = tmp_path / "run"
    result = run_config(cfg, out, progress=False, extra_callbacks=[spy])
    steps_per_epoch = 5
    per_epoch = schedule.get("interval") == "epoch"
    assert len(spy.seen) == 3 * steps_per_epoch
    for step, lr in spy.seen:
        position = step // steps_per_epoch if per_epoch else step
        assert lr == pytest.approx(expected(position), rel=1e-12, abs=1e-15)
    for r in result.records:  # history: the rate of the epoch's last step
        position = r["epoch"] - 1 if per_epoch else r["step"] - 1
        assert r["lr"] == pytest.approx(expected(position), rel=1e-12, abs=1e-15)
    assert records(out) == json.loads(json.dumps(result.records))
    assert (out / "lr.png").stat().st_size > 0


# every schedule by name: (its config keys, the same schedule built directly; the run is
# 3 epochs x 5 steps and the optimizer's lr is 0.1, which the config fills in)
ALL_SCHEDULES = {
    "constant": ({}, lambda: schedules.constant(0.1)),
    "inverse_time": ({"decay_rate": 0.1}, lambda: schedules.inverse_time(0.1, 0.1)),
    "linear": ({"end_value": 0.01}, lambda: schedules.linear(0.1, 0.01, 15)),
    "exponential": ({"decay_rate": 0.9}, lambda: schedules.exponential(0.1, decay_rate=0.9)),
    "sqrt_decay": ({}, lambda: schedules.sqrt_decay(0.1)),
    "inverse_sqrt": ({"warmup_steps": 3}, lambda: schedules.inverse_sqrt(0.1, 3)),
    "polynomial": ({"power": 2.0}, lambda: schedules.polynomial(0.1, 15, power=2.0)),
    "piecewise_constant": (
        {"boundaries": [5, 10], "scales": [0.5, 0.5]},
        lambda: schedules.piecewise_constant([5, 10], init_value=0.1, scales=[0.5, 0.5]),
    ),
    "cosine": ({}, lambda: schedules.cosine(0.1, 15)),
    "warmup_cosine": ({"warmup_steps": 3}, lambda: schedules.warmup_cosine(0.1, 3, 15)),
    "cosine_restarts": ({"period_steps": 4}, lambda: schedules.cosine_restarts(0.1, 4)),
    "cyclic": ({"low": 0.01, "up_steps": 3}, lambda: schedules.cyclic(0.01, 0.1, 3)),
    "one_cycle": ({}, lambda: schedules.one_cycle(0.1, 15)),
}


def test_every_schedule_is_reachable_from_the_config():
    assert set(ALL_SCHEDULES) == set(SCHEDULES)


@pytest.mark.parametrize("name", sorted(ALL_SCHEDULES))
def test_schedule_by_name_equals_the_factory(name):
    params, direct = ALL_SCHEDULES[name]
    cfg = config({"schedule": {"name": name, **params}, "train": {"epochs": 3}})
    lr = base_lr(build_optimizer(cfg.optimizer, model_for(cfg)))
    built, expected = build_schedule(cfg, lr, steps_per_epoch=5), direct()
    assert [built(t) for t in range(20)] == [expected(t) for t in range(20)]


@pytest.mark.parametrize("optimizer", ["sgd", "torch.SGD"])
def test_schedule_through_the_cli_writes_lr_png(tmp_path, optimizer):
    over = {
        "optimizer": {"name": optimizer},
        "schedule": {"name": "cosine"},
        "train": {"epochs": 2},
    }
    status, out = train(tmp_path, over)
    recs = assert_trained(status, out, epochs=2)
    assert [r["lr"] for r in recs] == pytest.approx([schedules.cosine(0.1, 10)(s) for s in (4, 9)])
    assert (out / "lr.png").stat().st_size > 0


@pytest.mark.parametrize(
    "optimizer, base_lr",
    [
        ({"name": "adamax"}, 0.002),
        ({"chain": [{"name": "scale_by_adam"}, {"name": "scale_by_lr", "lr": 0.01}]}, 0.01),
    ],
    ids=["named", "chain"],
)
def test_schedule_without_optimizer_lr_starts_from_the_optimizers_rate(
    tmp_path, optimizer, base_lr
):
    over = {"optimizer": {"lr": None, **optimizer}, "schedule": {"name": "cosine"}}
    status, out = train(tmp_path, over)
    assert records(out)[0]["lr"] == pytest.approx(schedules.cosine(base_lr, 5)(4)) and status == 0


def test_reduce_on_plateau(tmp_path):
    # threshold 1e9 (abs): only the first validation counts as an improvement, so with
    # patience 0 every later validation halves the rate: 0.1, 0.05, 0.025
    schedule = {"name": "reduce_on_plateau", "patience": 0, "factor": 0.5,
                "threshold": 1e9, "threshold_mode": "abs"}  # fmt: skip
    status, out = train(tmp_path, {"schedule": schedule, "train": {"epochs": 3}})
    recs = assert_trained(status, out, epochs=3)
    assert [r["lr"] for r in recs] == pytest.approx([0.1, 0.05, 0.025], rel=1e-12)
    assert not (out / "lr.png").exists()


@pytest.mark.parametrize(
    "schedule, needles",
    [
        ({"name": "cosinus"}, ["[schedule]", "'cosinus'"]),
        ({"name": "cosine", "init_value": -0.1}, ["[schedule]", "init_value", "-0.1"]),
        ({"name": "exponential", "decay_rate": -0.5}, ["[schedule]", "decay_rate", "-0.5"]),
        ({"name": "warmup_cosine", "warmup_epochs": 5}, ["[schedule]", "warmup"]),
        ({"name": "cosine", "decay_stepz": 10}, ["[schedule]", "'decay_stepz'"]),
        ({"name": "reduce_on_plateau", "patiense": 2}, ["[schedule]", "'patiense'"]),
        ({"name": "cosine", "interval": "batch"}, ["schedule.interval", "'batch'"]),
        ({"name": "cosine", "interval": "epoch", "decay_steps": 2}, ["'decay_epochs'"]),
        ({"name": "cosine", "decay_epochs": 1, "decay_steps": 5}, ["decay_epochs", "decay_steps"]),
    ],
    ids=[
        "name",
        "init_value",
        "rate",
        "warmup",
        "key",
        "plateau_key",
        "interval",
        "steps_in_epochs",
        "both",
    ],
)
def test_bad_schedule_config_exits_2(tmp_path, capsys, schedule, needles):
    status, _ = train(tmp_path, {"schedule": schedule, "train": {"epochs": 2}})
    assert_user_error(status, capsys, *needles)


# -- penalties, constraints (issue 5) --------------------------------------------------------------


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize(
    "regularize, formula",
    [
        ({"l2": 0.01}, lambda ws: 0.5 * 0.01 * sum((w**2).sum() for w in ws)),
        ({"l1": 0.01}, lambda ws: 0.01 * sum(w.abs().sum() for w in ws)),
        # seed 000: lambda2/2 ||W||^2 + lambda1 ||W||_1
        ({"elastic": {"l1": 0.01, "l2": 0.02}},
         lambda ws: sum(0.01 * w.abs().sum() + 0.5 * 0.02 * (w**2).sum() for w in ws)),
        # seed 001: lambda (alpha ||w||^2 + (1 - alpha) ||w||_1)
        ({"elastic": {"lam": 0.01, "alpha": 0.3}},
         lambda ws: sum(0.01 * (0.3 * (w**2).sum() + 0.7 * w.abs().sum()) for w in ws)),
        # seed 000's per-layer Lambda_j ||W_j||_p^p, here on the first Linear only ("0")
        ({"per_layer": [{"pattern": "0", "coef": 0.05, "p": 2}]},
         lambda ws: 0.05 * (ws[0] ** 2).sum()),
    ],
    ids=["l2", "l1", "elastic_seed000", "elastic_seed001", "per_layer"],
)  # fmt: skip
def test_penalty_from_config_matches_its_formula(tmp_path, regularize, formula):
    cfg = config({"regularize": regularize})
    model = model_for(cfg)
    penalty = penalty_from_config(cfg.regularize, model, batch_size=cfg.train.batch_size)
    torch.testing.assert_close(penalty(model), formula(_weights(model)))

    recs = assert_trained(*train(tmp_path, {"regularize": regularize}))
    assert recs[0]["penalty"] > 0
    has_l1 = "l1" in regularize or "elastic" in regularize or "per_layer" in regularize
    sparsity = {k for k in recs[0] if k.startswith("sparsity/")}
    assert ("sparsity/total" in sparsity) == has_l1
    if has_l1:
        assert sparsity == {"sparsity/0", "sparsity/2", "sparsity/total"}


@pytest.mark.parametrize(
    "over",
    [
        {"regularize": {"prior": {"kind": "laplace", "scale": 1.0}}},
        # proximal L1 in the optimizer, next to an L2 penalty
        {"regularize": {"l2": 1e-3},
         "optimizer": {"lr": None, "chain": [{"name": "scale_by_lr", "lr": 0.1},
                                             {"name": "add_proximal_l1", "l1": 0.01}]}},
    ],
    ids=["laplace_prior", "proximal_l1"],
)  # fmt: skip
def test_sparsity_is_reported_for_every_l1_source(tmp_path, over):
    recs = assert_trained(*train(tmp_path, over))
    assert {"sparsity/0", "sparsity/2", "sparsity/total"} <= recs[0].keys()


def test_no_penalty_key_without_regularize(tmp_path):
    recs = assert_trained(*train(tmp_path))
    assert "penalty" not in recs[0] and not any(k.startswith("sparsity/") for k in recs[0])


def test_max_norm_constraint_holds_after_training(tmp_path):
    c = 0.3
    status, out = train(
        tmp_path,
        {"optimizer": {"lr": 1.0}, "model": {"widths": [16]},
         "regularize": {"constraints": [{"kind": "max_norm", "max_value": c}]}},
    )  # fmt: skip
    assert_trained(status, out)
    state = torch.load(out / "model.pt", weights_only=True)
    norms = torch.cat([state[k].norm(dim=1) for k in ("0.weight", "2.weight")])
    assert norms.max() <= c * (1 + 1e-6)
    # the constraint was active (lr 1.0 pushes rows past c; U(+-1/sqrt 2) init rows are ~0.6)
    assert norms.max() >= c * (1 - 1e-6)


@pytest.mark.parametrize(
    "regularize, needles",
    [
        ({"per_layer": [{"pattern": "encoder.*", "coef": 0.1}]}, ["encoder.*"]),
        ({"l2": -0.1}, ["l2", "-0.1"]),
        ({"l1": -1e-3}, ["l1", "-0.001"]),
        ({"elastic": {"lam": 0.1, "alpha": 1.5}}, ["alpha", "1.5"]),
        ({"elastic": {"lam": 0.1, "alpha": -0.5}}, ["alpha", "-0.5"]),
        ({"l3": 0.1}, ["regularize.l3", "unknown key"]),
        ({"constraints": [{"kind": "max_norm", "max_value": -1.0}]}, ["max_value", "-1.0"]),
        ({"constraints": [{"kind": "maxnorm", "max_value": 1.0}]}, ["'maxnorm'"]),
    ],
    ids=["pattern", "l2", "l1", "alpha_high", "alpha_low", "key", "max_value", "kind"],
)
def test_bad_regularize_config_exits_2(tmp_path, capsys, regularize, needles):
    status, _ = train(tmp_path, {"regularize": regularize})
    assert_user_error(status, capsys, "regularize", *needles)


# -- initializers (issue 5) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "init, scheme, gain, var",
    [
        # a scheme's name means its formula (seed 004): Glorot var = 2/(m+n), no activation gain
        ("glorot_uniform", "glorot_uniform", None, 2 / (64 + 512)),
        # He's formula is var = 2/m (the ReLU gain is part of it), m = 64
        ({"scheme": "he_normal"}, "he_normal", None, 2 / 64),
        # a gain only when asked for: Glorot scaled by the ReLU gain sqrt(2)
        ({"scheme": "glorot_uniform", "gain": "relu"}, "glorot_uniform", "relu", 2 * 2 / 576),
        ({"scheme": "lecun_normal"}, "lecun_normal", None, 1 / 64),
    ],
)
def test_init_from_config(tmp_path, init, scheme, gain, var):
    over = {"model": {"widths": [512], "init": init}}
    cfg = config(over)
    torch.manual_seed(0)
    model = build_model(cfg.model, (64,), 10)
    torch.manual_seed(0)
    plain = build_model(config({"model": {"widths": [512]}}).model, (64,), 10)
    # the same draws through the Python API
    expected = gf.init.apply(copy.deepcopy(plain), scheme, gain=gain)
    first, ref_first = model[0], expected[0]
    torch.testing.assert_close(first.weight, ref_first.weight, rtol=0, atol=0)
    assert not torch.equal(first.weight, plain[0].weight)
    assert torch.count_nonzero(first.bias) == 0
    w = first.weight.detach().double()
    # 32768 draws: the sample variance's relative standard error is sqrt(2/N) (normal) or
    # sqrt(0.8/N) (uniform) <= 0.8 %, so 4 % is > 5 standard errors (a truncated normal's
    # variance is the formula's, as the scheme rescales it)
    assert w.var().item() == pytest.approx(var, rel=0.04)
    if scheme == "glorot_uniform":
        assert w.abs().max() <= math.sqrt(3 * var)
    assert_trained(*train(tmp_path, {"model": {"init": init}}))


@pytest.mark.parametrize(
    "init, needles",
    [("glorot_unifrom", ["model.init", "glorot_unifrom"]),
     ({"scheme": "he_normal", "gainn": 2.0}, ["model.init", "gainn"]),
     ({"gain": 2.0}, ["init", "scheme"])],
    ids=["scheme", "key", "no_scheme"],
)  # fmt: skip
def test_bad_init_exits_2(tmp_path, capsys, init, needles):
    status, _ = train(tmp_path, {"model": {"init": init}})
    assert_user_error(status, capsys, *needles)


# -- dropout and normalization layers (issue 6) ----------------------------------------------------


def _types(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules()]


@pytest.mark.parametrize("kind", [*sorted(DROPOUTS), "dropconnect"])
def test_dropout_kind_from_config(tmp_path, kind):
    spec = {"kind": kind, "p": 0.2}
    cnn = build_model(config(DIGITS_CNN, {"model": {"dropout": spec}}).model, (1, 8, 8), 10)
    if kind == "dropconnect":
        from goodfit.nn.dropout import DropConnectLinear

        assert DropConnectLinear in _types(cnn)
        mlp_model = build_model(config({"model": {"dropout": spec}}).model, (2,), 2)
        layers = [m for m in mlp_model.modules() if isinstance(m, nn.Linear)]
        assert [type(m) is DropConnectLinear for m in layers] == [True, False]  # not the head
        assert layers[0].p == 0.2
    else:
        expected = make_dropout(kind, 0.2, dims=2)
        found = [m for m in cnn.modules() if type(m) is type(expected)]
        assert found and repr(found[0]) == repr(expected)
        if kind != "spatial":  # channel dropout has no channels after the MLP's Flatten
            mlp_model = build_model(config({"model": {"dropout": spec}}).model, (2,), 2)
            expected = make_dropout(kind, 0.2, dims=0)
            found = [m for m in mlp_model.modules() if type(m) is type(expected)]
            assert len(found) == 1 and repr(found[0]) == repr(expected)
    over = (
        {"model": {"dropout": spec}}
        if kind != "spatial"
        else merge(DIGITS_CNN, {"model": {"dropout": spec}})
    )
    assert_trained(*train(tmp_path, over))


@pytest.mark.parametrize("kind", sorted(NORMS))
def test_norm_kind_from_config(tmp_path, kind):
    cnn = build_model(config(DIGITS_CNN, {"model": {"norm": kind}}).model, (1, 8, 8), 10)
    assert type(make_norm(kind, 4, dims=2)) in _types(cnn)
    if kind != "instance":
        mlp_model = build_model(config({"model": {"norm": kind}}).model, (2,), 2)
        assert type(make_norm(kind, 8, dims=0)) in _types(mlp_model)
    assert_trained(*train(tmp_path, DIGITS_CNN, {"model": {"norm": kind}}))


@pytest.mark.parametrize("pool", sorted(POOL_DROPOUTS))
def test_pool_dropout_from_config(tmp_path, pool):
    over = merge(DIGITS_CNN, {"model": {"pool": {"kind": pool, "p": 0.3}}})
    cnn = build_model(config(over).model, (1, 8, 8), 10)
    expected = make_pool_dropout(pool, 0.3, kernel_size=2, dims=2)
    found = [m for m in cnn.modules() if type(m) is type(expected)]
    assert len(found) == 1 and repr(found[0]) == repr(expected)
    assert not any(isinstance(m, nn.MaxPool2d) for m in cnn.modules())
    assert_trained(*train(tmp_path, over))


def test_norm_and_dropconnect_tables_from_config():
    from goodfit.nn.dropout import DropConnectConv2d, DropConnectLinear
    from goodfit.nn.norm import BiasedVarBatchNorm

    over = merge(DIGITS_CNN, {"model": {"norm": {"kind": "group", "groups": 4}}})
    groups = [m for m in build_model(config(over).model, (1, 8, 8), 10).modules()
              if isinstance(m, nn.GroupNorm)]  # fmt: skip
    assert groups and all(m.num_groups == 4 for m in groups)
    over = merge(DIGITS_CNN, {"model": {"norm": {"kind": "batch", "running_var": "biased"}}})
    cnn = build_model(config(over).model, (1, 8, 8), 10)
    assert any(isinstance(m, BiasedVarBatchNorm) for m in cnn.modules())
    over = merge(DIGITS_CNN, {"model": {"dropout": {"kind": "dropconnect", "p": 0.2}}})
    types = {type(m) for m in build_model(config(over).model, (1, 8, 8), 10).modules()}
    assert DropConnectConv2d in types and DropConnectLinear in types


@pytest.mark.parametrize("flag", ["weight_standardization", "spectral_norm"])
def test_weight_standardization_and_spectral_norm(tmp_path, flag):
    from goodfit.nn.norm import WSConv2d, WSLinear

    over = merge(DIGITS_CNN, {"model": {flag: True}})
    cnn = build_model(config(over).model, (1, 8, 8), 10)
    convs = [m for m in cnn.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in cnn.modules() if isinstance(m, nn.Linear)]
    if flag == "weight_standardization":
        assert convs and all(type(m) is WSConv2d for m in convs)
        mlp_model = build_model(config({"model": {flag: True}}).model, (2,), 2)
        assert [type(m) is WSLinear for m in mlp_model if isinstance(m, nn.Linear)] == [True, False]
    else:
        from torch.nn.utils import parametrize

        for m in convs + linears:
            assert parametrize.is_parametrized(m, "weight")
    assert_trained(*train(tmp_path, over))


@pytest.mark.parametrize(
    "model, needles",
    [
        ({"dropout": {"kind": "gausian", "p": 0.2}}, ["[model]", "'gausian'"]),
        ({"dropout": {"kind": "standard", "p": 1.0}}, ["[model]", "p", "1.0"]),
        ({"dropout": {"kind": "gaussian", "p": -0.1}}, ["[model]", "p", "-0.1"]),
        ({"dropout": 1.5}, ["model.dropout", "less than 1", "1.5"]),
        ({"norm": "instance"}, ["[model]", "instance"]),
        ({"norm": "batchnorm"}, ["[model]", "'batchnorm'"]),
        ({"kind": "cnn2d", "pool": "max_dropp"}, ["[model]", "'max_dropp'"]),
    ],
    ids=["kind", "p_one", "p_negative", "p_float", "instance_mlp", "norm", "pool"],
)
def test_bad_layer_config_exits_2(tmp_path, capsys, model, needles):
    over = merge(DIGITS_CNN, {"model": model}) if model.get("kind") == "cnn2d" else {"model": model}
    status, _ = train(tmp_path, over)
    assert_user_error(status, capsys, *needles)


# -- augmentation ----------------------------------------------------------------------------------


def test_image_augmentation_on_digits(tmp_path):
    ops = [{"name": "affine", "degrees": 10.0}, {"name": "erasing", "p": 0.5},
           {"name": "gaussian_noise", "std": 0.05}]  # fmt: skip
    assert_trained(*train(tmp_path, DIGITS_CNN, {"augment": {"ops": ops}}))


def test_signal_augmentation_on_mnist1d(tmp_path):
    ops = [{"name": "shift", "max_shift": 3}, {"name": "white_noise", "std": 0.05},
           {"name": "amplitude_scale", "coeff": 0.2}]  # fmt: skip
    over = {"data": {"name": "mnist1d"}, "train": {"batch_size": 1024}, "augment": {"ops": ops}}
    assert_trained(*train(tmp_path, over))


@pytest.mark.parametrize(
    "data, ops, needles",
    [
        ("mnist1d", [{"name": "rotate", "degrees": 10.0}], ["augment.ops[0]", "rotate"]),
        ("digits", [{"name": "time_stretch"}], ["augment.ops[0]", "time_stretch"]),
        ("digits", [{"name": "hflipp"}], ["augment.ops[0]", "'hflipp'"]),
        ("digits", [{"name": "hflip", "prob": 0.5}], ["augment", "prob"]),
        ("moons", [{"name": "white_noise"}], ["augment", "(2,)"]),
    ],
    ids=["2d_on_1d", "1d_on_2d", "name", "key", "flat"],
)
def test_bad_augment_config_exits_2(tmp_path, capsys, data, ops, needles):
    status, _ = train(tmp_path, {"data": {"name": data}, "augment": {"ops": ops}})
    assert_user_error(status, capsys, *needles)


# -- early stopping ---------------------------------------------------------------------------


def test_early_stopping_on_accuracy_for_regression_exits_2(tmp_path, capsys):
    over = {"data": {"name": "poly"}, "early_stopping": {"monitor": "val_accuracy"}}
    status, _ = train(tmp_path, over)
    assert_user_error(status, capsys, "[early_stopping]", "val_accuracy", "val_loss")


def test_early_stopping_on_accuracy_for_classification(tmp_path):
    over = {"early_stopping": {"monitor": "val_accuracy", "patience": 1}, "train": {"epochs": 2}}
    status, out = train(tmp_path, over)
    assert status == 0
    assert "best_epoch" in json.loads((out / "summary.json").read_text())
