"""Loss landscapes (goodfit.diagnose.landscape) against direct evaluations of the model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from goodfit.diagnose import landscape as L
from goodfit.nn.models import cnn2d, mlp


def _data(n=64, shape=(1, 8, 8), k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, k, (n,), generator=g)


def _direct_loss(model, params, X, y, loss_fn=F.cross_entropy):
    """Reference: the loss of a deep copy of the model with ``params`` loaded, in eval mode."""
    net = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(params[name])
        return float(loss_fn(net(X), y))


@pytest.mark.parametrize("bn", [None, "batch"])
def test_landscape_at_origin_is_the_models_loss(bn):
    torch.manual_seed(0)
    model = cnn2d((1, 8, 8), (4, 8), 10, hidden=(16,), norm=bn)
    model.train()
    X, y = _data()
    model(X)  # running statistics away from their initial values
    ls = L.random_landscape(model, X, y, dims=2, steps=5, distance=0.5)
    model.eval()
    with torch.no_grad():
        expected = float(F.cross_entropy(model(X), y))
    assert abs(ls.center_loss - expected) < 1e-6
    assert abs(ls.losses[2][2] - expected) < 1e-6


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize(("vectorize", "memory_mb"), [(True, 0.01), (True, 64.0), (False, 64.0)])
def test_grid_points_match_loading_the_weights(vectorize, memory_mb, kind):
    """Grid points equal the loss with the combined weights loaded (for the CNN on the CPU's
    loop: evaluated in channels_last memory, the reference in the default layout)."""
    torch.manual_seed(1)
    if kind == "mlp":
        model = mlp((1, 8, 8), (12,), 10)
    else:
        model = cnn2d((1, 8, 8), (4, 8), 10, hidden=(16,), norm="batch").eval()
    X, y = _data(40)
    center = L.trainable_params(model)
    g = torch.Generator().manual_seed(3)
    d1 = L.filter_normalized_direction(center, generator=g)
    d2 = L.filter_normalized_direction(center, generator=g)
    coords = torch.tensor([[0.3, -0.7], [1.0, 0.25], [-0.5, 0.5]], dtype=torch.float64)
    got = L.loss_surface(
        model, X, y, center, [d1, d2], coords, memory_mb=memory_mb, batch_size=7,
        vectorize=vectorize,
    )  # fmt: skip
    for (a, b), loss in zip(coords.tolist(), got.tolist(), strict=True):
        params = {k: center[k] + a * d1[k] + b * d2[k] for k in center}
        assert loss == pytest.approx(_direct_loss(model, params, X, y), abs=1e-5)


def test_filter_normalized_directions_have_the_weights_filter_norms():
    torch.manual_seed(2)
    model = cnn2d((1, 8, 8), (4, 8), 10, hidden=(16,), norm="batch")
    params = L.trainable_params(model)
    d = L.filter_normalized_direction(params, generator=torch.Generator().manual_seed(0))
    for name, w in params.items():
        if w.dim() <= 1:
            assert torch.count_nonzero(d[name]) == 0  # biases and BN parameters zeroed
            continue
        for i in range(len(w)):  # one filter (output channel / neuron) at a time
            torch.testing.assert_close(d[name][i].norm(), w[i].norm(), rtol=1e-5, atol=1e-8)
    with_bias = L.filter_normalized_direction(
        params, generator=torch.Generator().manual_seed(0), include_bias_and_norm=True
    )
    assert all(torch.equal(with_bias[n], w) for n, w in params.items() if w.dim() <= 1)


def test_interpolation_ends_are_the_initial_and_final_losses():
    torch.manual_seed(3)
    model = mlp(10, (8,), 3)
    start = L.trainable_params(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    end = L.trainable_params(model)
    X, y = torch.randn(50, 10), torch.randint(0, 3, (50,))
    ls = L.interpolation(model, start, end, X, y)
    alphas = ls.axes[0]
    assert alphas[alphas.index(0.0)] == 0.0 and 1.0 in alphas
    assert ls.losses[alphas.index(0.0)] == pytest.approx(_direct_loss(model, start, X, y), abs=1e-6)
    assert ls.losses[alphas.index(1.0)] == pytest.approx(_direct_loss(model, end, X, y), abs=1e-6)


def test_recomputed_batch_norm_statistics():
    torch.manual_seed(4)
    model = cnn2d((1, 8, 8), (4,), 10, hidden=(), norm="batch").eval()
    X, y = _data(32)
    ls = L.random_landscape(model, X, y, dims=1, steps=3, bn="recompute")
    ref = copy.deepcopy(model)
    for m in ref.modules():  # batch statistics of X, no running averages
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    with torch.no_grad():
        expected = float(F.cross_entropy(ref(X), y))
    assert ls.losses[1] == pytest.approx(expected, abs=1e-6)
    assert ls.bn == "recompute"
    batched = L.random_landscape(model, X, y, dims=1, steps=3, bn="recompute", vectorize=True)
    np.testing.assert_allclose(batched.losses, ls.losses, rtol=1e-6)
    with pytest.raises(ValueError, match="bn must be"):
        L.random_landscape(model, X, y, dims=1, steps=3, bn="train")


def test_hessian_directions_are_eigenvectors():
    torch.manual_seed(5)
    model = mlp(3, (4,), 2)  # 26 parameters: the dense path; checked against torch's Hessian
    X, y = torch.randn(30, 3), torch.randint(0, 2, (30,))
    dirs, eig = L.hessian_directions(model, X, y, k=2)
    from goodfit.optim.second_order import module_loss

    loss, x0 = module_loss(model.eval(), F.cross_entropy, X, y, dtype=torch.float64)
    H = torch.autograd.functional.hessian(loss, x0)
    w = torch.linalg.eigvalsh(H)
    np.testing.assert_allclose(eig, w.flip(0)[:2].numpy(), rtol=1e-6, atol=1e-9)
    v = torch.cat([t.reshape(-1) for t in dirs[0].values()]).double()
    torch.testing.assert_close(H @ v, eig[0] * v, rtol=1e-4, atol=1e-6)
    ls = L.hessian_landscape(model, X, y, dims=1, steps=5, distance=0.1)
    assert ls.info["eigenvalues"][0] == pytest.approx(eig[0], rel=1e-6)


def test_plot_landscape_writes_png(tmp_path):
    torch.manual_seed(6)
    model = mlp(4, (5,), 2)
    X, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    for dims in (1, 2):
        ls = L.random_landscape(model, X, y, dims=dims, steps=5, val=(X[:10], y[:10]))
        L.plot_landscape(ls, tmp_path / f"l{dims}.png")
        assert (tmp_path / f"l{dims}.png").read_bytes()[:4] == b"\x89PNG"
        assert ls.rise_at(1.0) == pytest.approx(
            np.mean([v - ls.center_loss for v in _axis_ends(ls)]), abs=1e-9
        )


def _axis_ends(ls):
    z = np.asarray(ls.losses)
    if z.ndim == 1:
        return [z[0], z[-1]]
    c = z.shape[0] // 2
    return [z[0, c], z[-1, c], z[c, 0], z[c, -1]]
