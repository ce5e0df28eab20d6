"""Composable gradient transformations (optax-style) over lists of tensors.

This module is the core: the protocol (:class:`GradientTransformation`, :class:`Context`), the
hyperparameter checks, the pending-value helpers (:func:`materialize`, :func:`apply_updates`) and
the combinators (:func:`identity`, :func:`chain`, :func:`masked`). The building blocks live in
:mod:`goodfit.optim.rules` (learning rate, momentum, adaptive rules) and
:mod:`goodfit.optim.modifiers` (clipping, gradient noise, weight penalties).

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

Step counter: ``ctx.step`` is the 1-based index of the current step (``t`` in the notes); rules
take powers ``b^t`` (bias corrections) through ``ctx.power(b)``, which the compiled path turns
into a scalar computed once per step instead of once per element.
Hyperparameters: each transform lists its hyperparameters in ``hyperparams``; at update it reads
``ctx.group.get(name, default)``, so a torch param group (``goodfit.optim.Optimizer``) may
override any of them per group (e.g. ``weight_decay=0`` for biases) and ``lr`` schedulers work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from goodfit.checks import check_real

__all__ = [
    "Context",
    "GradientTransformation",
    "apply_updates",
    "chain",
    "identity",
    "masked",
    "materialize",
    "validate_hyperparams",
]

State = dict[str, Any]
Schedule = Callable[[int], float]


# ``goodfit::realize_scalar``: a copy of a 0-d tensor that torch.compile cannot see through. On
# the compiled path the per-step scalars (``b^t``, ``sqrt(1 - b2^t)``, ``-lr / (1 - b1^t)``) are
# 0-d tensors; inductor would otherwise inline their arithmetic into every iteration of the
# fused element-wise loop (``std::pow`` per element made the compiled Adam 4x slower than
# torch's fused one). Registered with ``torch.library`` (no autograd wrapper: ~14 us a call).
_LIB = torch.library.Library("goodfit", "DEF")
_LIB.define("realize_scalar(Tensor x) -> Tensor")
_LIB.impl("realize_scalar", lambda x: x.clone(), "CompositeExplicitAutograd")
torch.library.register_fake("goodfit::realize_scalar", lambda x: torch.empty_like(x), lib=_LIB)


def _realize_scalar(x: float | Tensor) -> float | Tensor:
    """``x`` itself for a Python number; for a 0-d tensor a copy computed once per call of a
    compiled update (never re-evaluated per element)."""
    if isinstance(x, Tensor):
        return torch.ops.goodfit.realize_scalar.default(x)
    return x


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

    __slots__ = ("denom", "group", "lr", "owned", "scale", "step", "step_tensor")

    def __init__(
        self, group: dict | None = None, step: int = 1, step_tensor: Tensor | None = None
    ) -> None:
        self.group = {} if group is None else group
        self.step = step
        self.step_tensor = step_tensor
        self.scale = 1.0
        self.denom: list[Tensor] | None = None
        self.owned = False
        self.lr = self.group.get("lr", 1.0)

    def power(self, base: float) -> float | Tensor:
        """``base ** t``: a float, or on the compiled path a 0-d tensor computed once per step.

        Rules take powers of the step through this method (bias corrections ``1 - b^t``): in a
        compiled kernel a power of the (symbolic) int ``t`` is evaluated for every element.
        """
        if self.step_tensor is None:
            return base**self.step
        return _realize_scalar(torch.pow(base, self.step_tensor))


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


def validate_hyperparams(hp: dict[str, Any]) -> None:
    """Check hyperparameter values by name; raise ``ValueError`` naming the bad one.

    Rules: ``lr, eps, weight_decay, l1, noise_eta, noise_gamma, initial_accumulator_value,
    momentum_decay >= 0`` (``eps = 0`` as ``torch.optim`` allows); ``max_norm, clip_value > 0``;
    ``b1, b2, decay, rho, momentum`` in ``[0, 1)``; ``betas`` a pair ``(b1, b2)`` of those;
    ``dampening`` in ``[0, 1]``. Unknown names and ``None`` are not checked.
    """
    for key, v in hp.items():
        if v is None or callable(v):
            continue
        if key == "betas":
            if not isinstance(v, (tuple, list)) or len(v) != 2:
                raise ValueError(f"betas must be a pair (b1, b2), got {v!r}")
            validate_hyperparams({"b1": v[0], "b2": v[1]})
        elif key in _UNIT:
            x = check_real(key, v)
            if not 0.0 <= x < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {v!r}")
        elif key in ("max_norm", "clip_value"):
            if check_real(key, v) <= 0.0:
                raise ValueError(f"{key} must be > 0, got {v!r}")
        elif key in (
            "lr",
            "eps",
            "weight_decay",
            "l1",
            "noise_eta",
            "noise_gamma",
            "initial_accumulator_value",
            "momentum_decay",
        ):
            if check_real(key, v) < 0.0:
                raise ValueError(f"{key} must be >= 0, got {v!r}")
        elif key == "dampening" and not 0.0 <= check_real(key, v) <= 1.0:
            raise ValueError(f"dampening must be in [0, 1], got {v!r}")


def _make(name, init, update, chunkable=True, **hp) -> GradientTransformation:
    validate_hyperparams(hp)
    return GradientTransformation(init, update, hp, name, chunkable)


# ------------------------------------------------------------------------- pending-value helpers
def materialize(updates: list[Tensor], ctx: Context) -> list[Tensor]:
    """Apply the pending divisor and scale of ``ctx``; return owned, concrete updates."""
    if isinstance(ctx.scale, Tensor):
        ctx.scale = _realize_scalar(ctx.scale)
    if ctx.denom is not None:
        out = torch._foreach_div(updates, ctx.denom)
        if isinstance(ctx.scale, Tensor) or ctx.scale != 1.0:
            torch._foreach_mul_(out, ctx.scale)
        ctx.denom, ctx.scale, ctx.owned = None, 1.0, True
        return out
    if isinstance(ctx.scale, Tensor) or ctx.scale != 1.0:
        if ctx.owned:
            torch._foreach_mul_(updates, ctx.scale)
        else:
            updates = torch._foreach_mul(updates, ctx.scale)
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
            c = _realize_scalar(ctx.scale)
            if ctx.denom is not None:
                for p, u, d in zip(params, updates, ctx.denom, strict=True):
                    p.add_(u / d * c)
            else:
                for p, u in zip(params, updates, strict=True):
                    p.add_(u * c)
        elif ctx is not None and ctx.denom is not None:
            torch._foreach_addcdiv_(params, updates, ctx.denom, ctx.scale)
        else:
            c = 1.0 if ctx is None else ctx.scale
            torch._foreach_add_(params, updates, alpha=c)


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
