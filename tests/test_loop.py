"""Tests for goodfit.train.loop: minibatching, history, penalty, hooks, val_every, LBFGS closure,
augmentation, divergence. References are plain PyTorch loops written out in the test."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from goodfit.errors import DivergenceError
from goodfit.hooks import HOOKS, Callback
from goodfit.train.checkpoint import load_checkpoint
from goodfit.train.loop import evaluate, fit


def _classification(n=50, d=3, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return X, y


def _linear(d=3, k=3, seed=1):
    torch.manual_seed(seed)
    return nn.Linear(d, k)


class IndexRecorder(nn.Module):
    """Linear model whose input column 0 holds the sample index; records it in training mode."""

    def __init__(self, d, k):
        super().__init__()
        self.lin = nn.Linear(d, k)
        self.train_batches: list[torch.Tensor] = []
        self.eval_inputs: list[torch.Tensor] = []

    def forward(self, x):
        (self.train_batches if self.training else self.eval_inputs).append(x.detach().clone())
        return self.lin(x)


def _batches(n, bs):
    """Batch boundaries of one epoch: ceil(n / bs) batches, a lone last sample joins the
    previous batch (a batch of one would break batch statistics)."""
    starts = list(range(0, n, bs))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]


@pytest.mark.parametrize(("n", "bs"), [(50, 8), (49, 8), (16, 16), (5, 32)])
def test_each_epoch_is_a_fresh_permutation_covering_every_sample_once(n, bs):
    X, y = _classification(n)
    X[:, 0] = torch.arange(n, dtype=torch.float32)
    model = IndexRecorder(3, 3)
    epochs, seed = 3, 7
    fit(model, (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.0), epochs=epochs,
        batch_size=bs, seed=seed, progress=False)  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    bounds = _batches(n, bs)
    assert len(model.train_batches) == epochs * len(bounds)
    epoch_perms = []
    for e in range(epochs):
        expected = torch.randperm(n, generator=g)
        got = model.train_batches[e * len(bounds) : (e + 1) * len(bounds)]
        assert [len(b) for b in got] == [b - a for a, b in bounds]
        seen = torch.cat([b[:, 0] for b in got]).long()
        assert torch.equal(seen, expected)
        assert torch.equal(seen.sort().values, torch.arange(n))
        epoch_perms.append(seen)
    if n > 2:
        assert not torch.equal(epoch_perms[0], epoch_perms[1])


def _reference_loop(model, X, y, Xv, yv, opt, epochs, bs, seed, penalty=None):
    """Minibatch SGD written out by hand: the numbers fit() must reproduce."""
    g = torch.Generator().manual_seed(seed)
    records = []
    for e in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        losses, sizes, pens, correct = [], [], [], 0
        for a, b in _batches(len(X), bs):
            idx = perm[a:b]
            out = model(X[idx])
            loss = F.cross_entropy(out, y[idx])
            total = loss
            if penalty is not None:
                pen = penalty(model)
                pens.append(float(pen.detach()))
                total = loss + pen
            opt.zero_grad()
            total.backward()
            opt.step()
            losses.append(float(loss.detach()))
            sizes.append(b - a)
            correct += int((out.argmax(1) == y[idx]).sum())
        with torch.no_grad():
            vout = model(Xv)
        rec = {
            "epoch": e + 1,
            "train_loss": sum(ls * s for ls, s in zip(losses, sizes, strict=True)) / sum(sizes),
            "train_accuracy": correct / len(X),
            "val_loss": float(F.cross_entropy(vout, yv)),
            "val_accuracy": float((vout.argmax(1) == yv).float().mean()),
        }
        if penalty is not None:
            rec["penalty"] = sum(pens) / len(pens)
        records.append(rec)
    return records


@pytest.mark.parametrize("with_penalty", [False, True])
def test_history_matches_a_hand_written_loop(with_penalty):
    X, y = _classification(60)
    Xv, yv = _classification(20, seed=5)
    penalty = (lambda m: 0.3 * m.weight.pow(2).sum()) if with_penalty else None
    ref_model = _linear()
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9)
    ref = _reference_loop(ref_model, X, y, Xv, yv, ref_opt, 3, 16, 3, penalty)

    model = _linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hist = fit(model, (X, y), (Xv, yv), optimizer=opt, epochs=3, batch_size=16, seed=3,
               penalty=penalty, progress=False)  # fmt: skip

    keys = {"epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
            "epoch_seconds"} | ({"penalty"} if with_penalty else set())  # fmt: skip
    assert set(hist.keys()) == keys
    for k in ("weight", "bias"):  # same batches, same ops: bit-for-bit
        assert torch.equal(model.state_dict()[k], ref_model.state_dict()[k])
    for rec, r in zip(hist, ref, strict=True):
        assert rec["epoch"] == r["epoch"] and rec["step"] == 4 * r["epoch"]
        assert rec["lr"] == 0.1 and rec["epoch_seconds"] > 0
        for key in r:  # float32 sums in a different order: relative 1e-6
            assert rec[key] == pytest.approx(r[key], rel=1e-6), key
    # the penalty is reported separately: train_loss is the data loss alone
    if with_penalty:
        assert all(rec["penalty"] > 0.01 for rec in hist)


def test_regression_history_has_no_accuracy_and_uses_mse():
    X = torch.randn(32, 2)
    y = X.sum(1, keepdim=True)
    model = nn.Linear(2, 1)
    hist = fit(model, (X, y), (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
               epochs=1, batch_size=32, progress=False)  # fmt: skip
    with torch.no_grad():
        mse = float(F.mse_loss(model(X), y))
    keys = hist.keys()
    assert "train_accuracy" not in keys and "val_accuracy" not in keys
    assert hist[0]["train_loss"] == pytest.approx(mse, rel=1e-6)
    assert hist[0]["val_loss"] == pytest.approx(mse, rel=1e-6)


class HookRecorder(Callback):
    def __init__(self):
        self.calls = []

    def _rec(self, name, trainer):
        self.calls.append((name, trainer.epoch, trainer.step))


for _hook in HOOKS:  # override every hook with a recorder

    def _make(hook):
        if hook == "on_validation_end":
            return lambda self, trainer, metrics: self._rec(hook, trainer)
        return lambda self, trainer: self._rec(hook, trainer)

    setattr(HookRecorder, _hook, _make(_hook))


def test_callback_hooks_run_in_order():
    X, y = _classification(20)
    model = _linear()
    rec = HookRecorder()
    fit(model, (X, y), (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=2,
        batch_size=8, callbacks=[rec], progress=False)  # fmt: skip
    expected = [("on_fit_start", 0, 0)]
    step = 0
    for e in range(2):
        expected.append(("on_epoch_start", e, step))
        for _ in range(3):  # 8 + 8 + 4
            expected.append(("on_batch_start", e, step))
            expected.append(("on_after_backward", e, step))
            step += 1
            expected += [("on_after_step", e, step), ("on_batch_end", e, step)]
        expected += [("on_validation_end", e, step), ("on_epoch_end", e, step)]
    expected.append(("on_fit_end", 1, step))
    assert rec.calls == expected


def test_callback_log_goes_into_the_epoch_record_and_request_stop_ends_training():
    class LogAndStop(Callback):
        def on_epoch_end(self, trainer):
            trainer.log("marker", trainer.epoch * 10)
            if trainer.epoch == 1:
                trainer.request_stop("enough")
                trainer.request_stop("second reason is ignored")

    X, y = _classification(20)
    model = _linear()
    hist = fit(model, (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=5,
               callbacks=[LogAndStop()], progress=False)  # fmt: skip
    assert hist["marker"] == [0, 10]
    assert hist.summary["stop_reason"] == "enough" and hist.summary["epochs_run"] == 2


@pytest.mark.parametrize(("val_every", "val_steps"), [(4, [4, 8, 12]), (7, [7, 14])])
def test_val_every_validates_every_n_steps(val_every, val_steps):
    class ValRecorder(Callback):
        def __init__(self):
            self.seen = []

        def on_validation_end(self, trainer, metrics):
            self.seen.append((trainer.step, metrics["val_loss"]))

    X, y = _classification(40)  # 5 steps per epoch with batch 8, 15 in all
    model = _linear()
    rec = ValRecorder()
    hist = fit(model, (X, y), (X[:10], y[:10]), optimizer=torch.optim.SGD(model.parameters(),
               lr=0.1), epochs=3, batch_size=8, val_every=val_every, callbacks=[rec],
               progress=False)  # fmt: skip
    assert [s for s, _ in rec.seen] == val_steps
    # each epoch's record carries the latest validation done by its end
    for rec_, end_step in zip(hist, (5, 10, 15), strict=True):
        done = [v for s, v in rec.seen if s <= end_step]
        if done:
            assert rec_["val_loss"] == done[-1]
        else:
            assert "val_loss" not in rec_


def test_lbfgs_gets_a_closure_and_matches_torch():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(24, 3, generator=g)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(24, 1, generator=g)
    penalty = lambda m: 0.01 * m.weight.pow(2).sum()  # noqa: E731

    torch.manual_seed(0)
    ref = nn.Linear(3, 1)
    ref_opt = torch.optim.LBFGS(ref.parameters(), lr=0.5, max_iter=4)
    gen = torch.Generator().manual_seed(2)
    first_losses = []
    for _ in range(2):
        perm = torch.randperm(24, generator=gen)
        xb, yb = X[perm], y[perm]
        evals = []

        def closure(xb=xb, yb=yb, evals=evals):
            ref_opt.zero_grad()
            loss = F.mse_loss(ref(xb), yb)
            evals.append(float(loss.detach()))
            total = loss + penalty(ref)
            total.backward()
            return total

        ref_opt.step(closure)
        first_losses.append(evals[0])

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    hist = fit(model, (X, y), optimizer=opt, epochs=2, batch_size=24, seed=2, penalty=penalty,
               progress=False)  # fmt: skip
    assert torch.equal(model.weight, ref.weight) and torch.equal(model.bias, ref.bias)
    # the recorded data loss is the one at the start of the step (first closure call)
    assert hist["train_loss"] == pytest.approx(first_losses, rel=1e-6)
    assert "penalty" in list(hist.keys())


def test_augment_applies_to_training_batches_only():
    calls = []

    def augment(x, y):
        calls.append(len(x))
        return x + 1000.0, y

    X, y = _classification(30)
    Xv, yv = _classification(10, seed=3)
    model = IndexRecorder(3, 3)
    hist = fit(model, (X, y), (Xv, yv), optimizer=torch.optim.SGD(model.parameters(), lr=1e-4),
               epochs=2, batch_size=8, augment=augment, progress=False)  # fmt: skip
    assert calls == [8, 8, 8, 6] * 2
    assert all(b.min() > 900 for b in model.train_batches)
    assert model.eval_inputs and all(b.abs().max() < 100 for b in model.eval_inputs)
    n_eval_before = len(model.eval_inputs)
    ref = evaluate(model, Xv, yv, prefix="val_")
    assert len(model.eval_inputs) == n_eval_before + 1
    assert hist[-1]["val_loss"] == ref["val_loss"]
    assert hist[-1]["val_accuracy"] == ref["val_accuracy"]


def test_evaluate_matches_direct_computation():
    X, y = _classification(70)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    got = evaluate(model, X, y, batch_size=32)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        out = model(X)
    assert got["loss"] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-6)
    assert got["accuracy"] == int((out.argmax(1) == y).sum()) / len(y)


# ----------------------------------------------------------------------------------- divergence


class BlowUp(Callback):
    """From epoch ``at`` on, a huge learning rate; records each step's loss and each epoch's
    final weights."""

    def __init__(self, at):
        self.at, self.losses, self.weights = at, [], []

    def on_epoch_start(self, trainer):
        if trainer.epoch == self.at:
            for group in trainer.optimizer.param_groups:
                group["lr"] = 1e12

    def on_after_step(self, trainer):
        self.losses.append(float(trainer.loss))

    def on_epoch_end(self, trainer):
        self.weights.append({k: v.clone() for k, v in trainer.model.state_dict().items()})


def test_non_finite_loss_raises_naming_epoch_step_and_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 4, generator=g)
    y = X.sum(1, keepdim=True)
    model = nn.Linear(4, 1)
    cb = BlowUp(at=2)
    with pytest.raises(DivergenceError) as info:
        fit(model, (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.01), epochs=6,
            batch_size=8, callbacks=[cb], checkpoint_dir=tmp_path, progress=False)  # fmt: skip
    bad_step = next(i for i, v in enumerate(cb.losses) if not math.isfinite(v)) + 1
    assert bad_step > 16  # epochs 1 and 2 (8 steps each) were finite
    msg = str(info.value)
    assert f"epoch {(bad_step - 1) // 8 + 1}," in msg and f"step {bad_step} " in msg
    assert str(tmp_path / "last.pt") in msg
    # the last checkpoint is the one of the last epoch whose weights were finite
    ckpt = load_checkpoint(tmp_path)
    good_epochs = [i for i, w in enumerate(cb.weights) if all(v.isfinite().all() for v in
                   w.values())]  # fmt: skip
    assert ckpt["epoch"] == good_epochs[-1] + 1 >= 2
    for k, v in ckpt["model"].items():
        assert v.isfinite().all() and torch.equal(v, cb.weights[good_epochs[-1]][k])


def test_non_finite_weights_with_finite_loss_are_not_checkpointed(tmp_path):
    class PoisonLastStep(Callback):
        def on_after_step(self, trainer):
            if trainer.step == 8:  # last step of epoch 2: its loss was computed before
                with torch.no_grad():
                    trainer.model.weight.fill_(math.inf)

    X = torch.randn(16, 4)
    y = X.sum(1, keepdim=True)
    model = nn.Linear(4, 1)
    with pytest.raises(DivergenceError, match=r"non-finite parameters after epoch 2 \(step 8\)"):
        fit(model, (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.01), epochs=4,
            batch_size=4, callbacks=[PoisonLastStep()], checkpoint_dir=tmp_path,
            progress=False)  # fmt: skip
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["epoch"] == 1 and all(v.isfinite().all() for v in ckpt["model"].values())


def test_divergence_without_checkpoint_says_so():
    X = torch.randn(16, 2)
    y = X.sum(1, keepdim=True) * 1e3
    model = nn.Linear(2, 1)
    with pytest.raises(DivergenceError, match=r"epoch 1, step .*no checkpoint was written"):
        fit(model, (X, y), optimizer=torch.optim.SGD(model.parameters(), lr=1e12), epochs=2,
            batch_size=4, progress=False)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1, "batch_size": 0}, "batch_size"),
        ({"epochs": 1, "val_every": 0}, "val_every"),
        ({"epochs": 1, "checkpoint_every": 0}, "checkpoint_every"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=match):
        data = (torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
        fit(model, data, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False,
            **kwargs)  # fmt: skip
