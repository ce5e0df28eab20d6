r"""Weight penalties: functions of a model added to the data loss.

A penalty is a callable ``penalty(model) -> scalar Tensor`` that :func:`goodfit.fit` adds to the
data loss (the history reports both separately). The general form is seed 000's multilayer
penalty (§1.1.3)

.. math:: \Omega = \sum_j \Lambda_j \, c_j \, \|W_j\|_{p_j}^{p_j},

with a coefficient :math:`\Lambda_j` (a number or a schedule of the step), a constant factor
:math:`c_j` (1/2 for GBC's :math:`\frac{\alpha}{2} w^\top w`, 1/(2m) for seed 000's batch-scaled
L2) and a norm :math:`p_j` per group of parameters. Following seed 001 ("typically not applied on
bias terms"), biases and normalization parameters are excluded unless
``include_bias_and_norm=True``.

Parameters are selected once, when the penalty is bound to a model (``model=`` at construction,
:meth:`Penalty.bind`, or the first call), and each call evaluates one multi-tensor
``torch._foreach_norm`` per group (:func:`goodfit.regularize.norms.sum_pow_norms`): no Python
loop per parameter or element on the hot path.

Which parameters a penalty takes (module-name patterns and/or module types) is decided by
:func:`goodfit.regularize.selection.select_parameters`. The MAP view (a prior's penalty) is in
:mod:`goodfit.regularize.priors`; scheduled coefficients move with
:class:`goodfit.regularize.penalty_schedule.PenaltyScheduleCallback`; a ``[regularize]`` config
table becomes a penalty in :mod:`goodfit.app.regularize_spec`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from goodfit.checks import check_bool, check_int, check_probability, check_real
from goodfit.regularize.norms import member_pow_norms, sum_pow_norms
from goodfit.regularize.selection import _as_list, is_bias_or_norm, select_parameters

__all__ = [
    "BasePenalty",
    "LayerRule",
    "Penalty",
    "PenaltySum",
    "Term",
    "elastic_net",
    "is_bias_or_norm",
    "l1",
    "l2",
    "per_layer",
    "select_parameters",
]

Coef = float | Callable[[int], float]


# --------------------------------------------------------------------------- coefficients


def check_coef(name: str, value: Any) -> Coef:
    """A penalty coefficient: a callable of the step (a schedule), or a finite number >= 0."""
    return value if callable(value) else check_real(name, value, low=0.0)


def eval_coef(coef: Coef, step: int, label: str) -> float:
    """The coefficient at ``step`` (a schedule is called; its value must be finite and >= 0)."""
    if not callable(coef):
        return coef
    c = float(coef(step))
    if not math.isfinite(c) or c < 0:
        raise ValueError(f"coefficient schedule of {label} gave {c!r} at step {step}; need >= 0")
    return c


def _batch_scale(batch_size: Any) -> float:
    """seed 000's ``m`` of ``lambda / (2 m)``: ``batch_size``, or 1 when it is None."""
    return 1.0 if batch_size is None else float(check_int("batch_size", batch_size, low=1))


class BasePenalty:
    """Base of all penalties: ``penalty(model) -> scalar Tensor``; ``set_step`` for schedules.

    ``a + b`` gives a :class:`PenaltySum`.
    """

    _step: int = 0

    def __call__(self, model: nn.Module) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_step(self, step: int) -> None:
        """Tell the penalty the optimizer step, for coefficients that follow a schedule."""
        self._step = int(step)

    def __add__(self, other: BasePenalty) -> PenaltySum:
        if not isinstance(other, BasePenalty):
            return NotImplemented
        return PenaltySum([self, other])


