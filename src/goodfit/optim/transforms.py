"""Composable gradient transformations (optax-style) over lists of tensors.

A :class:`GradientTransformation` is a pair of functions

* ``init(params) -> state``: ``state`` is a flat ``dict``. A value that is a ``list`` holds one
  tensor per parameter (per-parameter state, e.g. Adam's moments); any other value is a scalar
  shared by the parameter list (an ``int``/``float`` or a tensor such as an RNG state).
* ``update(updates, state, params, ctx) -> updates``: transforms ``updates`` (initially the
  gradients), mutating ``state`` in place (tensors updated in place, scalars re-assigned).

Speed contract (documented mutate-in-place protocol). ``ctx`` is a :class:`Context` carried through
the chain. A transform may overwrite ``updates`` in place only when ``ctx.owned`` is true (the
list was allocated inside the chain, never the user's ``.grad`` tensors nor a state buffer);
otherwise it allocates once and sets ``ctx.owned``. Scalar factors (``scale``, ``scale_by_lr``,
bias corrections) and a final element-wise division (Adam's ``m / denom``) are kept *pending* in
``ctx`` and applied by the next transform that needs real values (:func:`materialize`) or, at
the end, by a single fused ``addcdiv_``/``add_`` into the parameters (:func:`apply_updates`). So
``chain(scale_by_adam(), scale_by_lr(1e-3))`` performs exactly the kernels of
``torch.optim.Adam``'s single-tensor step, with multi-tensor ``torch._foreach_*`` ops.

Step counter: ``ctx.step`` is the 1-based index of the current step (``t`` in the notes).
Hyperparameters: each transform lists its hyperparameters in ``hyperparams``; at update it reads
``ctx.group.get(name, default)``, so a torch param group (``goodfit.optim.Optimizer``) may
override any of them per group (e.g. ``weight_decay=0`` for biases) and ``lr`` schedulers work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "Context",
    "GradientTransformation",
    "add_decayed_weights",
    "add_l1",
    "add_l2",
    "add_noise",
    "add_proximal_l1",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "clip_by_value",
    "heavy_ball_momentum",
    "identity",
    "masked",
    "materialize",
    "scale",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_lr",
    "scale_by_nadam",
    "scale_by_rms",
    "trace",
    "validate_hyperparams",
    "velocity",
]

State = dict[str, Any]
Schedule = Callable[[int], float]

_fe = torch  # torch._foreach_* live on the torch namespace


class Context:
    """Per-step context threaded through a chain.

    Attributes
    ----------
    group : dict
        Hyperparameter overrides (a torch param group, or ``{}``).
    step : int
        1-based step index ``t``.
    scale : float
        Pending scalar factor not yet applied to ``updates``.
    denom : list of Tensor or None
        Pending element-wise divisor not yet applied to ``updates``.
    owned : bool
        Whether ``updates`` may be overwritten in place.
    lr : float
        The learning rate of this step (set by :func:`scale_by_lr`).
    """

    __slots__ = ("denom", "group", "lr", "owned", "scale", "step")

    def __init__(self, group: dict | None = None, step: int = 1) -> None:
        self.group = {} if group is None else group
        self.step = step
        self.scale = 1.0
        self.denom: list[Tensor] | None = None
        self.owned = False
        self.lr = self.group.get("lr", 1.0)


class GradientTransformation:
    """An ``(init, update)`` pair plus the hyperparameters it reads from a param group.

    Parameters
    ----------
    init : callable
        ``init(params: list[Tensor]) -> dict`` (lists = per-parameter state).
    update : callable
        ``update(updates, state, params, ctx) -> updates`` (see module docstring).
    hyperparams : dict
        Name -> default value; a param group may override each by name.
    name : str
        For ``repr``.
    chunkable : bool
        True when the rule is element-wise and per-parameter (no cross-parameter reduction, no
        scalar state changed by ``update``), so calling ``update`` on consecutive slices of the
        parameter list gives the same result; the optimizer then runs the whole chain slice by
        slice, keeping each slice's tensors in cache (what makes torch's single-tensor loop
        faster than its foreach path on CPU).
    """

    __slots__ = ("chunkable", "hyperparams", "init", "name", "update")

    def __init__(
        self,
        init: Callable[[list[Tensor]], State],
        update: Callable[[list[Tensor], State, list[Tensor], Context], list[Tensor]],
        hyperparams: dict[str, Any] | None = None,
        name: str = "transform",
        chunkable: bool = False,
    ) -> None:
        self.chunkable = chunkable
        self.init = init
        self.update = update
        self.hyperparams = dict(hyperparams or {})
        self.name = name

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams.items())
        return f"{self.name}({hp})"


# ----------------------------------------------------------------------------------- validation
_UNIT = ("b1", "b2", "decay", "rho", "momentum")


def _num(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{key} must be a finite number, got {v!r}")
    return float(v)


def validate_hyperparams(hp: dict[str, Any]) -> None:
    """Check hyperparameter values by name; raise ``ValueError`` naming the bad one.

    Rules: ``lr, weight_decay, l1, noise_eta, noise_gamma, initial_accumulator_value,
    momentum_decay >= 0``; ``eps, max_norm, clip_value > 0``; ``b1, b2, decay, rho, momentum``
    in ``[0, 1)``; ``dampening`` in ``[0, 1]``. Unknown names and ``None`` are not checked.
    """
    for key, v in hp.items():
        if v is None or callable(v):
            continue
        if key in _UNIT:
            x = _num(key, v)
            if not 0.0 <= x < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {v!r}")
        elif key in ("eps", "max_norm", "clip_value"):
            if _num(key, v) <= 0.0:
                raise ValueError(f"{key} must be > 0, got {v!r}")
        elif key in (
            "lr",
            "weight_decay",
            "l1",
            "noise_eta",
            "noise_gamma",
            "initial_accumulator_value",
            "momentum_decay",
        ):
            if _num(key, v) < 0.0:
                raise ValueError(f"{key} must be >= 0, got {v!r}")
        elif key == "dampening" and not 0.0 <= _num(key, v) <= 1.0:
            raise ValueError(f"dampening must be in [0, 1], got {v!r}")


def _make(name, init, update, chunkable=True, **hp) -> GradientTransformation:
    validate_hyperparams(hp)
    return GradientTransformation(init, update, hp, name, chunkable)


# ------------------------------------------------------------------------- pending-value helpers
def materialize(updates: list[Tensor], ctx: Context) -> list[Tensor]:
    """Apply the pending divisor and scale of ``ctx``; return owned, concrete updates."""
    if ctx.denom is not None:
        out = _fe._foreach_div(updates, ctx.denom)
        if isinstance(ctx.scale, Tensor) or ctx.scale != 1.0:
            _fe._foreach_mul_(out, ctx.scale)
        ctx.denom, ctx.scale, ctx.owned = None, 1.0, True
        return out
    if isinstance(ctx.scale, Tensor) or ctx.scale != 1.0:
        if ctx.owned:
            _fe._foreach_mul_(updates, ctx.scale)
        else:
            updates = _fe._foreach_mul(updates, ctx.scale)
            ctx.owned = True
        ctx.scale = 1.0
    return updates


def _writable(updates: list[Tensor], ctx: Context) -> list[Tensor]:
    updates = materialize(updates, ctx)
    if not ctx.owned:
        updates = [u.clone() for u in updates]
        ctx.owned = True
    return updates


def apply_updates(params: list[Tensor], updates: list[Tensor], ctx: Context | None = None) -> None:
    """``p <- p + u`` for each parameter, fusing the pending scale/divisor of ``ctx``.

    With a pending divisor ``d`` and scale ``c`` this is one ``addcdiv_(u, d, value=c)``, as in
    ``torch.optim.Adam``; otherwise ``add_(u, alpha=c)``.
    """
    with torch.no_grad():
        if ctx is not None and isinstance(ctx.scale, Tensor):
            # compiled path (0-d tensor lr): plain pointwise ops that inductor fuses per tensor
            if ctx.denom is not None:
                for p, u, d in zip(params, updates, ctx.denom, strict=True):
                    p.add_(u / d * ctx.scale)
            else:
                for p, u in zip(params, updates, strict=True):
                    p.add_(u * ctx.scale)
        elif ctx is not None and ctx.denom is not None:
            _fe._foreach_addcdiv_(params, updates, ctx.denom, ctx.scale)
        else:
            c = 1.0 if ctx is None else ctx.scale
            _fe._foreach_add_(params, updates, alpha=c)


def _zeros(params: list[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]


def _no_state(params: list[Tensor]) -> State:
    return {}


# ------------------------------------------------------------------------------ combinators
def identity() -> GradientTransformation:
    """The identity transform ``u <- u``."""
    return GradientTransformation(_no_state, lambda u, s, p, c: u, {}, "identity", True)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Compose transforms left to right: ``u <- t_k(...t_1(g))`` (optax ``chain``).

    State keys are prefixed ``"<index>."``; hyperparameters are merged (the same name with two
    different defaults raises ``ValueError``, since a param group can hold only one value).
    """
    ts = tuple(transforms)
    hp: dict[str, Any] = {}
    for t in ts:
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"chain expects GradientTransformation objects, got {type(t).__name__}")
        for k, v in t.hyperparams.items():
            if k in hp and hp[k] != v and not (callable(v) or callable(hp[k])):
                raise ValueError(
                    f"hyperparameter {k!r} is set to both {hp[k]!r} and {v!r} in one chain; "
                    "use one value or separate param groups"
                )
            hp.setdefault(k, v)
    prefixes = tuple(f"{i}." for i in range(len(ts)))

    def init(params):
        state: State = {}
        for pre, t in zip(prefixes, ts, strict=True):
            for k, v in t.init(params).items():
                state[pre + k] = v
        return state

    def update(updates, state, params, ctx):
        for pre, t in zip(prefixes, ts, strict=True):
            n = len(pre)
            sub = {k[n:]: v for k, v in state.items() if k.startswith(pre)}
            updates = t.update(updates, sub, params, ctx)
            for k, v in sub.items():
                state[pre + k] = v
        return updates

    return GradientTransformation(init, update, hp, "chain", all(t.chunkable for t in ts))


