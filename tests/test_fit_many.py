"""fit_many against separate fit runs with the same seeds (member by member)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import goodfit as gf
from goodfit.optim import chain
from goodfit.optim.modifiers import clip_by_global_norm
from goodfit.train.early_stopping import EarlyStopping
from goodfit.train.fit_many import fit_many

SEEDS = [3, 4, 5]


def _data(dtype):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(101, 6, generator=g, dtype=dtype)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    Xv = torch.randn(40, 6, generator=g, dtype=dtype)
    yv = (Xv[:, 0] > 0).long()
    return (X, y), (Xv, yv)


def _net(seed, dtype, bn=True, dropout=True):
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 16)]
    layers += [nn.BatchNorm1d(16)] if bn else []
    layers += [nn.ReLU()] + ([nn.Dropout(0.3)] if dropout else []) + [nn.Linear(16, 3)]
    return nn.Sequential(*layers).to(dtype)


def _sgd(m):
    return torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.5)


def _adam(m):
    return torch.optim.Adam(m.parameters(), lr=1e-2)


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def _compare(make_opt, dtype, *, bn, dropout, es=False, epochs=15, **kw):
    train, val = _data(dtype)
    models = [_net(10 + s, dtype, bn, dropout) for s in SEEDS]
    refs = [copy.deepcopy(m) for m in models]
    cbs = [EarlyStopping(patience=2)] if es else []
    res = fit_many(
        models,
        train,
        val,
        optimizer=make_opt,
        epochs=epochs,
        batch_size=16,
        seeds=SEEDS,
        callbacks=cbs,
        vectorize=True,
        **kw,
    )
    hists = []
    for k, ref in enumerate(refs):
        ref_cbs = [EarlyStopping(patience=2)] if es else []
        hists.append(
            gf.fit(
                ref,
                train,
                val,
                optimizer=make_opt(ref),
                epochs=epochs,
                batch_size=16,
                seed=SEEDS[k],
                callbacks=ref_cbs,
                progress=False,
            )
        )
    return res, models, refs, hists


def test_float64_bn_dropout_early_stopping_match_fit_to_1e10():
    # SGD + momentum: every step is linear in the gradient, so the rounding differences of the
    # batched matmul (~1e-16) stay at that size; BN running stats are buffers in state_dict.
    res, models, refs, hists = _compare(_sgd, torch.float64, bn=True, dropout=True, es=True)
    assert res.vectorized
    for m, r, h, hm in zip(models, refs, hists, res.histories, strict=True):
        assert _max_diff(m, r) < 1e-10
        assert len(h) == len(hm)  # the same epoch of early stopping
        assert h.summary["best_epoch"] == hm.summary["best_epoch"]
        assert h["val_loss"] == pytest.approx(hm["val_loss"], abs=1e-10)
        assert h["train_loss"] == pytest.approx(hm["train_loss"], abs=1e-10)
        assert h["train_accuracy"] == pytest.approx(
            hm["train_accuracy"], abs=1e-7
        )  # fit: float32 mean
    assert len({len(h) for h in hists}) > 1  # members stopped at different epochs


def test_float64_adam_dropout_matches_fit():
    _, models, refs, _ = _compare(_adam, torch.float64, bn=False, dropout=True, epochs=5)
    for m, r in zip(models, refs, strict=True):
        assert _max_diff(m, r) < 1e-10


def test_float32_matches_fit_within_rounding():
    # float32: eps = 1.2e-7 per op; after 5 epochs x 6 steps of SGD+momentum on O(1) weights the
    # accumulated difference stays within a few hundred eps.
    _, models, refs, _ = _compare(_sgd, torch.float32, bn=True, dropout=True, epochs=5)
    for m, r in zip(models, refs, strict=True):
        assert _max_diff(m, r) < 1e-4


def test_per_member_global_norm_clipping_equals_goodfit_clip():
    def clipped(m):
        return gf.optim.Optimizer(
            m.parameters(), chain(clip_by_global_norm(0.05), gf.optim.rules.scale_by_lr(0.1))
        )

    train, _ = _data(torch.float64)
    models = [_net(10 + s, torch.float64, False, False) for s in SEEDS]
    refs = [copy.deepcopy(m) for m in models]
    res = fit_many(
        models,
        train,
        optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
        epochs=3,
        batch_size=16,
        seeds=SEEDS,
        clip_norm=0.05,
    )
    assert res.vectorized
    for k, ref in enumerate(refs):
        gf.fit(
            ref,
            train,
            optimizer=clipped(ref),
            epochs=3,
            batch_size=16,
            seed=SEEDS[k],
            progress=False,
        )
        assert _max_diff(models[k], ref) < 1e-10


def test_bootstrap_indices_and_sample_weights():
    train, _ = _data(torch.float64)
    g = torch.Generator().manual_seed(1)
    idx = [torch.randint(0, 101, (101,), generator=g) for _ in SEEDS]
    models = [_net(10 + s, torch.float64, False, False) for s in SEEDS]
    refs = [copy.deepcopy(m) for m in models]
    fit_many(models, train, optimizer=_sgd, epochs=2, batch_size=16, seeds=SEEDS, indices=idx)
    for k, ref in enumerate(refs):
        sub = (train[0][idx[k]], train[1][idx[k]])
        gf.fit(
            ref, sub, optimizer=_sgd(ref), epochs=2, batch_size=16, seed=SEEDS[k], progress=False
        )
        assert _max_diff(models[k], ref) < 1e-10
    # integer sample weights w equal repeating each row w times in a full batch (batch_size = n)
    w = torch.randint(0, 3, (101,), generator=g).double()
    w[0] = 1.0
    m1 = [_net(1, torch.float64, False, False)]
    m2 = copy.deepcopy(m1[0])
    fit_many(m1, train, optimizer=_sgd, epochs=3, batch_size=101, sample_weights=[w])
    rep = torch.repeat_interleave(torch.arange(101), w.long())
    opt = _sgd(m2)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(m2(train[0][rep]), train[1][rep])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _max_diff(m1[0], m2) < 1e-10


@pytest.mark.parametrize("opt", [_sgd, _adam], ids=["sgd", "adam"])
def test_members_of_different_sizes_match_fit(opt):
    """Training sets of 101, 100 and 98 rows make seven batches of 16 each, the last of 5, 4
    and 2 rows: that step runs per size (the members' own rows, their batch-norm statistics
    written back); validation sets of 40, 37 and 40 rows evaluate per size. Member by member
    the result is fit's, float64, with batch norm, dropout and early stopping."""
    (X, y), (Xv, yv) = _data(torch.float64)
    rows, val_rows = [101, 100, 98], [40, 37, 40]
    train = [(X[:n], y[:n]) for n in rows]
    val = [(Xv[:n], yv[:n]) for n in val_rows]
    models = [_net(10 + s, torch.float64, True, True) for s in SEEDS]
    refs = [copy.deepcopy(m) for m in models]
    kw = dict(epochs=12, batch_size=16)
    res = fit_many(models, train, val, optimizer=opt, seeds=SEEDS, vectorize=True,
                   callbacks=[EarlyStopping(patience=2)], **kw)  # fmt: skip
    assert res.vectorized
    for k, ref in enumerate(refs):
        h = gf.fit(ref, train[k], val[k], optimizer=opt(ref), seed=SEEDS[k], progress=False,
                   callbacks=[EarlyStopping(patience=2)], **kw)  # fmt: skip
        hm = res.histories[k]
        # Adam: the biases before batch norm have zero true gradient, see fit_many's docstring
        assert _max_diff(models[k], ref) < (1e-10 if opt is _sgd else 1e-6)
        assert len(h) == len(hm)
        assert h["train_loss"] == pytest.approx(hm["train_loss"], abs=1e-8)
        assert h["val_loss"] == pytest.approx(hm["val_loss"], abs=1e-8)
        assert h["train_accuracy"] == pytest.approx(hm["train_accuracy"], abs=1e-7)
    with pytest.raises(ValueError, match="numbers of batches"):  # 97 rows: six batches of 16
        fit_many([_net(1, torch.float64)] * 2, [train[0], (X[:97], y[:97])], optimizer=_sgd,
                 epochs=1, batch_size=16, vectorize=True)  # fmt: skip


