"""torch's momentum-cycling schedulers (OneCycleLR, CyclicLR with ``cycle_momentum=True``) on
goodfit optimizers, step by step against the torch.optim namesake under the same scheduler.

The Adam family keeps ``betas = (b1, b2)`` in its param groups (torch's key), which these
schedulers rewrite every step (``betas[0]`` between ``base_momentum`` and ``max_momentum``); SGD
and RMSprop keep ``momentum``. Tolerances: float64 eager runs do the same operations in the same
order as torch's single-tensor path (multi-tensor kernels round the same way), so the parameters
agree to a few ulps after 40 steps; rtol=1e-10 leaves six orders of magnitude of margin, while a
scheduler whose beta1 were ignored moves the parameters by ~1e-3 (checked below). The compiled
path runs in float32, which inductor reorders: 1e-5 as the other compiled tests.
"""

from __future__ import annotations

import io

import pytest
import torch

import goodfit.optim as go
from test_optim_optimizers import _grad, _params  # the same gradients as the torch tests

STEPS = 40
TOL64 = dict(rtol=1e-10, atol=1e-12)
TOL32 = dict(rtol=1e-5, atol=1e-5)


def one_cycle(opt, **kw):
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.05, total_steps=STEPS, base_momentum=0.8, max_momentum=0.95, **kw
    )


def cyclic(opt, **kw):
    return torch.optim.lr_scheduler.CyclicLR(
        opt,
        base_lr=0.001,
        max_lr=0.05,
        step_size_up=7,
        mode="triangular2",
        base_momentum=0.8,
        max_momentum=0.95,
        **kw,
    )


SCHEDULERS = {"one_cycle": one_cycle, "cyclic": cyclic}

# (id, goodfit factory and kwargs, torch class and kwargs, the group key the scheduler cycles)
CASES = [
    ("adam", go.adam, {}, torch.optim.Adam, {}, "betas"),
    ("adamw", go.adamw, {}, torch.optim.AdamW, {}, "betas"),
    ("amsgrad", go.amsgrad, {}, torch.optim.Adam, {"amsgrad": True}, "betas"),
    ("nadam", go.nadam, {}, torch.optim.NAdam, {}, "betas"),
    ("adamax", go.adamax, {}, torch.optim.Adamax, {}, "betas"),
    ("adam_b2", go.adam, {"b2": 0.99}, torch.optim.Adam, {"betas": (0.9, 0.99)}, "betas"),
    ("sgd_momentum", go.sgd, {"momentum": 0.9}, torch.optim.SGD, {"momentum": 0.9}, "momentum"),
    (
        "sgd_nesterov",
        go.sgd,
        {"momentum": 0.9, "nesterov": True},
        torch.optim.SGD,
        {"momentum": 0.9, "nesterov": True},
        "momentum",
    ),
    (
        "rmsprop_momentum",
        go.rmsprop,
        {"momentum": 0.9},
        torch.optim.RMSprop,
        {"momentum": 0.9},
        "momentum",
    ),
]
IDS = [c[0] for c in CASES]


def _momentum_of(group, key):
    return group["betas"][0] if key == "betas" else group["momentum"]


def _run(opt, sched, ps, steps, t0=0):
    for t in range(t0, t0 + steps):
        for k, p in enumerate(ps):
            p.grad = _grad(p.detach(), k, t)
        opt.step()
        sched.step()
        yield t


def _compare(case, sched_name, dtype, tol, compiled=False, cycle_momentum=True):
    """Run goodfit and torch under the same scheduler; compare after every step."""
    _, fac, kw, cls, tkw, key = case
    init = _params(dtype)
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    pb = [torch.nn.Parameter(x.clone()) for x in init]
    oa = fac(pa, lr=0.01, compiled=compiled, **kw)
    ob = cls(pb, lr=0.01, foreach=False, **tkw)
    make = SCHEDULERS[sched_name]
    sa, sb = make(oa, cycle_momentum=cycle_momentum), make(ob, cycle_momentum=cycle_momentum)
    seen = set()
    for _ in zip(_run(oa, sa, pa, STEPS), _run(ob, sb, pb, STEPS), strict=True):
        ga, gb = oa.param_groups[0], ob.param_groups[0]
        assert ga["lr"] == gb["lr"]
        assert _momentum_of(ga, key) == _momentum_of(gb, key)
        seen.add(_momentum_of(ga, key))
        for a, b in zip(pa, pb, strict=True):
            torch.testing.assert_close(a.detach(), b.detach(), **tol)
    return pa, seen


