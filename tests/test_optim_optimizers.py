"""Named goodfit optimizers vs torch.optim step by step, and the torch.optim adapter."""

from __future__ import annotations

import io
import math

import pytest
import torch

import goodfit.optim as go
from goodfit.app.optimizer_spec import OPTIMIZERS, chain_from_spec

SHAPES = [(4, 3), (3,), (2, 2, 2)]
STEPS = 100


def _grad(p: torch.Tensor, k: int, t: int) -> torch.Tensor:
    """Deterministic gradient depending on the parameter (so errors would compound) and on t."""
    gen = torch.Generator().manual_seed(1000 * t + k)
    noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
    return 0.5 * p + torch.cos(3 * p) + 0.3 * noise


def _params(dtype):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]


def _run_pair(make_gf, make_torch, dtype, steps=STEPS, groups=None):
    init = _params(dtype)
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    pb = [torch.nn.Parameter(x.clone()) for x in init]
    if groups is None:
        oa, ob = make_gf(pa), make_torch(pb)
    else:
        oa, ob = make_gf(groups(pa)), make_torch(groups(pb))
    for t in range(steps):
        for ps, opt in ((pa, oa), (pb, ob)):
            opt.zero_grad()
            for k, p in enumerate(ps):
                p.grad = _grad(p.detach(), k, t)
            opt.step()
    return pa, pb


def _tm(cls, **kw):
    return lambda ps: cls(ps, foreach=False, **kw)


# (id, goodfit factory, goodfit kwargs, torch class, torch kwargs)
CASES = [
    ("sgd", go.sgd, dict(lr=0.05), torch.optim.SGD, dict(lr=0.05)),
    (
        "sgd_momentum",
        go.sgd,
        dict(lr=0.05, momentum=0.9),
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.9),
    ),
    (
        "sgd_nesterov",
        go.sgd,
        dict(lr=0.05, momentum=0.9, nesterov=True),
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.9, nesterov=True),
    ),
    (
        "sgd_dampening_weight_decay",
        go.sgd,
        dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
    ),
    ("adagrad", go.adagrad, dict(lr=0.1), torch.optim.Adagrad, dict(lr=0.1)),
    (
        "adagrad_wd_init_acc",
        go.adagrad,
        dict(lr=0.1, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-8),
        torch.optim.Adagrad,
        dict(lr=0.1, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-8),
    ),
    (
        "rmsprop",
        go.rmsprop,
        dict(lr=0.01, decay=0.9),
        torch.optim.RMSprop,
        dict(lr=0.01, alpha=0.9),
    ),
    (
        "rmsprop_momentum",
        go.rmsprop,
        dict(lr=0.01, momentum=0.9),
        torch.optim.RMSprop,
        dict(lr=0.01, momentum=0.9),
    ),
    (
        "rmsprop_centered",
        go.rmsprop,
        dict(lr=0.01, centered=True),
        torch.optim.RMSprop,
        dict(lr=0.01, centered=True),
    ),
    (
        "rmsprop_centered_momentum_wd",
        go.rmsprop,
        dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.01),
        torch.optim.RMSprop,
        dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.01),
    ),
    ("adadelta", go.adadelta, dict(), torch.optim.Adadelta, dict()),
    (
        "adadelta_rho_wd",
        go.adadelta,
        dict(lr=0.5, rho=0.95, weight_decay=0.01),
        torch.optim.Adadelta,
        dict(lr=0.5, rho=0.95, weight_decay=0.01),
    ),
    ("adam", go.adam, dict(lr=0.01), torch.optim.Adam, dict(lr=0.01)),
    (
        "adam_wd_betas",
        go.adam,
        dict(lr=0.01, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.01),
        torch.optim.Adam,
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
    ),
    ("amsgrad", go.amsgrad, dict(lr=0.01), torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    ("adamw", go.adamw, dict(lr=0.01), torch.optim.AdamW, dict(lr=0.01)),
    (
        "adamw_amsgrad",
        go.adamw,
        dict(lr=0.01, weight_decay=0.1, amsgrad=True),
        torch.optim.AdamW,
        dict(lr=0.01, weight_decay=0.1, amsgrad=True),
    ),
    ("adamax", go.adamax, dict(), torch.optim.Adamax, dict()),
    (
        "adamax_wd",
        go.adamax,
        dict(lr=0.01, weight_decay=0.01),
        torch.optim.Adamax,
        dict(lr=0.01, weight_decay=0.01),
    ),
    ("nadam", go.nadam, dict(), torch.optim.NAdam, dict()),
    (
        "nadam_wd",
        go.nadam,
        dict(lr=0.01, weight_decay=0.01, momentum_decay=0.01),
        torch.optim.NAdam,
        dict(lr=0.01, weight_decay=0.01, momentum_decay=0.01),
    ),
    (
        "nadam_decoupled_wd",
        go.nadam,
        dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True),
        torch.optim.NAdam,
        dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_equivalence_with_torch_optim(case, dtype):
    _, fac, kw, cls, tkw = case
    pa, pb = _run_pair(lambda ps: fac(ps, **kw), _tm(cls, **tkw), dtype)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), **tol)


