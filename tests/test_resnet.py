"""Residual networks (goodfit.nn.resnet) and the CNN builders' global-average-pooling head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from goodfit.app.build import build_model
from goodfit.app.config import parse_config
from goodfit.nn import models
from goodfit.nn.resnet import BasicBlock, count_shortcuts, resnet


@pytest.mark.parametrize("shape", [(1, 40), (1, 8, 8)])
@pytest.mark.parametrize("skip", [True, False])
def test_resnet_shapes_and_shortcut_count(shape, skip):
    torch.manual_seed(0)
    net = resnet(shape, 10, depth=2, width=4, stages=3, skip=skip, norm="batch")
    assert net(torch.randn(3, *shape)).shape == (3, 10)
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 6
    assert count_shortcuts(net) == (6 if skip else 0)
    projections = [b for b in blocks if isinstance(b.shortcut, nn.Sequential)]
    assert len(projections) == (2 if skip else 0)  # stage 2 and 3 change channels and size


def test_no_skip_is_the_same_network_without_shortcuts():
    torch.manual_seed(0)
    with_skip = resnet((1, 8, 8), 10, depth=2, width=4, skip=True, norm=None)
    without = resnet((1, 8, 8), 10, depth=2, width=4, skip=False, norm=None)
    # every parameter of the plain net is in the residual net, under the same name and shape;
    # the extra ones are exactly the 1x1 projection shortcuts
    plain = {k: v.shape for k, v in without.state_dict().items()}
    res = {k: v.shape for k, v in with_skip.state_dict().items()}
    assert all(res[k] == s for k, s in plain.items())
    assert all(".shortcut." in k for k in set(res) - set(plain))


def test_identity_block_is_relu_of_residual_plus_input():
    torch.manual_seed(1)
    block = BasicBlock(2, 4, 4, 1, kernel_size=3, activation="relu", norm=None, skip=True)
    x = torch.randn(2, 4, 6, 6)
    c1, c2 = block.residual[0], block.residual[2]
    h = F.relu(F.conv2d(x, c1.weight, c1.bias, padding=1))
    expected = F.relu(F.conv2d(h, c2.weight, c2.bias, padding=1) + x)
    torch.testing.assert_close(block(x), expected)
    plain = BasicBlock(2, 4, 4, 1, kernel_size=3, activation="relu", norm=None, skip=False)
    plain.load_state_dict(block.state_dict())
    torch.testing.assert_close(plain(x), F.relu(F.conv2d(h, c2.weight, c2.bias, padding=1)))


@pytest.mark.parametrize(
    "build",
    [
        lambda head: models.cnn2d((1, 8, 8), (4, 8), 10, hidden=(6,), head=head),
        lambda head: models.cnn1d((1, 40), (4, 8), 10, hidden=(), head=head),
        lambda head: resnet((1, 8, 8), 10, depth=1, width=4, head=head),
    ],
)
def test_gap_head_has_no_flatten_and_averages(build):
    gap, flat = build("gap"), build("flatten")
    assert not any(isinstance(m, nn.Flatten) for m in gap.modules())
    assert any(isinstance(m, nn.Flatten) for m in flat.modules())
    pools = [m for m in gap.modules() if isinstance(m, models.GlobalAvgPool)]
    assert len(pools) == 1
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(pools[0](x), nn.AdaptiveAvgPool2d(1)(x).flatten(1))
    n_gap = sum(p.numel() for p in gap.parameters())
    assert n_gap < sum(p.numel() for p in flat.parameters())


def test_resnet_from_config_and_bad_values():
    cfg = parse_config(
        {"model": {"kind": "resnet", "depth": 2, "width": 4, "skip": False, "norm": "batch"}}
    )
    net = build_model(cfg.model, (1, 40), 10)
    assert count_shortcuts(net) == 0
    assert any(isinstance(m, nn.BatchNorm1d) for m in net.modules())
    cfg = parse_config({"model": {"kind": "cnn2d", "head": "gap", "channels": [4]}})
    assert not any(isinstance(m, nn.Flatten) for m in build_model(cfg.model, (1, 8, 8), 10))
    from goodfit.errors import ConfigError

    with pytest.raises(ConfigError, match="resnet needs input_shape"):
        build_model(parse_config({"model": {"kind": "resnet"}}).model, (30,), 2)
    with pytest.raises(ConfigError, match="head"):
        parse_config({"model": {"head": "mean"}})