class PenaltySum(BasePenalty):
    """Sum of penalties; ``set_step`` is forwarded to each part."""

    def __init__(self, parts: Iterable[BasePenalty]) -> None:
        flat: list[BasePenalty] = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, PenaltySum) else [p])
        if not flat:
            raise ValueError("PenaltySum needs at least one penalty")
        self.parts = flat

    def __call__(self, model: nn.Module) -> Tensor:
        total = self.parts[0](model)
        for p in self.parts[1:]:
            total = total + p(model)
        return total

    def set_step(self, step: int) -> None:
        self._step = int(step)
        for p in self.parts:
            p.set_step(step)

    def per_member(self, model: nn.Module, k: int) -> Tensor:
        """Each of ``k`` stacked members' penalty (see :meth:`Penalty.per_member`); raises
        AttributeError when a part has no per-member form."""
        total = self.parts[0].per_member(model, k)  # type: ignore[attr-defined]
        for p in self.parts[1:]:
            total = total + p.per_member(model, k)  # type: ignore[attr-defined]
        return total

    def bind(self, model: nn.Module) -> PenaltySum:
        for p in self.parts:
            if hasattr(p, "bind"):
                p.bind(model)
        return self

    def __repr__(self) -> str:
        return " + ".join(repr(p) for p in self.parts)


@dataclass(frozen=True)
class Term:
    """One global term ``coef * factor * sum_W ||W||_p^p`` over all selected parameters."""

    p: float
    coef: Coef
    factor: float = 1.0
    label: str = ""


@dataclass(frozen=True)
class LayerRule:
    r"""Seed 000's per-layer term ``Lambda_j ||W_j||_{p_j}^{p_j}`` on modules chosen by
    ``pattern`` (glob or ``"re:"`` regex) and/or ``type``; ``coef`` is :math:`\Lambda_j`."""

    coef: Coef
    p: float = 2.0
    pattern: str | None = None
    type: str | type | None = None

    @classmethod
    def coerce(cls, rule: LayerRule | Mapping[str, Any], where: str = "per_layer") -> LayerRule:
        if isinstance(rule, LayerRule):
            r = rule
        else:
            if not isinstance(rule, Mapping):
                raise ValueError(f"{where} entries must be tables/dicts, got {rule!r}")
            allowed = {"pattern", "type", "coef", "p"}
            for k in rule:
                if k not in allowed:
                    raise ValueError(f"{where}: unknown key {k!r}; allowed: {sorted(allowed)}")
            if "coef" not in rule:
                raise ValueError(f"{where}: missing key 'coef'")
            r = cls(
                coef=rule["coef"],
                p=rule.get("p", 2.0),
                pattern=rule.get("pattern"),
                type=rule.get("type"),
            )
        if r.pattern is None and r.type is None:
            raise ValueError(f"{where}: give a 'pattern' or a 'type'")
        check_coef(f"{where}.coef", r.coef)
        check_real(f"{where}.p", r.p, low=1.0)
        return r


@dataclass
class _Group:
    label: str
    coef: Coef
    factor: float
    p: float
    names: list[str]
    tensors: list[Tensor]


