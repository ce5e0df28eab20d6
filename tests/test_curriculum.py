"""The curriculum sampler: each epoch admits exactly the paced fraction, in difficulty order
(``anti`` reversed, ``random`` a fixed shuffle), every sample eventually; pacing functions equal
their formulas (Hacohen & Weinshall 2019); self-paced rescoring follows the losses; a resumed run
continues bit-for-bit."""

from __future__ import annotations

import math

import pytest
import torch

import goodfit as gf
from goodfit.train.curriculum import CurriculumSampler, pacing_fraction, per_sample_loss


class _Epoch:
    """What the sampler reads of the trainer: ``epoch``, ``model``, ``log``."""

    def __init__(self, model=None):
        self.epoch, self.model, self.logs = 0, model, {}

    def log(self, key, value):
        self.logs[key] = value


def test_pacing_functions_equal_their_formulas():
    s, E = 0.2, 6
    for e in range(1, 9):
        t = min(1.0, (e - 1) / (E - 1))
        assert pacing_fraction("linear", e, s, E) == pytest.approx(s + (1 - s) * t)
        assert pacing_fraction("step", e, s, E, levels=2) == pytest.approx(
            1.0 if e >= E else s + (1 - s) * math.floor(2 * t) / 2
        )
        # fixed exponential pacing: s * inc^floor((e-1)/L), inc = s^(-1/floor((E-1)/L)), L = 2
        inc = s ** (-1 / 2)
        want = 1.0 if e >= E else min(1.0, s * inc ** ((e - 1) // 2))
        assert pacing_fraction("exponential", e, s, E, step_length=2) == pytest.approx(want)
    assert pacing_fraction("step", 5, s, E) == s and pacing_fraction("step", 6, s, E) == 1.0


@pytest.mark.parametrize("order", ["curriculum", "anti", "random"])
def test_each_epoch_admits_the_paced_fraction_in_order_and_every_sample_eventually(order):
    n = 50
    scores = torch.randperm(n, generator=torch.Generator().manual_seed(0)).double()
    sampler = CurriculumSampler(scores, pacing="linear", start=0.2, full_epoch=5, order=order)
    g, trainer = torch.Generator().manual_seed(1), _Epoch()
    easy_first = torch.argsort(scores)
    rankings = []
    for epoch in range(7):
        trainer.epoch = epoch
        idx = sampler.epoch_indices(trainer, n, g)
        m = math.ceil(pacing_fraction("linear", epoch + 1, 0.2, 5) * n - 1e-9)
        assert len(idx) == n  # an epoch keeps its number of steps
        assert trainer.logs["curriculum_fraction"] == m / n
        admitted = set(idx.tolist())
        assert len(admitted) == m
        counts = torch.bincount(idx, minlength=n)[list(admitted)]
        assert int(counts.max() - counts.min()) <= 1  # uniform draws from the admitted set
        ranking = sampler.ranking(n, g)
        rankings.append(ranking.clone())
        assert admitted == set(ranking[:m].tolist())
    if order == "curriculum":
        assert torch.equal(rankings[0], easy_first)
    elif order == "anti":
        assert torch.equal(rankings[0], easy_first.flip(0))
    else:  # a shuffle, fixed for the run
        assert not torch.equal(rankings[0], easy_first)
        assert all(torch.equal(r, rankings[0]) for r in rankings)
    assert len(admitted) == n  # the whole set from full_epoch on


def test_self_paced_rescoring_follows_the_current_losses():
    X = torch.eye(4)
    y = torch.tensor([0, 1, 0, 1])
    net = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():  # samples 0, 1 right and confident; 2, 3 wrong
        net.weight.copy_(torch.tensor([[5.0, 0, 0, 5], [0, 5, 5, 0]]))
    sampler = CurriculumSampler(
        pacing="step", start=0.5, full_epoch=10, rescore_every=2, data=(X, y)
    )
    trainer, g = _Epoch(net), torch.Generator().manual_seed(0)
    assert set(sampler.epoch_indices(trainer, 4, g).tolist()) == {0, 1}
    torch.testing.assert_close(sampler.scores, per_sample_loss(net, X, y))
    with torch.no_grad():  # now 2, 3 are the easy ones
        net.weight.copy_(torch.tensor([[0.0, 5, 5, 0], [5, 0, 0, 5]]))
    trainer.epoch = 1  # not a rescoring epoch: the old order stays
    assert set(sampler.epoch_indices(trainer, 4, g).tolist()) == {0, 1}
    trainer.epoch = 2
    assert set(sampler.epoch_indices(trainer, 4, g).tolist()) == {2, 3}


def test_per_sample_loss_equals_unreduced_cross_entropy_and_mse():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    X, y = torch.randn(9, 3), torch.randint(0, 2, (9,))
    ce = torch.nn.functional.cross_entropy(net(X), y, reduction="none").double()
    torch.testing.assert_close(per_sample_loss(net, X, y, batch_size=4), ce.detach())
    t = torch.randn(9, 2)
    mse = ((net(X) - t) ** 2).mean(dim=1).double()
    torch.testing.assert_close(per_sample_loss(net, X, t), mse.detach())


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="start"):
        CurriculumSampler(torch.zeros(3), start=0.0)
    with pytest.raises(ValueError, match="pacing"):
        CurriculumSampler(torch.zeros(3), pacing="cosine")
    with pytest.raises(ValueError, match="data"):
        CurriculumSampler(rescore_every=1)
    with pytest.raises(ValueError, match="one per training sample"):
        CurriculumSampler(torch.zeros(3)).epoch_indices(_Epoch(), 5, torch.Generator())


def test_a_resumed_self_paced_run_continues_bit_for_bit(tmp_path):
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g)

    def run(epochs, resume, folder):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        sampler = CurriculumSampler(start=0.3, full_epoch=4, rescore_every=2, data=(X, y))
        gf.fit(net, (X, y), optimizer=torch.optim.SGD(net.parameters(), lr=0.1), epochs=epochs,
               batch_size=8, progress=False, sampler=sampler, checkpoint_dir=folder,
               resume=resume)  # fmt: skip
        return net

    whole = run(5, False, tmp_path / "a")
    run(3, False, tmp_path / "b")
    resumed = run(5, True, tmp_path / "b")
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
