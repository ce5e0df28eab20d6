"""Combining the members' outputs (seed 001, *Bagging*: "Averaging (Arithmetic, Geometric, ...),
Voting"), the ensemble's metrics and its diversity.

For classification the members give logits ``z_k`` (K, N, C):

- ``"mean"``: the arithmetic mean of probabilities, ``p(c) = 1/K sum_k softmax(z_k)_c``;
- ``"geometric"``: the normalized geometric mean,
  ``p(c) = (prod_k p_k(c))^(1/K) / sum_c' (prod_k p_k(c'))^(1/K) = softmax(1/K sum_k log p_k)_c``;
- ``"vote"``: majority vote of the members' argmax; the "probabilities" are vote fractions and
  ties go to the lowest class index (``argmax`` of the counts);
- member weights ``alpha_k`` (boosting) turn the vote into ``argmax_c sum_k alpha_k [h_k = c]``.

Regression: the (weighted) mean of the members' outputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AGGREGATIONS",
    "Ensemble",
    "EnsembleModule",
    "aggregate",
    "disagreement",
    "ensemble_metrics",
]

AGGREGATIONS = ("mean", "geometric", "vote")


def aggregate(outputs: Tensor, rule: str = "mean", weights: Tensor | None = None) -> Tensor:
    """Class probabilities (N, C) from member logits (K, N, C) by ``rule`` (module docstring);
    ``weights`` (K,) weight the members (normalized to sum 1)."""
    if rule not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {rule!r}")
    k = outputs.shape[0]
    w = (
        torch.full((k,), 1.0 / k, dtype=outputs.dtype)
        if weights is None
        else weights / weights.sum()
    )
    w = w.to(outputs).reshape(k, 1, 1)
    if rule == "mean":
        return (w * outputs.softmax(dim=-1)).sum(0)
    if rule == "geometric":
        return ((w * outputs.log_softmax(dim=-1)).sum(0)).softmax(dim=-1)
    votes = F.one_hot(outputs.argmax(dim=-1), outputs.shape[-1]).to(outputs.dtype)
    return (w * votes).sum(0)


def disagreement(outputs: Tensor) -> float:
    """Mean pairwise disagreement of K classifiers: the fraction of samples on which two members'
    argmax differ, averaged over the K(K-1)/2 pairs (Skalak 1996); 0 for K = 1."""
    pred = outputs.argmax(dim=-1)
    pairs = list(itertools.combinations(range(len(pred)), 2))
    if not pairs:
        return 0.0
    return sum(float((pred[a] != pred[b]).double().mean()) for a, b in pairs) / len(pairs)


def _ambiguity(outputs: Tensor, mean: Tensor) -> float:
    """Regression diversity: the mean squared spread of the members around the ensemble mean
    (Krogh & Vedelsby 1995's ambiguity)."""
    return float(((outputs - mean) ** 2).mean())


def ensemble_metrics(
    outputs: Tensor,
    y: Tensor,
    *,
    task: str,
    rule: str = "mean",
    weights: Tensor | None = None,
) -> dict[str, Any]:
    """The ensemble's and each member's accuracy and loss on ``y``, and the diversity.

    Classification: ``ensemble_loss`` is the NLL of the aggregated probabilities (for ``"vote"``
    the vote fractions, floored at 1e-12 like every rule), member losses their
    cross-entropy; ``diversity`` is :func:`disagreement`. Regression: MSE, diversity the ambiguity.
    """
    if task == "classification":
        p = aggregate(outputs, rule, weights)
        nll = -torch.log(p.gather(1, y.reshape(-1, 1)).clamp_min(1e-12)).mean()
        return {
            "ensemble_accuracy": float((p.argmax(1) == y).double().mean()),
            "ensemble_loss": float(nll),
            "member_accuracy": [float((o.argmax(1) == y).double().mean()) for o in outputs],
            "member_loss": [float(F.cross_entropy(o, y)) for o in outputs],
            "diversity": disagreement(outputs),
        }
    k = outputs.shape[0]
    w = torch.full((k,), 1.0 / k) if weights is None else weights / weights.sum()
    mean = (w.to(outputs).reshape((k,) + (1,) * (outputs.ndim - 1)) * outputs).sum(0)
    target = y.reshape(mean.shape)
    return {
        "ensemble_loss": float(F.mse_loss(mean, target)),
        "member_loss": [float(F.mse_loss(o, target)) for o in outputs],
        "diversity": _ambiguity(outputs, mean),
    }


class Ensemble:
    """Trained members and how to combine them: ``rule`` (``"mean"``, ``"geometric"``,
    ``"vote"``) and optional member ``weights``; ``task`` is ``"classification"`` or
    ``"regression"``. ``combine`` overrides the rule with a function of the member outputs
    (K, N, ...) (AdaBoost.R2's weighted median, a stacking meta-learner)."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        *,
        task: str,
        rule: str = "mean",
        weights: Sequence[float] | Tensor | None = None,
        combine: Any = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        if rule not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {rule!r}")
        self.models, self.task, self.rule = list(models), task, rule
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.combine = combine
        self.info = dict(info or {})

    @torch.no_grad()
    def member_outputs(self, X: Tensor, batch_size: int = 2048) -> Tensor:
        """Each member's output on ``X`` in eval mode, stacked (K, N, ...)."""
        outs = []
        for m in self.models:
            was = m.training
            m.eval()
            try:
                outs.append(
                    torch.cat([m(X[s : s + batch_size]) for s in range(0, len(X), batch_size)])
                )
            finally:
                m.train(was)
        return torch.stack(outs)

    def predict(self, X: Tensor) -> Tensor:
        """Class probabilities (classification) or the combined regression output."""
        out = self.member_outputs(X)
        if self.combine is not None:
            return self.combine(out)
        if self.task == "classification":
            return aggregate(out, self.rule, self.weights)
        k = len(out)
        w = torch.full((k,), 1.0 / k) if self.weights is None else self.weights / self.weights.sum()
        return (w.to(out).reshape((k,) + (1,) * (out.ndim - 1)) * out).sum(0)

    def evaluate(self, X: Tensor, y: Tensor) -> dict[str, Any]:
        """:func:`ensemble_metrics` of the members on ``(X, y)``; with ``combine`` the ensemble's
        own numbers come from it."""
        out = self.member_outputs(X)
        metrics = ensemble_metrics(out, y, task=self.task, rule=self.rule, weights=self.weights)
        if self.combine is not None:
            pred = self.combine(out)
            if self.task == "classification":
                metrics["ensemble_accuracy"] = float((pred.argmax(1) == y).double().mean())
                p = pred.gather(1, y.reshape(-1, 1)).clamp_min(1e-12)
                metrics["ensemble_loss"] = float(-torch.log(p).mean())
            else:
                metrics["ensemble_loss"] = float(F.mse_loss(pred, y.reshape(pred.shape)))
        metrics["members"] = len(self.models)
        return metrics


class EnsembleModule(nn.Module):
    """An :class:`Ensemble` as one ``nn.Module``, so code written for a single network
    (``goodfit.evaluate``, a study's scoring) scores the ensemble: for classification the forward
    returns the log of the combined probabilities (cross-entropy of it = the ensemble's NLL; vote
    fractions are floored at 1e-12 so a class no member votes for costs 27.6 nats, not inf), for
    regression the combined output."""

    def __init__(self, ensemble: Ensemble) -> None:
        super().__init__()
        self.members = nn.ModuleList(ensemble.models)
        self.ensemble = ensemble

    def forward(self, x: Tensor) -> Tensor:
        p = self.ensemble.predict(x)
        if self.ensemble.task == "classification":
            return p.clamp_min(1e-12).log().to(x.dtype if x.is_floating_point() else p.dtype)
        return p

    def ensemble_metrics(self, X: Tensor, y: Tensor) -> dict[str, Any]:
        """:meth:`Ensemble.evaluate` on ``(X, y)``: ensemble and member metrics, diversity."""
        return self.ensemble.evaluate(X, y)
