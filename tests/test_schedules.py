"""Tests for goodfit.schedules: torch equivalence, the notes' formulas, validation, config."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch.optim import lr_scheduler as tls

from goodfit import schedules as S
from goodfit.app import schedule_spec

N = 1200  # >= 1000 steps for every equivalence check
TOL = 1e-12


def torch_lrs(make, base_lr, n, **sgd):
    """Rates a torch scheduler gives a dummy SGD optimizer at steps 0..n-1."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr, **sgd)
    sched = make(opt)
    out = []
    opt.step()  # once, so torch sees the documented order (the parameter never changes anyway)
    for _ in range(n):
        out.append(float(opt.param_groups[0]["lr"]))
        sched.step()
    return out


def ours(schedule, n):
    return [schedule(t) for t in range(n)]


def assert_close(a, b, tol=TOL):
    assert len(a) == len(b)
    worst = max(abs(x - y) for x, y in zip(a, b, strict=True))
    assert worst <= tol, f"max abs difference {worst:.3e} > {tol:.0e}"


def assert_rel_close(a, b, rel=1e-12):
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        assert math.isclose(x, y, rel_tol=rel, abs_tol=0.0), (t, x, y)


# ------------------------------------------------------------------------------------------
# equivalence with torch.optim.lr_scheduler


def test_steplr_equals_exponential_staircase():
    ref = torch_lrs(lambda o: tls.StepLR(o, step_size=30, gamma=0.9), 0.1, N)
    got = ours(S.exponential(0.1, decay_rate=0.9, transition_steps=30, staircase=True), N)
    assert_close(got, ref)


def test_multisteplr_equals_piecewise_constant():
    ref = torch_lrs(lambda o: tls.MultiStepLR(o, milestones=[100, 400, 900], gamma=0.3), 0.2, N)
    got = ours(S.piecewise_constant([100, 400, 900], init_value=0.2, scales=[0.3] * 3), N)
    assert_close(got, ref)
    values = [0.2, 0.2 * 0.3, 0.2 * 0.3**2, 0.2 * 0.3**3]
    assert_close(ours(S.piecewise_constant([100, 400, 900], values), N), ref)


def test_exponentiallr_equals_exponential_per_step():
    ref = torch_lrs(lambda o: tls.ExponentialLR(o, gamma=0.998), 0.5, N)
    assert_close(ours(S.exponential(0.5, decay_rate=0.998), N), ref)
    assert_close(ours(S.exponential(0.5, alpha=-math.log(0.998)), N), ref)


@pytest.mark.parametrize("start,end", [(1.0, 0.1), (0.1, 1.0), (0.5, 0.0)])
def test_linearlr_equals_gbc_linear(start, end):
    ref = torch_lrs(
        lambda o: tls.LinearLR(o, start_factor=start, end_factor=end, total_iters=800), 0.3, N
    )
    assert_close(ours(S.linear(0.3 * start, 0.3 * end, 800), N), ref)


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomiallr_equals_polynomial(power):
    ref = torch_lrs(lambda o: tls.PolynomialLR(o, total_iters=900, power=power), 0.1, N)
    assert_close(ours(S.polynomial(0.1, 900, power=power), N), ref)


@pytest.mark.parametrize("eta_min", [0.0, 1e-3])
def test_cosineannealinglr_equals_cosine(eta_min):
    # torch's cosine keeps oscillating after T_max; seed 000's stays at eta_T: compare 0..T_max.
    T = 1000
    ref = torch_lrs(lambda o: tls.CosineAnnealingLR(o, T_max=T, eta_min=eta_min), 0.1, T + 1)
    assert_close(ours(S.cosine(0.1, T, eta_min), T + 1), ref)


