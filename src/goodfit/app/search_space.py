"""The ``[search.space]`` table: dotted config keys -> distributions, parsed, validated and
sampled through an Optuna trial.

::

    [search.space]
    "optimizer.lr"        = { log_uniform = [1e-4, 1e-1] }          # log-uniform float
    "model.dropout.p"     = { uniform = [0.0, 0.6] }                # uniform float (+ step)
    "model.kernel_size"   = { int = [2, 5] }                        # integers (+ step, log)
    "optimizer.name"      = { choice = ["sgd", "adam"] }            # categorical
    "model.channels"      = { choice = [[16, 32], [32, 64]] }       # a choice may be a list
    "optimizer.momentum"  = { uniform = [0.0, 0.95], when = { "optimizer.name" = "sgd" } }

``when`` makes a key conditional: it is sampled (and set) only when every named key (another
choice of the space) took the given value, or one of the values of a list (to match a list
value itself, wrap it: ``[[16, 32]]``).

:func:`parse_space` checks the grammar (an unknown distribution, an empty range, a log range
touching 0, a ``when`` naming no choice); :func:`check_space` builds each range's two ends and
each choice into the base config (``parse_config`` + ``check_buildable`` on the dataset), so a
key the config does not have, or a value that fails that key's own validation, is a
:class:`~goodfit.errors.ConfigError` naming the key before the first trial.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from goodfit.errors import ConfigError

__all__ = ["Param", "check_space", "grid_space", "parse_space", "suggest"]

DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
_OPTIONS = {"log_uniform": (), "uniform": ("step",), "int": ("step", "log"), "choice": ()}
_SCALAR = (str, int, float, bool)


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched key: its distribution, bounds or choices, and its conditions."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def encoded(self) -> tuple[Any, ...]:
        """The choices as Optuna stores them (a list value as its JSON text)."""
        return tuple(c if isinstance(c, _SCALAR) else json.dumps(c) for c in self.choices)

    def decode(self, value: Any) -> Any:
        """A value as Optuna stored it -> the config value."""
        if self.kind != "choice":
            return value
        return self.choices[self.encoded.index(value)]

    def active(self, values: dict[str, Any]) -> bool:
        """Whether every ``when`` condition holds for the values sampled so far."""
        return all(k in values and values[k] in allowed for k, allowed in self.when)

    def corners(self) -> list[Any]:
        """The values that bound what this key can take: a range's two ends, every choice."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def _where(source: str, key: str) -> str:
    return f'{source}: search.space."{key}"'


def _bounds(spec: dict[str, Any], kind: str, where: str) -> tuple[float, float]:
    value = spec[kind]
    numbers = isinstance(value, list) and len(value) == 2
    numbers = numbers and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not numbers:
        raise ConfigError(f"{where}: {kind} needs [low, high], two finite numbers (got {value!r})")
    low, high = value
    if kind == "int" and not all(isinstance(v, int) for v in value):
        raise ConfigError(f"{where}: int needs two integers [low, high] (got {value!r})")
    if (kind == "int" and low > high) or (kind != "int" and low >= high):
        raise ConfigError(f"{where}: {kind} = {value!r} is an empty range (needs low < high)")
    if (kind == "log_uniform" or spec.get("log")) and low <= 0:
        raise ConfigError(
            f"{where}: {kind} = {value!r}: a log range must lie above 0 (low > 0), got low = {low}"
        )
    return low, high


def _step(spec: dict[str, Any], kind: str, low: float, high: float, where: str) -> Any:
    step = spec.get("step")
    if step is None:
        return None
    ok = isinstance(step, int) if kind == "int" else isinstance(step, int | float)
    if not ok or isinstance(step, bool) or not 0 < step <= high - low:
        raise ConfigError(
            f"{where}: step = {step!r} must be a {'n integer' if kind == 'int' else ' number'} "
            f"in (0, high - low]"
        )
    if kind == "int" and spec.get("log"):
        raise ConfigError(f"{where}: int with log = true takes no step")
    return step


def _choices(spec: dict[str, Any], where: str) -> tuple[Any, ...]:
    value = spec["choice"]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: choice needs a non-empty list of values (got {value!r})")
    encoded = [c if isinstance(c, _SCALAR) else json.dumps(c) for c in value]
    if len({json.dumps(e) for e in encoded}) != len(encoded):
        raise ConfigError(f"{where}: choice lists a value twice ({value!r})")
    return tuple(value)