def test_param_groups_with_their_own_hyperparameters_match_torch():
    def groups(ps):
        return [
            {"params": ps[:1], "lr": 0.02, "weight_decay": 0.1},
            {"params": ps[1:], "weight_decay": 0.0},
        ]

    pa, pb = _run_pair(
        lambda g: go.adam(g, lr=0.01, weight_decay=0.05),
        _tm(torch.optim.Adam, lr=0.01, weight_decay=0.05),
        torch.float64,
        groups=groups,
    )
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)


def test_step_lr_scheduler_drives_goodfit_lr():
    init = _params(torch.float64)
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    pb = [torch.nn.Parameter(x.clone()) for x in init]
    oa, ob = (
        go.sgd(pa, lr=0.1, momentum=0.9),
        torch.optim.SGD(pb, lr=0.1, momentum=0.9, foreach=False),
    )
    sa = torch.optim.lr_scheduler.StepLR(oa, step_size=7, gamma=0.5)
    sb = torch.optim.lr_scheduler.StepLR(ob, step_size=7, gamma=0.5)
    for t in range(30):
        for ps, opt, sch in ((pa, oa, sa), (pb, ob, sb)):
            for k, p in enumerate(ps):
                p.grad = _grad(p.detach(), k, t)
            opt.step()
            sch.step()
        assert oa.param_groups[0]["lr"] == ob.param_groups[0]["lr"]
    assert oa.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**4)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)


def test_scheduled_lr_is_written_into_param_group():
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = go.Optimizer([w], go.chain(go.scale_by_lr(lambda k: 1.0 / (k + 1))))
    assert opt.param_groups[0]["lr"] == 1.0
    for t in range(4):
        w.grad = torch.ones(3, dtype=torch.float64)
        before = w.detach().clone()
        opt.step()
        assert opt.param_groups[0]["lr"] == 1.0 / (t + 1)
        torch.testing.assert_close(
            before - w.detach(), torch.full((3,), 1.0 / (t + 1), dtype=torch.float64)
        )


def _noisy_adam_chain():
    return go.chain(
        go.clip_by_global_norm(5.0),
        go.add_noise(0.01, 0.55, seed=3),
        go.scale_by_adam(amsgrad=True),
        go.scale_by_lr(0.01),
    )