@pytest.mark.parametrize("t0,mult", [(100, 1), (50, 2), (30, 3)])
def test_warm_restarts_equals_cosine_restarts(t0, mult):
    ref = torch_lrs(
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=t0, T_mult=mult, eta_min=1e-4), 0.1, N
    )
    assert_close(ours(S.cosine_restarts(0.1, t0, mult, 1e-4), N), ref)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cycliclr_equals_cyclic(mode):
    def make(o):
        return tls.CyclicLR(
            o, 0.01, 0.1, step_size_up=100, step_size_down=150, mode=mode, gamma=0.999,
            cycle_momentum=False,
        )  # fmt: skip

    ref = torch_lrs(make, 0.05, N)
    assert_close(ours(S.cyclic(0.01, 0.1, 100, 150, mode=mode, gamma=0.999), N), ref)


@pytest.mark.parametrize(
    "pct,anneal,three", [(0.3, "cos", False), (0.25, "linear", False), (0.3, "cos", True)]
)
def test_onecyclelr_equals_one_cycle(pct, anneal, three):
    def make(o):
        return tls.OneCycleLR(
            o, max_lr=0.1, total_steps=N, pct_start=pct, anneal_strategy=anneal,
            three_phase=three, cycle_momentum=False, div_factor=20.0, final_div_factor=1e3,
        )  # fmt: skip

    ref = torch_lrs(make, 0.1, N)
    got = S.one_cycle(0.1, N, pct, anneal, div_factor=20.0, final_div_factor=1e3, three_phase=three)
    assert_close(ours(got, N), ref)
    assert got(N + 50) == got(N - 1)  # held at the final value after the run


# ------------------------------------------------------------------------------------------
# the notes' formulas transcribed in plain Python


def test_seed000_inverse_time_recursive_constant_tau():
    eta0, tau = 0.1, 1e-4
    ref = [eta0]
    for t in range(1, N):
        ref.append(ref[-1] / (1 + tau * t))
    assert ours(S.inverse_time(eta0, tau, recursive=True), N) == ref


def test_seed000_inverse_time_recursive_step_decayed_tau():
    eta0, tau, alpha, T = 0.1, 1e-3, 0.9, 100
    ref, tau_t = [eta0], tau
    for t in range(1, N):
        if t % T == 0:  # "change tau_t to alpha tau_t each T steps"
            tau_t = alpha * tau_t
        ref.append(ref[-1] / (1 + tau_t * t))
    got = ours(S.inverse_time(eta0, tau, recursive=True, tau_decay_steps=T), N)
    assert_rel_close(got, ref, rel=1e-12)
    # the memo does not make the function depend on call order
    fresh = S.inverse_time(eta0, tau, recursive=True, tau_decay_steps=T)
    assert fresh(N - 1) == got[N - 1] and fresh(7) == got[7]


def test_inverse_time_closed_form():
    eta0, k = 0.5, 0.01
    assert_rel_close(ours(S.inverse_time(eta0, k), N), [eta0 / (1 + k * t) for t in range(N)])
    got = ours(S.inverse_time(eta0, k, power=0.75), N)
    assert_rel_close(got, [eta0 * (1 + k * t) ** -0.75 for t in range(N)])


def test_gbc_8_14_linear_decay_seed004_example():
    eps0, eps_tau, tau = 0.01, 0.001, 500  # seed 004's example values

    def ref(k):
        if k > tau:
            return eps_tau  # "after iteration tau, it is common to leave eps constant"
        a = k / tau
        return (1 - a) * eps0 + a * eps_tau

    assert ours(S.linear(eps0, eps_tau, tau), N) == [ref(k) for k in range(N)]


def test_seed000_exponential_exp_minus_alpha_t():
    eta0, alpha = 0.1, 0.003
    got = ours(S.exponential(eta0, alpha=alpha), N)
    assert_rel_close(got, [eta0 * math.exp(-alpha * t) for t in range(N)])


