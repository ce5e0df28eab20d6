"""Tests for goodfit.train.schedule_callbacks: ScheduleCallback and ReduceLROnPlateau."""

from __future__ import annotations

import math

import pytest
import torch

from goodfit import schedules as S
from goodfit.app.build import build_callbacks, build_schedule
from goodfit.app.config import parse_config
from goodfit.app.schedule_spec import schedule_from_config
from goodfit.errors import ConfigError
from goodfit.hooks import Callback
from goodfit.train.loop import fit
from goodfit.train.schedule_callbacks import (
    ReduceLROnPlateau,
    ScheduleCallback,
)


class FakeTrainer:
    """The part of goodfit.train.loop.Trainer the callbacks use."""

    def __init__(self, n_groups=1):
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(n_groups)]
        self.optimizer = torch.optim.SGD([{"params": [p]} for p in params], lr=1.0)
        self.logs = {}

    def log(self, key, value):
        self.logs[key] = value


def run_fake(cb, trainer, epochs, steps_per_epoch):
    """Drive the hooks in the loop's order; return the rate seen by every optimizer step."""
    used = []
    cb.on_fit_start(trainer)
    records = []
    for _ in range(epochs):
        trainer.logs = {}
        cb.on_epoch_start(trainer)
        for _ in range(steps_per_epoch):
            used.append([g["lr"] for g in trainer.optimizer.param_groups])
            cb.on_after_step(trainer)
        cb.on_epoch_end(trainer)
        records.append(dict(trainer.logs))
    return used, records


def test_schedule_callback_per_step_sets_every_group():
    s = S.warmup_cosine(peak=0.1, warmup_steps=7, total_steps=40, end_value=1e-3)
    cb = ScheduleCallback(s, interval="step")
    used, records = run_fake(cb, FakeTrainer(n_groups=2), epochs=4, steps_per_epoch=10)
    assert used == [[s(t), s(t)] for t in range(40)]
    assert [r["lr"] for r in records] == [s(9), s(19), s(29), s(39)]  # each epoch's last step
    assert cb.state_dict() == {"position": 40, "interval": "step"}


def test_schedule_callback_per_epoch():
    s = S.exponential(0.1, decay_rate=0.5)
    cb = ScheduleCallback(s, interval="epoch")
    used, records = run_fake(cb, FakeTrainer(), epochs=3, steps_per_epoch=4)
    assert used == [[s(e)] for e in range(3) for _ in range(4)]
    assert [r["lr"] for r in records] == [0.1, 0.05, 0.025]


def test_schedule_callback_state_round_trip_continues():
    s = S.cosine(0.1, 30)
    cb = ScheduleCallback(s)
    run_fake(cb, FakeTrainer(), epochs=2, steps_per_epoch=5)
    cb2 = ScheduleCallback(s)
    cb2.load_state_dict(cb.state_dict())
    used, _ = run_fake(cb2, FakeTrainer(), epochs=1, steps_per_epoch=5)
    assert used == [[s(t)] for t in range(10, 15)]
    with pytest.raises(ValueError, match="stepped per 'step'"):
        ScheduleCallback(s, interval="epoch").load_state_dict(cb.state_dict())


def test_schedule_callback_validation():
    with pytest.raises(ValueError, match="interval must be"):
        ScheduleCallback(S.constant(0.1), interval="batch")
    with pytest.raises(ValueError, match="schedule must be callable"):
        ScheduleCallback(0.1)


# ------------------------------------------------------------------------------------------
# ReduceLROnPlateau against torch


METRIC_SEQUENCE = [
    1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.93, 0.89, 0.889995, 0.9, 0.9, 0.9, 0.9, 0.8, 0.85,
    0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7,
]  # fmt: skip


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"patience": 2, "factor": 0.5},
        {"patience": 1, "cooldown": 2, "factor": 0.3, "min_lr": 0.01},
        {"mode": "max", "patience": 2, "threshold": 0.05, "threshold_mode": "abs"},
        {"mode": "max", "patience": 0, "threshold_mode": "rel"},
        {"patience": 1, "factor": 0.5, "min_lr": [0.2, 0.001], "eps": 1e-3},
    ],
)
def test_reduce_on_plateau_matches_torch(kw):
    ref_trainer, ours_trainer = FakeTrainer(2), FakeTrainer(2)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_trainer.optimizer, **kw)
    cb = ReduceLROnPlateau(**kw)
    metrics = METRIC_SEQUENCE * 2  # long enough to reach several reductions and min_lr
    for value in metrics:
        ref_trainer.optimizer.step()
        ref.step(value)
        cb.on_validation_end(ours_trainer, {"val_loss": value, "val_accuracy": 1 - value})
        assert [g["lr"] for g in ours_trainer.optimizer.param_groups] == [
            g["lr"] for g in ref_trainer.optimizer.param_groups
        ]
        assert (cb.best, cb.num_bad, cb.cooldown_counter) == (
            ref.best, ref.num_bad_epochs, ref.cooldown_counter
        )  # fmt: skip
    assert ours_trainer.optimizer.param_groups[0]["lr"] < 1.0  # it did reduce


def test_reduce_on_plateau_monitor_and_validation():
    with pytest.raises(ConfigError, match=r"'val_acc'.*available.*val_loss"):
        ReduceLROnPlateau(monitor="val_acc").on_validation_end(FakeTrainer(), {"val_loss": 1.0})
    with pytest.raises(ValueError, match="factor must be in"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="patience must be an integer"):
        ReduceLROnPlateau(patience=-1)
    with pytest.raises(ValueError, match="min_lr must be >= 0"):
        ReduceLROnPlateau(min_lr=-0.1)
    with pytest.raises(ValueError, match="mode must be"):
        ReduceLROnPlateau(mode="lowest")


