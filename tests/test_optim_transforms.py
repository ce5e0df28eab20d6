"""The notes' own update rules vs plain-Python (numpy) transcriptions, and single transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

import goodfit.optim as go
from goodfit.app.optimizer_spec import chain_from_spec

N, STEPS = 6, 100
NOISE = np.random.default_rng(0).standard_normal((STEPS, N))
X0 = np.random.default_rng(1).standard_normal(N)


def grad_np(x: np.ndarray, t: int) -> np.ndarray:
    return 0.5 * x + np.cos(3 * x) + 0.3 * NOISE[t]


def run_goodfit(make, steps=STEPS, x0=X0):
    """Run a goodfit optimizer on the same gradient field; return the final parameters."""
    w = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = make([w]) if callable(make) else go.Optimizer([w], make)
    for t in range(steps):
        w.grad = torch.from_numpy(grad_np(w.detach().numpy(), t))
        opt.step()
    return w.detach().numpy()


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_adagrad_seed002_sqrt_G_plus_eps():
    lr, eps = 0.1, 1e-6
    x, G = X0.copy(), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(x, t)
        G = G + g**2
        x = x - lr / np.sqrt(G + eps) * g
    close(run_goodfit(lambda p: go.adagrad(p, lr=lr, eps=eps, eps_inside=True)), x)


def test_adagrad_gbc_alg_8_4_delta_plus_sqrt_r():
    lr, delta = 0.1, 1e-7
    x, r = X0.copy(), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(x, t)
        r = r + g * g
        x = x + (-lr / (delta + np.sqrt(r)) * g)
    close(run_goodfit(lambda p: go.adagrad(p, lr=lr, eps=delta)), x)


def test_rmsprop_gbc_alg_8_5_sqrt_delta_plus_r():
    lr, rho, delta = 0.01, 0.9, 1e-6
    x, r = X0.copy(), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(x, t)
        r = rho * r + (1 - rho) * g * g
        x = x + (-lr / np.sqrt(delta + r) * g)
    close(run_goodfit(lambda p: go.rmsprop(p, lr=lr, decay=rho, eps=delta, eps_inside=True)), x)


def test_rmsprop_nesterov_gbc_alg_8_6():
    """GBC 8.6 takes g at theta + alpha v; goodfit keeps phi = theta + alpha v as parameters.
    The algorithm has no delta: eps = 0 (allowed, as in torch) is its exact transcription."""
    lr, rho, alpha = 0.01, 0.9, 0.9
    theta, v, r = X0.copy(), np.zeros(N), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(theta + alpha * v, t)  # interim point
        r = rho * r + (1 - rho) * g * g
        v = alpha * v - lr / np.sqrt(r) * g
        theta = theta + v
    ours = run_goodfit(
        lambda p: go.rmsprop(p, lr=lr, decay=rho, eps=0.0, momentum=alpha, nesterov=True)
    )
    close(ours, theta + alpha * v)
    tx = go.chain(
        go.scale_by_rms(rho, 0.0), go.trace(alpha, nesterov=True), go.scale_by_lr(lr)
    )  # the same rule as a chain
    close(run_goodfit(tx), theta + alpha * v)


def test_sgd_nesterov_gbc_alg_8_3_and_velocity_form():
    lr, alpha = 0.05, 0.9
    theta, v = X0.copy(), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(theta + alpha * v, t)
        v = alpha * v - lr * g
        theta = theta + v
    close(run_goodfit(lambda p: go.sgd(p, lr=lr, momentum=alpha, nesterov=True)), theta + alpha * v)
    tx = go.chain(go.scale_by_lr(lr), go.velocity(alpha, nesterov=True))
    close(run_goodfit(tx), theta + alpha * v)


def test_momentum_gbc_alg_8_2_velocity_with_changing_lr():
    alpha = 0.9

    def lr(k):
        return 0.05 / (1 + 0.1 * k)

    x, v = X0.copy(), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(x, t)
        v = alpha * v - lr(t) * g
        x = x + v
    close(run_goodfit(go.chain(go.scale_by_lr(lr), go.velocity(alpha))), x)


def test_heavy_ball_seed000_W_minus_eta_g_plus_beta_dW():
    beta = 0.8

    def eta(k):
        return 0.05 * 0.99**k

    w_prev, w = X0.copy(), X0.copy()
    for t in range(STEPS):
        w_new = w - eta(t) * grad_np(w, t) + beta * (w - w_prev)
        w_prev, w = w, w_new
    close(run_goodfit(go.chain(go.scale_by_lr(eta), go.heavy_ball_momentum(beta))), w)
    w_prev, w = X0.copy(), X0.copy()
    for t in range(STEPS):
        w_new = w - 0.05 * grad_np(w, t) + beta * (w - w_prev)
        w_prev, w = w, w_new
    close(run_goodfit(lambda p: go.heavy_ball(p, lr=0.05, momentum=beta)), w)


def test_adadelta_seed000_rms_ratio():
    gamma, eps = 0.9, 1e-6
    w, Eg, Edw = X0.copy(), np.zeros(N), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(w, t)
        Eg = gamma * Eg + (1 - gamma) * g**2
        dw = -np.sqrt(Edw + eps) / np.sqrt(Eg + eps) * g
        Edw = gamma * Edw + (1 - gamma) * dw**2
        w = w + dw
    close(run_goodfit(lambda p: go.adadelta(p, rho=gamma, eps=eps)), w)


def test_adam_gbc_alg_8_7_sqrt_r_hat_plus_delta():
    lr, r1, r2, delta = 0.01, 0.9, 0.999, 1e-8
    x, s, r = X0.copy(), np.zeros(N), np.zeros(N)
    for t in range(1, STEPS + 1):
        g = grad_np(x, t - 1)
        s = r1 * s + (1 - r1) * g
        r = r2 * r + (1 - r2) * g * g
        s_hat, r_hat = s / (1 - r1**t), r / (1 - r2**t)
        x = x + (-lr * s_hat / np.sqrt(r_hat + delta))
    close(run_goodfit(lambda p: go.adam(p, lr=lr, eps_inside=True)), x)


def test_amsgrad_seed000_max_v_without_bias_correction():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    w, m, v, vhat = X0.copy(), np.zeros(N), np.zeros(N), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(w, t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        vhat = np.maximum(vhat, v)
        w = w - lr / (np.sqrt(vhat) + eps) * m
    close(run_goodfit(lambda p: go.amsgrad(p, lr=lr, bias_correction=False)), w)


def test_nadam_seed000_formula():
    lr, b1, b2, eps = 0.002, 0.9, 0.999, 1e-8
    w, m, v = X0.copy(), np.zeros(N), np.zeros(N)
    for t in range(1, STEPS + 1):
        g = grad_np(w, t - 1)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr / np.sqrt(v_hat + eps) * (b1 * m_hat + (1 - b1) * g / (1 - b1**t))
    close(run_goodfit(lambda p: go.nadam(p, lr=lr, momentum_decay=None, eps_inside=True)), w)


def test_adamax_seed001_seed000_u_max_beta2_u_abs_g():
    """Seed 001 ("ADAM Variation", ADAMax): r_t = max(rho r_{t-1}, |g_t|); seed 000 §1.2.3.3
    (Notes, ADMax): W_t = W_{t-1} - eta m^_t / u_t, eta = 0.002. No eps: eps = 0 exactly."""
    lr, b1, b2 = 0.002, 0.9, 0.999
    w, m, u = X0.copy(), np.zeros(N), np.zeros(N)
    for t in range(1, STEPS + 1):
        g = grad_np(w, t - 1)
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g))
        w = w - lr / u * (m / (1 - b1**t))
    close(run_goodfit(lambda p: go.adamax(p, lr=lr, eps=0.0)), w)
    close(run_goodfit(go.chain(go.scale_by_adamax(b1, b2, eps=0.0), go.scale_by_lr(lr))), w)


def test_l1_subgradient_seed000_w_minus_lr_grad_minus_lambda_sign_w():
    lr, lam = 0.05, 0.01  # seed 000's lambda is applied without lr: lambda_seed = lr * l1
    w = X0.copy()
    for t in range(STEPS):
        w = w - lr * grad_np(w, t) - lam * np.sign(w)
    close(run_goodfit(go.chain(go.add_l1(lam / lr), go.scale_by_lr(lr))), w)


def _l1_seed000(lrs, lam, steps=STEPS):
    """Seed 000 §1.1.3 (L1 regularization (Lasso)): w_new = w - lr grad L - lambda sign(w), with
    lambda not multiplied by lr; transcribed element by element in plain Python."""
    w = [float(x) for x in X0]
    for t in range(steps):
        g = grad_np(np.array(w), t)
        sign = [math.copysign(1.0, wi) if wi != 0 else 0.0 for wi in w]
        w = [wi - lrs[t] * gi - lam * si for wi, gi, si in zip(w, g, sign, strict=True)]
    return np.array(w)


def test_l1_step_seed000_under_a_decaying_schedule():
    """The literal L1 step under a non-constant lr, by a goodfit schedule, a torch scheduler, a
    named optimizer and a chain spec; add_l1(lambda / lr_0) (the old way) is not it."""
    import goodfit.schedules as S

    lam = 0.003
    lrs = [0.1 * 0.97**k for k in range(STEPS)]
    expected = _l1_seed000(lrs, lam)
    sched = S.exponential(0.1, decay_rate=0.97)
    close(run_goodfit(go.chain(go.scale_by_lr(sched), go.add_l1_step(lam))), expected)
    close(run_goodfit(lambda p: go.gd(p, lr=sched, l1=lam)), expected)
    close(run_goodfit(lambda p: go.sgd(p, lr=sched, l1=lam)), expected)
    spec = [{"name": "scale_by_lr", "lr": sched}, {"name": "add_l1_step", "l1": lam}]
    close(run_goodfit(chain_from_spec(spec)), expected)

    # a torch scheduler writing group["lr"] (ExponentialLR steps after each update)
    w = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
    opt = go.gd([w], lr=0.1, l1=lam)
    tsched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.97)
    for t in range(STEPS):
        w.grad = torch.from_numpy(grad_np(w.detach().numpy(), t))
        opt.step()
        tsched.step()
    close(w.detach().numpy(), expected)

    old = run_goodfit(go.chain(go.add_l1(lam / 0.1), go.scale_by_lr(sched)))
    assert np.abs(old - expected).max() > 1e-3  # lambda scaled by the decayed lr: not the note


def test_l1_step_after_momentum_and_per_group_l1():
    """With momentum the L1 step is still added after the lr: w - lr b - lambda sign(w); a param
    group may set its own l1 (0 for biases)."""
    lr, mu, lam = 0.05, 0.9, 0.002
    w, b = X0.copy(), np.zeros(N)
    for t in range(STEPS):
        g = grad_np(w, t)
        b = g if t == 0 else mu * b + g
        w = w - lr * b - lam * np.sign(w)
    close(run_goodfit(lambda p: go.sgd(p, lr=lr, momentum=mu, l1=lam)), w)
    close(run_goodfit(lambda p: go.sgd([{"params": p, "l1": lam}], lr=lr, momentum=mu)), w)
    x = run_goodfit(lambda p: go.sgd([{"params": p, "l1": 0.0}], lr=lr, momentum=mu, l1=lam))
    close(x, run_goodfit(lambda p: go.sgd(p, lr=lr, momentum=mu)))
    with pytest.raises(ValueError, match="l1 must be >= 0"):
        go.add_l1_step(-0.1)


def test_clip_by_global_norm_seed001_alpha_g_over_norm():
    g = [torch.tensor([3.0, 4.0], dtype=torch.float64), torch.tensor([12.0], dtype=torch.float64)]
    p = [torch.zeros(2, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)]
    tx = go.clip_by_global_norm(2.6)
    ctx = go.Context()
    out = go.materialize(tx.update(g, tx.init(p), p, ctx), ctx)
    torch.testing.assert_close(
        torch.cat(out), 2.6 * torch.tensor([3.0, 4.0, 12.0], dtype=torch.float64) / 13.0
    )
    assert g[0][0].item() == 3.0  # the incoming gradients were not modified
    ctx = go.Context()
    out = go.materialize(go.clip_by_global_norm(20.0).update(g, {}, p, ctx), ctx)
    torch.testing.assert_close(torch.cat(out), torch.tensor([3.0, 4.0, 12.0], dtype=torch.float64))
    ctx = go.Context()
    out = go.materialize(go.clip_by_value(3.5).update(g, {}, p, ctx), ctx)
    torch.testing.assert_close(torch.cat(out), torch.tensor([3.0, 3.5, 3.5], dtype=torch.float64))


def test_gradient_noise_seed002_variance_eta_over_1_plus_t_pow_gamma():
    eta, gamma, n = 0.5, 0.55, 20000
    w = torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = go.Optimizer([w], go.chain(go.add_noise(eta, gamma, seed=7), go.scale_by_lr(1.0)))
    for t in range(4):
        before = w.detach().clone()
        w.grad = torch.zeros(n, dtype=torch.float64)
        opt.step()
        noise = (before - w.detach()).numpy()
        sigma2 = eta / (1 + t) ** gamma
        # sample variance of n normals has relative sd sqrt(2/n) = 1%; allow 5 sd
        assert abs(noise.var() / sigma2 - 1) < 5 * math.sqrt(2 / n)
        assert abs(noise.mean()) < 5 * math.sqrt(sigma2 / n)
        assert scipy.stats.kstest(noise / math.sqrt(sigma2), "norm").pvalue > 1e-3
    # reproducible: same seed, same noise
    w2 = torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt2 = go.Optimizer([w2], go.chain(go.add_noise(eta, gamma, seed=7), go.scale_by_lr(1.0)))
    for _ in range(4):
        w2.grad = torch.zeros(n, dtype=torch.float64)
        opt2.step()
    assert torch.equal(w.detach(), w2.detach())


def test_proximal_l1_equals_soft_thresholding_with_exact_zeros():
    lr, l1 = 0.1, 2.0
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(1000, generator=gen, dtype=torch.float64)
    g = torch.randn(1000, generator=gen, dtype=torch.float64)
    w = torch.nn.Parameter(p0.clone())
    opt = go.Optimizer([w], go.chain(go.scale_by_lr(lr), go.add_proximal_l1(l1)))
    w.grad = g
    opt.step()
    z = p0 - lr * g
    expected = torch.sign(z) * torch.clamp(z.abs() - lr * l1, min=0.0)
    zeros = expected == 0
    assert zeros.sum() > 100  # |z| <= 0.2 for a good share of the entries
    assert torch.all(w.detach()[zeros] == 0.0)  # exact zeros, not merely small
    torch.testing.assert_close(w.detach(), expected, rtol=1e-15, atol=1e-15)


def test_proximal_l1_converges_to_lasso_closed_form():
    """Closed form: min 0.5 ||w - a||^2 + l1 ||w||_1 is soft(a, l1); ISTA (lr < 1) reaches it."""
    a = torch.tensor([3.0, -0.5, 0.2, -2.0, 0.0], dtype=torch.float64)
    l1 = 1.0
    w = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    opt = go.Optimizer([w], go.chain(go.scale_by_lr(0.5), go.add_proximal_l1(l1)))
    for _ in range(60):
        w.grad = w.detach() - a
        opt.step()
    expected = torch.sign(a) * torch.clamp(a.abs() - l1, min=0)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-12, atol=1e-12)
    assert (w.detach()[1:3] == 0).all() and w.detach()[4] == 0


def test_masked_applies_inner_only_where_mask_is_true():
    weight = torch.nn.Parameter(torch.ones(2, 2, dtype=torch.float64))
    bias = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    tx = go.chain(go.masked(go.add_decayed_weights(0.5), lambda p: p.ndim > 1), go.scale_by_lr(0.1))
    opt = go.Optimizer([weight, bias], tx)
    weight.grad = torch.zeros(2, 2, dtype=torch.float64)
    bias.grad = torch.zeros(2, dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(weight.detach(), torch.full((2, 2), 0.95, dtype=torch.float64))
    torch.testing.assert_close(bias.detach(), torch.ones(2, dtype=torch.float64))


def test_chain_rejects_conflicting_hyperparameters_and_non_transforms():
    with pytest.raises(ValueError, match="'eps'"):
        go.chain(go.scale_by_adam(eps=1e-8), go.scale_by_rms(eps=1e-6))
    with pytest.raises(TypeError):
        go.chain(go.scale_by_adam(), "scale_by_lr")
    with pytest.raises(ValueError, match="seed must be an int"):
        go.add_noise(seed=1.5)
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        go.clip_by_global_norm(0.0)


def test_transforms_do_not_modify_the_gradients():
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    g = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    tx = go.chain(
        go.scale(2.0),
        go.add_l2(0.1),
        go.clip_by_value(1.5),
        go.scale_by_lr(0.1),
        go.add_proximal_l1(0.1),
    )
    opt = go.Optimizer([w], tx)
    w.grad = g.clone()
    opt.step()
    assert torch.equal(w.grad, g)
