"""Transforms placed around an update rule: gradient clipping, gradient noise, weight penalties.

Element-wise and global-norm clipping (seed 001, GBC ch. 8), annealed Gaussian gradient noise
(seed 002), and the weight penalties applied inside the optimizer: coupled L2 (GBC eqs. 7.3-7.5,
``weight_decay`` of ``torch.optim.SGD``/``Adam``), decoupled weight decay (AdamW), the L1
subgradient, seed 000's L1 step (lambda not scaled by the learning rate) and proximal L1
(soft-thresholding, seed 000). They modify the updates of a chain without being an update rule
themselves; the protocol is that of :mod:`goodfit.optim.transforms`.
"""

from __future__ import annotations

import math

import torch

from goodfit.optim.transforms import (
    GradientTransformation,
    _make,
    _no_state,
    _writable,
)

__all__ = [
    "add_decayed_weights",
    "add_l1",
    "add_l1_step",
    "add_l2",
    "add_noise",
    "add_proximal_l1",
    "clip_by_global_norm",
    "clip_by_value",
]


# ------------------------------------------------------------------------------ clipping / noise
def clip_by_value(clip_value: float) -> GradientTransformation:
    """Element-wise clipping ``u <- clamp(u, -c, c)``."""

    def update(u, s, p, ctx):
        c = ctx.group.get("clip_value", clip_value)
        u = _writable(u, ctx)
        torch._foreach_clamp_min_(u, -c)
        torch._foreach_clamp_max_(u, c)
        return u

    return _make("clip_by_value", _no_state, update, clip_value=clip_value)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Gradient clipping (seed 001, GBC ch. 8): ``g <- alpha g / ||g||`` when ``||g|| > alpha``.

    ``||g||`` is the Euclidean norm over all tensors of the parameter list (one param group).
    No host synchronisation: the factor ``min(1, alpha/||g||)`` stays a tensor.
    """

    def update(u, s, p, ctx):
        a = ctx.group.get("max_norm", max_norm)
        u = _writable(u, ctx)
        norms = torch._foreach_norm(u)
        total = torch.linalg.vector_norm(torch.stack(norms))
        factor = torch.clamp(a / total, max=1.0)
        torch._foreach_mul_(u, factor)
        return u

    return _make("clip_by_global_norm", _no_state, update, False, max_norm=max_norm)


def add_noise(
    noise_eta: float = 0.01, noise_gamma: float = 0.55, seed: int = 0
) -> GradientTransformation:
    """Annealed Gaussian gradient noise (seed 002): ``g <- g + N(0, sigma_t^2)``,
    ``sigma_t^2 = eta / (1 + t)^gamma`` with ``t = 0, 1, ...`` the number of steps already taken.

    Reproducible: the generator is seeded with ``seed`` and its state is kept in the transform
    state (``rng_state``, a uint8 tensor), so it round-trips through ``state_dict``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")

    def init(params):
        dev = params[0].device if params else torch.device("cpu")
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
        return {"rng_state": gen.get_state()}

    def update(u, s, p, ctx):
        eta = ctx.group.get("noise_eta", noise_eta)
        gam = ctx.group.get("noise_gamma", noise_gamma)
        u = _writable(u, ctx)
        if not u:
            return u
        sigma = math.sqrt(eta / (1.0 + (ctx.step - 1)) ** gam)
        gen = torch.Generator(device=u[0].device)
        gen.set_state(s["rng_state"])
        noise = [torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device) for x in u]
        torch._foreach_add_(u, noise, alpha=sigma)
        s["rng_state"] = gen.get_state()
        return u

    return _make("add_noise", init, update, False, noise_eta=noise_eta, noise_gamma=noise_gamma)


# ------------------------------------------------------------------------------ weight penalties
def _add_param_multiple(
    name: str, key: str, default: float, sign: bool = False, negate: bool = False
):
    """``u <- u + c x`` (``u - c x`` with ``negate``), ``x = sign(w)`` or ``w``."""

    def update(u, s, p, ctx):
        c = ctx.group.get(key, default)
        if c == 0:
            return u
        u = _writable(u, ctx)
        torch._foreach_add_(u, torch._foreach_sign(p) if sign else p, alpha=-c if negate else c)
        return u

    return _make(name, _no_state, update, **{key: default})


def add_decayed_weights(weight_decay: float = 0.0) -> GradientTransformation:
    """Decoupled weight decay (AdamW): ``u <- u + lambda w``, placed *after* the adaptive scaling
    and before ``scale_by_lr``, so ``w <- w - eta (u + lambda w)`` (``torch.optim.AdamW``)."""
    return _add_param_multiple("add_decayed_weights", "weight_decay", weight_decay)


def add_l2(weight_decay: float = 0.0) -> GradientTransformation:
    """Coupled L2 penalty (GBC eqs. 7.3-7.5): ``g <- g + alpha w``, placed *before* the adaptive
    scaling (``weight_decay`` of ``torch.optim.SGD``/``Adam``)."""
    return _add_param_multiple("add_l2", "weight_decay", weight_decay)


def add_l1(l1: float = 0.0) -> GradientTransformation:
    """L1 subgradient (seed 000 §1.1.3, L1 regularization): ``g <- g + lambda sign(w)``.

    Placed before ``scale_by_lr`` it gives ``w <- w - eta_t (g + lambda sign(w))``: ``lambda`` is
    scaled by the learning rate. Seed 000's literal step, with ``lambda`` not scaled, is
    :func:`add_l1_step`.
    """
    return _add_param_multiple("add_l1", "l1", l1, sign=True)


def add_l1_step(l1: float = 0.0) -> GradientTransformation:
    """Seed 000's L1 step (§1.1.3, "L1 regularization (Lasso)"), placed *after* ``scale_by_lr``.

    ``u <- u - lambda sign(w)``, so that ``w_new = w - lr grad L - lambda sign(w)`` with ``lambda``
    not scaled by the (possibly scheduled) learning rate, exactly as the note writes it (also
    its per-layer form ``w_j - lr grad L - lambda_j``). ``add_l1(lambda / lr)`` before
    ``scale_by_lr`` is the same only at a constant ``lr``. Param group key ``l1``.
    """
    return _add_param_multiple("add_l1_step", "l1", l1, sign=True, negate=True)


def add_proximal_l1(l1: float = 0.0) -> GradientTransformation:
    """Proximal L1 (soft-thresholding after the step), placed *last*, after ``scale_by_lr``.

    ``p_new = sign(p + u) * max(|p + u| - eta_t * l1, 0)`` with ``eta_t`` the step's learning
    rate (1 without ``scale_by_lr``); output ``p_new - p``, so weights inside the threshold become
    exact zeros (ISTA; the proximal form of seed 000's L1 step ``w - lr grad - lambda sign(w)``).
    """

    def update(u, s, p, ctx):
        lam = ctx.group.get("l1", l1)
        u = _writable(u, ctx)
        thr = ctx.lr * lam
        torch._foreach_add_(u, p)  # z = p + u
        sgn = torch._foreach_sign(u)
        torch._foreach_abs_(u)
        torch._foreach_sub_(u, thr)
        torch._foreach_clamp_min_(u, 0.0)
        torch._foreach_mul_(u, sgn)  # soft-threshold(z)
        torch._foreach_sub_(u, p)  # p_new - p  (p + (0 - p) == 0 exactly)
        return u

    return _make("add_proximal_l1", _no_state, update, l1=l1)