def test_members_of_different_sizes_on_the_vmap_path():
    """The same ragged schedule through ``vmap`` (a model that is not an ``nn.Sequential``,
    batch-norm buffers written back from under ``vmap``) with a loss that is not built in
    (computed under ``vmap`` too): fit's parameters and early-stopping epochs, float64."""

    class Net(nn.Module):
        def __init__(self, seed):
            super().__init__()
            torch.manual_seed(seed)
            self.a, self.bn, self.b = nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Linear(16, 3)
            self.drop = nn.Dropout(0.3)

        def forward(self, x):
            return self.b(self.drop(torch.relu(self.bn(self.a(x)))))

    def smoothed(out, y):
        return nn.functional.cross_entropy(out, y, label_smoothing=0.1)

    (X, y), (Xv, yv) = _data(torch.float64)
    train = [(X[:n], y[:n]) for n in (101, 100, 98)]
    val = [(Xv[:n], yv[:n]) for n in (40, 37, 40)]
    models = [Net(10 + s).double() for s in SEEDS]
    refs = [copy.deepcopy(m) for m in models]
    kw = dict(epochs=10, batch_size=16, loss=smoothed)
    res = fit_many(models, train, val, optimizer=_sgd, seeds=SEEDS, vectorize=True,
                   callbacks=[EarlyStopping(patience=2)], **kw)  # fmt: skip
    for k, ref in enumerate(refs):
        h = gf.fit(ref, train[k], val[k], optimizer=_sgd(ref), seed=SEEDS[k], progress=False,
                   callbacks=[EarlyStopping(patience=2)], **kw)  # fmt: skip
        assert _max_diff(models[k], ref) < 1e-10
        assert len(h) == len(res.histories[k])
        assert h["val_loss"] == pytest.approx(res.histories[k]["val_loss"], abs=1e-10)


