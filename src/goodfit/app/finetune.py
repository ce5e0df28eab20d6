"""Pretraining and fine-tuning (seed 000: "weights pretraining", "pretraining VS fine tuning,
backbone architecture VS head"): ``model.init_from`` (a finished run's weights), ``train.freeze``
(parameters that do not train) and ``train.lr_multipliers`` (per-pattern learning rates as
optimizer param groups).

Patterns are ``fnmatch`` globs on parameter names as ``model.named_parameters()`` gives them
(``"0.*"``, ``"*.weight"``, ``"net.4.*"``); a weight-noise or spectral-norm parametrization's
``parametrizations.weight.original`` is read as plain ``weight``, so a pattern and a stored
run's keys mean the same whatever parametrizations either run had.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from goodfit.errors import ConfigError

__all__ = ["apply_freeze", "canonical_name", "load_init", "split_by_multiplier"]

_PARAMETRIZED = re.compile(r"\.?parametrizations\.(\w+)\.original$")


def canonical_name(name: str) -> str:
    """``"0.parametrizations.weight.original"`` -> ``"0.weight"``; other names unchanged."""
    return _PARAMETRIZED.sub(
        lambda m: ("." if m.group(0).startswith(".") else "") + m.group(1), name
    )


def _model_file(run_dir: str | Path) -> Path:
    run = Path(run_dir)
    path = run / "model.pt" if run.is_dir() else run
    if not path.is_file():
        raise ConfigError(
            f"model.init_from = {str(run_dir)!r}: no finished run there (expected "
            f"{run / 'model.pt'}, written by `goodfit train` when a run ends)"
        )
    return path


def load_init(model: nn.Module, run_dir: str | Path, *, skip_mismatched: bool = False) -> list[str]:
    """Copy the weights of a run (``RUN_DIR/model.pt``, read with ``weights_only=True``) into
    ``model``, matched by (canonical) name. A tensor whose shape differs is a
    :class:`ConfigError` naming the layer and both shapes, unless ``skip_mismatched`` (then it
    keeps this model's initialization: a new head). A name in either but not both is an error.
    Returns the names skipped."""
    path = _model_file(run_dir)
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(f"model.init_from: cannot read {path}: {err}") from None
    if not isinstance(stored, dict) or not all(
        isinstance(v, torch.Tensor) for v in stored.values()
    ):
        raise ConfigError(f"model.init_from: {path} does not hold a state dict of tensors")
    source = {canonical_name(k): v for k, v in stored.items()}
    target = {canonical_name(k): k for k in model.state_dict()}
    missing, extra = sorted(set(target) - set(source)), sorted(set(source) - set(target))
    if missing or extra:
        raise ConfigError(
            f"model.init_from = {str(run_dir)!r}: the stored model has other layers than this "
            f"config's; missing there: {', '.join(missing) or '-'}; not in this model: "
            f"{', '.join(extra) or '-'} (use the same [model] builder and depths)"
        )
    own = model.state_dict()
    update, skipped = {}, []
    for name, key in target.items():
        if source[name].shape != own[key].shape:
            if not skip_mismatched:
                raise ConfigError(
                    f"model.init_from: layer {name!r} has shape {tuple(source[name].shape)} in "
                    f"{path} but {tuple(own[key].shape)} in this model; set "
                    "model.init_skip_mismatched = true to keep a new head's initialization"
                )
            skipped.append(name)
            continue
        update[key] = source[name].to(own[key].dtype)
    model.load_state_dict(update, strict=False)
    return skipped


def _matching(model: nn.Module, pattern: str, key: str) -> list[str]:
    names = [n for n, _ in model.named_parameters()]
    hits = [n for n in names if fnmatch.fnmatchcase(canonical_name(n), pattern)]
    if not hits:
        shown = ", ".join(canonical_name(n) for n in names[:12])
        raise ConfigError(
            f"{key}: pattern {pattern!r} matches no parameter; parameter names: {shown}"
            + (", ..." if len(names) > 12 else "")
        )
    return hits


def apply_freeze(model: nn.Module, patterns: list[str]) -> list[str]:
    """``requires_grad = False`` for every parameter matching one of ``patterns``; returns the
    frozen names. Frozen parameters are left out of the optimizer, so they never change."""
    frozen: list[str] = []
    params = dict(model.named_parameters())
    for pattern in patterns:
        for name in _matching(model, pattern, "train.freeze"):
            params[name].requires_grad_(False)
            frozen.append(name)
    return sorted(set(frozen))


def split_by_multiplier(
    model: nn.Module, groups: list[dict[str, Any]], multipliers: dict[str, float]
) -> list[dict[str, Any]]:
    """Split each param group by the first pattern of ``multipliers`` a parameter matches; a
    split group carries ``lr_mult`` (the schedule callbacks scale each group's rate by it)."""
    if not multipliers:
        return groups
    params = dict(model.named_parameters())
    mult_of: dict[int, float] = {}
    for pattern, mult in multipliers.items():
        for name in _matching(model, pattern, "train.lr_multipliers"):
            mult_of.setdefault(id(params[name]), float(mult))
    out = []
    for group in groups:
        by_mult: dict[float, list[nn.Parameter]] = {}
        for p in group["params"]:
            by_mult.setdefault(mult_of.get(id(p), 1.0), []).append(p)
        out += [{**group, "params": ps, "lr_mult": m} for m, ps in by_mult.items()]
    return out


def scale_group_lrs(optimizer: torch.optim.Optimizer) -> None:
    """Multiply each param group's initial ``lr`` by its ``lr_mult``."""
    for group in optimizer.param_groups:
        mult = group.get("lr_mult", 1.0)
        if mult != 1.0 and "lr" in group:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].mul_(mult)
            else:
                group["lr"] = group["lr"] * mult