def masked(inner: GradientTransformation, mask: Callable[[Tensor], bool]) -> GradientTransformation:
    """Apply ``inner`` only to parameters with ``mask(param) == True``; others pass unchanged.

    Example: ``masked(add_decayed_weights(1e-4), lambda p: p.ndim > 1)`` decays weights but not
    biases. (Per-param-group hyperparameters of :class:`goodfit.optim.Optimizer` are the other way.)
    Masked-out parameters hold an empty placeholder tensor in each per-parameter state slot.
    """
    if not callable(mask):
        raise TypeError("mask must be a callable param -> bool")

    def init(params):
        sel = [bool(mask(p)) for p in params]
        sub = [p for p, m in zip(params, sel, strict=True) if m]
        st = inner.init(sub) if sub else inner.init([])
        out: State = {}
        for k, v in st.items():
            if isinstance(v, list):
                it = iter(v)
                out[k] = [next(it) if m else torch.empty(0) for m in sel]
            else:
                out[k] = v
        return out

    def update(updates, state, params, ctx):
        idx = [i for i, p in enumerate(params) if mask(p)]
        if not idx:
            return updates
        updates = _writable(updates, ctx)
        sub_state = {
            k: ([v[i] for i in idx] if isinstance(v, list) else v) for k, v in state.items()
        }
        sctx = Context(ctx.group, ctx.step)
        sctx.lr = ctx.lr
        sub = inner.update([updates[i] for i in idx], sub_state, [params[i] for i in idx], sctx)
        sub = materialize(sub, sctx)
        for j, i in enumerate(idx):
            updates[i] = sub[j]
        for k, v in sub_state.items():
            if not isinstance(v, list):
                state[k] = v
        return updates

    return GradientTransformation(
        init, update, dict(inner.hyperparams), f"masked[{inner.name}]", inner.chunkable
    )


