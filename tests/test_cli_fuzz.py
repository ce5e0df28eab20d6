"""Fuzzing the command line: a config value of the wrong type, range or shape in any section
gives exit status 2 with one message, or a clean run — never a traceback."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goodfit.app.cli import main
from goodfit.app.config import config_to_toml

BASE = {
    "data": {"name": "moons", "val_fraction": 0.25, "options": {"n_samples": 80}},
    "model": {"kind": "mlp", "widths": [4]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 1, "batch_size": 16, "seed": 0, "threads": 1},
    "early_stopping": {"patience": 2},
    "checkpoint": {"every": 1},
}

#: Every key a user may set, by section (values for the sections built from factories too).
KEYS = [
    "data.name",
    "data.val_fraction",
    "data.standardize",
    "data.label",
    "data.test_fraction",
    "data.options",
    "data.label_noise",
    "data.train_size",
    "model.kind",
    "model.widths",
    "model.channels",
    "model.hidden",
    "model.kernel_size",
    "model.activation",
    "model.dropout",
    "model.norm",
    "model.pool",
    "model.pool_every",
    "model.init",
    "model.weight_standardization",
    "model.depth",
    "model.skip",
    "model.head",
    "optimizer.name",
    "optimizer.lr",
    "optimizer.momentum",
    "optimizer.weight_decay",
    "optimizer.chain",
    "optimizer.compiled",
    "schedule",
    "schedule.name",
    "regularize",
    "regularize.l1",
    "regularize.l2",
    "regularize.elastic",
    "regularize.per_layer",
    "regularize.prior",
    "regularize.tying",
    "regularize.constraints",
    "regularize.exclude",
    "augment",
    "augment.ops",
    "train.epochs",
    "train.batch_size",
    "train.seed",
    "train.device",
    "train.val_every",
    "train.threads",
    "early_stopping.patience",
    "early_stopping.monitor",
    "early_stopping.mode",
    "early_stopping.algorithm",
    "early_stopping.min_delta",
    "checkpoint.every",
    "checkpoint.enabled",
    "unknown_section",
    "model.unknown_key",
]

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=True, width=64),
    st.text(max_size=8),
    st.sampled_from(["", "adam", "relu", "val_loss", "max_norm", "7.2", "cuda", "-1", "1e9"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["name", "kind", "p", "lr", "x", "scheme"]), inner, max_size=3
        ),
    ),
    max_leaves=6,
)


def _toml_safe(value):
    """TOML has no null and no mixed-type trouble for our writer; inf is fine, nan excluded."""
    if isinstance(value, float) and math.isnan(value):
        return 0.0
    if isinstance(value, list):
        return [_toml_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items()}
    return value


def _set(data: dict, key: str, value) -> dict:
    import copy

    out = copy.deepcopy(data)
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(KEYS), value=values)
def test_any_bad_value_exits_2_or_trains(key, value, tmp_path_factory, capsys, torch_globals):
    folder = tmp_path_factory.mktemp("fuzz")
    data = _set(BASE, key, _toml_safe(value))
    try:
        text = config_to_toml(data)
    except TypeError:  # a value our TOML writer cannot express (e.g. a list of tables of lists)
        return
    cfg = folder / "c.toml"
    cfg.write_text(text)
    status = main(["train", str(cfg), "--out", str(folder / "run")])  # raises on a bug
    err = capsys.readouterr().err
    assert status in (0, 2), err
    assert "Traceback" not in err
    if status == 2:
        assert err.startswith("goodfit train: error: ") and err.strip(), err


STUDY_KEYS = [
    "study.title",
    "study.splits",
    "study.splits.kind",
    "study.splits.k",
    "study.metric",
    "study.baseline",
    "study.test",
    "study.alpha",
    "study.rope",
    "study.reference_error",
    "study.workers",
    "study.variants",
    "study.gradient_flow",
    "study.unknown",
]


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(STUDY_KEYS), value=values)
def test_any_bad_study_value_exits_2_or_runs(key, value, tmp_path_factory, capsys, torch_globals):
    folder = tmp_path_factory.mktemp("fuzz_study")
    study = {
        "splits": {"kind": "kfold", "k": 2},
        "gradient_flow": False,
        "variants": [{"name": "a"}, {"name": "b", "set": {"regularize.l2": 0.01}}],
    }
    data = _set({**BASE, "study": study}, key, _toml_safe(value))
    try:
        text = config_to_toml(data)
    except TypeError:
        return
    cfg = folder / "s.toml"
    cfg.write_text(text)
    status = main(["study", str(cfg), "--out", str(folder / "out")])
    err = capsys.readouterr().err
    assert status in (0, 2), err
    assert "Traceback" not in err
