"""Configuration: the whole config model, TOML loading and writing, ``--set`` overrides.

A config is a TOML file with the sections below (all optional except what a run needs)::

    [data]            name = "digits"          # built-in name, or a path to a .npz / .csv file
    [model]           kind = "cnn2d", channels = [32, 64], dropout = {kind = "standard", p = 0.2}
    [optimizer]       name = "adam", lr = 1e-3  # + the optimizer's own keyword arguments
    [schedule]        name = "cosine", interval = "step"   # + the schedule's parameters
    [regularize]      l2 = 1e-4 ...
    [augment]         ops = [{name = "hflip", p = 0.5}]
    [train]           epochs = 30, batch_size = 32, seed = 0, device = "cpu"
    [early_stopping]  patience = 10, monitor = "val_loss"
    [checkpoint]      every = 1
    [study]           (see goodfit.app.study)
    [search]          (see goodfit.app.search)
    [output_noise] [weight_noise] [adversarial] [curriculum] [multitask]
                      (goodfit.app.sections_strategies)
    [ensemble]        method = "bagging", members = 8   (see goodfit.app.ensemble_run)
    [sweep]           param = "model.widths", values = [[4, 4], [8, 8]]  (goodfit.app.sweep)

Unknown keys are rejected, types and ranges are checked, and every error names the file, the
key and what is allowed. Sections whose keys are the keyword arguments of a registered factory
(optimizer, schedule, augment ops, ...) are checked against that factory when the run is built.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from pydantic import BaseModel, Field, ValidationError

from goodfit.app.sections import (
    AugmentConfig,
    CheckpointConfig,
    DataConfig,
    EarlyStoppingConfig,
    ModelConfig,
    OptimizerConfig,
    RegularizeConfig,
    ScheduleConfig,
    SearchConfig,
    StudyConfig,
    TrainConfig,
    _Strict,
)
from goodfit.app.sections_clean import CleanConfig
from goodfit.app.sections_ensemble import EnsembleConfig
from goodfit.app.sections_strategies import (
    AdversarialConfig,
    CurriculumConfig,
    MultiTaskConfig,
    OutputNoiseConfig,
    WeightNoiseConfig,
)
from goodfit.app.sections_sweep import SweepConfig
from goodfit.errors import ConfigError

__all__ = [
    "Config",
    "apply_overrides",
    "config_to_toml",
    "format_validation_error",
    "load_config",
    "parse_config",
]


class Config(_Strict):
    """A whole run: every section of :mod:`goodfit.app.sections`."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig | None = None
    regularize: RegularizeConfig | None = None
    augment: AugmentConfig | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    study: StudyConfig | None = None
    search: SearchConfig | None = None
    output_noise: OutputNoiseConfig | None = None
    weight_noise: WeightNoiseConfig | None = None
    adversarial: AdversarialConfig | None = None
    curriculum: CurriculumConfig | None = None
    multitask: MultiTaskConfig | None = None
    clean: CleanConfig | None = None
    ensemble: EnsembleConfig | None = None
    sweep: SweepConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (``None`` sections dropped), TOML-writable."""
        return _drop_none(self.model_dump(mode="json"))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (``Model``, ``Model | None``, ``list[Model]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in getattr(annotation, "__args__", ()) for m in _models_in(a)]


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model of the table at ``loc`` (list indices skipped), ``None`` if not a model."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part)) if model is not None else None
        models = _models_in(getattr(field, "annotation", None))
        model = models[0] if models else None
        if model is None:
            return None
    return model


def _key_of(loc: tuple[Any, ...]) -> str:
    """``("regularize", "per_layer", 0, "coef")`` -> ``regularize.per_layer[0].coef``; the
    union-member tags pydantic adds (``dict[str,any]``, ``constrained-float``) are dropped."""
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif str(part).isidentifier():
            key += f".{part}" if key else str(part)
    return key


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per offending key: ``source: dotted.key: what is wrong (got value)``."""
    lines: list[tuple[str, str]] = []
    for e in err.errors():
        key = _key_of(e["loc"]) or "(root)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            section = _key_of(e["loc"][:-1])
            model = _section_model(e["loc"][:-1])
            allowed = sorted(model.model_fields) if model is not None else []
            where = f"section [{section}]" if section else "the top level"
            msg = f"unknown key in {where}; allowed keys: {', '.join(allowed)}"
        elif e["type"] == "value_error":
            msg = str(e.get("ctx", {}).get("error", msg))
        elif "input" in e and e["type"] not in ("missing",):
            msg = f"{msg} (got {e['input']!r})"
        lines.append((key, msg))
    merged: dict[str, list[str]] = {}
    for key, msg in lines:  # a union's members each report: one line per key
        merged.setdefault(key, []).append(msg)
    return "\n".join(f"{source}: {key}: {'; or '.join(msgs)}" for key, msgs in merged.items())


def parse_config(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain dict into a :class:`Config`, raising :class:`ConfigError`."""
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as TOML, else taken as strings).

    A dict maps dotted keys to already-parsed values. Returns a new dict.
    """
    import copy

    out = copy.deepcopy(data)
    items = (
        overrides.items()
        if isinstance(overrides, dict)
        else (_split_override(o) for o in overrides)
    )
    for key, value in items:
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _split_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--set expects key=value (e.g. optimizer.lr=0.01), got {text!r}")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set: bad key {key!r} in {text!r}")
    return key, _parse_value(value.strip())


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning a missing file or a syntax error into :class:`ConfigError`."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; expected a .toml config file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load and validate a TOML config (``None``: all defaults), applying ``--set`` overrides."""
    data = read_toml(path) if path is not None else {}
    if overrides:
        data = apply_overrides(data, overrides)
    return parse_config(data, str(path) if path is not None else "config")


def config_to_toml(data: dict[str, Any]) -> str:
    """Write plain config data as TOML (tables for sections, inline tables inside arrays)."""
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for key, value in scalars.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for section, table in data.items():
        if isinstance(table, dict):
            _toml_table(section, table, lines)
    return "\n".join(lines).strip() + "\n"


def _toml_table(name: str, table: dict[str, Any], lines: list[str]) -> None:
    lines.append(f"\n[{name}]")
    nested = {}
    for key, value in table.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            nested[key] = value
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in nested.items():
        _toml_table(f"{name}.{_toml_key(key)}", value, lines)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def _toml_value(value: Any) -> str:
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