def test_seed003_exponential_c_pow_t_per_epoch_staircase():
    eta0, c, steps_per_epoch = 0.1, 0.95, 37
    got = ours(
        S.exponential(eta0, decay_rate=c, transition_steps=steps_per_epoch, staircase=True), N
    )
    assert_rel_close(got, [eta0 * c ** (t // steps_per_epoch) for t in range(N)])
    smooth = ours(S.exponential(eta0, decay_rate=c, transition_steps=steps_per_epoch), N)
    assert_rel_close(smooth, [eta0 * c ** (t / steps_per_epoch) for t in range(N)])


def test_seed000_sqrt_decay():
    assert_rel_close(ours(S.sqrt_decay(0.2), N), [0.2 * (t + 1) ** (-1 / 2) for t in range(N)])


def test_seed003_inverse_sqrt_and_warmup_form():
    # seed 003: alpha_t = alpha_initial / sqrt(t), t = update number (step + 1)
    assert_rel_close(ours(S.inverse_sqrt(0.3), N), [0.3 / math.sqrt(t + 1) for t in range(N)])
    # machine-translation form (Vaswani et al. 2017): c * min(n^-0.5, n * w^-1.5), c = lr sqrt(w)
    w = 100
    ref = [0.3 * math.sqrt(w) * min(n**-0.5, n * w**-1.5) for n in range(1, N + 1)]
    assert_rel_close(ours(S.inverse_sqrt(0.3, warmup_steps=w), N), ref)


def test_seed000_cosine_to_eta_T_then_constant():
    eta0, eta_T, T = 0.1, 0.002, 700

    def ref(t):
        if t < T:
            return eta_T + (eta0 - eta_T) / 2 * (1 + math.cos(math.pi * t / T))
        return eta_T

    assert ours(S.cosine(eta0, T, eta_T), N) == [ref(t) for t in range(N)]


def test_seed003_cosine_to_zero_cos_squared_form():
    a0, T = 0.1, 1000
    ref = [a0 * math.cos(math.pi / 2 * t / T) ** 2 for t in range(T + 1)]
    assert_close(ours(S.cosine(a0, T), T + 1), ref)


def test_seed000_warmup_literal_form():
    eta0, alpha, T, eta_T = 0.01, 1e-4, 200, 0.001

    def ref(t):
        if t < T:
            return eta0 + alpha * t
        return eta_T + (eta0 - eta_T) / 2 * (1 + math.cos(math.pi * t / T))

    got = S.warmup_cosine(
        warmup_steps=T, init_value=eta0, slope=alpha, end_value=eta_T, form="seed000"
    )
    assert ours(got, N) == [ref(t) for t in range(N)]


def test_linear_warmup_then_cosine_common_form():
    peak, w, total, end = 1e-3, 200, 1000, 1e-5

    def ref(t):
        if t < w:
            return peak * t / w
        if t >= total:
            return end
        return end + 0.5 * (peak - end) * (1 + math.cos(math.pi * (t - w) / (total - w)))

    got = S.warmup_cosine(peak=peak, warmup_steps=w, total_steps=total, end_value=end)
    assert_close(ours(got, N), [ref(t) for t in range(N)])
    # seed 000's slope parametrization of the same warm-up (eta_0 + alpha t)
    slope = S.warmup_cosine(slope=peak / w, warmup_steps=w, total_steps=total, end_value=end)
    assert_close(ours(slope, N), [ref(t) for t in range(N)])
    # and the same schedule as join(linear warm-up, cosine)
    joined = S.join([S.linear(0.0, peak, w), S.cosine(peak, total - w, end)], [w])
    assert_close(ours(joined, N), [ref(t) for t in range(N)])


def test_join_restarts_each_piece_at_zero():
    s = S.join([S.constant(0.1), S.exponential(0.05, decay_rate=0.5), S.constant(0.01)], [10, 20])
    assert [s(t) for t in (0, 9, 10, 11, 19, 20, 500)] == [
        0.1, 0.1, 0.05, 0.025, 0.05 * 0.5**9, 0.01, 0.01
    ]  # fmt: skip


def test_constant():
    assert ours(S.constant(0.03), 5) == [0.03] * 5


# ------------------------------------------------------------------------------------------
# Robbins-Monro (seed 003)


def test_robbins_monro_from_the_form():
    assert S.robbins_monro(S.inverse_time(0.1, 0.01)) is True  # 1/t
    assert S.robbins_monro(S.inverse_time(0.1, 0.01, power=0.75)) is True
    assert S.robbins_monro(S.inverse_time(0.1, 0.01, power=0.5)) is False  # sum a^2 = inf
    assert S.robbins_monro(S.inverse_time(0.1, 0.01, power=1.5)) is False  # sum a < inf
    assert S.robbins_monro(S.inverse_time(0.1, 0.0)) is False  # constant
    assert S.robbins_monro(S.inverse_time(0.1, 0.01, recursive=True)) is False
    for s in (
        S.constant(0.1),
        S.sqrt_decay(0.1),
        S.inverse_sqrt(0.1),
        S.exponential(0.1, decay_rate=0.99),
        S.linear(0.1, 0.0, 100),
        S.cosine(0.1, 100),
        S.cyclic(0.0, 0.1, 10),
        S.one_cycle(0.1, 100),
    ):
        assert S.robbins_monro(s) is False, s
    assert S.robbins_monro(S.join([S.constant(0.1), S.inverse_time(0.1, 0.1)], [5])) is True
    assert S.robbins_monro(S.join([S.inverse_time(0.1, 0.1), S.constant(0.1)], [5])) is False
    assert S.robbins_monro(lambda t: 1.0 / (t + 1)) is None


def test_robbins_monro_recursive_form_is_summable_numerically():
    # seed 000's recursion with constant tau decays like 1/(tau^t t!): its sum converges, so
    # "sum a = inf" fails; partial sums stop changing long before 5000 steps.
    s = S.inverse_time(0.1, 1e-3, recursive=True)
    partial = [sum(s(t) for t in range(n)) for n in (2000, 5000)]
    assert partial[0] == pytest.approx(partial[1], rel=1e-12)


# ------------------------------------------------------------------------------------------
# validation at construction


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: S.constant(-1.0), "value must be a finite number >= 0"),
        (lambda: S.inverse_time(-0.1, 0.1), "init_value must be a finite number >= 0"),
        (lambda: S.inverse_time(0.1, -0.1), "decay_rate must be a finite number >= 0"),
        (lambda: S.inverse_time(0.1, 0.1, tau_decay_steps=10), "recursive=True"),
        (lambda: S.inverse_time(0.1, 0.1, recursive=True, power=0.5), "power"),
        (lambda: S.linear(0.1, -0.01, 100), "end_value must be a finite number >= 0"),
        (lambda: S.linear(0.1, 0.01, 0), "transition_steps must be an integer >= 1"),
        (lambda: S.linear(0.1, 0.01, 10.5), "transition_steps must be an integer"),
        (lambda: S.exponential(0.1), "exactly one of decay_rate"),
        (lambda: S.exponential(0.1, decay_rate=0.9, alpha=0.1), "exactly one of decay_rate"),
        (lambda: S.exponential(0.1, decay_rate=-0.9), "decay_rate must be a finite number > 0"),
        (lambda: S.sqrt_decay(float("nan")), "init_value must be a finite number"),
        (lambda: S.inverse_sqrt(0.1, warmup_steps=-1), "warmup_steps"),
        (lambda: S.polynomial(-0.1, 100), "init_value must be a finite number >= 0"),
        (lambda: S.polynomial(0.1, 100, power=0.0), "power must be a finite number > 0"),
        (lambda: S.piecewise_constant([10, 10], [1, 2, 3]), "strictly increasing"),
        (lambda: S.piecewise_constant([20, 10], [1, 2, 3]), "strictly increasing"),
        (lambda: S.piecewise_constant([10, 20], [1, 2]), "len\\(boundaries\\) \\+ 1"),
        (
            lambda: S.piecewise_constant([10], [0.1, -0.01]),
            "values\\[1\\] must be a finite number >= 0",
        ),
        (lambda: S.piecewise_constant([10]), "needs values"),
        (lambda: S.cosine(0.1, 100, end_value=-1e-3), "end_value must be a finite number >= 0"),
        (lambda: S.warmup_cosine(peak=-1e-3, warmup_steps=10, total_steps=100), "peak must be"),
        (lambda: S.warmup_cosine(peak=1e-3, warmup_steps=200, total_steps=100), "longer than"),
        (lambda: S.warmup_cosine(warmup_steps=10, total_steps=100), "exactly one of peak"),
        (lambda: S.warmup_cosine(peak=1e-3, warmup_steps=10, total_steps=99, form="x"), "form"),
        (lambda: S.cosine_restarts(0.1, 10, period_mult=0), "period_mult"),
        (lambda: S.cyclic(-0.1, 0.1, 10), "low must be a finite number >= 0"),
        (lambda: S.cyclic(0.01, 0.1, 10, mode="sine"), "mode must be one of"),
        (lambda: S.one_cycle(0.1, 100, pct_start=0.0), "pct_start must be a finite number > 0"),
        (lambda: S.one_cycle(0.1, 100, pct_start=1.0), "empty phase"),
        (lambda: S.one_cycle(0.1, 100, pct_start=0.6, three_phase=True), "empty phase"),
        (lambda: S.one_cycle(0.1, 100, anneal="exp"), "anneal must be one of"),
        (lambda: S.join([S.constant(1.0)], [10]), "schedules"),
        (lambda: S.join([S.constant(1.0), S.constant(2.0)], [0]), "boundaries\\[0\\]"),
        (lambda: S.join([S.constant(1.0)] * 3, [10, 5]), "strictly increasing"),
    ],
)
def test_bad_parameters_fail_at_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_missing_warmup_cosine_arguments_are_type_errors():
    with pytest.raises(TypeError, match="total_steps"):
        S.warmup_cosine(peak=1e-3, warmup_steps=10)


