"""Update rules of the notes as gradient transformations: scaling, momentum, adaptive rates.

The building blocks that turn a gradient into a step: the constant or scheduled learning rate
(:func:`scale_by_lr`, GBC Alg. 8.1), momentum in torch's buffer form (:func:`trace`), in velocity
form (:func:`velocity`, GBC Alg. 8.2/8.3) and in heavy-ball form (:func:`heavy_ball_momentum`,
seed 000), and the adaptive learning-rate rules AdaGrad, RMSProp, Adadelta, Adam/AMSGrad, AdaMax
and NAdam (GBC Alg. 8.4-8.7, seeds 000/002/003). Each follows the pending-scale/divisor protocol
of :mod:`goodfit.optim.transforms` and defaults to its ``torch.optim`` namesake's numbers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from goodfit.checks import check_real
from goodfit.optim.transforms import (
    GradientTransformation,
    Schedule,
    _make,
    _no_state,
    _realize_scalar,
    _writable,
    _zeros,
    materialize,
    validate_hyperparams,
)

__all__ = [
    "heavy_ball_momentum",
    "scale",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_lr",
    "scale_by_nadam",
    "scale_by_rms",
    "trace",
    "velocity",
]


# On the compiled path the hyperparameters torch's schedulers change every step (``lr``,
# ``momentum``, ``betas``) are 0-d tensors (no recompilation per value). A 0-d tensor graph
# input given as ``alpha=`` or as ``addcmul``'s ``value`` is not traced faithfully by dynamo
# (it was seen to keep the first step's value), so those products go through a multiply.
def _add_scaled_(xs: list[Tensor], ys: list[Tensor], a: float | Tensor) -> list[Tensor]:
    """``xs <- xs + a ys`` in place; ``a`` a float or (compiled path) a 0-d tensor."""
    if isinstance(a, Tensor):
        torch._foreach_add_(xs, torch._foreach_mul(ys, a))
    else:
        torch._foreach_add_(xs, ys, alpha=a)
    return xs


def _addcmul_(xs: list[Tensor], ys: list[Tensor], value: float | Tensor) -> None:
    """``xs <- xs + value ys^2`` in place; ``value`` a float or a 0-d tensor."""
    if isinstance(value, Tensor):
        torch._foreach_addcmul_(xs, ys, torch._foreach_mul(ys, value))
    else:
        torch._foreach_addcmul_(xs, ys, ys, value)


def _plus_momentum(u: list[Tensor], buf: list[Tensor], mu: float | Tensor, ctx) -> list[Tensor]:
    """Nesterov's output ``u + mu buf``, in place when ``u`` is owned."""
    if ctx.owned:
        return _add_scaled_(u, buf, mu)
    ctx.owned = True
    if isinstance(mu, Tensor):
        return torch._foreach_add(u, torch._foreach_mul(buf, mu))
    return torch._foreach_add(u, buf, alpha=mu)


# ------------------------------------------------------------------------------ scaling
def scale(c: float) -> GradientTransformation:
    """``u <- c u`` (kept pending, no memory pass)."""
    c = check_real("c", c)

    def update(u, s, p, ctx):
        ctx.scale *= c
        return u

    return GradientTransformation(_no_state, update, {}, "scale", True)


def scale_by_lr(lr: float | Schedule) -> GradientTransformation:
    """``u <- -eta_t u``: the step of gradient descent, ``theta <- theta - eta_t g`` (GBC Alg. 8.1).

    ``lr`` is a float (read from the param group's ``"lr"``, so torch ``lr_scheduler``s drive it)
    or a schedule ``lr(k)`` of the number ``k = t - 1`` of steps already taken; the scheduled value
    is written into ``group["lr"]`` each step so torch tools see it.
    """
    if callable(lr):
        sched = lr
        hp = {"lr": float(sched(0))}
        validate_hyperparams(hp)

        def update(u, s, p, ctx):
            lr_t = float(sched(ctx.step - 1))
            if lr_t < 0 or not math.isfinite(lr_t):
                raise ValueError(f"lr schedule returned {lr_t!r} at step {ctx.step - 1}")
            ctx.group["lr"] = lr_t
            ctx.lr = lr_t
            ctx.scale *= -lr_t
            return u

        return GradientTransformation(_no_state, update, hp, "scale_by_lr", True)
    default = lr

    def update_c(u, s, p, ctx):
        lr_t = ctx.group.get("lr", default)
        ctx.lr = lr_t
        ctx.scale *= -lr_t
        return u

    return _make("scale_by_lr", _no_state, update_c, lr=lr)


