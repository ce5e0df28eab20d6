"""Tests for goodfit.nn.models: output shapes on the built-in input shapes, argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from goodfit.nn import models

# (input shape, number of outputs) of the built-in datasets (goodfit.data.DATASETS)
BUILTIN_SHAPES = {
    "digits": ((1, 8, 8), 10),
    "mnist1d": ((1, 40), 10),
    "breast_cancer": ((30,), 2),
    "wine": ((13,), 3),
    "moons": ((2,), 2),
    "poly": ((1,), 1),
}


def test_builtin_shapes_match_the_dataset_registry():
    from goodfit.data import DATASETS

    for name, (shape, k) in BUILTIN_SHAPES.items():
        assert DATASETS[name].input_shape == shape and DATASETS[name].num_outputs == k


@pytest.mark.parametrize("name", list(BUILTIN_SHAPES))
def test_mlp_output_shape(name):
    shape, k = BUILTIN_SHAPES[name]
    net = models.mlp(shape, (16, 8), k, dropout=0.1, norm="batch")
    out = net(torch.randn(5, *shape))
    assert out.shape == (5, k)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [16, 8, k]


def test_mlp_layer_order_norm_before_activation_then_dropout():
    net = models.mlp(4, (3,), 2, dropout=0.5, norm="batch", activation="tanh")
    kinds = [type(m).__name__ for m in net]
    assert kinds[:4] == ["Linear", "BatchNorm1d", "Tanh", "Dropout"] and kinds[-1] == "Linear"


@pytest.mark.parametrize("pool_every", [1, 2])
def test_cnn1d_output_shape_on_mnist1d(pool_every):
    net = models.cnn1d((1, 40), (8, 8, 8), 10, hidden=(16,), pool_every=pool_every, dropout=0.1)
    assert net(torch.randn(3, 1, 40)).shape == (3, 10)
    n_pools = sum(isinstance(m, nn.MaxPool1d) for m in net)
    assert n_pools == 3 // pool_every


def test_cnn2d_output_shape_on_digits_and_pool_stops_at_size_1():
    # 8x8 -> 4 -> 2 -> 1 : the fourth block must not pool a 1x1 map
    net = models.cnn2d((1, 8, 8), (4, 4, 4, 4), 10, hidden=(8,), norm="batch", pool="avg")
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert sum(isinstance(m, nn.AvgPool2d) for m in net) == 3
    flat_in = next(m for m in net if isinstance(m, nn.Linear)).in_features
    assert flat_in == 4 * 1 * 1


def test_cnn_kernel_keeps_length_before_pool():
    net = models.cnn1d((2, 9), (3,), 4, hidden=(), kernel_size=7, pool_every=5)
    conv = net[0]
    assert conv.padding == (3,) and net(torch.randn(1, 2, 9)).shape == (1, 4)
    assert next(m for m in net if isinstance(m, nn.Linear)).in_features == 3 * 9


@pytest.mark.parametrize(
    ("builder", "kwargs", "match"),
    [
        (models.mlp, {"input_shape": 4, "widths": (0,)}, "widths"),
        (models.mlp, {"input_shape": (0, 3)}, "input_shape"),
        (models.mlp, {"input_shape": 4, "activation": "swishy"}, "activation"),
        (models.mlp, {"input_shape": 4, "dropout": {"kind": "gaussian"}}, "'p'"),
        (models.cnn1d, {"input_shape": (1, 8, 8)}, "input_shape"),
        (models.cnn2d, {"input_shape": (1, 40)}, "input_shape"),
        (models.cnn1d, {"input_shape": (1, 40), "kernel_size": 4}, "kernel_size"),
        (models.cnn1d, {"input_shape": (1, 40), "kernel_size": 0}, "kernel_size"),
        (models.cnn2d, {"input_shape": (1, 8, 8), "channels": (4, 0)}, "channels"),
        (models.cnn2d, {"input_shape": (1, 8, 8), "pool_every": 0}, "pool_every"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(builder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        builder(**kwargs)