def test_state_dict_round_trip_mid_run_continues_identically():
    init = _params(torch.float64)
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    oa = go.Optimizer(pa, _noisy_adam_chain())

    def run(ps, opt, t0, t1):
        for t in range(t0, t1):
            for k, p in enumerate(ps):
                p.grad = _grad(p.detach(), k, t)
            opt.step()

    run(pa, oa, 0, 10)
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in pa], "opt": oa.state_dict()}, buf)
    run(pa, oa, 10, 25)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    pb = [torch.nn.Parameter(x) for x in ck["params"]]
    ob = go.Optimizer(pb, _noisy_adam_chain())
    ob.load_state_dict(ck["opt"])
    run(pb, ob, 10, 25)
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_params_without_grad_are_skipped_and_closure_returns_loss():
    a = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    b = torch.nn.Parameter(torch.tensor([3.0]))
    opt = go.adam([a, b], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (a**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 5.0
    assert b.grad is None and b.item() == 3.0 and b not in opt.state
    torch.testing.assert_close(
        a.detach(), torch.tensor([0.9, 1.9])
    )  # Adam's first step is lr*sign(g)


def test_sparse_gradient_and_complex_params_raise():
    w = torch.nn.Parameter(torch.zeros(4))
    opt = go.sgd([w], lr=0.1)
    w.grad = torch.zeros(4).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    with pytest.raises(ValueError, match="complex"):
        go.adam([torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: go.sgd(p, lr=-1.0), "lr must be >= 0, got -1.0"),
        (lambda p: go.adam(p, b1=1.0), r"b1 must be in \[0, 1\)"),
        (lambda p: go.adam(p, b2=-0.1), r"b2 must be in \[0, 1\)"),
        (lambda p: go.adam(p, eps=-1e-8), "eps must be >= 0"),
        (lambda p: go.rmsprop(p, eps=-1e-8), "eps must be >= 0"),
        (lambda p: go.adagrad([{"params": p, "eps": -1.0}]), "eps must be >= 0"),
        (lambda p: go.rmsprop(p, decay=1.5), "decay"),
        (lambda p: go.sgd(p, momentum=1.0), "momentum"),
        (lambda p: go.sgd(p, lr=0.1, nesterov=True), "nesterov requires momentum > 0"),
        (lambda p: go.adamw(p, weight_decay=-0.1), "weight_decay must be >= 0"),
        (lambda p: go.adam([{"params": p, "lr": -0.5}]), "lr must be >= 0"),
        (lambda p: go.adam(p, lr=float("nan")), "lr must be a finite number"),
    ],
)
def test_bad_hyperparameters_raise_at_construction(call, match):
    with pytest.raises(ValueError, match=match):
        call([torch.nn.Parameter(torch.zeros(2))])


def test_chain_from_spec_builds_named_optimizer_and_rejects_unknown_names():
    spec = [
        {"name": "add_l2", "weight_decay": 0.01},
        {"name": "scale_by_adam", "b1": 0.8},
        {"name": "scale_by_lr", "lr": 0.01},
    ]
    pa, pb = _run_pair(
        lambda ps: go.Optimizer(ps, chain_from_spec(spec)),
        _tm(torch.optim.Adam, lr=0.01, betas=(0.8, 0.999), weight_decay=0.01),
        torch.float64,
        steps=20,
    )
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"unknown transform 'scale_by_adamm'.*scale_by_adam"):
        chain_from_spec([{"name": "scale_by_adamm"}])
    with pytest.raises(TypeError):
        chain_from_spec([{"name": "scale_by_adam", "beta1": 0.9}])
    with pytest.raises(ValueError, match="eps must be >= 0"):
        chain_from_spec([{"name": "scale_by_rms", "eps": -1e-8}])
    with pytest.raises(TypeError):
        OPTIMIZERS["adam"]([torch.nn.Parameter(torch.zeros(1))], learning_rate=0.1)
    names = "sgd gd heavy_ball adagrad rmsprop adadelta adam adamw amsgrad adamax nadam"
    assert set(OPTIMIZERS) == set(names.split())