def test_negative_or_float_step_is_rejected():
    s = S.cosine(0.1, 100)
    with pytest.raises(ValueError, match="step must be >= 0"):
        s(-1)
    with pytest.raises(TypeError):
        s(1.5)
    assert s(torch.tensor(3)) == s(3)


def test_schedules_pickle_and_repr():
    for name, s in [
        ("inverse_time", S.inverse_time(0.1, 1e-3, recursive=True, tau_decay_steps=5)),
        ("cosine", S.cosine(0.1, 100, 0.01)),
        ("join", S.join([S.constant(0.1), S.sqrt_decay(0.1)], [3])),
    ]:
        s(50)
        clone = pickle.loads(pickle.dumps(s))
        assert ours(clone, 60) == ours(s, 60)
        assert repr(s).startswith(name + "(")


# ------------------------------------------------------------------------------------------
# config (goodfit.app.schedule_spec)


def cfg(name, params, **kw):
    kw = {"base_lr": 0.1, "steps_per_epoch": 10, "epochs": 5, **kw}
    return schedule_spec.schedule_from_config(name, params, **kw)


def test_config_defaults_base_lr_and_run_length():
    assert ours(cfg("cosine", {}), 60) == ours(S.cosine(0.1, 50), 60)
    assert ours(cfg("constant", {}), 3) == [0.1] * 3
    assert ours(cfg("one_cycle", {"pct_start": 0.25}), 50) == ours(S.one_cycle(0.1, 50, 0.25), 50)
    assert ours(cfg("cyclic", {"low": 0.01, "up_steps": 5}), 30) == ours(S.cyclic(0.01, 0.1, 5), 30)
    # an explicit value wins over base_lr
    assert cfg("cosine", {"init_value": 0.5})(0) == 0.5