# ------------------------------------------------------------------------------ momentum
def trace(
    momentum: float = 0.9, nesterov: bool = False, dampening: float = 0.0
) -> GradientTransformation:
    """Momentum buffer in torch's form, placed *before* ``scale_by_lr``.

    ``b_1 = g_1``; ``b_t = mu b_{t-1} + (1 - dampening) g_t``; output ``b_t``, or with Nesterov
    ``g_t + mu b_t``. With constant lr this equals GBC Alg. 8.2 (``v <- alpha v - eps g``) and the
    look-ahead-free form of GBC Alg. 8.3 / seed 003 Nesterov (see :func:`velocity`); it is exactly
    ``torch.optim.SGD``'s momentum.
    """
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"nesterov requires momentum > 0 and dampening == 0, got momentum={momentum!r}, "
            f"dampening={dampening!r}"
        )

    def init(params):
        return {"buf": _zeros(params)}

    def update(u, s, p, ctx):
        mu = ctx.group.get("momentum", momentum)
        damp = ctx.group.get("dampening", dampening)
        u = materialize(u, ctx)
        buf = s["buf"]
        if ctx.step == 1:
            torch._foreach_copy_(buf, u)
        elif damp == 0 and not isinstance(mu, Tensor):
            # b <- g + mu b in one pass over memory (mul_ then add_ would read b twice)
            for b, g in zip(buf, u, strict=True):
                torch.add(g, b, alpha=mu, out=b)
        else:
            torch._foreach_mul_(buf, mu)
            torch._foreach_add_(buf, u, alpha=1.0 - damp)
        if nesterov:
            return _plus_momentum(u, buf, mu, ctx)
        ctx.owned = False
        return buf

    return _make("trace", init, update, momentum=momentum, dampening=dampening)


def velocity(momentum: float = 0.9, nesterov: bool = False) -> GradientTransformation:
    """Velocity-form momentum, placed *after* ``scale_by_lr`` (so ``u = -eps g``).

    GBC Alg. 8.2 / seed 003: ``v <- alpha v - eps g``, ``theta <- theta + v`` (seed 002 writes
    ``v = gamma v + eta g; w <- w - v``, the same with ``v`` negated). With ``nesterov`` it is GBC
    Alg. 8.3 in the look-ahead-free variable ``phi = theta + alpha v`` (the point where the gradient
    is taken): ``v <- alpha v - eps g``, ``phi <- phi + alpha v - eps g``. Unlike :func:`trace`, a
    changing learning rate does not rescale past velocity.
    """

    def init(params):
        return {"v": _zeros(params)}

    def update(u, s, p, ctx):
        a = ctx.group.get("momentum", momentum)
        u = materialize(u, ctx)
        v = s["v"]
        torch._foreach_mul_(v, a)
        torch._foreach_add_(v, u)
        if nesterov:
            return _plus_momentum(u, v, a, ctx)
        ctx.owned = False
        return v

    return _make("velocity", init, update, momentum=momentum)


def heavy_ball_momentum(momentum: float = 0.9) -> GradientTransformation:
    """Heavy-ball form of seed 000 §1.2.3.3, placed *after* ``scale_by_lr``.

    ``W^t = W^{t-1} - eta_t g_{t-1} + beta_t (W^{t-1} - W^{t-2})``: output
    ``u + beta (W^{t-1} - W^{t-2})`` with ``u = -eta_t g``; the previous parameters are kept in
    state (``W^{-1} = W^0``, so the first step is plain gradient descent).
    """

    def init(params):
        return {"prev": [p.detach().clone() for p in params]}

    def update(u, s, p, ctx):
        beta = ctx.group.get("momentum", momentum)
        u = _writable(u, ctx)
        prev = s["prev"]
        d = torch._foreach_sub(p, prev)
        _add_scaled_(u, d, beta)
        torch._foreach_copy_(prev, p)
        return u

    return _make("heavy_ball_momentum", init, update, momentum=momentum)


