"""The ``[regularize]`` config table: :func:`penalty_from_config` and its key checks.

Turns the TOML table (``l1``, ``l2``, ``l2_scale_by_batch``, ``elastic``, ``per_layer``,
``exclude``, ``include_bias_and_norm``, ``prior``, ``tying``) into one penalty bound to a model,
built from :mod:`goodfit.regularize.penalties` and :mod:`goodfit.regularize.tying`; unknown keys and
bad values raise :class:`goodfit.errors.ConfigError` naming the key. (``constraints`` is read by
:func:`goodfit.regularize.constraints.constraints_from_config`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from goodfit.errors import ConfigError
from goodfit.regularize.penalties import (
    BasePenalty,
    LayerRule,
    Penalty,
    PenaltySum,
    Term,
    _check_batch_size,
    elastic_net,
    prior_coefficient,
)
from goodfit.regularize.selection import _as_list

__all__ = ["penalty_from_config"]

_CONFIG_KEYS = {
    "l1",
    "l2",
    "l2_scale_by_batch",
    "elastic",
    "per_layer",
    "exclude",
    "include_bias_and_norm",
    "prior",
    "tying",
    "constraints",
}


def _number(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"regularize.{key} must be a number, got {v!r}")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"regularize.{key} must be a finite number >= 0, got {v!r}")
    return float(v)


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"regularize.{key} must be true or false, got {v!r}")
    return v


def penalty_from_config(
    cfg: Mapping[str, Any] | None,
    model: nn.Module,
    *,
    batch_size: int | None = None,
    n_data: int | None = None,
) -> BasePenalty | None:
    r"""Build the penalty of a ``[regularize]`` config table, bound to ``model``.

    Keys (all optional; ``constraints`` is read by
    :func:`goodfit.regularize.constraints.constraints_from_config`):

    ``l1 = 1e-5``
        :math:`\lambda_1\|W\|_1` (:func:`l1`).
    ``l2 = 1e-4``
        :math:`\frac{\alpha}{2}\|W\|_2^2` (:func:`l2`, GBC 7.2).
    ``l2_scale_by_batch = false``
        if true, ``l2`` (and ``elastic.l2``) become seed 000's :math:`\frac{\lambda}{2m}` with
        ``m = batch_size`` (the keyword argument, which the caller takes from the training
        config).
    ``elastic = {l1 = .., l2 = ..}`` | ``{lam = .., alpha = ..}`` | ``{lam = .., l1_ratio = ..}``
        :func:`elastic_net` in seed 000's, seed 001's or scikit-learn's form.
    ``per_layer = [{pattern = "features.*", coef = 1e-3, p = 2}, {type = "Conv2d", coef = ..}]``
        seed 000's :math:`\Lambda_j\|W_j\|_{p_j}^{p_j}`, replacing the global terms on the
        parameters each rule matches (:class:`Penalty`).
    ``exclude = ["head.*"]``
        module-name patterns never penalized.
    ``include_bias_and_norm = false``
        penalize biases and normalization parameters too.
    ``prior = {kind = "gaussian" | "laplace", scale = 0.1, n_data = 60000}``
        the MAP-equivalent L2/L1 term (:func:`from_prior`); ``n_data`` defaults to the
        ``n_data`` keyword (training-set size) or 1.
    ``tying = [{a = "net_a", b = "net_b", coef = 0.1}]``
        :func:`goodfit.regularize.tying.tying_penalty` between two submodules (by name).

    Returns None when the table configures no penalty. Unknown keys and bad values raise
    :class:`goodfit.errors.ConfigError` (a ValueError) naming the key.
    """
    try:
        return _penalty_from_config(cfg, model, batch_size, n_data)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _penalty_from_config(
    cfg: Mapping[str, Any] | None,
    model: nn.Module,
    batch_size: int | None,
    n_data: int | None,
) -> BasePenalty | None:
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ValueError(f"[regularize] must be a table, got {cfg!r}")
    for k in cfg:
        if k not in _CONFIG_KEYS:
            raise ValueError(f"regularize: unknown key {k!r}; allowed: {sorted(_CONFIG_KEYS)}")
    scale_by_batch = _bool("l2_scale_by_batch", cfg.get("l2_scale_by_batch", False))
    include = _bool("include_bias_and_norm", cfg.get("include_bias_and_norm", False))
    exclude = cfg.get("exclude", [])
    if isinstance(exclude, str) or not all(isinstance(e, str) for e in _as_list(exclude)):
        raise ValueError(f"regularize.exclude must be a list of patterns, got {exclude!r}")
    if scale_by_batch and batch_size is None:
        raise ValueError("regularize.l2_scale_by_batch = true needs the training batch_size")
    m = float(batch_size) if scale_by_batch else 1.0
    if scale_by_batch:
        _check_batch_size(batch_size)

    terms: list[Term] = []
    if "l1" in cfg:
        terms.append(Term(p=1.0, coef=_number("l1", cfg["l1"]), factor=1.0, label="l1"))
    if "l2" in cfg:
        terms.append(Term(p=2.0, coef=_number("l2", cfg["l2"]), factor=0.5 / m, label="l2"))
    if "elastic" in cfg:
        el = cfg["elastic"]
        if not isinstance(el, Mapping):
            raise ValueError(f"regularize.elastic must be a table, got {el!r}")
        for k in el:
            if k not in ("l1", "l2", "lam", "alpha", "l1_ratio"):
                raise ValueError(
                    f"regularize.elastic: unknown key {k!r}; allowed: l1, l2, lam, alpha, l1_ratio"
                )
        for k in ("l1", "l2", "lam"):
            if k in el:
                _number(f"elastic.{k}", el[k])
        try:
            en = elastic_net(
                **dict(el), batch_size=batch_size if scale_by_batch and "l2" in el else None
            )
        except ValueError as e:
            raise ValueError(f"regularize.elastic: {e}") from None
        terms += [Term(t.p, t.coef, t.factor, f"elastic_{t.label}") for t in en.terms]
    if "prior" in cfg:
        pr = cfg["prior"]
        if not isinstance(pr, Mapping):
            raise ValueError(f"regularize.prior must be a table, got {pr!r}")
        for k in pr:
            if k not in ("kind", "scale", "n_data"):
                raise ValueError(
                    f"regularize.prior: unknown key {k!r}; allowed: kind, scale, n_data"
                )
        if "kind" not in pr or "scale" not in pr:
            raise ValueError("regularize.prior needs 'kind' and 'scale'")
        try:
            c = prior_coefficient(pr["kind"], pr["scale"], pr.get("n_data", n_data or 1))
        except ValueError as e:
            raise ValueError(f"regularize.prior: {e}") from None
        if pr["kind"] == "gaussian":
            terms.append(Term(p=2.0, coef=c, factor=0.5, label="prior_gaussian"))
        else:
            terms.append(Term(p=1.0, coef=c, factor=1.0, label="prior_laplace"))
    rules = cfg.get("per_layer", [])
    if not isinstance(rules, (list, tuple)):
        raise ValueError(f"regularize.per_layer must be a list of tables, got {rules!r}")
    rules = [LayerRule.coerce(r, f"regularize.per_layer[{i}]") for i, r in enumerate(rules)]

    parts: list[BasePenalty] = []
    terms = [t for t in terms if not (isinstance(t.coef, float) and t.coef * t.factor == 0.0)]
    if terms or rules:
        try:
            parts.append(
                Penalty(
                    terms,
                    per_layer=rules,
                    exclude=exclude,
                    include_bias_and_norm=include,
                    model=model,
                )
            )
        except ValueError as e:
            raise ValueError(f"regularize: {e}") from None
    tying = cfg.get("tying", [])
    if not isinstance(tying, (list, tuple)):
        raise ValueError(f"regularize.tying must be a list of tables, got {tying!r}")
    if tying:
        from goodfit.regularize.tying import tying_from_config

        parts += [
            tying_from_config(t, model, where=f"regularize.tying[{i}]") for i, t in enumerate(tying)
        ]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else PenaltySum(parts)