def test_fallback_is_sequential_with_notice(capsys):
    train, _ = _data(torch.float64)
    models = [_net(1, torch.float64, False, False), nn.Sequential(nn.Linear(6, 3)).double()]
    refs = [copy.deepcopy(m) for m in models]
    res = fit_many(models, train, optimizer=_sgd, epochs=2, batch_size=16, seeds=[0, 1])
    assert not res.vectorized and "differs" in res.notice
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one after another" in err
    for k, ref in enumerate(refs):
        gf.fit(ref, train, optimizer=_sgd(ref), epochs=2, batch_size=16, seed=k, progress=False)
        assert _max_diff(models[k], ref) == 0.0


def test_other_random_ops_fall_back():
    class Noisy(nn.Module):
        def forward(self, x):
            return x + 0.1 * torch.randn_like(x) if self.training else x

    train, _ = _data(torch.float64)
    models = [nn.Sequential(nn.Linear(6, 3), Noisy()).double() for _ in range(2)]
    res = fit_many(models, train, optimizer=_sgd, epochs=1, seeds=[0, 1])
    assert not res.vectorized and "does not vectorize" in res.notice
    with pytest.raises(ValueError, match="cannot vectorize"):
        fit_many(models, train, optimizer=_sgd, epochs=1, seeds=[0, 1], vectorize=True)


def test_cnn_with_channel_dropout_matches_fit():
    # vmap turns the K convolutions into one grouped convolution; Dropout2d drops whole channels
    g = torch.Generator().manual_seed(2)
    X = torch.randn(40, 1, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)

    def net(seed):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout2d(0.5), nn.Flatten(), nn.Linear(64, 3)
        ).double()

    models = [net(1), net(2)]
    refs = [copy.deepcopy(m) for m in models]
    res = fit_many(models, (X, y), optimizer=_sgd, epochs=2, batch_size=16, seeds=[7, 8])
    assert res.vectorized
    for k, ref in enumerate(refs):
        gf.fit(
            ref,
            (X, y),
            optimizer=_sgd(ref),
            epochs=2,
            batch_size=16,
            seed=[7, 8][k],
            progress=False,
        )
        assert _max_diff(models[k], ref) < 1e-10


