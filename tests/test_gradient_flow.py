"""Gradient-flow callback: per-layer norms against a direct computation, sampling, flags, state,
plot; with a fake trainer and once through the real loop."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from goodfit.diagnose.gradient_flow import (
    GradientFlowCallback,
    layer_parameters,
    plot_gradient_flow,
)


class FakeTrainer:
    """What the callback reads/writes of goodfit.train.loop.Trainer."""

    def __init__(self, model):
        self.model = model
        self.step = 0
        self.epoch = 0
        self.logs: dict = {}

    def log(self, key, value):
        self.logs[key] = value


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def _expected_layer_norms(model):
    # reference: per layer, the L2 norm of all its parameters' gradients concatenated
    return [
        float(torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in params])))
        for _, params in layer_parameters(model)
    ]


def _run(cb, trainer, epochs, steps_per_epoch, grad_fn=None):
    """Drive the hooks like the loop does; grad_fn(epoch, step) may overwrite grads."""
    expected = []
    cb.on_fit_start(trainer)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))
    for epoch in range(epochs):
        trainer.epoch = epoch
        trainer.logs = {}
        for _ in range(steps_per_epoch):
            trainer.model.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(trainer.model(x), y).backward()
            if grad_fn is not None:
                grad_fn(epoch, trainer.step)
            cb.on_after_backward(trainer)
            if trainer.step % cb.every == 0:
                expected.append(_expected_layer_norms(trainer.model))
            trainer.step += 1
        cb.on_epoch_end(trainer)
    cb.on_fit_end(trainer)
    return expected


def test_layers_are_modules_owning_parameters():
    names = [name for name, _ in layer_parameters(_net())]
    assert names == ["0", "2", "4"]


def test_norms_match_direct_computation_and_are_logged():
    net = _net()
    trainer = FakeTrainer(net)
    cb = GradientFlowCallback()
    expected = _run(cb, trainer, epochs=2, steps_per_epoch=3)
    assert cb.layers == ["0", "2", "4"]
    assert cb.steps == [0, 1, 2, 3, 4, 5]
    for got, want in zip(cb.norms, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-5)
    # last epoch's record: mean of that epoch's sampled norms per layer
    for i, name in enumerate(cb.layers):
        want = sum(row[i] for row in expected[3:]) / 3
        assert trainer.logs[f"grad_norm/{name}"] == pytest.approx(want, rel=1e-5)
    assert trainer.logs["grad_norm_max"] == pytest.approx(max(max(r) for r in expected[3:]))
    assert trainer.logs["grad_vanishing"] == 0 and trainer.logs["grad_exploding"] == 0
    assert cb.flags == []


def test_every_n_steps_and_closure_calls_once_per_step():
    net = _net()
    trainer = FakeTrainer(net)
    cb = GradientFlowCallback(every=3)
    _run(cb, trainer, epochs=2, steps_per_epoch=4)
    assert cb.steps == [0, 3, 6]
    cb2 = GradientFlowCallback()
    cb2.on_fit_start(trainer)
    trainer.step = 10
    nn.functional.mse_loss(net(torch.ones(2, 4)), torch.zeros(2, 3)).backward()
    for _ in range(3):  # LBFGS evaluates the closure several times in one step
        cb2.on_after_backward(trainer)
    cb2.on_epoch_end(trainer)
    assert cb2.steps == [10]


def test_vanishing_flag():
    net = _net()
    trainer = FakeTrainer(net)

    def shrink_first_layer(epoch, step):
        for p in net[0].parameters():
            p.grad.mul_(1e-9)  # relative norm ~1e-9 of the largest layer's

    cb = GradientFlowCallback()
    _run(cb, trainer, epochs=2, steps_per_epoch=2, grad_fn=shrink_first_layer)
    kinds = {(f["epoch"], f["layer"], f["kind"]) for f in cb.flags}
    assert kinds == {(1, "0", "vanishing"), (2, "0", "vanishing")}
    assert trainer.logs["grad_vanishing"] == 1


def test_exploding_flag_on_a_cliff_and_on_non_finite():
    net = _net()
    trainer = FakeTrainer(net)

    def cliff(epoch, step):
        if step == 5:  # epoch 2: one step with a 1000x gradient (a cliff)
            for p in net[2].parameters():
                p.grad.mul_(1e3)
        if step == 9:  # epoch 3: non-finite
            net[4].bias.grad[0] = math.inf

    cb = GradientFlowCallback(explode_factor=100.0)
    _run(cb, trainer, epochs=3, steps_per_epoch=4, grad_fn=cliff)
    flags = [(f["epoch"], f["step"], f["layer"], f["kind"]) for f in cb.flags]
    assert flags == [(2, 5, "2", "exploding"), (3, 9, "4", "exploding")]
    assert cb.flags[1]["value"] is None  # non-finite: null in JSON
    assert trainer.logs["grad_exploding"] == 1
    # a factor above the cliff's size does not flag it
    net2_trainer = FakeTrainer(net)
    cb2 = GradientFlowCallback(explode_factor=1e5)
    _run(cb2, net2_trainer, epochs=2, steps_per_epoch=4, grad_fn=cliff)
    assert cb2.flags == []
    json.dumps(cb.to_dict(), allow_nan=False)


def test_state_dict_round_trip_and_to_dict():
    net = _net()
    cb = GradientFlowCallback(every=2)
    _run(cb, FakeTrainer(net), epochs=2, steps_per_epoch=3)
    state = cb.state_dict()
    assert isinstance(state["norms"], torch.Tensor) and state["norms"].shape == (3, 3)
    other = GradientFlowCallback(every=2)
    other.load_state_dict(state)
    assert other.steps == cb.steps and other.layers == cb.layers
    for a, b in zip(other.norms, cb.norms, strict=True):
        assert a == pytest.approx(b)
    d = cb.to_dict()
    assert set(d) == {
        "layers",
        "steps",
        "norms",
        "flags",
        "every",
        "vanish_threshold",
        "explode_factor",
        "max_norm",
    }
    assert d["every"] == 2 and d["vanish_threshold"] == 1e-7 and d["explode_factor"] == 100.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="every must be an integer >= 1, got 0"):
        GradientFlowCallback(every=0)
    with pytest.raises(ValueError, match="vanish_threshold must be > 0"):
        GradientFlowCallback(vanish_threshold=0.0)
    with pytest.raises(ValueError, match="explode_factor must be > 1"):
        GradientFlowCallback(explode_factor=0.5)


def test_plot_is_png(tmp_path):
    net = _net()
    cb = GradientFlowCallback()
    _run(cb, FakeTrainer(net), epochs=2, steps_per_epoch=3)
    png = plot_gradient_flow(cb, tmp_path / "g.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert (tmp_path / "g.png").read_bytes() == png


def test_with_the_real_training_loop():
    from goodfit.train.loop import fit

    net = _net()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(4))
    cb = GradientFlowCallback(every=2)
    hist = fit(
        net,
        (x, y),
        (x, y),
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        epochs=2,
        batch_size=16,
        callbacks=[cb],
        progress=False,
    )
    assert cb.steps == [0, 2, 4, 6]  # 4 steps per epoch, sampled every 2
    assert all(f"grad_norm/{name}" in hist[0] for name in cb.layers)
    assert hist[1]["grad_vanishing"] == 0
