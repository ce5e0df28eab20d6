"""GBC Algorithms 7.2 and 7.3 (seed 001) on crafted cases, checked against the algorithms
transcribed in plain Python (full-batch gradient descent on a linear least-squares model, so every
step is a closed-form update), and through ``run_config`` with ``early_stopping.algorithm``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from goodfit.app.config import parse_config
from goodfit.app.run import run_config
from goodfit.hooks import Callback
from goodfit.select.meta_early_stopping import StopBelow, algorithm_7_2, algorithm_7_3
from goodfit.train.early_stopping import EarlyStopping

LR = 0.05


class InitRecorder(Callback):
    """Records the parameters at the start of every fit it takes part in."""

    def __init__(self, log: list[list[float]]) -> None:
        self.log = log

    def on_fit_start(self, trainer) -> None:
        self.log.append([float(v) for v in trainer.model.weight.detach().reshape(-1)])


class RecordingLinear(nn.Linear):
    """A linear model that records the rows it is trained on (train mode only)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[list[float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x[:, 0].tolist())
        return super().forward(x)


def _builder(n_features: int, inits: list[list[float]], models: list[nn.Module]):
    """``build()`` for the meta-algorithms: a bias-free linear model with a random initial weight
    in (-1, 0) (drawn from torch's RNG, so it depends on the seed the algorithm sets), plain
    gradient descent."""

    def build():
        model = RecordingLinear(n_features, 1, bias=False)
        with torch.no_grad():
            model.weight.uniform_(-1.0, 0.0)
        models.append(model)
        return model, torch.optim.SGD(model.parameters(), lr=LR), [InitRecorder(inits)], None

    return build


def _data_1d(noise: float):
    """subtrain: y = x; valid: y = 0.5 x + s with s = +-noise alternating (not fittable by w x)."""
    xs = torch.linspace(0.5, 1.5, 20, dtype=torch.float64)
    xv = torch.linspace(0.55, 1.45, 10, dtype=torch.float64)
    s = noise * torch.tensor([(-1.0) ** i for i in range(10)], dtype=torch.float64)
    sub = (xs[:, None], xs[:, None].clone())
    val = (xv[:, None], 0.5 * xv[:, None] + s[:, None])
    return tuple(t.float() for t in sub), tuple(t.float() for t in val)


def _data_2d():
    """Feature 2 is zero on subtrain and +-1 on valid (y = 0.5 x1 + 0.8 x2 there), so phase 1
    never moves w2 and stops near w1 = 0.5 with J(valid) > J(subtrain); training on subtrain +
    valid moves w2 too, and the validation loss then falls below the subtrain loss at theta*."""
    xs = torch.linspace(0.5, 1.5, 20, dtype=torch.float64)
    xv = torch.linspace(0.55, 1.45, 10, dtype=torch.float64)
    sign = torch.tensor([(-1.0) ** i for i in range(10)], dtype=torch.float64)
    Xs = torch.stack([xs, torch.zeros(20, dtype=torch.float64)], 1)
    Xv = torch.stack([xv, sign], 1)
    sub = (Xs, xs[:, None].clone())
    val = (Xv, (0.5 * xv + 0.8 * sign)[:, None])
    return tuple(t.float() for t in sub), tuple(t.float() for t in val)


# -- plain-Python transcription -------------------------------------------------------------------


def _rows(batch):
    X, y = batch
    return [([float(v) for v in X[i]], float(y[i, 0])) for i in range(len(X))]


def _loss(w, rows):
    """Mean squared error of the linear model w . x."""
    return sum((sum(a * b for a, b in zip(w, x, strict=True)) - t) ** 2 for x, t in rows) / len(
        rows
    )


def _gd_step(w, rows, lr=LR):
    """One full-batch gradient-descent step on the mean squared error."""
    grad = [0.0] * len(w)
    for x, t in rows:
        r = sum(a * b for a, b in zip(w, x, strict=True)) - t
        for j in range(len(w)):
            grad[j] += 2.0 * r * x[j] / len(rows)
    return [a - lr * g for a, g in zip(w, grad, strict=True)]


def _algorithm_7_1(w0, sub, val, patience, epochs):
    """GBC Algorithm 7.1 as written: v <- inf; evaluate after every (full-batch) step; keep
    theta*, i* of the best; stop after `patience` evaluations without improvement."""
    w, best_w, best_i, v, j, i = list(w0), list(w0), 0, math.inf, 0, 0
    while j < patience and i < epochs:
        w = _gd_step(w, sub)
        i += 1
        v_new = _loss(w, val)
        if v_new < v:
            j, best_w, best_i, v = 0, list(w), i, v_new
        else:
            j += 1
    return best_w, best_i


# -- Algorithm 7.2 --------------------------------------------------------------------------------


def test_algorithm_7_2_matches_transcription():
    sub, val = _data_1d(noise=0.0)
    inits, models = [], []
    es = EarlyStopping("val_loss", patience=3)
    result = algorithm_7_2(
        _builder(1, inits, models), sub, val, early_stopping=es, epochs=60, batch_size=30,
        seed=7, progress=False,
    )  # fmt: skip
    # two fits, the second re-initialized to the same random values as the first
    assert len(inits) == 2 and inits[0] == inits[1]
    w0 = inits[0]
    _, i_star = _algorithm_7_1(w0, _rows(sub), _rows(val), patience=3, epochs=60)
    assert 3 <= i_star < 60 - 3  # a real early stop, not the budget
    assert result.best_step == es.best_step == i_star
    # phase 2: exactly i* steps of GD on subtrain + valid from the *initial* weights
    assert result.second.summary["steps"] == i_star
    assert len(models[1].seen) == i_star
    w = list(w0)
    for _ in range(i_star):
        w = _gd_step(w, _rows(sub) + _rows(val))
    got = result.model.weight.detach().reshape(-1).tolist()
    assert got == pytest.approx(w, rel=1e-5, abs=1e-6)
    # continuing from theta* instead would land elsewhere (the test can tell the difference)
    theta_star, _ = _algorithm_7_1(w0, _rows(sub), _rows(val), patience=3, epochs=60)
    w_cont = list(theta_star)
    for _ in range(i_star):
        w_cont = _gd_step(w_cont, _rows(sub) + _rows(val))
    assert abs(w_cont[0] - w[0]) > 1e-2
    assert result.model is models[1]


def test_algorithm_7_2_second_phase_sees_all_data_and_stops_mid_epoch():
    # minibatches of 8 and validation every 3 steps: i* is a step count, not an epoch count
    x = torch.arange(30.0)[:, None] / 20 + 0.5  # feature = row id / 20 + 0.5
    sub, val = (x[:20], x[:20].clone()), (x[20:], 0.5 * x[20:])
    inits, models = [], []
    es = EarlyStopping("val_loss", patience=2)
    result = algorithm_7_2(
        _builder(1, inits, models), sub, val, early_stopping=es, epochs=40, batch_size=8,
        val_every=3, seed=0, progress=False,
    )  # fmt: skip
    i_star = result.best_step
    assert i_star == es.best_step and i_star % 3 == 0 and i_star > 0
    steps_per_epoch = 4  # 30 rows in batches of 8: 8, 8, 8, 6
    assert i_star % steps_per_epoch != 0, "crafted to stop in the middle of an epoch"
    second = models[1].seen
    assert len(second) == i_star == result.second.summary["steps"]
    # the first epoch of phase 2 covers subtrain + valid exactly once
    first_epoch = sorted(round((v - 0.5) * 20) for batch in second[:steps_per_epoch] for v in batch)
    assert first_epoch == list(range(30))
    assert inits[0] == inits[1]


def test_algorithm_7_2_no_improvement_returns_initial_parameters():
    # NaN validation targets: no validation ever improves on v = inf, so i* = 0
    sub, val = _data_1d(noise=0.0)
    val = (val[0], torch.full_like(val[1], float("nan")))
    inits, models = [], []
    es = EarlyStopping("val_loss", patience=2)
    result = algorithm_7_2(
        _builder(1, inits, models), sub, val, early_stopping=es, epochs=10, batch_size=30,
        seed=3, progress=False,
    )  # fmt: skip
    assert result.best_step == 0
    assert len(result.second) == 0
    assert result.model.weight.detach().reshape(-1).tolist() == inits[0]
    assert len(models[0].seen) == 2  # phase 1 ran (and stopped after `patience` validations)


# -- Algorithm 7.3 --------------------------------------------------------------------------------


def _run_7_3(sub, val, n_features, *, epochs=100, extra_epochs=None, seed=5):
    inits, models = [], []
    es = EarlyStopping("val_loss", patience=3)
    result = algorithm_7_3(
        _builder(n_features, inits, models), sub, val, early_stopping=es, epochs=epochs,
        extra_epochs=extra_epochs, batch_size=30, seed=seed, progress=False,
    )  # fmt: skip
    return result, inits, models


def test_algorithm_7_3_reaches_eps_and_matches_transcription():
    sub, val = _data_2d()
    result, inits, models = _run_7_3(sub, val, 2)
    assert len(models) == 1  # theta* is kept: no re-initialization
    rs, rv = _rows(sub), _rows(val)
    theta_star, i_star = _algorithm_7_1(inits[0], rs, rv, patience=3, epochs=100)
    assert 3 <= i_star < 100 - 3  # a real early stop, not the budget
    assert result.best_step == i_star
    eps = _loss(theta_star, rs)
    assert result.eps == pytest.approx(eps, rel=1e-5)
    assert _loss(theta_star, rv) > eps  # the while loop runs at least once
    # while J(theta, valid) > eps: train on subtrain + valid (here n = one full-batch step)
    w, n_steps = list(theta_star), 0
    while _loss(w, rv) > eps:
        w = _gd_step(w, rs + rv)
        n_steps += 1
        assert n_steps < 100
    assert n_steps >= 2
    assert result.reached is True
    assert len(result.second) == n_steps
    got = result.model.weight.detach().reshape(-1).tolist()
    assert got == pytest.approx(w, rel=1e-4, abs=1e-5)
    # the history: every validation but the last is above eps, the last is at or below it
    vals = [r["val_loss"] for r in result.second.records]
    assert all(v > result.eps for v in vals[:-1]) and vals[-1] <= result.eps
    assert result.second.summary["stop_reason"].startswith("Algorithm 7.3")
    assert [r["phase"] for r in result.records] == [1] * len(result.first) + [2] * n_steps


def test_algorithm_7_3_stops_at_epoch_budget_when_eps_never_reached():
    # 1-D model: valid's +-0.7 noise keeps J(valid) >= 0.49 > eps = J(subtrain, theta*) ~ 0.27
    sub, val = _data_1d(noise=0.7)
    result, inits, _ = _run_7_3(sub, val, 1, extra_epochs=7)
    theta_star, _ = _algorithm_7_1(inits[0], _rows(sub), _rows(val), patience=3, epochs=100)
    assert result.eps == pytest.approx(_loss(theta_star, _rows(sub)), rel=1e-5)
    assert result.reached is False
    assert len(result.second) == 7
    assert result.second.summary["stop_reason"] == "max_epochs"
    assert all(r["val_loss"] > result.eps for r in result.second.records)
    w = list(theta_star)
    for _ in range(7):
        w = _gd_step(w, _rows(sub) + _rows(val))
    assert result.model.weight.detach().reshape(-1).tolist() == pytest.approx(w, rel=1e-5)


def test_stop_below_checks_at_or_below():
    class T:
        reason = None

        def request_stop(self, reason):
            self.reason = reason

    cb, t = StopBelow(0.5), T()
    cb.on_validation_end(t, {"val_loss": 0.5000001})
    assert t.reason is None and not cb.reached
    cb.on_validation_end(t, {"val_loss": 0.5})
    assert t.reason is not None and cb.reached
    assert StopBelow(0.1).state_dict() == {"reached": False}


# -- through run_config ---------------------------------------------------------------------------


def _cfg(algorithm: str, **es):
    return parse_config(
        {
            "data": {"name": "moons", "val_fraction": 0.25},
            "model": {"kind": "mlp", "widths": [16]},
            "optimizer": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 6, "batch_size": 64, "seed": 0},
            "early_stopping": {"algorithm": algorithm, "patience": 2, **es},
            "checkpoint": {"enabled": False},
        }
    )


