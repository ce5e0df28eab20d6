"""Ensembles: aggregation rules by hand, bootstrap samples, SAMME / AdaBoost.R2 updates against
transcriptions of the published algorithms, strictly out-of-fold stacking, SWA/EMA against
torch's swa_utils semantics, snapshots, dropout inference rules and Baldi's identity."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import goodfit as gf
from goodfit.ensemble import (
    SnapshotEnsemble,
    WeightAveraging,
    aggregate,
    bagging,
    baldi_identity,
    bootstrap_indices,
    disagreement,
    dropout_inference_rules,
    r2_update,
    samme,
    samme_update,
    stacking,
    weighted_median,
)


def test_aggregation_rules_by_hand():
    # two members, one sample, three classes; probabilities chosen directly
    p1, p2 = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.1, 0.5, 0.4])
    logits = torch.stack([p1.log(), p2.log()]).unsqueeze(1).double()
    mean = aggregate(logits, "mean")[0]
    assert mean.tolist() == pytest.approx([0.4, 0.35, 0.25])
    g = [math.sqrt(0.07), math.sqrt(0.1), math.sqrt(0.04)]
    geo = aggregate(logits, "geometric")[0]
    assert geo.tolist() == pytest.approx([v / sum(g) for v in g])
    vote = aggregate(logits, "vote")[0]  # one vote for class 0, one for class 1: a tie
    assert vote.tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert int(vote.argmax()) == 0  # ties go to the lowest index
    # weighted vote (SAMME): alpha = (1, 3) -> class 1 wins
    wv = aggregate(logits, "vote", torch.tensor([1.0, 3.0]))[0]
    assert wv.tolist() == pytest.approx([0.25, 0.75, 0.0])


def test_disagreement_by_hand():
    # predictions: m0 = [0,1,2,0], m1 = [0,1,1,1], m2 = [2,1,2,0]
    preds = torch.tensor([[0, 1, 2, 0], [0, 1, 1, 1], [2, 1, 2, 0]])
    out = torch.nn.functional.one_hot(preds, 3).double()
    # pairs: (0,1): 2/4, (0,2): 1/4, (1,2): 3/4 -> mean 0.5
    assert disagreement(out) == pytest.approx(0.5)


def test_bootstrap_size_and_replacement():
    idx = bootstrap_indices(1000, 8, seed=3)
    assert len(idx) == 8
    for i in idx:
        assert i.shape == (1000,) and int(i.min()) >= 0 and int(i.max()) < 1000
    unique = torch.tensor([len(torch.unique(i)) / 1000 for i in idx], dtype=torch.float64)
    # with replacement the expected unique fraction is 1 - (1 - 1/n)^n = 0.6323; its sd for n =
    # 1000 is about 0.0095 per sample, so the mean of 8 lies within 0.02 (> 5 sd) of it
    assert float(unique.mean()) == pytest.approx(1 - (1 - 1 / 1000) ** 1000, abs=0.02)
    assert all(len(torch.unique(i)) < 1000 for i in idx)  # repeats: drawn with replacement
    assert not torch.equal(idx[0], idx[1])


def _samme_plain(weights, miss, k):
    """Zhu et al. (2009), Algorithm 2, steps 2(b)-2(d), in plain Python."""
    w = [x / sum(weights) for x in weights]
    err = sum(wi * mi for wi, mi in zip(w, miss, strict=True)) / sum(w)
    alpha = math.log((1 - err) / err) + math.log(k - 1)
    w = [wi * math.exp(alpha * mi) for wi, mi in zip(w, miss, strict=True)]
    return [x / sum(w) for x in w], alpha, err


def test_samme_weights_against_transcription():
    y = [0, 1, 2, 1, 0, 2, 2, 1]
    rounds = [[0, 1, 1, 1, 0, 2, 0, 1], [0, 2, 2, 1, 1, 2, 2, 1], [1, 1, 2, 1, 0, 0, 2, 1]]
    w_ref, w = [1 / 8] * 8, torch.full((8,), 1 / 8, dtype=torch.float64)
    for pred in rounds:
        miss = [float(a != b) for a, b in zip(pred, y, strict=True)]
        w_ref, a_ref, e_ref = _samme_plain(w_ref, miss, 3)
        w, alpha, err, stop = samme_update(w, torch.tensor(miss, dtype=torch.float64), 3)
        assert not stop
        assert w.tolist() == pytest.approx(w_ref, rel=1e-12)
        assert alpha == pytest.approx(a_ref, rel=1e-12) and err == pytest.approx(e_ref, rel=1e-12)
    # no better than chance (err >= 1 - 1/K) stops; a perfect round stops with weight 1
    _, alpha, _, stop = samme_update(torch.full((3,), 1 / 3), torch.tensor([1.0, 1.0, 0.0]), 3)
    assert stop and alpha == 0.0
    _, alpha, _, stop = samme_update(torch.full((3,), 1 / 3), torch.zeros(3), 3)
    assert stop and alpha == 1.0


def test_r2_update_and_weighted_median_against_transcription():
    err = [0.5, 0.1, 0.0, 0.2]
    p = [0.25] * 4
    d = max(err)
    L = [e / d for e in err]  # linear loss
    lbar = sum(pi * li for pi, li in zip(p, L, strict=True))
    beta = lbar / (1 - lbar)
    new = [pi * beta ** (1 - li) for pi, li in zip(p, L, strict=True)]
    new = [x / sum(new) for x in new]
    w, mw, lb, stop = r2_update(torch.tensor(p, dtype=torch.float64), torch.tensor(err).double())
    assert not stop and lb == pytest.approx(lbar) and mw == pytest.approx(math.log(1 / beta))
    assert w.tolist() == pytest.approx(new)
    # weighted median: predictions 1, 3, 2 with weights 0.2, 0.5, 0.3 -> sorted 1(.2) 2(.3) 3(.5);
    # cumulative .2 .5 1.0 reaches half (.5) at 2
    out = torch.tensor([[1.0], [3.0], [2.0]])
    assert weighted_median(out, torch.tensor([0.2, 0.5, 0.3])).tolist() == [2.0]
    assert weighted_median(out, torch.tensor([0.2, 0.6, 0.2])).tolist() == [3.0]


def _blobs(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    X = torch.randn(n, 4, generator=g) + 2.0 * nn.functional.one_hot(y, 4).float()
    return X, y


def _mlp(k, dropout=0.0):
    torch.manual_seed(100 + k)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def _adam(m):
    return torch.optim.Adam(m.parameters(), lr=0.02)


def test_bagging_trains_vectorized_and_beats_chance():
    X, y = _blobs()
    ens = bagging(_mlp, (X, y), members=4, optimizer=_adam, epochs=5, seed=1)
    assert ens.info["vectorized"]
    m = ens.evaluate(X, y)
    assert len(m["member_accuracy"]) == 4 and m["ensemble_accuracy"] > 0.8
    assert 0.0 <= m["diversity"] <= 1.0


def test_samme_runs_with_sample_weights():
    X, y = _blobs()
    ens = samme(_mlp, (X, y), members=3, optimizer=_adam, epochs=3, seed=0)
    assert len(ens.models) == len(ens.info["alphas"]) >= 1
    assert ens.rule == "vote"
    with pytest.raises(ValueError, match="classification"):
        samme(_mlp, (X, y.float()), members=3, optimizer=_adam, epochs=1)


def test_stacking_meta_features_are_out_of_fold():
    X, y = _blobs(90)
    ens = stacking(_mlp, (X, y), members=2, optimizer=_adam, epochs=3, folds=3, seed=0)
    held, trained_on = ens.info["held_out"], ens.info["trained_on"]
    for i in range(len(y)):  # the network that produced row i's feature never trained on it
        assert i not in set(trained_on[int(held[i])].tolist())
    # and the features are those networks' outputs: member 0, fold of row 0
    f0 = int(held[0])
    net = ens.models[f0]
    net.eval()
    with torch.no_grad():
        p = net(X[:1]).softmax(1)
    assert ens.info["oof"][0, :3] == pytest.approx(p[0].double().numpy(), abs=1e-6)
    assert ens.predict(X).shape == (90, 3)


def test_swa_and_ema_follow_torch_definitions():
    X, y = _blobs(64)
    net = _mlp(0)
    ref = copy.deepcopy(net)
    swa, ema = WeightAveraging("swa", start_epoch=1), WeightAveraging("ema", decay=0.9)
    gf.fit(
        net,
        (X, y),
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        epochs=3,
        batch_size=32,
        callbacks=[swa, ema],
        progress=False,
    )
    # replay: the same run, recording the weights after each epoch and each step
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    snaps, ema_w = [], [p.detach().clone() for p in ref.parameters()]

    class Rec(gf.callbacks.Callback):
        def on_after_step(self, trainer):
            for e, p in zip(ema_w, trainer.model.parameters(), strict=True):
                if trainer.step == 1:  # AveragedModel's first update copies the weights
                    e.copy_(p.detach())
                else:
                    e.mul_(0.9).add_(p.detach(), alpha=0.1)

        def on_epoch_end(self, trainer):
            if trainer.epoch >= 1:
                snaps.append([p.detach().clone() for p in trainer.model.parameters()])

    gf.fit(ref, (X, y), optimizer=opt, epochs=3, batch_size=32, callbacks=[Rec()], progress=False)
    for a, ps in zip(swa.model().parameters(), zip(*snaps, strict=True), strict=True):
        assert torch.allclose(a, torch.stack(ps).mean(0), atol=1e-6)
    for a, e in zip(ema.model().parameters(), ema_w, strict=True):
        assert torch.allclose(a, e, atol=1e-6)


def test_snapshot_ensemble_takes_one_member_per_cycle():
    X, y = _blobs(64)
    net = _mlp(0)
    snap = SnapshotEnsemble(cycle_steps=4)  # 2 steps per epoch, 6 epochs -> 3 snapshots
    sched = gf.train.schedule_callbacks.ScheduleCallback(
        gf.ensemble.averaging.snapshot_schedule(0.1, 4), interval="step"
    )
    gf.fit(
        net,
        (X, y),
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        epochs=6,
        batch_size=32,
        callbacks=[sched, snap],
        progress=False,
    )
    ens = snap.ensemble(net, task="classification")
    assert len(ens.models) == 3
    last = ens.models[-1].state_dict()
    assert all(torch.equal(last[k], v) for k, v in net.state_dict().items())


def test_dropout_inference_rules_on_one_softmax_layer():
    # dropout on the inputs of a single softmax layer: the normalized geometric mean of all
    # sub-networks equals weight scaling exactly (Baldi & Sadowski 2013, sec. 5); with T samples
    # the MC geometric mean's logit is an average of T terms, so it converges at 1/sqrt(T)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 3)).double()
    X, y = _blobs(50)
    r = dropout_inference_rules(net, X.double(), y, samples=4000, seed=1)
    assert r["gap"]["ws_vs_geo_prob"] < 0.01
    assert r["gap"]["ws_vs_mc_prob"] > r["gap"]["ws_vs_geo_prob"]  # the arithmetic mean differs
    for rule in ("weight_scaling", "mc_average", "geometric_mean"):
        assert 0.0 <= r[rule]["accuracy"] <= 1.0 and r[rule]["nll"] > 0


def test_baldi_identity_on_a_linear_unit():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, generator=g, dtype=torch.float64)
    inputs = torch.randn(5, generator=g, dtype=torch.float64)
    p = torch.tensor([0.9, 0.5, 0.5, 0.8, 0.3], dtype=torch.float64)
    r = baldi_identity(w, inputs, 0.7, p, samples=200_000, seed=1)
    assert torch.allclose(r["expected_grad"], r["per_sample_mean"], atol=1e-12)
    # Monte-Carlo precision: within 5 standard errors per coordinate
    assert bool(((r["expected_grad"] - r["grad_E_R"]).abs() < 5 * r["stderr"]).all())
    # the slide's E_R without the 1/2 on the penalty: the gradient is off by w p(1-p) I^2
    slide = baldi_identity(w, inputs, 0.7, p, samples=200_000, seed=1, penalty_factor=1.0)
    assert not bool(
        ((slide["expected_grad"] - slide["grad_E_R"]).abs() < 5 * slide["stderr"]).all()
    )
