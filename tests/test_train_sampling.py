"""The loop's sampler seam: the default is seed 003's fresh permutation; a sampler's indices are
exactly what an epoch visits, in its order, and its state travels with the checkpoint."""

import torch

import goodfit as gf
from goodfit.train.loop import Trainer
from goodfit.train.sampling import EpochSampler, RandomOrder


class _FirstK:
    """Visits the first ``k`` samples in reverse order; counts its calls as state."""

    def __init__(self, k: int) -> None:
        self.k, self.calls = k, 0

    def epoch_indices(self, trainer, n, generator):
        self.calls += 1
        return torch.arange(self.k - 1, -1, -1)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g)


def test_default_sampler_is_the_seeded_permutation():
    net = torch.nn.Linear(3, 2)
    trainer = Trainer(
        net, torch.optim.SGD(net.parameters(), lr=0.1), epochs=1, batch_size=8, progress=False
    )
    assert isinstance(trainer.sampler, RandomOrder)
    assert isinstance(trainer.sampler, EpochSampler)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(
        trainer.sampler.epoch_indices(trainer, 40, g),
        torch.randperm(40, generator=torch.Generator().manual_seed(5)),
    )


def test_sampler_indices_are_what_the_epoch_trains_on():
    X, y = _data()
    sampler = _FirstK(10)
    seen_x: list[torch.Tensor] = []

    net = torch.nn.Linear(3, 2)

    def augment(xb, yb):
        seen_x.append(xb.clone())
        return xb, yb

    h = gf.fit(
        net,
        (X, y),
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        epochs=2,
        batch_size=4,
        sampler=sampler,
        augment=augment,
        progress=False,
    )
    assert h.summary["steps"] == 2 * 3  # ceil(10 / 4) batches an epoch
    visited = torch.cat(seen_x[:3])
    assert torch.equal(visited, X[torch.arange(9, -1, -1)])
    assert sampler.calls == 2


def test_sampler_state_is_checkpointed_and_restored(tmp_path):
    X, y = _data()
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    gf.fit(
        net,
        (X, y),
        optimizer=opt,
        epochs=2,
        batch_size=4,
        sampler=_FirstK(8),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    resumed = _FirstK(8)
    net2 = torch.nn.Linear(3, 2)
    gf.fit(
        net2,
        (X, y),
        optimizer=torch.optim.SGD(net2.parameters(), lr=0.1),
        epochs=3,
        batch_size=4,
        sampler=resumed,
        checkpoint_dir=tmp_path,
        resume=True,
        progress=False,
    )
    assert resumed.calls == 3  # 2 restored from the checkpoint + the one resumed epoch