# ------------------------------------------------------------------------------ scaling
def scale(c: float) -> GradientTransformation:
    """``u <- c u`` (kept pending, no memory pass)."""
    c = _num("c", c)

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
            _fe._foreach_copy_(buf, u)
        else:
            _fe._foreach_mul_(buf, mu)
            _fe._foreach_add_(buf, u, alpha=1.0 - damp)
        if nesterov:
            if ctx.owned:
                _fe._foreach_add_(u, buf, alpha=mu)
                return u
            ctx.owned = True
            return _fe._foreach_add(u, buf, alpha=mu)
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
        _fe._foreach_mul_(v, a)
        _fe._foreach_add_(v, u)
        if nesterov:
            if ctx.owned:
                _fe._foreach_add_(u, v, alpha=a)
                return u
            ctx.owned = True
            return _fe._foreach_add(u, v, alpha=a)
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
        d = _fe._foreach_sub(p, prev)
        _fe._foreach_add_(u, d, alpha=beta)
        _fe._foreach_copy_(prev, p)
        return u

    return _make("heavy_ball_momentum", init, update, momentum=momentum)


# ------------------------------------------------------------------------------ adaptive
def _denominator(acc: list[Tensor], eps: float, eps_inside: bool, div: float = 1.0) -> list[Tensor]:
    """``sqrt(acc/div) + eps`` (eps outside, torch) or ``sqrt(acc/div + eps)`` (eps inside)."""
    if eps_inside:
        d = _fe._foreach_div(acc, div) if div != 1.0 else _fe._foreach_add(acc, eps)
        if div != 1.0:
            _fe._foreach_add_(d, eps)
        _fe._foreach_sqrt_(d)
        return d
    d = _fe._foreach_sqrt(acc)
    if div != 1.0:
        _fe._foreach_div_(d, math.sqrt(div))
    _fe._foreach_add_(d, eps)
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
        _fe._foreach_addcmul_(acc, g, g, 1.0)
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
        _fe._foreach_mul_(nu, rho)
        _fe._foreach_addcmul_(nu, g, g, 1.0 - rho)
        if centered:
            mu = s["mu"]
            _fe._foreach_lerp_(mu, g, 1.0 - rho)
            var = _fe._foreach_addcmul(nu, mu, mu, -1.0)
            if eps_inside:
                _fe._foreach_add_(var, e)
                _fe._foreach_sqrt_(var)
            else:
                _fe._foreach_sqrt_(var)
                _fe._foreach_add_(var, e)
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
        _fe._foreach_mul_(sq, r)
        _fe._foreach_addcmul_(sq, g, g, 1.0 - r)
        std = _fe._foreach_add(sq, e)
        _fe._foreach_sqrt_(std)
        delta = _fe._foreach_add(acc, e)
        _fe._foreach_sqrt_(delta)
        _fe._foreach_div_(delta, std)
        _fe._foreach_mul_(delta, g)
        _fe._foreach_mul_(acc, r)
        _fe._foreach_addcmul_(acc, delta, delta, 1.0 - r)
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
    exactly: ``u = m_t / (sqrt(v^_t) + eps)``.
    """

    def init(params):
        st = {"m": _zeros(params), "v": _zeros(params)}
        if amsgrad:
            st["vmax"] = _zeros(params)
        return st

    def update(u, s, p, ctx):
        gp = ctx.group
        beta1, beta2, e = gp.get("b1", b1), gp.get("b2", b2), gp.get("eps", eps)
        g = materialize(u, ctx)
        m, v = s["m"], s["v"]
        _fe._foreach_lerp_(m, g, 1.0 - beta1)
        _fe._foreach_mul_(v, beta2)
        _fe._foreach_addcmul_(v, g, g, 1.0 - beta2)
        acc = v
        if amsgrad:
            _fe._foreach_maximum_(s["vmax"], v)
            acc = s["vmax"]
        t = ctx.step
        if bias_correction:
            ctx.denom = _denominator(acc, e, eps_inside, 1.0 - beta2**t)
            ctx.scale *= 1.0 / (1.0 - beta1**t)
        else:
            ctx.denom = _denominator(acc, e, eps_inside)
        ctx.owned = False
        return m

    return _make("scale_by_adam", init, update, b1=b1, b2=b2, eps=eps)


def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """AdaMax (seed 000, GBC "ADAM variation" p -> inf): ``u_t = max(b2 u_{t-1}, |g_t| + eps)``.

    ``m <- b1 m + (1 - b1) g``; output ``m^ / u_t`` with ``m^ = m / (1 - b1^t)``. The ``+ eps``
    inside the max is torch's guard against ``0/0`` (the notes write ``max(b2 u, |g|)``; they
    agree for ``|g| >> eps``). Recommended lr 0.002 (seed 000).
    """

    def init(params):
        return {"m": _zeros(params), "u": _zeros(params)}

    def update(u, s, p, ctx):
        gp = ctx.group
        beta1, beta2, e = gp.get("b1", b1), gp.get("b2", b2), gp.get("eps", eps)
        g = materialize(u, ctx)
        m, inf = s["m"], s["u"]
        _fe._foreach_lerp_(m, g, 1.0 - beta1)
        _fe._foreach_mul_(inf, beta2)
        a = _fe._foreach_abs(g)
        _fe._foreach_add_(a, e)
        _fe._foreach_maximum_(inf, a)
        ctx.denom = inf
        ctx.scale *= 1.0 / (1.0 - beta1**ctx.step)
        ctx.owned = False
        return m

    return _make("scale_by_adamax", init, update, b1=b1, b2=b2, eps=eps)


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
    """

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
        beta1, beta2, e = gp.get("b1", b1), gp.get("b2", b2), gp.get("eps", eps)
        psi = gp.get("momentum_decay", momentum_decay)
        g = materialize(u, ctx)
        m, v = s["m"], s["v"]
        t = ctx.step
        _fe._foreach_lerp_(m, g, 1.0 - beta1)
        _fe._foreach_mul_(v, beta2)
        _fe._foreach_addcmul_(v, g, g, 1.0 - beta2)
        if psi is None:
            bc1 = 1.0 - beta1**t
            cg, cm = (1.0 - beta1) / bc1, beta1 / bc1
        else:
            mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
            mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
            prod_t = s["mu_product"] * mu
            s["mu_product"] = prod_t
            prod = prod_t.item()
            cg, cm = (1.0 - mu) / (1.0 - prod), mu_next / (1.0 - prod * mu_next)
        num = _fe._foreach_mul(g, cg)
        _fe._foreach_add_(num, m, alpha=cm)
        ctx.denom = _denominator(v, e, eps_inside, 1.0 - beta2**t)
        ctx.owned = True
        return num

    return _make(
        "scale_by_nadam", init, update, False, b1=b1, b2=b2, eps=eps, momentum_decay=momentum_decay
    )


