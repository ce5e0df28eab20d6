"""``[schedule]`` -> a schedule: the registry :data:`SCHEDULES`, :func:`schedule_from_config`.

Maps the lower_snake_case names of a config's ``[schedule]`` section to the factories of
:mod:`goodfit.schedules`, converts ``X_epochs`` durations to steps (or keeps epochs
with ``interval = "epoch"``), and fills the run length and the initial/peak rate from the run
(its epochs and the optimizer's lr) when the config leaves them out.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from goodfit import schedules
from goodfit.checks import check_choice, check_int, check_real
from goodfit.schedules import Schedule

__all__ = ["SCHEDULES", "schedule_from_config"]


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": schedules.constant,
    "inverse_time": schedules.inverse_time,
    "linear": schedules.linear,
    "exponential": schedules.exponential,
    "sqrt_decay": schedules.sqrt_decay,
    "inverse_sqrt": schedules.inverse_sqrt,
    "polynomial": schedules.polynomial,
    "piecewise_constant": schedules.piecewise_constant,
    "cosine": schedules.cosine,
    "warmup_cosine": schedules.warmup_cosine,
    "cosine_restarts": schedules.cosine_restarts,
    "cyclic": schedules.cyclic,
    "one_cycle": schedules.one_cycle,
}

# name -> (key that defaults to the optimizer's lr, keys that replace it, key defaulting to the run)
_CONFIG_DEFAULTS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "constant": ("value", (), None),
    "inverse_time": ("init_value", (), None),
    "linear": ("init_value", (), "transition_steps"),
    "exponential": ("init_value", (), None),
    "sqrt_decay": ("init_value", (), None),
    "inverse_sqrt": ("init_value", (), None),
    "polynomial": ("init_value", (), "decay_steps"),
    "piecewise_constant": ("init_value", ("values",), None),
    "cosine": ("init_value", (), "decay_steps"),
    "warmup_cosine": ("peak", ("slope",), "total_steps"),
    "cosine_restarts": ("init_value", (), None),
    "cyclic": ("high", (), None),
    "one_cycle": ("peak", (), "total_steps"),
}


def _epochs_to_steps(key: str, value: Any, unit: int, interval: str) -> Any:
    if isinstance(value, (list, tuple)):
        return [_epochs_to_steps(f"{key}[{i}]", v, unit, interval) for i, v in enumerate(value)]
    v = check_real(key, value, low=0.0)
    if interval == "epoch":
        if v != int(v):
            raise ValueError(
                f"{key} must be a whole number of epochs with interval='epoch', got {value!r}"
            )
        return int(v)
    return round(v * unit)


def schedule_from_config(
    name: str,
    params: dict[str, Any],
    *,
    base_lr: float,
    steps_per_epoch: int,
    epochs: int,
    interval: str | None = None,
) -> Schedule:
    """Build a schedule from a config's ``[schedule]`` section.

    ``name`` is a key of :data:`SCHEDULES`; ``params`` are the factory's keyword arguments, plus
    optionally ``interval = "step" | "epoch"`` (the schedule's position counts optimizer steps or
    epochs; default ``"step"``; it may also be passed as the ``interval`` keyword).

    Durations: every duration parameter ``X_steps`` (and ``boundaries``) may be given as
    ``X_epochs`` (``boundaries_epochs``) instead. With ``interval="step"``, epochs are multiplied
    by ``steps_per_epoch`` (rounded); with ``interval="epoch"`` the schedule's unit *is* the
    epoch, so only ``X_epochs`` keys are accepted. The run-length parameter (``decay_steps`` of
    cosine/polynomial, ``total_steps`` of warmup_cosine/one_cycle, ``transition_steps`` of
    linear) defaults to the whole run, and the initial/peak value (``value``, ``init_value``,
    ``peak``, or cyclic's ``high``) defaults to ``base_lr``.

    Unknown keys raise ``TypeError`` naming the key; bad values raise ``ValueError``.
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule name must be one of {sorted(SCHEDULES)}, got {name!r}")
    params = dict(params)
    in_params = params.pop("interval", None)
    if in_params is not None and interval is not None and in_params != interval:
        raise ValueError(f"interval given twice: {in_params!r} and {interval!r}")
    interval = check_choice("interval", in_params or interval or "step", ("step", "epoch"))
    check_real("base_lr", base_lr, low=0.0)
    unit = check_int("steps_per_epoch", steps_per_epoch, low=1)
    epochs = check_int("epochs", epochs, low=1)
    if interval == "epoch":
        unit = 1
    factory = SCHEDULES[name]
    allowed = set(inspect.signature(factory).parameters)
    kwargs: dict[str, Any] = {}
    for key, value in params.items():
        if key == "boundaries_epochs" or key.endswith("_epochs"):
            target = "boundaries" if key == "boundaries_epochs" else key[: -len("epochs")] + "steps"
            if target not in allowed:
                raise TypeError(f"schedule {name!r} got an unexpected parameter {key!r}")
            if target in params:
                raise ValueError(f"give {key!r} or {target!r}, not both")
            kwargs[target] = _epochs_to_steps(key, value, unit, interval)
            continue
        if key not in allowed:
            raise TypeError(
                f"schedule {name!r} got an unexpected parameter {key!r}; allowed: {sorted(allowed)}"
            )
        if interval == "epoch" and (key == "boundaries" or key.endswith("_steps")):
            epochs_key = "boundaries_epochs" if key == "boundaries" else key[:-5] + "epochs"
            raise ValueError(
                f"{key!r} is a number of steps but interval='epoch' counts epochs; "
                f"give {epochs_key!r}"
            )
        kwargs[key] = value
    base_key, alternatives, run_key = _CONFIG_DEFAULTS[name]
    if base_key not in kwargs and not any(k in kwargs for k in alternatives):
        kwargs[base_key] = base_lr
    if run_key is not None and run_key not in kwargs:
        kwargs[run_key] = epochs * unit
    return factory(**kwargs)
