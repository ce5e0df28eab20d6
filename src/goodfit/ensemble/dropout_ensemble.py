"""Dropout as an ensemble (seed 001, *Regularization – Dropout*; Baldi & Sadowski 2013,
*Understanding Dropout*).

A dropout network is an ensemble of the sub-networks its masks select. Three inference rules:

- **weight scaling** (seed 001's test phase: "use all activations, but reduce them by a factor";
  torch's inverted dropout scales at training time instead, so ``model.eval()`` is this rule);
- the **Monte-Carlo average** of the class probabilities of ``T`` sampled sub-networks;
- their **normalized geometric mean** ``softmax(1/T sum_t log p_t)`` — for one softmax layer
  exactly what weight scaling computes (Baldi & Sadowski 2013, §5), for deep nets an approximation.

:func:`baldi_identity` checks the slide's identity on one linear unit ``O = sum_i d_i w_i I_i``,
``d_i ~ Bernoulli(p_i)``, ``E_D = 1/2 (t - O)^2``:
``E[dE_D/dw_i] = dE_N/dw_i + w_i p_i (1 - p_i) I_i^2`` with ``E_N = 1/2 (t - sum_i p_i w_i I_i)^2``.
The slide then writes ``E_R = 1/2 (t - sum p_i w_i I_i)^2 + sum p_i (1 - p_i) w_i^2 I_i^2``;
the gradient of that penalty is ``2 w_i p_i (1 - p_i) I_i^2``, twice the boxed term. Baldi &
Sadowski's eq. (9) has ``1/2 sum_i w_i^2 I_i^2 Var(d_i)``, whose gradient is the boxed term, so
``E_R`` here carries the ``1/2`` (``penalty_factor=0.5``); ``penalty_factor=1.0`` is the slide's
formula as printed, and the test shows it does not match.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["baldi_identity", "dropout_inference_rules"]

_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _scores(p: Tensor, y: Tensor) -> dict[str, float]:
    return {
        "accuracy": float((p.argmax(1) == y).double().mean()),
        "nll": float(-torch.log(p.gather(1, y.reshape(-1, 1)).clamp_min(1e-300)).mean()),
    }


@torch.no_grad()
def dropout_inference_rules(
    model: nn.Module, X: Tensor, y: Tensor, *, samples: int = 100, seed: int = 0
) -> dict[str, Any]:
    """Accuracy and NLL of the weight-scaling rule, the MC average of ``samples`` sub-networks
    and their normalized geometric mean on ``(X, y)``, and the gaps between the rules (mean
    absolute difference of the probabilities, NLL differences). Only the dropout layers sample;
    batch norm stays in eval mode. Global torch RNG state is restored afterwards."""
    drops = [m for m in model.modules() if isinstance(m, _DROPOUTS)]
    if not drops:
        raise ValueError("the model has no dropout layer")
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    was = model.training
    rng = torch.get_rng_state()
    model.eval()
    try:
        p_ws = model(X).softmax(1)
        torch.manual_seed(seed)
        for d in drops:
            d.train()
        logp = torch.stack([F.log_softmax(model(X), 1) for _ in range(samples)])
    finally:
        torch.set_rng_state(rng)
        model.train(was)
    p_mc = logp.exp().mean(0)
    p_geo = logp.mean(0).softmax(1)
    out = {
        "weight_scaling": _scores(p_ws, y),
        "mc_average": _scores(p_mc, y),
        "geometric_mean": _scores(p_geo, y),
        "samples": samples,
    }
    out["gap"] = {
        "ws_vs_mc_prob": float((p_ws - p_mc).abs().mean()),
        "ws_vs_geo_prob": float((p_ws - p_geo).abs().mean()),
        "mc_vs_geo_prob": float((p_mc - p_geo).abs().mean()),
        "nll_mc_minus_ws": out["mc_average"]["nll"] - out["weight_scaling"]["nll"],
        "nll_geo_minus_ws": out["geometric_mean"]["nll"] - out["weight_scaling"]["nll"],
    }
    return out


def baldi_identity(
    w: Tensor,
    inputs: Tensor,
    t: float,
    p: Tensor,
    *,
    samples: int = 200_000,
    seed: int = 0,
    penalty_factor: float = 0.5,
) -> dict[str, Tensor]:
    """Monte-Carlo ``E[dE_D/dw]`` (mean over ``samples`` masks ``d ~ Bernoulli(p)``, with its
    standard error) and ``dE_R/dw`` by autograd, on one linear unit (module docstring)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.bernoulli(p.expand(samples, -1), generator=g)
    wd = w.detach().clone().requires_grad_(True)
    e_d = 0.5 * (t - (d * wd * inputs).sum(1)) ** 2  # one E_D per mask
    (grads,) = torch.autograd.grad(e_d.sum(), wd)
    # per-sample gradients in closed form of autograd's graph: dE_D/dw_i = -(t - O) d_i I_i
    per = -(t - (d * w * inputs).sum(1, keepdim=True)) * d * inputs
    wr = w.detach().clone().requires_grad_(True)
    penalty = (p * (1 - p) * wr**2 * inputs**2).sum()
    e_r = 0.5 * (t - (p * wr * inputs).sum()) ** 2 + penalty_factor * penalty
    (grad_r,) = torch.autograd.grad(e_r, wr)
    return {
        "expected_grad": grads / samples,
        "stderr": per.std(0) / samples**0.5,
        "grad_E_R": grad_r,
        "per_sample_mean": per.mean(0),
    }