# torch allows eps = 0 in every optimizer that has one (``0.0 <= eps`` in Adam, AdamW, Adamax,
# NAdam, RMSprop, Adagrad, Adadelta); so does goodfit. The gradients of _grad are never exactly
# 0, so no 0/0 arises. Adadelta with eps = 0 never moves (its numerator sqrt(E[dW^2] + eps) starts
# at 0), in torch as in goodfit: the comparison still pins that behaviour.
EPS0 = [
    ("adam", go.adam, {}, torch.optim.Adam, {}),
    ("adamw", go.adamw, {}, torch.optim.AdamW, {}),
    ("amsgrad", go.amsgrad, {}, torch.optim.Adam, {"amsgrad": True}),
    ("nadam", go.nadam, {}, torch.optim.NAdam, {}),
    ("adamax", go.adamax, {}, torch.optim.Adamax, {}),
    ("rmsprop", go.rmsprop, {}, torch.optim.RMSprop, {}),
    ("rmsprop_momentum", go.rmsprop, {"momentum": 0.9}, torch.optim.RMSprop, {"momentum": 0.9}),
    ("rmsprop_centered", go.rmsprop, {"centered": True}, torch.optim.RMSprop, {"centered": True}),
    ("adagrad", go.adagrad, {}, torch.optim.Adagrad, {}),
    ("adadelta", go.adadelta, {}, torch.optim.Adadelta, {}),
]


@pytest.mark.parametrize("case", EPS0, ids=[c[0] for c in EPS0])
def test_eps_zero_equals_torch(case):
    _, fac, kw, cls, tkw = case
    pa, pb = _run_pair(
        lambda ps: fac(ps, lr=0.01, eps=0.0, **kw),
        _tm(cls, lr=0.01, eps=0.0, **tkw),
        torch.float64,
        steps=50,
    )
    for a, b in zip(pa, pb, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ convergence
def _quadratic(x):
    """Ill-conditioned quadratic 0.5 sum k_i x_i^2, k from 1 to 100 (condition number 100)."""
    k = torch.logspace(0, 2, x.numel(), dtype=x.dtype)
    return 0.5 * (k * x**2).sum().item(), k * x


def _rosenbrock(x):
    a, b = x[0].item(), x[1].item()
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    return f, torch.tensor([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], dtype=x.dtype)


# (name, kwargs on the quadratic, kwargs on Rosenbrock): lr tuned per problem, 300 steps.
CONV = [
    ("sgd", dict(lr=0.005, momentum=0.9), dict(lr=2e-4, momentum=0.9)),
    ("gd", dict(lr=0.015), dict(lr=5e-4)),
    ("heavy_ball", dict(lr=0.005, momentum=0.9), dict(lr=2e-4, momentum=0.9)),
    ("adagrad", dict(lr=0.3), dict(lr=0.3)),
    ("rmsprop", dict(lr=0.01), dict(lr=0.01)),
    ("adadelta", dict(eps=1e-3), dict(eps=1e-3)),
    ("adam", dict(lr=0.05), dict(lr=0.05)),
    ("adamw", dict(lr=0.05, weight_decay=0.0), dict(lr=0.05, weight_decay=0.0)),
    ("amsgrad", dict(lr=0.05), dict(lr=0.05)),
    ("adamax", dict(lr=0.05), dict(lr=0.05)),
    ("nadam", dict(lr=0.05), dict(lr=0.05)),
]


@pytest.mark.parametrize("name, qkw, rkw", CONV, ids=[c[0] for c in CONV])
def test_convergence_sanity_quadratic_and_rosenbrock(name, qkw, rkw):
    problems = [
        (_quadratic, qkw, torch.ones(8, dtype=torch.float64), 0.1),
        (_rosenbrock, rkw, torch.tensor([-1.2, 1.0], dtype=torch.float64), 0.2),
    ]
    for fn, kw, x0, factor in problems:
        x = torch.nn.Parameter(x0.clone())
        opt = OPTIMIZERS[name]([x], **kw)
        f0 = fn(x0)[0]
        for _ in range(300):
            x.grad = fn(x.detach())[1]
            opt.step()
        f = fn(x.detach())[0]
        assert math.isfinite(f) and f < factor * f0, (name, fn.__name__, f0, f)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[0] in ("adam", "sgd_nesterov", "rmsprop_centered")]
)
def test_cache_sized_slices_give_the_same_steps(case, monkeypatch):
    """The default path runs element-wise chains slice by slice; tiny slices must change nothing."""
    import goodfit.optim.optimizers as mod

    monkeypatch.setattr(mod, "_CHUNK", 5)
    assert mod._chunks(_params(torch.float64)) == [(0, 1), (1, 2), (2, 3)]
    _, fac, kw, cls, tkw = case
    pa, pb = _run_pair(lambda ps: fac(ps, **kw), _tm(cls, **tkw), torch.float64)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)


