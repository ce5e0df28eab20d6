"""Named optimizers as chains of transforms, and the ``torch.optim.Optimizer`` adapter.

Every factory returns a :class:`Optimizer` whose defaults equal its ``torch.optim`` namesake
(eps outside the square root, torch's AMSGrad/AdaMax/NAdam forms); the notes' variants are one
keyword away (``eps_inside``, ``bias_correction``, ``momentum_decay=None``, ``eps=0``, ``l1``
for seed 000's L1 step, ...). The param groups hold torch's keys (``lr``, ``momentum``, the Adam
family's ``betas = (b1, b2)``), so torch's schedulers, ``OneCycleLR``/``CyclicLR`` with
``cycle_momentum`` included, drive them exactly as they drive torch's optimizers.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from goodfit.optim.modifiers import (
    add_decayed_weights,
    add_l1_step,
    add_l2,
)
from goodfit.optim.rules import (
    heavy_ball_momentum,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_adamax,
    scale_by_lr,
    scale_by_nadam,
    scale_by_rms,
    trace,
)
from goodfit.optim.transforms import (
    Context,
    GradientTransformation,
    apply_updates,
    chain,
    validate_hyperparams,
)

__all__ = [
    "Optimizer",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "gd",
    "heavy_ball",
    "nadam",
    "rmsprop",
    "sgd",
]

_GROUP_STATE = "goodfit.group_state.{}"


class Optimizer(torch.optim.Optimizer):
    """Run a :class:`~goodfit.optim.GradientTransformation` as a ``torch.optim.Optimizer``.

    Each step, for every param group: the parameters with a gradient (others are skipped) are
    updated by ``p <- p + transform(g)``, where the transform reads its hyperparameters from the
    group (defaults: ``transform.hyperparams``, overridable per group, e.g. ``weight_decay=0`` for
    biases; ``lr`` lives in the group so torch ``lr_scheduler``s and ``GradScaler`` work).

    State: per-parameter tensors in ``self.state[p]`` (keys = the transform's state keys), and per
    group the step count and scalar state (e.g. the noise RNG state) in
    ``self.state["goodfit.group_state.<i>"]``; all tensors/numbers, so ``state_dict()`` loads with
    ``torch.load(weights_only=True)`` and ``load_state_dict`` resumes a run exactly. The step
    count ``t`` is per group; a parameter first receiving a gradient late starts its state then.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or param groups (dicts with ``"params"`` and hyperparameter overrides).
    transform : GradientTransformation
        The update rule, e.g. ``chain(scale_by_adam(), scale_by_lr(1e-3))``.
    compiled : bool
        Run each group's whole update (transform chain + parameter update) under
        ``torch.compile``: inductor fuses the element-wise chain into one loop per tensor (what
        ``fused=True`` is in torch), and the per-step scalars (``lr``, ``momentum``, ``betas``,
        bias corrections) enter as 0-d tensors computed once per step, so changing them (torch
        ``lr_scheduler``s, ``OneCycleLR``'s momentum cycling) does not recompile. The first
        step pays the compilation (5-40 s on a small CPU; once more at step 2 for rules that
        branch on ``t == 1``, e.g. momentum); a schedule *callable* inside ``scale_by_lr``
        recompiles every step (use a torch scheduler instead). Each
        optimizer compiles its own copy of the update, so many compiled optimizers in one
        process (a study) all stay compiled. Default ``False``: the eager path runs
        element-wise chains with multi-tensor ops, on CPU slice by slice (cache-sized slices
        of the parameter list, each through the whole chain), which beats torch's
        single-tensor loop there.
    **defaults
        Extra group defaults (override ``transform.hyperparams``).

    Examples
    --------
    >>> import torch, goodfit as gf
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> tx = gf.optim.chain(gf.optim.scale_by_adam(), gf.optim.scale_by_lr(0.1))
    >>> opt = gf.optim.Optimizer([w], tx)
    """

    def __init__(
        self,
        params: Iterable[Any],
        transform: GradientTransformation,
        *,
        compiled: bool = False,
        **defaults: Any,
    ) -> None:
        if not isinstance(transform, GradientTransformation):
            raise TypeError(
                f"transform must be a GradientTransformation, got {type(transform).__name__}"
            )
        if not isinstance(compiled, bool):
            raise ValueError(f"compiled must be True or False, got {compiled!r}")
        hp = dict(transform.hyperparams)
        hp.update(defaults)
        validate_hyperparams(hp)
        self.transform = transform
        self._list_keys = tuple(k for k, v in transform.init([]).items() if isinstance(v, list))
        self._cycled = tuple(k for k in ("momentum", "betas") if k in transform.hyperparams)
        self.compiled = compiled
        # fullgraph: a graph break would compile the rest of a rule as its own frame, cached on
        # code shared by every optimizer using that rule (seen to reuse a wrong graph); inputs'
        # sizes and strides are guarded by dynamo, so inductor's per-tensor re-checks are skipped
        self._core = (
            torch.compile(
                _own_copy(_update_and_apply), fullgraph=True, options={"size_asserts": False}
            )
            if compiled
            else None
        )
        super().__init__(params, hp)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (torch semantics), validating its hyperparameters and parameters."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        validate_hyperparams({k: v for k, v in group.items() if k != "params"})
        if "betas" in self.defaults and ("b1" in group or "b2" in group):
            raise ValueError(
                "this optimizer keeps b1, b2 in its param groups as betas=(b1, b2) (torch's key); "
                f"got a group with b1={group.get('b1')!r}, b2={group.get('b2')!r}"
            )
        for p in group["params"]:
            if p.is_complex():
                raise ValueError(
                    "goodfit optimizers do not support complex parameters; use torch.view_as_real"
                )

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every param group; ``closure`` (re-evaluating the loss) is optional."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for i, group in enumerate(self.param_groups):
            params: list[Tensor] = []
            grads: list[Tensor] = []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    raise RuntimeError("goodfit optimizers do not support sparse gradients")
                params.append(p)
                grads.append(g)
            if params:
                self._step_group(i, group, params, grads)
        return loss

    def _step_group(self, i: int, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        state = self.state
        gkey = _GROUP_STATE.format(i)
        missing = [p for p in params if not state.get(p)]
        if missing:
            init = self.transform.init(missing)
            for k in self._list_keys:
                for p, v in zip(missing, init[k], strict=True):
                    state[p][k] = v
            if gkey not in state:
                state[gkey] = {
                    "step": 0,
                    **{k: v for k, v in init.items() if k not in self._list_keys},
                }
        scalars = state[gkey]
        t = scalars["step"] + 1
        st: dict[str, Any] = {k: v for k, v in scalars.items() if k != "step"}
        for k in self._list_keys:
            st[k] = [state[p][k] for p in params]
        sliced = self.transform.chunkable and len(params) > 1 and params[0].device.type == "cpu"
        if self._core is None and sliced:
            for a, b in _chunks(params):
                sub = {k: (v[a:b] if k in self._list_keys else v) for k, v in st.items()}
                _update_and_apply(self.transform, grads[a:b], sub, params[a:b], group, t)
        elif self._core is None:
            _update_and_apply(self.transform, grads, st, params, group, t)
        else:
            hp = _tensor_hyperparams(group, self._cycled)
            step_tensor = torch.tensor(float(t), dtype=torch.float64)
            try:
                self._core(self.transform, grads, st, params, hp, t, step_tensor)
            except torch._dynamo.exc.Unsupported as exc:  # raised while tracing: nothing ran
                warnings.warn(
                    f"compiled=True: {self.transform!r} does not compile into one graph "
                    f"({str(exc).splitlines()[0]}); this optimizer runs eagerly",
                    stacklevel=3,
                )
                self._core = None
                _update_and_apply(self.transform, grads, st, params, group, t)
            else:
                group.update({k: v for k, v in hp.items() if not isinstance(v, (Tensor, tuple))})
        new = {"step": t}
        for k, v in st.items():
            if k not in self._list_keys:
                new[k] = v
        state[gkey] = new


def _tensor_hyperparams(group: dict[str, Any], cycled: tuple[str, ...]) -> dict[str, Any]:
    """The group's hyperparameters for the compiled update, with those torch's schedulers change
    every step as 0-d tensors, so that a new value does not recompile: ``lr``, and the
    ``cycled`` ones the transform reads (``momentum``, ``betas`` under ``OneCycleLR``)."""
    hp = {k: v for k, v in group.items() if k != "params"}
    for key in ("lr", *cycled):
        v = hp.get(key)
        if isinstance(v, (int, float)):
            hp[key] = torch.tensor(float(v), dtype=torch.float64)
        elif isinstance(v, (tuple, list)):
            hp[key] = tuple(torch.tensor(float(b), dtype=torch.float64) for b in v)
    return hp


_CHUNK = 1 << 18  # elements per slice: ~1 MiB per float32 array, so a slice stays in cache


def _chunks(params: list[Tensor]) -> list[tuple[int, int]]:
    """Consecutive slices of ``params`` with at most ``_CHUNK`` elements (a bigger tensor alone)."""
    out, start, size = [], 0, 0
    for i, p in enumerate(params):
        n = p.numel()
        if size and size + n > _CHUNK:
            out.append((start, i))
            start, size = i, 0
        size += n
    out.append((start, len(params)))
    return out


def _own_copy(fn: Callable) -> Callable:
    """``fn`` with a code object of its own: dynamo keeps compiled variants per code object and
    falls back to eager after ``recompile_limit`` (8) of them, so optimizers sharing one function
    would silently stop being compiled after the eighth."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__)


def _update_and_apply(tx, grads, st, params, group, t, step_tensor=None) -> None:
    ctx = Context(group, t, step_tensor)
    updates = tx.update(grads, st, params, ctx)
    apply_updates(params, updates, ctx)


# ---------------------------------------------------------------------------------- factories
def _groups_have(params: Any, key: str) -> tuple[Any, bool]:
    params = list(params)
    found = any(isinstance(g, dict) and g.get(key, 0) for g in params)
    return params, found


def _named(
    params: Any,
    rule: list[GradientTransformation],
    lr: float,
    weight_decay: float,
    compiled: bool,
    *,
    decoupled: bool = False,
    after: list[GradientTransformation] | None = None,
    **extra: Any,
) -> Optimizer:
    """A named optimizer's chain around its ``rule``: ``add_l2(weight_decay), *rule,
    scale_by_lr(lr), *after`` (coupled decay, torch's SGD/Adam) or with ``decoupled`` ``*rule,
    add_decayed_weights(weight_decay), scale_by_lr(lr), *after`` (AdamW)."""
    decay = add_decayed_weights(weight_decay) if decoupled else add_l2(weight_decay)
    parts = [*rule, decay] if decoupled else [decay, *rule]
    tx = chain(*parts, scale_by_lr(lr), *(after or []))
    return Optimizer(params, tx, compiled=compiled, **extra)


def _momentum(params: Any, momentum: float, nesterov: bool, **kw: Any) -> tuple[Any, list, dict]:
    """``trace`` when momentum is used (here or in a param group); else a ``momentum`` key."""
    params, any_mom = _groups_have(params, "momentum")
    if momentum > 0 or any_mom or nesterov:
        return params, [trace(momentum, nesterov=nesterov, **kw)], {}
    return params, [], {"momentum": momentum}


def _l1_step(params: Any, l1: float) -> tuple[Any, list[GradientTransformation]]:
    params, any_l1 = _groups_have(params, "l1")
    return params, ([add_l1_step(l1)] if l1 > 0 or any_l1 else [])


def gd(
    params: Iterable[Any],
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    compiled: bool = False,
) -> Optimizer:
    """Gradient descent ``w <- w - eta g`` (seed 002 batch/stochastic GD; GBC Alg. 8.1).

    ``weight_decay`` adds ``alpha w`` to the gradient (GBC eq. 7.5). ``l1`` is seed 000's L1
    step (§1.1.3, "L1 regularization"): ``w <- w - eta g - l1 sign(w)``, ``l1`` not scaled by
    the learning rate (:func:`~goodfit.optim.add_l1_step`).
    """
    params, after = _l1_step(params, l1)
    return _named(params, [], lr, weight_decay, compiled, after=after)


def sgd(
    params: Iterable[Any],
    lr: float = 1e-3,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    dampening: float = 0.0,
    l1: float = 0.0,
    compiled: bool = False,
) -> Optimizer:
    """SGD with optional momentum (GBC Alg. 8.2, seed 002) or Nesterov (GBC Alg. 8.3, seed 003).

    Exactly ``torch.optim.SGD`` (buffer ``b <- mu b + (1 - dampening) g``; Nesterov ``g + mu b``;
    ``w <- w - lr (.)``; coupled ``weight_decay``). ``l1``: seed 000's L1 step
    ``w <- w - lr (.) - l1 sign(w)`` (§1.1.3; ``l1`` not scaled by ``lr``, as in :func:`gd`).
    """
    params, rule, extra = _momentum(params, momentum, nesterov, dampening=dampening)
    params, after = _l1_step(params, l1)
    return _named(params, rule, lr, weight_decay, compiled, after=after, **extra)


def heavy_ball(
    params: Iterable[Any],
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    compiled: bool = False,
) -> Optimizer:
    """Heavy-ball method (seed 000 §1.2.3.3).

    ``W^t = W^{t-1} - eta g + beta (W^{t-1} - W^{t-2})``.
    """
    after = [heavy_ball_momentum(momentum)]
    return _named(params, [], lr, weight_decay, compiled, after=after)


def adagrad(
    params: Iterable[Any],
    lr: float = 1e-2,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps_inside: bool = False,
    compiled: bool = False,
) -> Optimizer:
    """AdaGrad (GBC Alg. 8.4; ``torch.optim.Adagrad``): ``w <- w - lr g / (sqrt(G) + eps)``.

    ``eps_inside=True`` gives seed 002's ``lr g / sqrt(G + eps)`` (seed 002 uses eps = 1e-6).
    """
    rule = scale_by_adagrad(
        eps, eps_inside=eps_inside, initial_accumulator_value=initial_accumulator_value
    )
    return _named(params, [rule], lr, weight_decay, compiled)


def rmsprop(
    params: Iterable[Any],
    lr: float = 1e-2,
    decay: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    nesterov: bool = False,
    centered: bool = False,
    weight_decay: float = 0.0,
    eps_inside: bool = False,
    compiled: bool = False,
) -> Optimizer:
    """RMSProp (GBC Alg. 8.5; ``torch.optim.RMSprop`` with ``alpha=decay``).

    ``momentum`` adds torch's buffer ``b <- mu b + g / (sqrt(r) + eps)``; ``nesterov=True`` makes it
    GBC Alg. 8.6 (RMSProp with Nesterov momentum) in look-ahead-free form, with the algorithm's
    own ``eps=0`` (no delta) allowed. ``eps_inside=True`` uses ``sqrt(r + eps)`` as GBC 8.5 and
    seeds 000/002/003.
    """
    params, mom, extra = _momentum(params, momentum, nesterov)
    rule = [scale_by_rms(decay, eps, centered=centered, eps_inside=eps_inside), *mom]
    return _named(params, rule, lr, weight_decay, compiled, **extra)


def adadelta(
    params: Iterable[Any],
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    compiled: bool = False,
) -> Optimizer:
    """Adadelta (seed 000 §1.2.3.3; ``torch.optim.Adadelta``): no learning rate needed (lr=1)."""
    return _named(params, [scale_by_adadelta(rho, eps)], lr, weight_decay, compiled)


def adam(
    params: Iterable[Any],
    lr: float = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    amsgrad: bool = False,
    weight_decay: float = 0.0,
    eps_inside: bool = False,
    bias_correction: bool = True,
    compiled: bool = False,
) -> Optimizer:
    """Adam (seed 000, seed 002, GBC Alg. 8.7; ``torch.optim.Adam``; coupled ``weight_decay``).

    ``eps_inside=True``: GBC 8.7 / seed 003 ``m^ / sqrt(v^ + eps)``. As in torch, the param
    groups hold ``betas = (b1, b2)`` (a per-group override is ``{"params": ..., "betas": (.,
    .)}``), which torch's ``OneCycleLR``/``CyclicLR`` with ``cycle_momentum`` drive; the same for
    :func:`adamw`, :func:`amsgrad`, :func:`adamax` and :func:`nadam`.
    """
    rule = scale_by_adam(
        b1, b2, eps, eps_inside=eps_inside, amsgrad=amsgrad, bias_correction=bias_correction
    )
    return _named(params, [rule], lr, weight_decay, compiled)


def adamw(
    params: Iterable[Any],
    lr: float = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    eps_inside: bool = False,
    compiled: bool = False,
) -> Optimizer:
    """AdamW (``torch.optim.AdamW``): Adam + decoupled decay ``w <- w - lr (u + lambda w)``."""
    rule = scale_by_adam(b1, b2, eps, eps_inside=eps_inside, amsgrad=amsgrad)
    return _named(params, [rule], lr, weight_decay, compiled, decoupled=True)


def amsgrad(
    params: Iterable[Any],
    lr: float = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    bias_correction: bool = True,
    compiled: bool = False,
) -> Optimizer:
    """AMSGrad (seeds 000/002): ``v^_t = max(v^_{t-1}, v_t)``; torch's ``Adam(amsgrad=True)``.

    ``bias_correction=False``: seed 000 exactly, ``W <- W - eta m_t / (sqrt(v^_t) + eps)``.
    """
    rule = scale_by_adam(b1, b2, eps, amsgrad=True, bias_correction=bias_correction)
    return _named(params, [rule], lr, weight_decay, compiled)


def adamax(
    params: Iterable[Any],
    lr: float = 2e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    compiled: bool = False,
) -> Optimizer:
    """AdaMax (seed 000 §1.2.3.3, seed 001; ``torch.optim.Adamax``).

    ``W <- W - eta m^ / max(b2 u, |g| + eps)``; ``eps=0`` is the notes' ``max(b2 u, |g|)``.
    """
    return _named(params, [scale_by_adamax(b1, b2, eps)], lr, weight_decay, compiled)


def nadam(
    params: Iterable[Any],
    lr: float = 2e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float | None = 4e-3,
    decoupled_weight_decay: bool = False,
    eps_inside: bool = False,
    compiled: bool = False,
) -> Optimizer:
    """NAdam (``torch.optim.NAdam``); ``momentum_decay=None, eps_inside=True`` is seed 000's form
    ``W <- W - eta / sqrt(v^ + eps) (b1 m^ + (1 - b1) g / (1 - b1^t))``."""
    rule = scale_by_nadam(b1, b2, eps, momentum_decay=momentum_decay, eps_inside=eps_inside)
    return _named(params, [rule], lr, weight_decay, compiled, decoupled=decoupled_weight_decay)