# ------------------------------------------------------------------------------ adaptive
def _denominator(
    acc: list[Tensor], eps: float, eps_inside: bool, div: float | Tensor = 1.0
) -> list[Tensor]:
    """``sqrt(acc/div) + eps`` (eps outside, torch) or ``sqrt(acc/div + eps)`` (eps inside).

    ``div`` is a float, or a 0-d tensor on the compiled path.
    """
    scaled = isinstance(div, Tensor) or div != 1.0
    if eps_inside:
        d = torch._foreach_div(acc, div) if scaled else torch._foreach_add(acc, eps)
        if scaled:
            torch._foreach_add_(d, eps)
        torch._foreach_sqrt_(d)
        return d
    d = torch._foreach_sqrt(acc)
    if scaled:
        root = _realize_scalar(div.sqrt()) if isinstance(div, Tensor) else math.sqrt(div)
        torch._foreach_div_(d, root)
    torch._foreach_add_(d, eps)
    return d


def scale_by_adagrad(
    eps: float = 1e-10, eps_inside: bool = False, initial_accumulator_value: float = 0.0
) -> GradientTransformation:
    """AdaGrad: ``G <- G + g^2``; ``u = g / (sqrt(G) + eps)``.

    Default: eps outside the root, as GBC Alg. 8.4 (``delta + sqrt(r)``) and
    ``torch.optim.Adagrad``.
    ``eps_inside=True``: ``u = g / sqrt(G + eps)`` as seed 002 (eps = 1e-6), seed 000 and seed 003.
    """

    def init(params):
        return {"sum": [torch.full_like(p, initial_accumulator_value) for p in params]}

    def update(u, s, p, ctx):
        e = ctx.group.get("eps", eps)
        g = materialize(u, ctx)
        acc = s["sum"]
        torch._foreach_addcmul_(acc, g, g, 1.0)
        ctx.denom = _denominator(acc, e, eps_inside)
        ctx.owned = False
        return g

    return _make(
        "scale_by_adagrad",
        init,
        update,
        eps=eps,
        initial_accumulator_value=initial_accumulator_value,
    )