def test_run_config_algorithm_7_2(torch_globals):
    res = run_config(_cfg("7.2"), None, progress=False)
    s = res.summary
    assert s["algorithm"] == "7.2" and s["best_step"] > 0
    phase2 = [r for r in res.records if r["phase"] == 2]
    phase1 = [r for r in res.records if r["phase"] == 1]
    assert phase1 and phase2 and s["second_phase_epochs"] == len(phase2)
    assert phase2[-1]["step"] == s["best_step"]  # exactly i* steps
    # i* is the step of the best phase-1 validation loss
    best = min(phase1, key=lambda r: r["val_loss"])
    assert best["step"] == s["best_step"]
    # phase 2 trains on subtrain + valid = all 800 training rows (batches of 64: 13 steps an
    # epoch; subtrain alone, 600 rows, would give 10)
    assert phase2[0]["step"] == min(13, s["best_step"])
    assert "val_loss" not in phase2[0]
    assert 0.0 <= s["test_accuracy"] <= 1.0


def test_run_config_algorithm_7_3(torch_globals):
    res = run_config(_cfg("7.3"), None, progress=False)
    s = res.summary
    assert s["algorithm"] == "7.3" and s["eps"] is not None
    phase1 = [r for r in res.records if r["phase"] == 1]
    phase2 = [r for r in res.records if r["phase"] == 2]
    assert s["best_step"] == min(phase1, key=lambda r: r["val_loss"])["step"]
    assert s["second_phase_epochs"] == len(phase2)
    vals = [r["val_loss"] for r in phase2]
    assert all(v > s["eps"] for v in vals[:-1])
    if not phase2:  # J(theta*, valid) <= eps already: the while loop never runs
        assert s["eps_reached"] is True
    elif s["eps_reached"]:
        assert vals[-1] <= s["eps"]
    else:
        assert len(phase2) == 6 and vals[-1] > s["eps"]


def test_run_config_meta_needs_validation_data(torch_globals):
    cfg = _cfg("7.2")
    cfg.data.val_fraction = 0.0
    with pytest.raises(ValueError, match="val_fraction"):
        run_config(cfg, None, progress=False)