def _parse_one(key: str, spec: Any, source: str) -> Param:
    where = _where(source, key)
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where}: expected a table such as {{ log_uniform = [1e-4, 1e-1] }}, got {spec!r}"
        )
    kinds = [k for k in DISTRIBUTIONS if k in spec]
    if len(kinds) != 1:
        raise ConfigError(
            f"{where}: give exactly one distribution of {', '.join(DISTRIBUTIONS)} "
            f"(got {', '.join(spec) or 'none'})"
        )
    kind = kinds[0]
    extra = sorted(set(spec) - {kind, "when", *_OPTIONS[kind]})
    if extra:
        allowed = ", ".join((kind, "when", *_OPTIONS[kind]))
        raise ConfigError(f"{where}: unknown key {extra[0]!r} for {kind}; allowed: {allowed}")
    when = spec.get("when", {})
    if not isinstance(when, dict):
        raise ConfigError(f'{where}: when needs a table such as {{ "optimizer.name" = "sgd" }}')
    conditions = tuple((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in when.items())
    if kind == "choice":
        return Param(key, kind, choices=_choices(spec, where), when=conditions)
    if "log" in spec and not isinstance(spec["log"], bool):
        raise ConfigError(f"{where}: log must be true or false (got {spec['log']!r})")
    low, high = _bounds(spec, kind, where)
    step = _step(spec, kind, low, high, where)
    log = kind == "log_uniform" or bool(spec.get("log", False))
    return Param(key, kind, low, high, step, log, when=conditions)


def _order(params: dict[str, Param], source: str) -> list[Param]:
    """The keys in sampling order: a conditional key after the keys its ``when`` names."""
    for p in params.values():
        for parent, allowed in p.when:
            where = _where(source, p.key)
            target = params.get(parent)
            if target is None or target.kind != "choice" or parent == p.key:
                choices = [k for k, q in params.items() if q.kind == "choice"]
                raise ConfigError(
                    f"{where}: when names {parent!r}, which is not another choice of "
                    f"[search.space]; choices: {choices}"
                )
            bad = [v for v in allowed if v not in target.choices]
            if bad:
                raise ConfigError(
                    f"{where}: when {parent!r} = {bad[0]!r}, which is not one of its choices "
                    f"{list(target.choices)}"
                )
    ordered: list[Param] = []
    pending = dict(params)
    while pending:
        ready = [
            p for p in pending.values() if all(k in {q.key for q in ordered} for k, _ in p.when)
        ]
        if not ready:
            raise ConfigError(
                f"{source}: search.space: the when conditions of {sorted(pending)} form a cycle"
            )
        for p in ready:
            ordered.append(pending.pop(p.key))
    return ordered


def parse_space(space: dict[str, Any], source: str = "config") -> list[Param]:
    """The ``[search.space]`` table as :class:`Param` in sampling order (grammar checked)."""
    if not space:
        raise ConfigError(f"{source}: search.space is empty; name at least one key to search")
    params = {key: _parse_one(key, spec, source) for key, spec in space.items()}
    return _order(params, source)


def _context(param: Param, params: dict[str, Param]) -> dict[str, Any]:
    """Values of the keys ``param``'s conditions name (recursively) that make it active."""
    out: dict[str, Any] = {}
    for parent, allowed in param.when:
        out.update(_context(params[parent], params))
        out[parent] = allowed[0]
    return out


def check_space(
    params: list[Param], data: dict[str, Any], dataset: Any, source: str = "config"
) -> None:
    """Build the base config with each range end and each choice of every key (the keys its
    ``when`` needs set to make it active), so a key the config lacks or a value that key's own
    validation refuses is a :class:`ConfigError` naming the key, before any trial."""
    from goodfit.app.build import check_buildable, prepare_from_config
    from goodfit.app.config import apply_overrides, parse_config

    by_key = {p.key: p for p in params}
    prepared: dict[str, Any] = {}
    for p in params:
        context = _context(p, by_key)
        for value in p.corners():
            where = f"{_where(source, p.key)} = {value!r}"
            try:
                cfg = parse_config(apply_overrides(data, {**context, p.key: value}), where)
                cache = json.dumps([cfg.data.model_dump(mode="json"), cfg.train.seed])
                if cache not in prepared:
                    prepared[cache] = prepare_from_config(cfg, dataset)
                check_buildable(cfg, prepared[cache])
            except ConfigError as err:
                msg = str(err).replace("--set ", "")
                raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def suggest(trial: Any, params: list[Param]) -> dict[str, Any]:
    """Sample every active key through ``trial`` (an :class:`optuna.Trial`): dotted key ->
    config value, in sampling order."""
    values: dict[str, Any] = {}
    for p in params:
        if not p.active(values):
            continue
        if p.kind == "choice":
            values[p.key] = p.decode(trial.suggest_categorical(p.key, list(p.encoded)))
        elif p.kind == "int":
            step = p.step or 1
            values[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high), step=step, log=p.log)
        else:
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
    return values


def grid_space(params: list[Param], source: str = "config") -> dict[str, list[Any]]:
    """The grid of Optuna's ``GridSampler``: every choice, every integer of a range; a float
    range (without ``step``) or a conditional key has no grid."""
    grid: dict[str, list[Any]] = {}
    for p in params:
        where = _where(source, p.key)
        if p.when:
            raise ConfigError(f"{where}: the grid sampler takes no conditional keys (when)")
        if p.kind == "choice":
            grid[p.key] = list(p.encoded)
        elif p.kind == "int" and not p.log:
            grid[p.key] = list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
        elif p.kind == "uniform" and p.step is not None:
            n = round((p.high - p.low) / p.step)
            grid[p.key] = [p.low + i * p.step for i in range(n + 1)]
        else:
            raise ConfigError(
                f"{where}: the grid sampler needs a choice, an int range or a uniform range "
                f"with a step; {p.kind} has no grid"
            )
    return grid
