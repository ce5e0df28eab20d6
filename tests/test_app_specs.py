"""The config sections that build parts: ``[regularize]`` (penalty, constraints) and
``[augment]`` — each value checked once, by the typed section or by the part it builds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from goodfit.app.augment_spec import pipeline_from_config
from goodfit.app.config import parse_config
from goodfit.app.regularize_spec import constraints_from_config, penalty_from_config
from goodfit.app.sections import AugmentConfig, RegularizeConfig
from goodfit.errors import ConfigError
from test_penalties import (  # the same network and sums as the parts' tests
    _abs,
    _net,
    _sq,
    _weights,
)

IMG, SIG = (1, 12, 12), (1, 40)


def _penalty(table, net, batch_size=32, n_data=None):
    return penalty_from_config(
        RegularizeConfig.model_validate(table), net, batch_size=batch_size, n_data=n_data
    )


def test_penalty_from_config():
    net = _net()
    table = {
        "l1": 0.01,
        "l2": 0.2,
        "per_layer": [{"pattern": "7", "coef": 1.0, "p": 2}],
        "constraints": [{"kind": "max_norm", "max_value": 1.0}],
    }
    pen = _penalty(table, net)
    w0, w4, w7 = _weights(net)
    expect = 0.01 * _abs([w0, w4]) + 0.1 * _sq([w0, w4]) + _sq([w7])
    assert pen(net).item() == pytest.approx(expect, rel=1e-12)
    assert _penalty({}, net) is None
    assert _penalty({"l2": 0.0}, net) is None
    pen = _penalty({"l2": 0.4, "l2_scale_by_batch": True}, net, batch_size=8)
    assert pen(net).item() == pytest.approx(0.4 / 16 * _sq([w0, w4, w7]), rel=1e-12)
    pen = _penalty({"elastic": {"lam": 0.3, "alpha": 0.5}}, net)
    assert pen(net).item() == pytest.approx(0.3 * 0.5 * (_sq([w0, w4, w7]) + _abs([w0, w4, w7])))
    pen = _penalty({"prior": {"kind": "gaussian", "scale": 2.0}}, net, n_data=10)
    assert pen(net).item() == pytest.approx(1 / (4 * 10) / 2 * _sq([w0, w4, w7]), rel=1e-12)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        # found by the typed section (parse_config), naming the key
        ({"l3": 0.1}, r"regularize\.l3: unknown key.*allowed keys: constraints"),
        ({"l2": -0.1}, r"regularize\.l2: Input should be greater than or equal to 0"),
        ({"l2": True}, r"regularize\.l2: Input should be a valid number"),
        ({"elastic": {"lam": 0.1, "beta": 1}}, r"regularize\.elastic\.beta: unknown key"),
        ({"per_layer": [{"pattern": "0", "coef": 1.0, "q": 2}]}, r"per_layer\[0\]\.q: unknown"),
        ({"per_layer": [{"pattern": "0", "coef": -1.0}]}, r"per_layer\[0\]\.coef"),
        ({"prior": {"kind": "gaussian"}}, r"regularize\.prior\.scale: Field required"),
        ({"include_bias_and_norm": "yes", "l2": 0.1}, "include_bias_and_norm"),
        ({"constraints": [{"max_value": 1.0}]}, r"constraints\[0\]\.kind: Field required"),
        ({"constraints": [{"kind": "maxnorm"}]}, r"constraints\[0\]\.kind: Input should be"),
    ],
)
def test_bad_regularize_values_are_found_by_the_section(table, match):
    with pytest.raises(ConfigError, match=match):
        parse_config({"regularize": table}, "my.toml")


@pytest.mark.parametrize(
    ("table", "match"),
    [
        # found by the part the section builds, naming the entry
        ({"elastic": {"lam": 0.1, "alpha": 1.2}}, r"alpha must be a probability in \[0, 1\]"),
        ({"per_layer": [{"pattern": "nope", "coef": 1.0}]}, "'nope'"),
        ({"per_layer": [{"pattern": "0", "coef": 1.0, "p": 0.5}]}, ">= 1"),
        ({"tying": [{"a": "0", "b": "4"}]}, "shape"),
        ({"tying": [{"a": "0", "b": "zz"}]}, r"tying\[0\]\.b: model has no submodule 'zz'"),
    ],
)
def test_bad_regularize_values_are_found_by_the_part(table, match):
    with pytest.raises(ConfigError, match=match):
        _penalty(table, _net())


def _constraint_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Conv1d(1, 4, 3)).double()


def test_constraints_from_config():
    net = _constraint_net()
    table = RegularizeConfig.model_validate(
        {
            "l2": 1e-4,
            "constraints": [
                {"kind": "max_norm", "max_value": 2.0, "pattern": "2"},
                {"kind": "norm_ball", "radius": 1.0, "p": 1},
                {"kind": "non_neg", "type": "Linear"},
            ],
        }
    )
    cs = constraints_from_config(table, net)
    assert [type(c).__name__ for c in cs] == ["MaxNorm", "NormBall", "NonNeg"]
    assert cs[0].names == ["2.weight"] and cs[2].names == ["0.weight"]
    assert constraints_from_config(RegularizeConfig.model_validate({"l2": 1.0})) == []


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"kind": "max_norm", "max_value": 1.0, "radius": 2}, "'radius'"),
        ({"kind": "max_norm", "max_value": -1.0}, "max_value must be"),
        ({"kind": "norm_ball", "radius": 1.0, "p": 3}, "p must be"),
        ({"kind": "unit_norm", "pattern": "nothing"}, "'nothing'"),
    ],
)
def test_constraints_from_config_errors(entry, match):
    table = RegularizeConfig.model_validate({"constraints": [entry]})
    with pytest.raises(ConfigError, match=match):
        constraints_from_config(table, _constraint_net())


def _pipeline(ops, shape, num_classes=10):
    cfg = AugmentConfig.model_validate({"ops": ops})
    return pipeline_from_config(cfg, input_shape=shape, num_classes=num_classes)


def test_pipeline_from_config_builds_ops_in_order():
    ops = [
        {"name": "hflip", "p": 0.5},
        {"name": "affine", "degrees": 10, "translate": 0.1},
        {"name": "mixup", "alpha": 0.2},
    ]
    pipe = _pipeline(ops, IMG)
    assert [op.name for op in pipe.ops] == ["hflip", "affine", "mixup"]
    assert pipe.ops[0].p == 0.5 and pipe.soft_targets
    x, y = pipe(torch.rand(6, *IMG), torch.arange(6))
    assert x.shape == (6, *IMG) and y.shape == (6, 10)
    sig = _pipeline([{"name": "shift", "max_shift": 4}, {"name": "crop", "padding": 2}], SIG, None)
    assert sig(torch.randn(6, *SIG))[0].shape == (6, *SIG)


@pytest.mark.parametrize(
    ("ops", "shape", "match"),
    [
        ([{"name": "affine", "degrees": 10}], SIG, r"ops\[0\].*'affine'.*images"),
        ([{"name": "hflip"}], SIG, r"'hflip'.*images.*signals"),
        ([{"name": "shift"}], IMG, r"'shift'.*signals.*images"),
        ([{"name": "hflip", "p": 1.5}], IMG, r"hflip.*\bp\b.*1\.5"),
        ([{"name": "mixup", "p": -0.1}], IMG, r"mixup.*\bp\b.*-0\.1"),
        ([{"name": "affine", "degrees": -5}], IMG, r"affine.*degrees.*-5"),
        ([{"name": "rotate", "degrees": -1}], IMG, r"rotate.*degrees"),
        ([{"name": "twirl"}], IMG, r"unknown augmentation 'twirl'.*allowed.*'hflip'"),
        ([{"name": "hflip", "degrees": 3}], IMG, r"ops\[0\] \(hflip\).*degrees"),
    ],
)
def test_bad_augment_config_fails_with_clear_message(ops, shape, match):
    with pytest.raises(ConfigError, match=match):
        _pipeline(ops, shape)


def test_bad_augment_config_other_errors():
    with pytest.raises(ConfigError, match="num_classes"):
        _pipeline([{"name": "cutmix"}], IMG, None)
    with pytest.raises(ConfigError, match="flat feature"):
        _pipeline([], (64,), None)
    with pytest.raises(ConfigError, match=r"augment\.ops\[0\]\.name: Field required"):
        parse_config({"augment": {"ops": [{"p": 0.5}]}})
