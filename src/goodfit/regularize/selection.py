r"""Parameter selection shared by penalties, constraints and sparsity reports.

:func:`select_parameters` picks the named parameters of a model by module-name pattern and/or
module type, dropping biases and normalization parameters (:func:`is_bias_or_norm`) unless asked
not to (seed 001: parameter penalties are "typically not applied on bias terms").

Selection patterns
------------------
A *pattern* is matched against each parameter's owning module name and all its ancestors (e.g.
``"features"``, ``"features.0"``) and against the full parameter name (``"features.0.weight"``).
It is a glob (:func:`fnmatch.fnmatchcase`, e.g. ``"encoder.*"``) or, with the prefix ``"re:"``,
a regular expression that must match the whole name (``"re:layer[0-9]+"``). A *type* is a module
class or its class name (``"Conv2d"``) and is matched against the parameter's owning module. A
pattern or type that matches no parameter raises :class:`ValueError` naming it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

__all__ = ["is_bias_or_norm", "select_parameters"]

_TORCH_NORM_TYPES: tuple[type, ...] = tuple(
    t
    for t in (
        getattr(nn.modules.batchnorm, "_NormBase", None),
        nn.LayerNorm,
        nn.GroupNorm,
        getattr(nn, "RMSNorm", None),
        nn.LocalResponseNorm,
    )
    if t is not None
)


def _is_norm_module(module: nn.Module) -> bool:
    """True for BatchNorm/InstanceNorm/LayerNorm/GroupNorm/RMSNorm and any ``*Norm*`` class."""
    return isinstance(module, _TORCH_NORM_TYPES) or "norm" in type(module).__name__.lower()


def is_bias_or_norm(name: str, owner: nn.Module) -> bool:
    """Whether a parameter is excluded by default from penalties and constraints.

    True for biases (the last name component contains ``"bias"``, e.g. ``bias``,
    ``in_proj_bias``) and for every parameter of a normalization module (BatchNorm, InstanceNorm,
    LayerNorm, GroupNorm, RMSNorm, or any module whose class name contains ``"Norm"``). Seed 001:
    parameter penalties are "typically not applied on bias terms".
    """
    return "bias" in name.rsplit(".", 1)[-1] or _is_norm_module(owner)


def _candidates(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))] + [name]


def _match_pattern(pattern: str, name: str) -> bool:
    cands = _candidates(name)
    if pattern.startswith("re:"):
        rx = re.compile(pattern[3:])
        return any(rx.fullmatch(c) for c in cands)
    return any(fnmatch.fnmatchcase(c, pattern) for c in cands)


def _match_type(kind: str | type, owner: nn.Module) -> bool:
    if isinstance(kind, str):
        cls = type(owner)
        return kind in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}")
    return isinstance(owner, kind)


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    if isinstance(x, (str, type)):
        return [x]
    return list(x)


def _owner(modules: Mapping[str, nn.Module], name: str) -> nn.Module:
    return modules[name.rsplit(".", 1)[0] if "." in name else ""]


def select_parameters(
    model: nn.Module,
    *,
    pattern: str | Sequence[str] | None = None,
    type: str | type | Sequence[str | type] | None = None,
    exclude: str | Sequence[str] = (),
    include_bias_and_norm: bool = False,
    allow_empty: bool = False,
) -> list[tuple[str, nn.Parameter]]:
    """Named parameters of ``model`` chosen by module-name pattern and/or module type.

    With neither ``pattern`` nor ``type`` every parameter is a candidate; otherwise a parameter
    is chosen when it matches any pattern or any type (see the module docstring for the matching
    rules). Parameters matching an ``exclude`` pattern are dropped, and so are biases and
    normalization parameters (:func:`is_bias_or_norm`) unless ``include_bias_and_norm``.
    Shared parameters appear once. Only parameters with ``requires_grad`` are considered.

    Raises
    ------
    ValueError
        If a pattern, type or exclude pattern matches no parameter, or if nothing is left
        (unless ``allow_empty``).
    """
    patterns, types, excludes = _as_list(pattern), _as_list(type), _as_list(exclude)
    for p in [*patterns, *excludes]:
        if not isinstance(p, str) or not p:
            raise ValueError(f"patterns must be non-empty strings, got {p!r}")
        if p.startswith("re:"):
            try:
                re.compile(p[3:])
            except re.error as e:
                raise ValueError(f"invalid regular expression in pattern {p!r}: {e}") from None
    modules = dict(model.named_modules())
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    owners = {n: _owner(modules, n) for n, _ in named}

    for p in patterns:
        if not any(_match_pattern(p, n) for n, _ in named):
            raise ValueError(
                f"pattern {p!r} matches no parameter of the model; parameter names are "
                f"{[n for n, _ in named][:12]}"
            )
    for t in types:
        if not any(_match_type(t, owners[n]) for n, _ in named):
            tname = t if isinstance(t, str) else t.__name__
            raise ValueError(f"type {tname!r} matches no module with parameters in the model")
    for p in excludes:
        if not any(_match_pattern(p, n) for n, _ in named):
            raise ValueError(f"exclude pattern {p!r} matches no parameter of the model")

    chosen = []
    for n, prm in named:
        if (patterns or types) and not (
            any(_match_pattern(p, n) for p in patterns)
            or any(_match_type(t, owners[n]) for t in types)
        ):
            continue
        if any(_match_pattern(p, n) for p in excludes):
            continue
        if not include_bias_and_norm and is_bias_or_norm(n, owners[n]):
            continue
        chosen.append((n, prm))
    if not chosen and not allow_empty:
        what = ", ".join(repr(x) for x in [*patterns, *types]) or "the model"
        raise ValueError(
            f"{what} selects no parameter after excluding biases/normalization parameters and "
            f"exclude={excludes}; set include_bias_and_norm=True to penalize those"
        )
    return chosen