class Penalty(BasePenalty):
    r"""Sum of weighted p-norm terms over groups of parameters (seed 000 §1.1.3, GBC 7.1).

    .. math:: \Omega(W) = \sum_{t \in terms} \lambda_t c_t \sum_{W \in G} \|W\|_{p_t}^{p_t}
              + \sum_j \Lambda_j \|W_j\|_{p_j}^{p_j}

    The global ``terms`` act on every selected parameter (``G``) not claimed by a per-layer rule;
    each per-layer rule (:class:`LayerRule`) claims the parameters it matches (the first matching
    rule wins) and applies seed 000's :math:`\Lambda_j\|W_j\|_{p_j}^{p_j}` to them *instead of*
    the global terms. Coefficients may be callables of the step (see :meth:`set_step` and
    :class:`PenaltyScheduleCallback`).

    Parameters
    ----------
    terms : sequence of Term
    per_layer : sequence of LayerRule or dicts ``{pattern|type, coef, p=2}``
    exclude : module-name patterns whose parameters are never penalized
    include_bias_and_norm : penalize biases and normalization parameters too (default False)
    model : bind now, so that bad patterns raise at construction

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> rules = [{"pattern": "0", "coef": 1e-3}]
    >>> pen = Penalty([Term(p=2, coef=1e-4, factor=0.5)], per_layer=rules)
    >>> float(pen(net).detach()) > 0
    True
    """

    def __init__(
        self,
        terms: Sequence[Term] = (),
        *,
        per_layer: Sequence[LayerRule | Mapping[str, Any]] = (),
        exclude: str | Sequence[str] = (),
        include_bias_and_norm: bool = False,
        model: nn.Module | None = None,
    ) -> None:
        check_bool("include_bias_and_norm", include_bias_and_norm)
        self.terms = [
            Term(
                p=check_real(f"{t.label or 'term'}.p", t.p, low=1.0),
                coef=check_coef(t.label or "coef", t.coef),
                factor=t.factor,
                label=t.label or f"l{t.p:g}",
            )
            for t in terms
        ]
        self.rules = [
            LayerRule.coerce(r, f"per_layer[{i}]") for i, r in enumerate(_as_list(per_layer))
        ]
        if not self.terms and not self.rules:
            raise ValueError("a Penalty needs at least one term or per_layer rule")
        self.exclude = _as_list(exclude)
        self.include_bias_and_norm = include_bias_and_norm
        self._model_id: int | None = None
        self._groups: list[_Group] = []
        if model is not None:
            self.bind(model)

    # -- binding ---------------------------------------------------------------------------
    def bind(self, model: nn.Module) -> Penalty:
        """Select and group the parameters of ``model`` (done once; re-run after surgery)."""
        kw = {"exclude": self.exclude, "include_bias_and_norm": self.include_bias_and_norm}
        claimed: set[int] = set()
        groups: list[_Group] = []
        for i, r in enumerate(self.rules):
            sel = select_parameters(model, pattern=r.pattern, type=r.type, **kw)
            sel = [(n, p) for n, p in sel if id(p) not in claimed]
            if not sel:
                raise ValueError(
                    f"per_layer[{i}] (pattern={r.pattern!r}, type={r.type!r}) selects no "
                    "parameter not already claimed by an earlier per_layer rule"
                )
            claimed.update(id(p) for _, p in sel)
            what = r.pattern if r.pattern is not None else getattr(r.type, "__name__", r.type)
            groups.append(
                _Group(
                    label=f"per_layer[{i}]:{what}",
                    coef=r.coef,
                    factor=1.0,
                    p=r.p,
                    names=[n for n, _ in sel],
                    tensors=[p for _, p in sel],
                )
            )
        if self.terms:
            sel = select_parameters(model, allow_empty=True, **kw)
            sel = [(n, p) for n, p in sel if id(p) not in claimed]
            if sel:
                for t in self.terms:
                    groups.append(
                        _Group(
                            label=t.label,
                            coef=t.coef,
                            factor=t.factor,
                            p=t.p,
                            names=[n for n, _ in sel],
                            tensors=[p for _, p in sel],
                        )
                    )
        self._groups = groups
        self._model_id = id(model)
        self._model_ref = model  # keeps id() valid while bound
        return self

    def selected(self, model: nn.Module | None = None) -> dict[str, list[str]]:
        """Names of the parameters each term acts on, e.g. ``{"l2": ["0.weight", ...]}``."""
        if model is not None and id(model) != self._model_id:
            self.bind(model)
        return {g.label: list(g.names) for g in self._groups}

    # -- evaluation ------------------------------------------------------------------------
    def coefficients(self) -> dict[str, float]:
        """Current value of every coefficient (after the schedule, at the current step)."""
        return {g.label: eval_coef(g.coef, self._step, g.label) for g in self._groups}

    def __call__(self, model: nn.Module) -> Tensor:
        if id(model) != self._model_id:
            self.bind(model)
        total: Tensor | None = None
        for g in self._groups:
            c = eval_coef(g.coef, self._step, g.label) * g.factor
            if c == 0.0:
                continue
            v = sum_pow_norms(g.tensors, g.p) * c
            total = v if total is None else total + v
        if total is None:
            ref = next(iter(model.parameters()), None)
            return torch.zeros((), device=None if ref is None else ref.device)
        return total

    def per_member(self, model: nn.Module, k: int) -> Tensor:
        """The penalty of each of ``k`` members whose parameters ``model`` holds stacked along
        a leading axis (the shell of :func:`goodfit.train.fit_many`), as a (k,) tensor: every
        term is a sum over elements, so member j's value is the same sum over its slice
        (:func:`goodfit.regularize.norms.member_pow_norms`); the parameters are selected by the
        same names and module types as on one member."""
        if id(model) != self._model_id:
            self.bind(model)
        ref = next(iter(model.parameters()))
        total = torch.zeros(k, dtype=ref.dtype, device=ref.device)
        for g in self._groups:
            c = eval_coef(g.coef, self._step, g.label) * g.factor
            if c != 0.0:
                total = total + member_pow_norms(g.tensors, g.p, k) * c
        return total

    def __repr__(self) -> str:
        parts = [f"{t.label}(coef={t.coef!r}, p={t.p:g}, factor={t.factor:g})" for t in self.terms]
        parts += [repr(r) for r in self.rules]
        return f"Penalty({', '.join(parts)})"


