"""Tests for goodfit.config: strict validation, --set overrides, TOML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from goodfit.app.config import apply_overrides, config_to_toml, load_config, parse_config
from goodfit.errors import ConfigError

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.toml"))


@pytest.mark.parametrize(
    ("data", "key", "what"),
    [
        ({"trian": {"epochs": 3}}, "trian", "unknown key in the top level"),
        ({"train": {"epoch": 3}}, "train.epoch", "unknown key in section [train]"),
        ({"early_stopping": {"patiense": 3}}, "early_stopping.patiense", "[early_stopping]"),
        ({"train": {"epochs": "ten"}}, "train.epochs", "'ten'"),
        ({"train": {"batch_size": 1.5}}, "train.batch_size", "1.5"),
        ({"data": {"standardize": "maybe"}}, "data.standardize", "'maybe'"),
        ({"model": {"kind": "rnn"}}, "model.kind", "'rnn'"),
        ({"train": {"epochs": 0}}, "train.epochs", "greater than or equal to 1"),
        ({"data": {"val_fraction": 1.5}}, "data.val_fraction", "less than 1"),
        ({"optimizer": {"lr": -1.0}}, "optimizer.lr", "greater than or equal to 0"),
        ({"early_stopping": {"patience": 0}}, "early_stopping.patience", "1"),
        ({"model": {"widths": [64, 0]}}, "model.widths[1]", "greater than or equal to 1"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(data, key, what):
    with pytest.raises(ConfigError) as info:
        parse_config(data, "my.toml")
    msg = str(info.value)
    assert msg.startswith(f"my.toml: {key}: ") and what in msg


def test_unknown_key_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"allowed keys: .*batch_size.*epochs"):
        parse_config({"train": {"epoch": 3}})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("train.epochs=7", 7),
        ("optimizer.lr=3e-4", 3e-4),
        ("data.standardize=false", False),
        ("model.widths=[8, 4]", [8, 4]),
        ('model.activation="tanh"', "tanh"),
        ("model.activation=gelu", "gelu"),  # not TOML: taken as a string
        ("model.dropout={kind = 'gaussian', p = 0.1}", {"kind": "gaussian", "p": 0.1}),
    ],
)
def test_set_overrides_parse_toml_values(text, value):
    out = apply_overrides({"train": {"epochs": 1}}, [text])
    section, key = text.split("=", 1)[0].split(".")
    assert out[section][key] == value and type(out[section][key]) is type(value)


def test_overrides_do_not_mutate_and_apply_to_a_file(write_toml):
    data = {"train": {"epochs": 1}}
    apply_overrides(data, ["train.epochs=2"])
    assert data == {"train": {"epochs": 1}}
    path = write_toml("[train]\nepochs = 3\n")
    cfg = load_config(path, ["train.epochs=4", "optimizer.momentum=0.9"])
    assert cfg.train.epochs == 4 and cfg.optimizer.kwargs() == {"momentum": 0.9}


@pytest.mark.parametrize("bad", ["train.epochs", "=3", "train..epochs=3"])
def test_malformed_overrides(bad):
    with pytest.raises(ConfigError, match="--set"):
        apply_overrides({}, [bad])


def test_override_into_a_value_is_an_error():
    with pytest.raises(ConfigError, match="'epochs' is a value"):
        apply_overrides({"train": {"epochs": 3}}, ["train.epochs.x=1"])


def test_missing_and_invalid_files(tmp_path, write_toml):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write_toml("[train\nepochs = 3"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip_through_toml(path):
    cfg = load_config(path)
    data = cfg.to_dict()
    assert tomllib.loads(config_to_toml(data)) == data
    assert parse_config(tomllib.loads(config_to_toml(data))) == cfg


def test_round_trip_of_nested_sections_and_factory_keys():
    data = {
        "data": {"name": "my data.csv", "label": "y", "options": {"delimiter": ";"}},
        "model": {"kind": "mlp", "dropout": {"kind": "gaussian", "p": 0.25}, "init": "he_normal"},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
        "schedule": {"name": "cosine", "interval": "epoch"},
        "augment": {"ops": [{"name": "shift", "max": 1}, {"name": "noise", "std": 0.1}]},
        "regularize": {"l2": 1e-4, "per_layer": [{"pattern": "0", "coef": 1e-3}]},
        "train": {"epochs": 3, "threads": 2},
        "early_stopping": {"monitor": "val_accuracy", "mode": "max"},
    }
    cfg = parse_config(data)
    resolved = cfg.to_dict()
    assert tomllib.loads(config_to_toml(resolved)) == resolved
    assert parse_config(tomllib.loads(config_to_toml(resolved))) == cfg