def test_reduce_on_plateau_state_round_trip():
    cb = ReduceLROnPlateau(patience=2)
    trainer = FakeTrainer()
    for v in (1.0, 0.5, 0.6, 0.7):
        cb.on_validation_end(trainer, {"val_loss": v})
    cb2 = ReduceLROnPlateau(patience=2)
    cb2.load_state_dict(cb.state_dict())
    assert cb2.state_dict() == {"best": 0.5, "num_bad": 2, "cooldown_counter": 0}
    cb2.on_validation_end(trainer, {"val_loss": 0.8})
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1, rel=0, abs=0)


# ------------------------------------------------------------------------------------------
# through the real training loop


def data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=g)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    return X, y


class LrSpy(Callback):
    """Records the rate each optimizer step uses (read after backward, before the step)."""

    def __init__(self):
        self.seen = []

    def on_after_backward(self, trainer):
        self.seen.append(trainer.optimizer.param_groups[0]["lr"])


class CrashAt(Callback):
    """Simulates a killed run: raises at the start of epoch ``epoch`` while armed."""

    def __init__(self, epoch, armed):
        self.epoch, self.armed = epoch, armed

    def on_epoch_start(self, trainer):
        if self.armed and trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def make_model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_schedule_callback_in_fit(interval):
    X, y = data()
    epochs, bs = 4, 16  # 6 steps per epoch
    s = schedule_from_config(
        "warmup_cosine",
        {"warmup_epochs": 1, "interval": interval},
        base_lr=0.2,
        steps_per_epoch=6,
        epochs=epochs,
    )
    model = make_model()
    spy = LrSpy()
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    h = fit(model, (X, y), optimizer=opt, epochs=epochs, batch_size=bs, progress=False,
            callbacks=[ScheduleCallback(s, interval=interval), spy])  # fmt: skip
    if interval == "step":
        assert spy.seen == [s(t) for t in range(24)]
        assert h["lr"] == [s(t) for t in (5, 11, 17, 23)]
    else:
        assert spy.seen == [s(e) for e in range(4) for _ in range(6)]
        assert h["lr"] == [s(e) for e in range(4)]


@pytest.mark.parametrize("which", ["schedule", "plateau"])
def test_exact_resume_through_fit(tmp_path, which):
    X, y = data()
    Xv, yv = data(48, seed=1)

    def run(armed, resume, ckdir):
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, nesterov=True)
        if which == "schedule":
            lr_cb = ScheduleCallback(S.one_cycle(0.3, total_steps=36))
        else:  # demands a 30% improvement each epoch, so it reduces often
            lr_cb = ReduceLROnPlateau(patience=0, factor=0.5, threshold=0.3)
        cbs = [lr_cb, CrashAt(3, armed)]
        h = fit(model, (X, y), (Xv, yv), optimizer=opt, epochs=6, batch_size=16,
                progress=False, callbacks=cbs, checkpoint_dir=ckdir, resume=resume)  # fmt: skip
        return model, h

    full_model, full_h = run(False, False, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(True, False, tmp_path / "b")
    resumed_model, resumed_h = run(False, True, tmp_path / "b")
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed_h["lr"] == full_h["lr"]
    assert resumed_h["val_loss"] == full_h["val_loss"]
    assert not any(math.isnan(v) for v in full_h["lr"])
    assert len(set(full_h["lr"])) >= 3  # the rate really moved


# ------------------------------------------------------------------------------------------
# config


def test_schedule_callbacks_from_config():
    model = make_model()

    def built(schedule, epochs=3):
        cfg = parse_config({"schedule": schedule, "train": {"epochs": epochs}})
        return build_callbacks(cfg, model, build_schedule(cfg, 0.1, 10), True)

    [cb] = built({"name": "cosine", "interval": "epoch", "end_value": 0.01})
    assert isinstance(cb, ScheduleCallback) and cb.interval == "epoch"
    assert [cb.schedule(e) for e in range(4)] == [S.cosine(0.1, 3, 0.01)(e) for e in range(4)]
    [cb] = built({"name": "linear", "end_value": 0.0, "interval": "step"})
    assert cb.interval == "step" and cb.schedule(30) == 0.0 and cb.schedule(15) == 0.05
    [cb] = built({"name": "reduce_on_plateau", "patience": 3, "factor": 0.5})
    assert isinstance(cb, ReduceLROnPlateau) and (cb.patience, cb.factor) == (3, 0.5)
    with pytest.raises(ConfigError, match="'patient'"):
        built({"name": "reduce_on_plateau", "patient": 3})
    with pytest.raises(ConfigError, match="interval must be left out"):
        built({"name": "reduce_on_plateau", "interval": "step"})
    with pytest.raises(ConfigError, match="'warmup_epochs'"):
        built({"name": "cosine", "warmup_epochs": 1})


def test_a_plateau_run_resumes_from_its_saved_config(tmp_path):
    """The saved config.toml writes every key; reduce_on_plateau's interval must load again."""
    from goodfit.app.config import parse_config
    from goodfit.app.run import resume_config, run_config

    cfg = parse_config(
        {
            "data": {"name": "moons", "val_fraction": 0.2},
            "model": {"hidden": [8]},
            "optimizer": {"name": "sgd", "lr": 0.1},
            "schedule": {"name": "reduce_on_plateau", "patience": 1},
            "train": {"epochs": 2, "batch_size": 32},
        }
    )
    out = tmp_path / "run"
    run_config(cfg, out, progress=False, write_plots=False)
    saved = resume_config(out, None, ["train.epochs=3"])
    assert saved.schedule.interval == "epoch"
    result = run_config(saved, out, resume=True, progress=False, write_plots=False)
    assert result.summary["epochs_run"] == 3