def test_compiled_path_matches_torch_under_a_step_lr_schedule():
    """torch.compile of the whole update (float32 within 1e-5; a few seconds of compilation)."""
    init = _params(torch.float32)
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    pb = [torch.nn.Parameter(x.clone()) for x in init]
    oa = go.adam(pa, lr=0.01, weight_decay=0.01, compiled=True)
    ob = torch.optim.Adam(pb, lr=0.01, weight_decay=0.01, foreach=False)
    sa = torch.optim.lr_scheduler.StepLR(oa, step_size=5, gamma=0.5)
    sb = torch.optim.lr_scheduler.StepLR(ob, step_size=5, gamma=0.5)
    for t in range(30):
        for ps, opt, sch in ((pa, oa, sa), (pb, ob, sb)):
            for k, p in enumerate(ps):
                p.grad = _grad(p.detach(), k, t)
            opt.step()
            sch.step()
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-5)


def test_compiled_momentum_recompiles_once_for_the_first_step_branch():
    """SGD momentum's buffer is copied at t = 1 and updated after: both compiled branches must
    match torch (float32 within 1e-5) over 30 steps."""
    _, fac, kw, cls, tkw = next(c for c in CASES if c[0] == "sgd_nesterov")
    pa, pb = _run_pair(
        lambda ps: fac(ps, compiled=True, **kw), _tm(cls, **tkw), torch.float32, steps=30
    )
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-5)


def test_each_compiled_optimizer_owns_its_compiled_code():
    """dynamo caches per code object and runs eagerly after 8 variants: optimizers must not share
    one, or the ninth compiled optimizer of a process (a study's ninth run) would silently be
    eager."""
    ps = [torch.nn.Parameter(torch.zeros(2))]
    a, b = go.adam(ps, compiled=True), go.sgd(ps, compiled=True)
    code = [o._core._torchdynamo_orig_callable.__code__ for o in (a, b)]
    assert code[0] is not code[1]
    assert go.adam(ps)._core is None


def test_a_chain_that_cannot_compile_into_one_graph_warns_and_runs_eagerly():
    """Gradient noise draws from a generator, which dynamo cannot keep in one graph: the compiled
    optimizer must say so and then give exactly the eager steps (never a split graph)."""
    out = []
    for compiled in (False, True):
        torch.manual_seed(0)
        ps = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))]
        tx = go.chain(go.add_noise(0.01), go.scale_by_lr(0.1))
        opt = go.Optimizer(ps, tx, compiled=compiled)
        for t in range(5):
            for p in ps:
                p.grad = torch.cos(p.detach() + t)
            if compiled and t == 0:
                with pytest.warns(UserWarning, match="does not compile into one graph"):
                    opt.step()
            else:
                opt.step()
        out.append(torch.cat([p.detach().flatten() for p in ps]))
    assert torch.equal(out[0], out[1])


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_named_optimizer_compiled_matches_torch(case):
    """The compiled path of every named optimizer vs torch.optim in float32 (within 1e-5 after
    30 steps; compilation reorders float32 arithmetic). Slow: one compilation per case."""
    _, fac, kw, cls, tkw = case
    pa, pb = _run_pair(
        lambda ps: fac(ps, compiled=True, **kw), _tm(cls, **tkw), torch.float32, steps=30
    )
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-5)


def test_grad_scaler_unscales_and_steps_a_goodfit_optimizer():
    init = _params(torch.float32)
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    pb = [torch.nn.Parameter(x.clone()) for x in init]
    oa, ob = go.adam(pa, lr=0.01), torch.optim.Adam(pb, lr=0.01, foreach=False)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for _ in range(5):
        for ps, opt in ((pa, oa), (pb, ob)):
            opt.zero_grad()
            loss = sum((torch.sin(p) ** 2).sum() for p in ps)
            if opt is oa:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)