_SEL_DOC = r"""exclude : module-name patterns never penalized (glob or ``"re:"`` regex)
    include_bias_and_norm : also penalize biases and normalization parameters (default False)
    per_layer : per-layer rules ``{pattern|type, coef, p}`` that replace the global terms on the
        parameters they match (seed 000's :math:`\Lambda_j\|W_j\|_{p_j}^{p_j}`)
    model : bind now (bad patterns raise at construction)"""


def _l1_term(coef: Coef) -> Term:
    """seed 000's / GBC 7.1.2's ``lambda ||W||_1``."""
    return Term(p=1.0, coef=check_coef("l1", coef), factor=1.0, label="l1")


def _l2_term(coef: Coef, m: float) -> Term:
    """GBC eq. 7.2's ``alpha/2 ||W||_2^2`` (``m = 1``), seed 000's ``lambda/(2m) ||W||_2^2``."""
    return Term(p=2.0, coef=check_coef("l2", coef), factor=0.5 / m, label="l2")


def l1(
    coef: Coef,
    *,
    exclude: str | Sequence[str] = (),
    include_bias_and_norm: bool = False,
    per_layer: Sequence[LayerRule | Mapping[str, Any]] = (),
    model: nn.Module | None = None,
) -> Penalty:
    r"""L1 (Lasso): :math:`\Omega = \lambda \|W\|_1` (seed 000 §1.1.3; GBC 7.1.2
    :math:`\alpha\|w\|_1`, gradient :math:`\alpha\,\mathrm{sign}(w)`).

    Parameters
    ----------
    coef : lambda >= 0, or a callable ``step -> lambda``
    {sel}
    """
    return Penalty(
        [_l1_term(coef)],
        per_layer=per_layer,
        exclude=exclude,
        include_bias_and_norm=include_bias_and_norm,
        model=model,
    )


def l2(
    coef: Coef,
    *,
    batch_size: int | None = None,
    exclude: str | Sequence[str] = (),
    include_bias_and_norm: bool = False,
    per_layer: Sequence[LayerRule | Mapping[str, Any]] = (),
    model: nn.Module | None = None,
) -> Penalty:
    r"""L2 (ridge / Tikhonov): :math:`\Omega = \frac{\alpha}{2}\|W\|_2^2` (GBC eq. 7.2), or with
    ``batch_size=m`` seed 000's :math:`\frac{\lambda}{2m}\|W\|_2^2` (§1.1.3).

    The gradient is :math:`\alpha w` (GBC 7.3), so SGD on it is weight decay (GBC 7.5). For
    linear regression with data loss :math:`\frac{1}{2}\|Xw-y\|^2` the minimizer is the ridge
    solution :math:`(X^\top X + \alpha I)^{-1}X^\top y` (GBC 7.17; the slide's 7.15 omits the
    1/2 on the data term). With a batch-mean data loss :math:`\frac{1}{2m}\|Xw-y\|^2` and
    ``batch_size=m`` it is the same solution with :math:`\alpha=\lambda`, whatever ``m``.

    Parameters
    ----------
    coef : alpha (or lambda) >= 0, or a callable ``step -> coef``
    batch_size : m in seed 000's lambda/(2m); None means m = 1 (GBC's alpha/2)
    {sel}
    """
    return Penalty(
        [_l2_term(coef, _batch_scale(batch_size))],
        per_layer=per_layer,
        exclude=exclude,
        include_bias_and_norm=include_bias_and_norm,
        model=model,
    )


