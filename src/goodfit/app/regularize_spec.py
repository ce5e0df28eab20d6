"""``[regularize]`` -> the penalty and the constraints of a run.

The table is validated by :class:`goodfit.app.sections.RegularizeConfig`; here its entries
become :mod:`goodfit.regularize` objects bound to the model. Values the parts check themselves
(an elastic net's ``alpha`` in [0, 1], a per-layer ``p >= 1``, a pattern that matches nothing,
a constraint's own keyword arguments) raise :class:`goodfit.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from goodfit import regularize
from goodfit.app.sections import ConstraintConfig, RegularizeConfig
from goodfit.errors import ConfigError
from goodfit.regularize import BasePenalty, LayerRule, Penalty, PenaltySum, Term

__all__ = ["CONSTRAINTS", "constraints_from_config", "penalty_from_config"]

#: Constraint names of ``regularize.constraints[i].kind``.
CONSTRAINTS: dict[str, Callable[..., regularize.Constraint]] = {
    "max_norm": regularize.MaxNorm,
    "unit_norm": regularize.UnitNorm,
    "non_neg": regularize.NonNeg,
    "norm_ball": regularize.NormBall,
}
_SELECTION_KEYS = ("pattern", "type", "exclude", "include_bias_and_norm")


def _terms(cfg: RegularizeConfig, batch_size: int, n_data: int | None) -> list[Term]:
    """The global terms: ``l1`` (seed 000), ``l2`` (GBC 7.2, or seed 000's lambda/2m with
    ``l2_scale_by_batch``), the elastic net's two terms, and a MAP prior's term."""
    m = float(batch_size) if cfg.l2_scale_by_batch else 1.0
    terms: list[Term] = []
    if cfg.l1 is not None:
        terms.append(Term(p=1.0, coef=cfg.l1, factor=1.0, label="l1"))
    if cfg.l2 is not None:
        terms.append(Term(p=2.0, coef=cfg.l2, factor=0.5 / m, label="l2"))
    if cfg.elastic is not None:
        el = cfg.elastic.model_dump(exclude_none=True)
        scaled = cfg.l2_scale_by_batch and "l2" in el
        try:
            en = regularize.elastic_net(**el, batch_size=batch_size if scaled else None)
        except ValueError as e:
            raise ConfigError(f"regularize.elastic: {e}") from None
        terms += [Term(t.p, t.coef, t.factor, f"elastic_{t.label}") for t in en.terms]
    if cfg.prior is not None:
        pr = cfg.prior
        c = regularize.prior_coefficient(pr.kind, pr.scale, pr.n_data or n_data or 1)
        p, factor = (2.0, 0.5) if pr.kind == "gaussian" else (1.0, 1.0)
        terms.append(Term(p=p, coef=c, factor=factor, label=f"prior_{pr.kind}"))
    return [t for t in terms if t.coef * t.factor != 0.0]


def penalty_from_config(
    cfg: RegularizeConfig | None,
    model: nn.Module,
    *,
    batch_size: int,
    n_data: int | None = None,
) -> BasePenalty | None:
    """The penalty of ``cfg`` bound to ``model`` (``None`` when it has no penalty term).

    ``batch_size`` is seed 000's ``m`` of ``l2_scale_by_batch``; ``n_data`` (the number of
    training samples) is a prior's ``N`` unless ``prior.n_data`` is given.
    """
    if cfg is None:
        return None
    terms = _terms(cfg, batch_size, n_data)
    parts: list[BasePenalty] = []
    if terms or cfg.per_layer:
        try:
            rules = [
                LayerRule.coerce(r.model_dump(), f"regularize.per_layer[{i}]")
                for i, r in enumerate(cfg.per_layer)
            ]
            parts.append(
                Penalty(
                    terms,
                    per_layer=rules,
                    exclude=cfg.exclude,
                    include_bias_and_norm=cfg.include_bias_and_norm,
                    model=model,
                )
            )
        except ValueError as e:
            raise ConfigError(f"regularize: {e}") from None
    for i, t in enumerate(cfg.tying):
        parts.append(_tying(t.a, t.b, t.coef, model, f"regularize.tying[{i}]"))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else PenaltySum(parts)


def _tying(a: str, b: str, coef: float, model: nn.Module, where: str) -> BasePenalty:
    """GBC 7.9's ``coef * ||w_a - w_b||^2`` between the submodules named ``a`` and ``b``."""
    modules = []
    for key, name in (("a", a), ("b", b)):
        try:
            modules.append(model.get_submodule(name))
        except AttributeError:
            raise ConfigError(f"{where}.{key}: model has no submodule {name!r}") from None
    try:
        return regularize.TyingPenalty(modules[0], modules[1], coef)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def _allowed_keys(cls: Callable[..., Any]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    names = {n for n, p in params.items() if n not in ("self", "model") and p.kind != p.VAR_KEYWORD}
    return sorted(names | set(_SELECTION_KEYS))


def _constraint(entry: ConstraintConfig, model: nn.Module | None, where: str) -> Any:
    cls = CONSTRAINTS[entry.kind]
    kwargs = entry.kwargs()
    allowed = _allowed_keys(cls)
    for k in kwargs:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key {k!r} for {entry.kind!r}; allowed: {allowed}")
    try:
        return cls(**kwargs, model=model)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def constraints_from_config(
    cfg: RegularizeConfig | None, model: nn.Module | None = None
) -> list[regularize.Constraint]:
    """The ``constraints`` of ``cfg`` (bound to ``model`` when given; wrap them in
    :class:`goodfit.regularize.ConstraintCallback`)."""
    if cfg is None:
        return []
    return [
        _constraint(e, model, f"regularize.constraints[{i}]") for i, e in enumerate(cfg.constraints)
    ]