@pytest.mark.parametrize(
    "ops",
    [
        [("affine", {"degrees": 15.0, "translate": 0.1}), ("mixup", {"p": 0.5})],
        [("affine", {"degrees": 15.0, "translate": 0.1}), ("erasing", {"p": 0.5})],
    ],
    ids=["per-member", "drawn-apart"],
)
def test_penalty_and_augmentation_match_fit(ops):
    """An L1 + L2 penalty (each member's own, per_member on the stacked shell) and an
    augmentation pipeline (member k's draws from its own RNG stream, as fit's one global
    stream interleaves augmentation and dropout) give fit's parameters and history, float64:
    kornia affine + mixup (each member's batch through the pipeline) and kornia affine +
    erasing (drawn per member, transformed in one call per op)."""
    from goodfit.data.augment import AUGMENTATIONS, AugmentPipeline
    from goodfit.regularize import elastic_net

    g = torch.Generator().manual_seed(3)
    X = torch.rand(40, 1, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)

    def net(seed):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(64, 3)
        ).double()

    def pipeline():
        return AugmentPipeline([AUGMENTATIONS[n](**kw) for n, kw in ops], num_classes=3)

    assert pipeline().drawable(X) == (ops[1][0] == "erasing")

    models = [net(1), net(2), net(3)]
    refs = [copy.deepcopy(m) for m in models]
    pen = elastic_net(l1=1e-3, l2=1e-2)
    kw = dict(optimizer=_sgd, epochs=3, batch_size=16)
    res = fit_many(models, (X, y), seeds=[7, 8, 9], penalty=pen, augment=pipeline(),
                   vectorize=True, **kw)  # fmt: skip
    assert res.vectorized
    for k, ref in enumerate(refs):
        kw["optimizer"] = _sgd(ref)
        h = gf.fit(ref, (X, y), seed=[7, 8, 9][k], penalty=elastic_net(l1=1e-3, l2=1e-2),
                   augment=pipeline(), progress=False, **kw)  # fmt: skip
        kw["optimizer"] = _sgd
        assert _max_diff(models[k], ref) < 1e-10
        assert h["penalty"] == pytest.approx(res.histories[k]["penalty"], abs=1e-12)
        assert h["train_loss"] == pytest.approx(res.histories[k]["train_loss"], abs=1e-10)
    assert _max_diff(models[0], models[1]) > 1e-3  # the members did differ


def test_mlp_forward_without_vmap_equals_vmap():
    """An nn.Sequential MLP runs as batched matmuls (goodfit.train.stacked_sequential); it gives the
    vmap-over-functional_call outputs, dropout masks included."""
    from goodfit.train.stacked import StackedModel

    class Net(nn.Sequential):  # a subclass that keeps Sequential's forward takes the fast path
        pass

    def net(seed):
        torch.manual_seed(seed)
        return Net(
            nn.Flatten(),
            nn.Linear(12, 16),
            nn.GELU(),
            nn.Dropout(0.4),
            nn.Linear(16, 5, bias=False),
        ).double()

    st = StackedModel([net(1), net(2), net(3)])
    assert st._plan is not None
    assert (
        StackedModel([_net(1, torch.float64), _net(2, torch.float64)])._plan is not None
    )  # BN1d too
    x = torch.randn(3, 7, 3, 4, dtype=torch.float64)
    masks = st.draw_masks(x, [torch.Generator().manual_seed(s) for s in (4, 5, 6)])
    with torch.no_grad():
        fast = st.forward(x, masks)
        st._plan = None
        slow = st.forward(x, masks)
    assert fast.shape == (3, 7, 5)
    assert float((fast - slow).abs().max()) < 1e-12


