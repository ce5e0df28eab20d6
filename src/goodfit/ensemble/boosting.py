"""Boosting with networks as the weak learners (seed 001: "Each data and classifier has its own
weight (determined with boosting procedure), AdaBoost is most known"). Sequential by nature:
round m's sample weights are computed from round m-1's errors, so the rounds cannot share one
vectorized pass (each round's network is one ``fit_many`` member with its sample weights).

- **SAMME** (Zhu, Zou, Rosset & Hastie 2009, *Multi-class AdaBoost*, Algorithm 2): weights
  ``w_i = 1/n``; each round fits ``T_m`` with weights ``w``,
  ``err_m = sum_i w_i [c_i != T_m(x_i)] / sum_i w_i``,
  ``alpha_m = log((1 - err_m)/err_m) + log(K - 1)``, ``w_i <- w_i exp(alpha_m [c_i != T_m(x_i)])``,
  renormalized; ``C(x) = argmax_k sum_m alpha_m [T_m(x) = k]``. A round no better than chance
  (``err_m >= 1 - 1/K``) is discarded and boosting stops; a perfect round (``err_m = 0``) is kept
  with weight 1 and boosting stops (scikit-learn's ``AdaBoostClassifier`` does both).
- **AdaBoost.R2** (Drucker 1997, *Improving regressors using boosting techniques*): with
  ``D = max_i |y_i - f_t(x_i)|`` the loss ``L_i = |y_i - f_t(x_i)| / D`` (linear; ``square``:
  ``L_i^2``, ``exponential``: ``1 - exp(-L_i)``), ``Lbar = sum_i p_i L_i``, stop if
  ``Lbar >= 0.5``, ``beta = Lbar / (1 - Lbar)``, ``w_i <- w_i beta^(1 - L_i)``; the prediction is
  the weighted median of the ``f_t(x)`` with weights ``log(1/beta_t)``. Drucker resamples the
  training set by the weights; here the weights enter the loss (``sum w_i l_i / sum w_i``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from goodfit.ensemble.aggregate import Ensemble
from goodfit.train.fit_many import fit_many

__all__ = ["adaboost_r2", "r2_update", "samme", "samme_update", "weighted_median"]

R2_LOSSES = ("linear", "square", "exponential")


def samme_update(
    weights: Tensor, miss: Tensor, n_classes: int
) -> tuple[Tensor, float, float, bool]:
    """One SAMME round: ``(new weights (sum 1), alpha, err, stop)`` from the current sample
    weights and the round's misclassification indicator ``miss`` (Zhu et al. 2009, Alg. 2)."""
    w = weights / weights.sum()
    err = float((w * miss.to(w.dtype)).sum())
    if err <= 0.0:
        return w, 1.0, 0.0, True
    if err >= 1.0 - 1.0 / n_classes:
        return w, 0.0, err, True
    alpha = math.log((1.0 - err) / err) + math.log(n_classes - 1.0)
    new = w * torch.exp(alpha * miss.to(w.dtype))
    return new / new.sum(), alpha, err, False


def r2_update(
    weights: Tensor, abs_err: Tensor, loss: str = "linear"
) -> tuple[Tensor, float, float, bool]:
    """One AdaBoost.R2 round: ``(new weights (sum 1), log(1/beta), Lbar, stop)`` (Drucker 1997)."""
    if loss not in R2_LOSSES:
        raise ValueError(f"loss must be one of {R2_LOSSES}, got {loss!r}")
    p = weights / weights.sum()
    d = float(abs_err.max())
    if d <= 0.0:
        return p, 1.0, 0.0, True
    L = abs_err / d
    if loss == "square":
        L = L**2
    elif loss == "exponential":
        L = 1.0 - torch.exp(-L)
    lbar = float((p * L).sum())
    if lbar >= 0.5:
        return p, 0.0, lbar, True
    if lbar <= 0.0:
        return p, 1.0, lbar, True
    beta = lbar / (1.0 - lbar)
    new = p * beta ** (1.0 - L)
    return new / new.sum(), math.log(1.0 / beta), lbar, False