def test_config_epoch_durations_convert_to_steps():
    got = cfg("warmup_cosine", {"warmup_epochs": 1.5, "end_value": 0.001})
    want = S.warmup_cosine(peak=0.1, warmup_steps=15, total_steps=50, end_value=0.001)
    assert ours(got, 60) == ours(want, 60)
    got = cfg("piecewise_constant", {"boundaries_epochs": [2, 4], "scales": [0.1, 0.1]})
    assert ours(got, 50) == ours(
        S.piecewise_constant([20, 40], init_value=0.1, scales=[0.1] * 2), 50
    )
    got = cfg("exponential", {"decay_rate": 0.5, "transition_epochs": 1, "staircase": True})
    assert [got(t) for t in (0, 9, 10, 25)] == [0.1, 0.1, 0.05, 0.025]


def test_config_epoch_interval_counts_epochs():
    got = cfg("cosine", {"interval": "epoch", "end_value": 0.01})
    assert ours(got, 6) == ours(S.cosine(0.1, 5, 0.01), 6)
    got = cfg("linear", {"end_value": 0.0, "transition_epochs": 3}, interval="epoch")
    assert ours(got, 5) == ours(S.linear(0.1, 0.0, 3), 5)
    with pytest.raises(ValueError, match="decay_epochs"):
        cfg("cosine", {"interval": "epoch", "decay_steps": 10})
    with pytest.raises(ValueError, match="whole number of epochs"):
        cfg("cosine", {"interval": "epoch", "decay_epochs": 2.5})


