"""Tests for EarlyStopping (GBC Algorithm 7.1, seed 001) on crafted validation curves.

The validation metric follows a given sequence (``goodfit.train.loop.evaluate`` is replaced),
while real SGD steps change the weights; a recorder keeps the weights at each validation so the
test knows which weights theta* must be restored. The expected stop and best epoch are computed
by a plain-Python transcription of Algorithm 7.1.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import goodfit.train.loop as loop
from goodfit.hooks import Callback
from goodfit.train.early_stopping import EarlyStopping


def algorithm_7_1(values, patience, min_delta=0.0, mode="min", max_evals=None):
    """GBC Algorithm 7.1 transcribed: returns (evaluations done, best index i* (1-based))."""
    sign = 1.0 if mode == "min" else -1.0
    best, j, i_star, i = math.inf, 0, 0, 0
    while j < patience and i < (max_evals or len(values)):
        v = sign * values[i]
        i += 1
        if v < best - min_delta:
            j, i_star, best = 0, i, v
        else:
            j += 1
    return i, i_star


class WeightRecorder(Callback):
    def __init__(self):
        self.weights = []  # state at each validation, in order

    def on_validation_end(self, trainer, metrics):
        self.weights.append({k: v.clone() for k, v in trainer.model.state_dict().items()})


class StopAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer):
        if trainer.epoch + 1 == self.epoch:
            trainer.request_stop("another callback")


@pytest.fixture
def curve(monkeypatch):
    """``curve(values, key)``: validation reports ``values[i]`` at the i-th evaluation."""

    def install(values, key="val_loss"):
        it = iter(values)

        def fake_evaluate(model, X, y, **kwargs):
            return {key: float(next(it))}

        monkeypatch.setattr(loop, "evaluate", fake_evaluate)

    return install


def _run(es, epochs, extra=(), val_every=None):
    torch.manual_seed(0)
    X, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    model = nn.Linear(3, 2)
    rec = WeightRecorder()
    hist = loop.fit(model, (X, y), (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
                    epochs=epochs, batch_size=8, callbacks=[rec, es, *extra],
                    val_every=val_every, progress=False)  # fmt: skip
    return model, rec, hist


def _assert_weights(model, state):
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


LOSSES = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0, 1.0]


def test_stops_when_patience_is_exhausted_and_restores_best(curve):
    curve(LOSSES)
    es = EarlyStopping(patience=3)
    model, rec, hist = _run(es, epochs=8)
    n_evals, best = algorithm_7_1(LOSSES, 3)
    assert (n_evals, best) == (6, 3)
    assert len(hist) == 6 and hist.summary["stop_reason"].startswith("early stopping")
    assert hist.summary["best_epoch"] == 3 and hist.summary["best_step"] == 3 * 4
    assert hist.summary["best_val_loss"] == 3.0
    assert hist["val_loss"] == LOSSES[:6]
    _assert_weights(model, rec.weights[best - 1])
    assert not all(torch.equal(v, rec.weights[-1][k]) for k, v in model.state_dict().items())


def test_restores_best_when_max_epochs_is_reached(curve):
    curve(LOSSES)
    es = EarlyStopping(patience=10)
    model, rec, hist = _run(es, epochs=5)
    n_evals, best = algorithm_7_1(LOSSES, 10, max_evals=5)
    assert (n_evals, best) == (5, 3)
    assert len(hist) == 5 and hist.summary["stop_reason"] == "max_epochs"
    assert hist.summary["best_epoch"] == 3 and hist.summary["best_step"] == 12
    _assert_weights(model, rec.weights[best - 1])


def test_restores_best_when_another_callback_stops(curve):
    curve(LOSSES)
    es = EarlyStopping(patience=10)
    model, rec, hist = _run(es, epochs=8, extra=[StopAt(5)])
    assert len(hist) == 5 and hist.summary["stop_reason"] == "another callback"
    assert hist.summary["best_epoch"] == 3
    _assert_weights(model, rec.weights[2])


def test_restore_best_false_keeps_the_last_weights(curve):
    curve(LOSSES)
    model, rec, hist = _run(EarlyStopping(patience=3, restore_best=False), epochs=8)
    assert hist.summary["best_epoch"] == 3
    _assert_weights(model, rec.weights[-1])


def test_min_delta(curve):
    values = [1.0, 0.95, 0.92, 0.91, 0.5, 0.4]
    curve(values)
    model, rec, hist = _run(EarlyStopping(patience=3, min_delta=0.1), epochs=6)
    n_evals, best = algorithm_7_1(values, 3, min_delta=0.1)
    assert (n_evals, best) == (4, 1)  # improvements of 0.05 do not count
    assert len(hist) == 4 and hist.summary["best_epoch"] == 1
    _assert_weights(model, rec.weights[0])


@pytest.mark.parametrize("mode", ["max", "auto"])
def test_mode_max_on_accuracy(curve, mode):
    values = [0.5, 0.7, 0.9, 0.8, 0.9, 0.85, 0.95]
    curve(values, key="val_accuracy")
    es = EarlyStopping(monitor="val_accuracy", patience=2, mode=mode)
    model, rec, hist = _run(es, epochs=7)
    n_evals, best = algorithm_7_1(values, 2, mode="max")
    assert (n_evals, best) == (5, 3)  # an equal value (0.9) is no improvement
    assert len(hist) == 5 and hist.summary["best_epoch"] == 3
    assert hist.summary["best_val_accuracy"] == 0.9
    _assert_weights(model, rec.weights[2])


def test_every_n_steps_stops_mid_epoch_and_records_the_step(curve):
    values = [3.0, 2.0, 2.5, 2.4, 2.6, 1.0]
    curve(values)
    es = EarlyStopping(patience=3)
    model, rec, hist = _run(es, epochs=10, val_every=3)  # 4 steps per epoch
    n_evals, best = algorithm_7_1(values, 3)
    assert (n_evals, best) == (5, 2)
    assert hist.summary["best_step"] == 6 and hist.summary["best_epoch"] == 2
    assert hist.summary["steps"] == 15  # stopped right after the 5th evaluation (step 15)
    assert len(hist) == 4
    _assert_weights(model, rec.weights[1])


def test_monitoring_a_missing_metric_is_an_error(curve):
    curve([1.0, 1.0])
    with pytest.raises(KeyError, match="val_acc"):
        _run(EarlyStopping(monitor="val_acc", mode="max"), epochs=2)


def test_state_dict_round_trip(curve):
    curve(LOSSES)
    es = EarlyStopping(patience=10)
    _run(es, epochs=4)
    other = EarlyStopping(patience=10)
    other.load_state_dict(es.state_dict())
    for key in ("best", "wait", "best_step", "best_epoch", "stopped"):
        assert getattr(other, key) == getattr(es, key)
    assert (other.wait, other.best_epoch) == (1, 3)
    for k, v in es.best_state.items():
        assert torch.equal(other.best_state[k], v)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patience": 0}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
        ({"min_delta": math.nan}, "min_delta"),
        ({"mode": "up"}, "mode"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)