# ------------------------------------------------------------------------------ clipping / noise
def clip_by_value(clip_value: float) -> GradientTransformation:
    """Element-wise clipping ``u <- clamp(u, -c, c)``."""

    def update(u, s, p, ctx):
        c = ctx.group.get("clip_value", clip_value)
        u = _writable(u, ctx)
        _fe._foreach_clamp_min_(u, -c)
        _fe._foreach_clamp_max_(u, c)
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
        norms = _fe._foreach_norm(u)
        total = torch.linalg.vector_norm(torch.stack(norms))
        factor = torch.clamp(a / total, max=1.0)
        _fe._foreach_mul_(u, factor)
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
        _fe._foreach_add_(u, noise, alpha=sigma)
        s["rng_state"] = gen.get_state()
        return u

    return _make("add_noise", init, update, False, noise_eta=noise_eta, noise_gamma=noise_gamma)


# ------------------------------------------------------------------------------ weight penalties
def _add_param_multiple(name: str, key: str, default: float, sign: bool = False):
    def update(u, s, p, ctx):
        c = ctx.group.get(key, default)
        if c == 0:
            return u
        u = _writable(u, ctx)
        _fe._foreach_add_(u, _fe._foreach_sign(p) if sign else p, alpha=c)
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
    """L1 subgradient (seed 000, L1 regularization): ``g <- g + lambda sign(w)``."""
    return _add_param_multiple("add_l1", "l1", l1, sign=True)


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
        _fe._foreach_add_(u, p)  # z = p + u
        sgn = _fe._foreach_sign(u)
        _fe._foreach_abs_(u)
        _fe._foreach_sub_(u, thr)
        _fe._foreach_clamp_min_(u, 0.0)
        _fe._foreach_mul_(u, sgn)  # soft-threshold(z)
        _fe._foreach_sub_(u, p)  # p_new - p  (p + (0 - p) == 0 exactly)
        return u

    return _make("add_proximal_l1", _no_state, update, l1=l1)