def elastic_net(
    *,
    l1: Coef | None = None,
    l2: Coef | None = None,
    lam: Coef | None = None,
    alpha: float | None = None,
    l1_ratio: float | None = None,
    batch_size: int | None = None,
    exclude: str | Sequence[str] = (),
    include_bias_and_norm: bool = False,
    per_layer: Sequence[LayerRule | Mapping[str, Any]] = (),
    model: nn.Module | None = None,
) -> Penalty:
    r"""Elastic net (Zou & Hastie 2005), in one of three parameterizations.

    * ``l1=, l2=`` (seed 000 §1.1.3): :math:`\frac{\lambda_2}{2m}\|W\|_2^2 + \lambda_1\|W\|_1`,
      ``m = batch_size`` (default 1).
    * ``lam=, alpha=`` (seed 001, slide "Elastic Net"):
      :math:`\lambda(\alpha\|w\|_2^2 + (1-\alpha)\|w\|_1)`, :math:`\alpha\in[0,1]` weighs the
      L2 part (no 1/2).
    * ``lam=, l1_ratio=`` (scikit-learn/glmnet):
      :math:`\lambda(r\|w\|_1 + \frac{1-r}{2}\|w\|_2^2)`, :math:`r\in[0,1]`.

    Parameters
    ----------
    l1, l2 : seed 000 coefficients (>= 0 or callables of the step)
    lam : overall strength lambda for the two ratio forms (>= 0 or a callable)
    alpha : seed 001's L2 share in [0, 1]
    l1_ratio : scikit-learn's L1 share in [0, 1]
    batch_size : m of the seed 000 form
    {sel}
    """
    seed000 = l1 is not None or l2 is not None
    ratio_forms = [x is not None for x in (alpha, l1_ratio)]
    if seed000 and (lam is not None or any(ratio_forms)):
        raise ValueError(
            "elastic_net: give either l1=/l2= (seed 000) or lam= with alpha= or l1_ratio="
        )
    if not seed000 and sum(ratio_forms) != 1:
        raise ValueError("elastic_net: give l1=/l2=, or lam= with exactly one of alpha=, l1_ratio=")
    sel = {
        "per_layer": per_layer,
        "exclude": exclude,
        "include_bias_and_norm": include_bias_and_norm,
        "model": model,
    }
    if seed000:
        m = _batch_scale(batch_size)
        terms = [] if l2 is None else [_l2_term(l2, m)]
        if l1 is not None:
            terms.append(_l1_term(l1))
        return Penalty(terms, **sel)
    if batch_size is not None:
        raise ValueError("elastic_net: batch_size only applies to the l1=/l2= (seed 000) form")
    if lam is None:
        raise ValueError("elastic_net: lam= is required with alpha= or l1_ratio=")
    lam_c = check_coef("lam", lam)
    name, r = ("alpha", alpha) if alpha is not None else ("l1_ratio", l1_ratio)
    r = check_probability(name, r)
    w2, w1 = (r, 1.0 - r) if name == "alpha" else (0.5 * (1.0 - r), r)
    return Penalty(
        [
            Term(p=2.0, coef=lam_c, factor=w2, label="l2"),
            Term(p=1.0, coef=lam_c, factor=w1, label="l1"),
        ],
        **sel,
    )


def per_layer(
    rules: Sequence[LayerRule | Mapping[str, Any]],
    *,
    exclude: str | Sequence[str] = (),
    include_bias_and_norm: bool = False,
    model: nn.Module | None = None,
) -> Penalty:
    r"""Seed 000's multilayer penalty :math:`\sum_j \Lambda_j \|W_j\|_{p_j}^{p_j}` (§1.1.3).

    Each rule ``{pattern|type, coef, p=2}`` selects layer(s) ``W_j`` by module-name pattern or
    module type; ``coef`` is :math:`\Lambda_j` (no 1/2 factor: ``p=2, coef=a/2`` equals
    ``l2(a)`` on that layer). Its gradient is :math:`\Lambda_j p_j |w|^{p_j-1}\mathrm{sign}(w)`.
    """
    return Penalty(
        [],
        per_layer=rules,
        exclude=exclude,
        include_bias_and_norm=include_bias_and_norm,
        model=model,
    )


for _f in (l1, l2, elastic_net):
    _f.__doc__ = (_f.__doc__ or "").replace("{sel}", _SEL_DOC)