@pytest.mark.parametrize("training", [True, False])
def test_cnn_forward_without_vmap_equals_vmap(training):
    """A plain CNN (conv, batch norm, pooling, both dropouts, flatten, linear, BN1d) runs
    channel-stacked without vmap: the same outputs, running statistics and batch counts as the
    vmap path, in training and in eval mode."""
    from goodfit.train.stacked import StackedModel

    def net(seed):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout2d(0.3),
            nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, groups=2), nn.AvgPool2d(1), nn.Dropout(0.2),
            nn.Flatten(), nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3),
        ).double()  # fmt: skip

    members = [net(1), net(2), net(3)]
    for m in members:  # running statistics away from their initial values
        m.train()(torch.randn(8, 2, 6, 6, dtype=torch.float64))
    fast_st, slow_st = StackedModel(members), StackedModel(members)
    slow_st._plan = None
    assert fast_st._plan is not None
    x = torch.randn(3, 7, 2, 6, 6, dtype=torch.float64)
    outs = []
    for st in (fast_st, slow_st):
        st.train(training)
        gens = [torch.Generator().manual_seed(s) for s in (4, 5, 6)]
        masks = st.draw_masks(x, gens) if training else []
        with torch.no_grad():
            outs.append(st.forward(x, masks))
    assert outs[0].shape == (3, 7, 3)
    assert float((outs[0] - outs[1]).abs().max()) < 1e-12
    for name, buf in fast_st.buffers.items():
        assert torch.allclose(buf.double(), slow_st.buffers[name].double(), atol=1e-12), name
    if training:
        assert int(fast_st.buffers["1.num_batches_tracked"][0]) == 2


@pytest.mark.parametrize(
    "pool, shape",
    [
        (nn.MaxPool2d(2), (4, 3, 6, 6)),
        (nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (4, 3, 7, 5)),
        (nn.MaxPool1d(2, padding=1), (4, 3, 9)),
    ],
)
def test_pool_before_relu_is_exact(pool, shape):
    """The stacked plan runs ``ReLU, MaxPool`` as ``MaxPool, ReLU``: bit-identical outputs and
    input gradients, on inputs full of ties (small integers: equal maxima, windows of zeros
    and of negatives)."""
    from goodfit.train.stacked import _FedDropout
    from goodfit.train.stacked_sequential import sequential_plan

    g = torch.Generator().manual_seed(0)
    x = torch.randint(-2, 3, shape, generator=g).double()
    w = torch.randn(pool(x).shape, generator=g, dtype=torch.float64)
    outs, grads = [], []
    for net in (nn.Sequential(nn.ReLU(), pool), nn.Sequential(pool, nn.ReLU())):
        xi = x.clone().requires_grad_()
        y = net(xi)
        (y * w).sum().backward()
        outs.append(y.detach())
        grads.append(xi.grad)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(grads[0], grads[1])
    plan = sequential_plan(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), pool, nn.ReLU()), _FedDropout)
    assert [type(m) for _, m in plan] == [nn.Linear, type(pool), nn.ReLU, nn.ReLU]


def test_gradient_flow_per_member_matches_fit():
    """A GradientFlowCallback runs once per member: each member's copy records the per-layer
    gradient norms, steps, flags and epoch logs of a separate fit run with the callback
    (float64 BN + dropout + early stopping, members stopping at different epochs), and a
    stopped member records nothing more."""
    from goodfit.diagnose.gradient_flow import GradientFlowCallback

    train, val = _data(torch.float64)
    models = [_net(10 + s, torch.float64, True, True) for s in SEEDS]
    refs = [copy.deepcopy(m) for m in models]
    kw = dict(epochs=15, batch_size=16)
    callbacks = [EarlyStopping(patience=2), GradientFlowCallback(every=2)]
    res = fit_many(models, train, val, optimizer=_sgd, seeds=SEEDS, vectorize=True,
                   callbacks=callbacks, **kw)  # fmt: skip
    assert res.vectorized
    lengths = set()
    for k, ref in enumerate(refs):
        flow = GradientFlowCallback(every=2)
        h = gf.fit(ref, train, val, optimizer=_sgd(ref), seed=SEEDS[k], progress=False,
                   callbacks=[EarlyStopping(patience=2), flow], **kw)  # fmt: skip
        (mine,) = res.member_callbacks[k]
        assert mine is not flow and mine.layers == flow.layers == ["0", "1", "4"]
        assert mine.steps == flow.steps
        np.testing.assert_allclose(mine.norms, flow.norms, rtol=1e-6)
        assert [f["kind"] for f in mine.flags] == [f["kind"] for f in flow.flags]
        hm = res.histories[k]
        assert len(hm) == len(h)
        for key in ("grad_norm/0", "grad_norm/4", "grad_norm_max", "grad_vanishing"):
            assert hm[key] == pytest.approx(h[key], rel=1e-6), key
        lengths.add(len(h))
    assert len(lengths) > 1  # members stopped at different epochs