def scale_by_rms(
    decay: float = 0.99, eps: float = 1e-8, centered: bool = False, eps_inside: bool = False
) -> GradientTransformation:
    """RMSProp: ``r <- rho r + (1 - rho) g^2``; ``u = g / (sqrt(r) + eps)``.

    GBC Alg. 8.5 / seed 000 / seed 002 / seed 003 put eps inside the root (``eps_inside=True``:
    ``g / sqrt(r + eps)``); the default (eps outside) is ``torch.optim.RMSprop``. ``centered``
    subtracts the squared running mean: ``r - m^2`` with ``m <- rho m + (1 - rho) g`` (Graves).
    """

    def init(params):
        st = {"nu": _zeros(params)}
        if centered:
            st["mu"] = _zeros(params)
        return st

    def update(u, s, p, ctx):
        rho = ctx.group.get("decay", decay)
        e = ctx.group.get("eps", eps)
        g = materialize(u, ctx)
        nu = s["nu"]
        torch._foreach_mul_(nu, rho)
        torch._foreach_addcmul_(nu, g, g, 1.0 - rho)
        if centered:
            mu = s["mu"]
            torch._foreach_lerp_(mu, g, 1.0 - rho)
            var = torch._foreach_addcmul(nu, mu, mu, -1.0)
            if eps_inside:
                torch._foreach_add_(var, e)
                torch._foreach_sqrt_(var)
            else:
                torch._foreach_sqrt_(var)
                torch._foreach_add_(var, e)
            ctx.denom = var
        else:
            ctx.denom = _denominator(nu, e, eps_inside)
        ctx.owned = False
        return g

    return _make("scale_by_rms", init, update, decay=decay, eps=eps)


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta (seed 000 §1.2.3.3): ``Delta W_t = -RMS[Delta W_{t-1}] / RMS[g_t] g_t``.

    ``E[g^2] <- rho E[g^2] + (1 - rho) g^2``; ``RMS[x] = sqrt(E[x^2] + eps)``;
    ``E[dW^2] <- rho E[dW^2] + (1 - rho) dW^2``. Output ``RMS[dW_{t-1}] / RMS[g_t] g_t`` (follow
    with ``scale_by_lr(1.0)`` for the note's lr-free rule; torch ``Adadelta`` lr=1 default).
    """

    def init(params):
        return {"sq": _zeros(params), "acc": _zeros(params)}

    def update(u, s, p, ctx):
        r = ctx.group.get("rho", rho)
        e = ctx.group.get("eps", eps)
        g = materialize(u, ctx)
        sq, acc = s["sq"], s["acc"]
        torch._foreach_mul_(sq, r)
        torch._foreach_addcmul_(sq, g, g, 1.0 - r)
        std = torch._foreach_add(sq, e)
        torch._foreach_sqrt_(std)
        delta = torch._foreach_add(acc, e)
        torch._foreach_sqrt_(delta)
        torch._foreach_div_(delta, std)
        torch._foreach_mul_(delta, g)
        torch._foreach_mul_(acc, r)
        torch._foreach_addcmul_(acc, delta, delta, 1.0 - r)
        ctx.owned = True
        return delta

    return _make("scale_by_adadelta", init, update, rho=rho, eps=eps)


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_inside: bool = False,
    amsgrad: bool = False,
    bias_correction: bool = True,
) -> GradientTransformation:
    """Adam (GBC Alg. 8.7, seed 000, seed 002): moments with bias correction.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``, ``m^ = m/(1 - b1^t)``,
    ``v^ = v/(1 - b2^t)``; ``u = m^ / (sqrt(v^) + eps)`` (seed 000/002, ``torch.optim.Adam``) or
    with ``eps_inside=True`` ``m^ / sqrt(v^ + eps)`` (GBC Alg. 8.7, seed 003).
    ``amsgrad``: ``v^_t = max(v^_{t-1}, v_t)`` (seeds 000/002), with torch's bias correction
    ``sqrt(v^)/sqrt(1 - b2^t)`` by default; ``bias_correction=False`` gives seed 000's AMSGrad
    exactly: ``u = m_t / (sqrt(v^_t) + eps)``. ``b1, b2`` live in the param group as
    ``betas = (b1, b2)``, torch's key, so torch schedulers cycling ``betas[0]`` (``OneCycleLR``,
    ``CyclicLR`` with ``cycle_momentum``) drive them.
    """
    betas = (b1, b2)

    def init(params):
        st = {"m": _zeros(params), "v": _zeros(params)}
        if amsgrad:
            st["vmax"] = _zeros(params)
        return st

    def update(u, s, p, ctx):
        gp = ctx.group
        (beta1, beta2), e = gp.get("betas", betas), gp.get("eps", eps)
        g = materialize(u, ctx)
        m, v = s["m"], s["v"]
        torch._foreach_lerp_(m, g, 1.0 - beta1)
        torch._foreach_mul_(v, beta2)
        _addcmul_(v, g, 1.0 - beta2)
        acc = v
        if amsgrad:
            torch._foreach_maximum_(s["vmax"], v)
            acc = s["vmax"]
        if bias_correction:
            ctx.denom = _denominator(acc, e, eps_inside, 1.0 - ctx.power(beta2))
            ctx.scale *= 1.0 / (1.0 - ctx.power(beta1))
        else:
            ctx.denom = _denominator(acc, e, eps_inside)
        ctx.owned = False
        return m

    return _make("scale_by_adam", init, update, betas=betas, eps=eps)


def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """AdaMax (seed 000, GBC "ADAM variation" p -> inf): ``u_t = max(b2 u_{t-1}, |g_t| + eps)``.

    ``m <- b1 m + (1 - b1) g``; output ``m^ / u_t`` with ``m^ = m / (1 - b1^t)``. The ``+ eps``
    inside the max is torch's guard against ``0/0``; ``eps=0`` is the notes' ``max(b2 u, |g|)``
    exactly (seed 001 "ADAM Variation", seed 000 §1.2.3.3). Recommended lr 0.002 (seed 000).
    Param group key ``betas = (b1, b2)`` as in :func:`scale_by_adam`.
    """
    betas = (b1, b2)

    def init(params):
        return {"m": _zeros(params), "u": _zeros(params)}

    def update(u, s, p, ctx):
        gp = ctx.group
        (beta1, beta2), e = gp.get("betas", betas), gp.get("eps", eps)
        g = materialize(u, ctx)
        m, inf = s["m"], s["u"]
        torch._foreach_lerp_(m, g, 1.0 - beta1)
        torch._foreach_mul_(inf, beta2)
        a = torch._foreach_abs(g)
        torch._foreach_add_(a, e)
        torch._foreach_maximum_(inf, a)
        ctx.denom = inf
        ctx.scale *= 1.0 / (1.0 - ctx.power(beta1))
        ctx.owned = False
        return m

    return _make("scale_by_adamax", init, update, betas=betas, eps=eps)


def scale_by_nadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float | None = 4e-3,
    eps_inside: bool = False,
) -> GradientTransformation:
    """NAdam: Adam with a Nesterov look-ahead on the first moment.

    Default (``momentum_decay`` a float): ``torch.optim.NAdam`` (Dozat 2016):
    ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))``, ``u = (1 - mu_t)/(1 - prod_{i<=t} mu_i) g
    + mu_{t+1}/(1 - prod_{i<=t+1} mu_i) m``, divided by ``sqrt(v^) + eps``.
    ``momentum_decay=None, eps_inside=True`` is seed 000's formula exactly:
    ``u = (b1 m^_t + (1 - b1) g_t / (1 - b1^t)) / sqrt(v^_t + eps)``.
    Param group key ``betas = (b1, b2)`` as in :func:`scale_by_adam`.
    """
    betas = (b1, b2)

    def init(params):
        # torch keeps mu_product as a 0-d tensor of the default scalar dtype (float32 unless the
        # default dtype is float64); we do the same so float64 runs match torch.optim.NAdam.
        sdt = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        return {
            "m": _zeros(params),
            "v": _zeros(params),
            "mu_product": torch.tensor(1.0, dtype=sdt),
        }

    def update(u, s, p, ctx):
        gp = ctx.group
        (beta1, beta2), e = gp.get("betas", betas), gp.get("eps", eps)
        psi = gp.get("momentum_decay", momentum_decay)
        g = materialize(u, ctx)
        m, v = s["m"], s["v"]
        t = ctx.step
        torch._foreach_lerp_(m, g, 1.0 - beta1)
        torch._foreach_mul_(v, beta2)
        _addcmul_(v, g, 1.0 - beta2)
        if psi is None:
            bc1 = 1.0 - ctx.power(beta1)
            cg, cm = (1.0 - beta1) / bc1, beta1 / bc1
        else:
            mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
            mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
            prod_t = s["mu_product"] * mu
            if ctx.step_tensor is not None:  # compiled: keep torch's dtype of mu_product
                prod_t = prod_t.to(s["mu_product"].dtype)
            s["mu_product"] = prod_t
            # a float as torch's NAdam (bit-exact eager path); a 0-d tensor when compiled
            prod = prod_t if ctx.step_tensor is not None else prod_t.item()
            cg, cm = (1.0 - mu) / (1.0 - prod), mu_next / (1.0 - prod * mu_next)
        num = _add_scaled_(torch._foreach_mul(g, cg), m, cm)
        ctx.denom = _denominator(v, e, eps_inside, 1.0 - ctx.power(beta2))
        ctx.owned = True
        return num

    return _make(
        "scale_by_nadam", init, update, False, betas=betas, eps=eps, momentum_decay=momentum_decay
    )