def test_config_errors():
    with pytest.raises(TypeError, match="'warmup'"):
        cfg("cosine", {"warmup": 3})
    with pytest.raises(TypeError, match="'warmup_epochs'"):
        cfg("cosine", {"warmup_epochs": 3})
    with pytest.raises(ValueError, match="schedule name must be one of"):
        cfg("cosine_decay", {})
    with pytest.raises(ValueError, match="init_value must be a finite number >= 0"):
        cfg("cosine", {"init_value": -1.0})
    with pytest.raises(ValueError, match="not both"):
        cfg("cosine", {"decay_steps": 10, "decay_epochs": 1})
    with pytest.raises(ValueError, match="interval must be one of"):
        cfg("cosine", {"interval": "batch"})
    with pytest.raises(ValueError, match="interval given twice"):
        cfg("cosine", {"interval": "step"}, interval="epoch")
    with pytest.raises(ValueError, match="warmup_steps must be <= total_steps"):
        cfg("warmup_cosine", {"warmup_epochs": 6})


def test_registry_names():
    assert set(schedule_spec.SCHEDULES) == {
        "constant", "inverse_time", "linear", "exponential", "sqrt_decay", "inverse_sqrt",
        "polynomial", "piecewise_constant", "cosine", "warmup_cosine", "cosine_restarts",
        "cyclic", "one_cycle",
    }  # fmt: skip


# ------------------------------------------------------------------------------------------
# torch adapter and plot


def test_as_lr_scheduler_follows_schedule_and_resumes_exactly(tmp_path):
    schedule = S.warmup_cosine(peak=0.1, warmup_steps=20, total_steps=200, end_value=1e-3)

    def make():
        p = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
        return opt, S.as_lr_scheduler(opt, schedule)

    opt, sched = make()
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    seen = []
    for _ in range(120):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == ours(schedule, 120)
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ck.pt")
    rest_a = []
    for _ in range(80):
        rest_a.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()

    opt2, sched2 = make()
    state = torch.load(tmp_path / "ck.pt", weights_only=True)
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    rest_b = []
    for _ in range(80):
        rest_b.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest_b == rest_a == [schedule(t) for t in range(120, 200)]


def test_as_lr_scheduler_one_schedule_per_group():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=1.0)
    sa, sb = S.constant(0.1), S.linear(0.2, 0.0, 10)
    sched = S.as_lr_scheduler(opt, [sa, sb])
    for t in range(12):
        assert [g["lr"] for g in opt.param_groups] == [sa(t), sb(t)]
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="one per group"):
        S.as_lr_scheduler(opt, [sa])


def test_plot_schedule_writes_png_and_draws_values(tmp_path):
    from matplotlib.figure import Figure

    s = S.one_cycle(0.1, 300)
    fig = S.plot_schedule(s, 300, path=tmp_path / "lr.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(fig.axes[0].lines[0].get_ydata()) == ours(s, 300)
    other = Figure()
    ax = other.add_subplot()
    assert S.plot_schedule(s, [0, 10, 20], ax=ax) is other
    assert list(ax.lines[0].get_xdata()) == [0, 10, 20]


def test_plot_schedule_xlabel():
    fig = S.plot_schedule(S.cosine(0.1, 10), 11, xlabel="epoch")
    assert fig.axes[0].get_xlabel() == "epoch"