def weighted_median(outputs: Tensor, weights: Tensor) -> Tensor:
    """Per sample, the prediction ``f_t(x)`` with the smallest sorted position whose cumulative
    weight reaches half the total (Drucker 1997's weighted median); ``outputs`` (T, N)."""
    order = outputs.argsort(dim=0)
    sorted_w = weights.to(outputs.dtype)[order]
    cum = sorted_w.cumsum(0)
    pos = (cum >= 0.5 * cum[-1:]).to(torch.int64).argmax(dim=0)
    return outputs.gather(0, order.gather(0, pos.reshape(1, -1))).reshape(-1)


def _round(make_model, m, train, val, weights, optimizer, epochs, seed, fit_kwargs) -> nn.Module:
    model = make_model(m)
    n = len(weights)
    fit_kwargs = {
        **fit_kwargs,
        "callbacks": [copy.deepcopy(c) for c in fit_kwargs.get("callbacks", ())],
    }
    fit_many(
        [model],
        train,
        val,
        optimizer=optimizer,
        epochs=epochs,
        seeds=[seed + m],
        sample_weights=[weights * n],
        **fit_kwargs,
    )
    return model


@torch.no_grad()
def _outputs(model: nn.Module, X: Tensor) -> Tensor:
    model.eval()
    try:
        return model(X)
    finally:
        model.train()


def samme(
    make_model: Callable[[int], nn.Module],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    *,
    members: int,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    epochs: int,
    seed: int = 0,
    **fit_kwargs: Any,
) -> Ensemble:
    """Multi-class AdaBoost SAMME, ``members`` rounds of ``make_model(m)`` (module docstring)."""
    X, y = train
    if torch.is_floating_point(y):
        raise ValueError("SAMME is for classification (integer labels); use adaboost_r2")
    if not isinstance(members, int) or members < 2:
        raise ValueError(f"boosting needs members >= 2, got {members!r}")
    n_classes = int(y.max()) + 1
    w = torch.full((len(y),), 1.0 / len(y), dtype=torch.float64)
    models, alphas, errors = [], [], []
    for m in range(members):
        model = _round(
            make_model, m, train, val, w.to(X.dtype), optimizer, epochs, seed, fit_kwargs
        )
        miss = (_outputs(model, X).argmax(1) != y).double()
        w_new, alpha, err, stop = samme_update(w, miss, n_classes)
        errors.append(err)
        if alpha > 0.0:
            models.append(model)
            alphas.append(alpha)
        w = w_new
        if stop:
            break
    if not models:
        raise ValueError(
            f"SAMME: the first network is no better than chance (error {errors[0]:.3f})"
        )
    info = {"alphas": alphas, "errors": errors, "rounds": len(errors)}
    return Ensemble(models, task="classification", rule="vote", weights=alphas, info=info)


def adaboost_r2(
    make_model: Callable[[int], nn.Module],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    *,
    members: int,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    epochs: int,
    seed: int = 0,
    loss: str = "linear",
    **fit_kwargs: Any,
) -> Ensemble:
    """AdaBoost.R2 with ``members`` rounds of ``make_model(m)``, single-output regression."""
    X, y = train
    if not torch.is_floating_point(y):
        raise ValueError("AdaBoost.R2 is for regression (floating targets); use samme")
    if not isinstance(members, int) or members < 2:
        raise ValueError(f"boosting needs members >= 2, got {members!r}")
    if y.ndim > 1 and y.shape[1] != 1:
        raise ValueError(f"AdaBoost.R2 needs one output, got targets of shape {tuple(y.shape)}")
    w = torch.full((len(y),), 1.0 / len(y), dtype=torch.float64)
    models, weights, losses = [], [], []
    for m in range(members):
        model = _round(
            make_model, m, train, val, w.to(X.dtype), optimizer, epochs, seed, fit_kwargs
        )
        abs_err = (_outputs(model, X).reshape(-1) - y.reshape(-1)).abs().double()
        w_new, mw, lbar, stop = r2_update(w, abs_err, loss)
        losses.append(lbar)
        if mw > 0.0:
            models.append(model)
            weights.append(mw)
        w = w_new
        if stop:
            break
    if not models:
        raise ValueError(f"AdaBoost.R2: the first network's average loss is {losses[0]:.3f} >= 0.5")
    mw_t = torch.tensor(weights, dtype=torch.float64)

    def combine(out: Tensor) -> Tensor:
        return weighted_median(out.reshape(len(out), -1), mw_t).reshape(-1, 1)

    info = {"model_weights": weights, "average_losses": losses, "rounds": len(losses)}
    return Ensemble(models, task="regression", weights=weights, combine=combine, info=info)
