"""Curriculum learning through the loop's sampler seam (seed 001 "Curriculum Learning: Sort data
(easy to hard)"; seed 002 "first learn on simple objects, then on complex ones").

A :class:`CurriculumSampler` ranks the training samples by a difficulty score (low = easy) and, at
each epoch, admits the easiest fraction ``g(epoch)`` given by a pacing function; the epoch's
``n`` draws are fresh random permutations of the admitted samples, concatenated (so an epoch has
as many steps as without a curriculum and the schedules keep their length), i.e. batches are
drawn at random from the admitted set, as in Hacohen & Weinshall (2019, *On the power of
curriculum learning in training deep networks*, Alg. 1).

Scores: any per-sample array (a reference model's loss, as Hacohen & Weinshall's transfer /
self-taught scoring; a user's column), or, with ``rescore_every = N``, the *current* model's
per-sample loss recomputed every ``N`` epochs (self-paced learning, Kumar, Packer & Koller 2010,
with the admitted share set by the pacing rather than a loss threshold).

Pacing (epoch ``e`` counted from 1; ``s`` the starting fraction, ``E`` the epoch from which the
whole set is admitted):

- ``linear``: ``g(e) = s + (1 - s) (e - 1) / (E - 1)``;
- ``step``: ``levels`` equal jumps, ``g(e) = s + (1 - s) floor(levels (e - 1) / (E - 1)) / levels``
  (``levels = 1``: Hacohen & Weinshall's single step);
- ``exponential`` (their *fixed exponential pacing*): ``g(e) = s * inc ** floor((e - 1) / L)``
  with step length ``L`` epochs and ``inc = s ** (-1 / floor((E - 1) / L))``, reaching 1 at ``E``;

each capped at 1, and ``g(e) = 1`` for ``e >= E``. The controls of Wu, Dyer & Neyshabur (2021,
*When do curricula work?*): ``order = "anti"`` admits the *hardest* first, ``"random"`` a fixed
random ranking, with the same pacing, so a comparison separates the ordering from the pacing.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from goodfit.checks import check_choice, check_int, check_real

__all__ = ["ORDERS", "PACINGS", "CurriculumSampler", "pacing_fraction", "per_sample_loss"]

PACINGS = ("linear", "step", "exponential")
ORDERS = ("curriculum", "anti", "random")


def pacing_fraction(
    kind: str, epoch: int, start: float, full_epoch: int, *, levels: int = 1, step_length: int = 1
) -> float:
    """The admitted fraction ``g(epoch)`` (``epoch`` from 1) of the pacing ``kind``; see the
    module docstring for the formulas."""
    check_choice("pacing", kind, PACINGS)
    if epoch >= full_epoch or start >= 1.0:
        return 1.0
    t = (epoch - 1) / (full_epoch - 1)
    if kind == "linear":
        return start + (1.0 - start) * t
    if kind == "step":
        return start + (1.0 - start) * math.floor(levels * t) / levels
    jumps = (full_epoch - 1) // step_length
    inc = start ** (-1.0 / jumps)
    return min(1.0, start * inc ** ((epoch - 1) // step_length))


@torch.no_grad()
def per_sample_loss(model: nn.Module, X: Tensor, y: Tensor, *, batch_size: int = 2048) -> Tensor:
    """Each sample's loss under ``model`` in eval mode (cross-entropy for class indices, the mean
    squared error over the outputs for floating targets), as a float64 CPU tensor."""
    first = next(model.parameters(), None)
    device = X.device if first is None else first.device
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(X), batch_size):
            xb, yb = X[start : start + batch_size].to(device), y[start : start + batch_size]
            pred = model(xb)
            yb = yb.to(device)
            if torch.is_floating_point(yb):
                loss = F.mse_loss(pred, yb.reshape(pred.shape), reduction="none")
                loss = loss.reshape(len(xb), -1).mean(dim=1)
            else:
                loss = F.cross_entropy(pred, yb, reduction="none")
            out.append(loss.double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


class CurriculumSampler:
    """An :class:`goodfit.train.sampling.EpochSampler` admitting the easiest paced fraction.

    Parameters
    ----------
    scores : per-sample difficulty (``n`` values, low = easy), or ``None`` with ``rescore_every``
        (scores from the current model's per-sample loss on ``data``).
    pacing, start, full_epoch, levels, step_length : the pacing function (module docstring).
    order : ``"curriculum"`` (easy first), ``"anti"`` (hard first), ``"random"`` (fixed random
        ranking, drawn once from the loop's generator).
    rescore_every : self-paced: rescore with the current model every that many epochs.
    data : ``(X, y)``, the training data, for rescoring.
    """

    def __init__(
        self,
        scores: Tensor | None = None,
        *,
        pacing: str = "linear",
        start: float = 0.2,
        full_epoch: int = 10,
        order: str = "curriculum",
        levels: int = 1,
        step_length: int = 1,
        rescore_every: int | None = None,
        data: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        self.pacing = check_choice("pacing", pacing, PACINGS)
        self.order = check_choice("order", order, ORDERS)
        self.start = check_real("start", start, low=0.0, high=1.0, low_open=True)
        self.full_epoch = check_int("full_epoch", full_epoch, low=1)
        self.levels = check_int("levels", levels, low=1)
        self.step_length = check_int("step_length", step_length, low=1)
        if pacing == "exponential" and self.start < 1.0 and (full_epoch - 1) // step_length < 1:
            raise ValueError(
                f"exponential pacing needs full_epoch - 1 >= step_length to reach the whole set "
                f"(got full_epoch={full_epoch}, step_length={step_length})"
            )
        if rescore_every is not None:
            self.rescore_every: int | None = check_int("rescore_every", rescore_every, low=1)
            if data is None:
                raise ValueError("rescore_every needs data=(X, y) to score the current model on")
        else:
            self.rescore_every = None
            if scores is None and order != "random":
                raise ValueError("give scores, or rescore_every (self-paced) with data")
        self.data = data
        self.scores = None if scores is None else torch.as_tensor(scores, dtype=torch.float64)
        self._ranking: Tensor | None = None

    def fraction(self, epoch: int) -> float:
        """The admitted fraction at ``epoch`` (counted from 1)."""
        return pacing_fraction(
            self.pacing,
            epoch,
            self.start,
            self.full_epoch,
            levels=self.levels,
            step_length=self.step_length,
        )

    def ranking(self, n: int, generator: torch.Generator) -> Tensor:
        """All ``n`` indices, easiest first by the order's rule."""
        if self.order == "random":
            if self._ranking is None or len(self._ranking) != n:
                self._ranking = torch.randperm(n, generator=generator)
            return self._ranking
        if self.scores is None or len(self.scores) != n:
            got = "none" if self.scores is None else len(self.scores)
            raise ValueError(f"curriculum scores: need one per training sample ({n}), got {got}")
        key = self.scores if self.order == "curriculum" else -self.scores
        return torch.argsort(key, stable=True)

    def epoch_indices(self, trainer: Any, n: int, generator: torch.Generator) -> Tensor:
        epoch = trainer.epoch
        if self.rescore_every is not None and epoch % self.rescore_every == 0:
            self.scores = per_sample_loss(trainer.model, *self.data)
        fraction = self.fraction(epoch + 1)
        m = max(1, math.ceil(fraction * n - 1e-9))
        admitted = self.ranking(n, generator)[:m]
        draws = [admitted[torch.randperm(m, generator=generator)] for _ in range(-(-n // m))]
        trainer.log("curriculum_fraction", m / n)
        return torch.cat(draws)[:n]

    def state_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "ranking": self._ranking}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores, self._ranking = state["scores"], state["ranking"]

    def __repr__(self) -> str:
        return (
            f"CurriculumSampler(order={self.order!r}, pacing={self.pacing!r}, start={self.start}, "
            f"full_epoch={self.full_epoch}, rescore_every={self.rescore_every})"
        )