@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_momentum_cycling_scheduler_equals_torch_step_by_step(case, sched):
    _, seen = _compare(case, sched, torch.float64, TOL64)
    assert len(seen) > 10 and min(seen) < 0.85 and max(seen) > 0.9  # it really cycles
    _, fac, kw, _, _, key = case
    if key == "betas":  # the group holds torch's form: the tuple (b1, b2)
        group = fac([torch.nn.Parameter(torch.zeros(1))], **kw).param_groups[0]
        assert group["betas"] == (kw.get("b1", 0.9), kw.get("b2", 0.999))


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("adam", "sgd_momentum")])
def test_the_cycled_momentum_changes_the_update(case):
    """The control that makes the comparison meaningful: without the cycled momentum the
    parameters differ by far more than the tolerance."""
    cycled, _ = _compare(case, "one_cycle", torch.float64, TOL64)
    fixed, _ = _compare(case, "one_cycle", torch.float64, TOL64, cycle_momentum=False)
    diff = max(float((a - b).abs().max()) for a, b in zip(cycled, fixed, strict=True))
    assert diff > 1e-4


def test_compiled_adam_follows_one_cycle_without_recompiling_per_step():
    """The compiled path receives lr and betas as 0-d tensors: 40 different beta1 values must
    neither recompile each step (dynamo's limit of 8 would stop it) nor be frozen at the first."""
    case = next(c for c in CASES if c[0] == "adam")
    _compare(case, "one_cycle", torch.float32, TOL32, compiled=True)


@pytest.mark.slow
@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_compiled_path_under_momentum_cycling_schedulers(case, sched):
    """Every case compiled (float32, 1e-5). Slow: one compilation per case."""
    _compare(case, sched, torch.float32, TOL32, compiled=True)


def test_state_dict_round_trip_under_one_cycle_is_exact():
    """Save optimizer + scheduler mid-cycle (betas in the groups), load into fresh ones with
    ``weights_only=True``: the continuation is bit-identical."""
    init = _params(torch.float64)
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    oa = go.nadam(pa, lr=0.01)
    sa = one_cycle(oa)
    list(_run(oa, sa, pa, 15))
    buf = io.BytesIO()
    params = [p.detach().clone() for p in pa]
    torch.save({"params": params, "opt": oa.state_dict(), "sched": sa.state_dict()}, buf)
    list(_run(oa, sa, pa, 20, t0=15))
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    assert isinstance(ck["opt"]["param_groups"][0]["betas"], tuple)
    pb = [torch.nn.Parameter(x) for x in ck["params"]]
    ob = go.nadam(pb, lr=0.01)
    sb = one_cycle(ob)
    ob.load_state_dict(ck["opt"])
    sb.load_state_dict(ck["sched"])
    assert ob.param_groups[0]["betas"] == ck["opt"]["param_groups"][0]["betas"]
    list(_run(ob, sb, pb, 20, t0=15))
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_per_group_betas_as_in_torch_and_b1_keys_refused():
    def groups(ps):
        return [{"params": ps[:1], "betas": (0.8, 0.99)}, {"params": ps[1:]}]

    init = _params(torch.float64)
    pa = [torch.nn.Parameter(x.clone()) for x in init]
    pb = [torch.nn.Parameter(x.clone()) for x in init]
    oa, ob = go.adam(groups(pa), lr=0.01), torch.optim.Adam(groups(pb), lr=0.01, foreach=False)
    for t in range(20):
        for ps, opt in ((pa, oa), (pb, ob)):
            for k, p in enumerate(ps):
                p.grad = _grad(p.detach(), k, t)
            opt.step()
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), **TOL64)
    w = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match=r"betas=\(b1, b2\)"):
        go.adam([{"params": w, "b1": 0.8}])
    with pytest.raises(ValueError, match=r"b2 must be in \[0, 1\), got 1.0"):
        go.adam([{"params": w, "betas": (0.9, 1.0)}])
    with pytest.raises(ValueError, match="betas must be a pair"):
        go.adamax([{"params": w, "betas": 0.9}])
