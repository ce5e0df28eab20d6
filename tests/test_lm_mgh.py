"""Robustness beyond the NIST set: the Moré-Garbow-Hillstrom least-squares test problems
(J. J. Moré, B. S. Garbow, K. E. Hillstrom, *Testing unconstrained optimization software*,
ACM TOMS 7 (1981), problems 1-16 and 18), from the standard start x0 and from 10 x0 and
100 x0 (as MINPACK's own test driver runs them). Moré's Levenberg-Marquardt must solve at
least as many problem/start pairs as MINPACK's lmder (scipy), with the same exact Jacobian and
tolerances; "solved" = a final cost within 1e-6 (relative) of the best either reached.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares
from torch.func import jacrev

from goodfit.optim.second_order import compiled_trust_region, levenberg_marquardt

F64 = torch.float64


def _t(v):
    return torch.tensor(v, dtype=F64)


def rosenbrock(x):
    return torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def freudenstein_roth(x):
    return torch.stack([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1],
                        -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]])  # fmt: skip


def powell_badly_scaled(x):
    return torch.stack([1e4 * x[0] * x[1] - 1, torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001])


def brown_badly_scaled(x):
    return torch.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def beale(x):
    y, i = _t([1.5, 2.25, 2.625]), _t([1.0, 2.0, 3.0])
    return y - x[0] * (1 - x[1] ** i)


def jennrich_sampson(x):
    i = torch.arange(1, 11, dtype=F64)
    return 2 + 2 * i - (torch.exp(i * x[0]) + torch.exp(i * x[1]))


def helical_valley(x):
    theta = torch.atan(x[1] / x[0]) / (2 * math.pi) + torch.where(x[0] < 0, 0.5, 0.0)
    return torch.stack([10 * (x[2] - 10 * theta),
                        10 * (torch.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2]])  # fmt: skip


BARD_Y = _t([0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10,
             4.39])  # fmt: skip


def bard(x):
    u = torch.arange(1, 16, dtype=F64)
    v = 16 - u
    w = torch.minimum(u, v)
    return BARD_Y - (x[0] + u / (v * x[1] + w * x[2]))


GAUSS_Y = _t([0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420,
              0.1295, 0.0540, 0.0175, 0.0044, 0.0009])  # fmt: skip


def gaussian(x):
    t = (8 - torch.arange(1, 16, dtype=F64)) / 2
    return x[0] * torch.exp(-x[1] * (t - x[2]) ** 2 / 2) - GAUSS_Y


MEYER_Y = _t([34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005, 5147, 4427,
              3820, 3307, 2872])  # fmt: skip


def meyer(x):
    t = 45 + 5 * torch.arange(1, 17, dtype=F64)
    return x[0] * torch.exp(x[1] / (t + x[2])) - MEYER_Y


def box_3d(x):
    t = 0.1 * torch.arange(1, 11, dtype=F64)
    return (torch.exp(-t * x[0]) - torch.exp(-t * x[1])
            - x[2] * (torch.exp(-t) - torch.exp(-10 * t)))  # fmt: skip


def powell_singular(x):
    return torch.stack([x[0] + 10 * x[1], math.sqrt(5) * (x[2] - x[3]), (x[1] - 2 * x[2]) ** 2,
                        math.sqrt(10) * (x[0] - x[3]) ** 2])  # fmt: skip


def wood(x):
    return torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0], math.sqrt(90) * (x[3] - x[2] ** 2),
                        1 - x[2], math.sqrt(10) * (x[1] + x[3] - 2),
                        (x[1] - x[3]) / math.sqrt(10)])  # fmt: skip


KO_Y = _t([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235,
           0.0246])  # fmt: skip
KO_U = _t([4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])


def kowalik_osborne(x):
    u = KO_U
    return KO_Y - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


def brown_dennis(x):
    t = torch.arange(1, 21, dtype=F64) / 5
    return (x[0] + t * x[1] - torch.exp(t)) ** 2 + (x[2] + x[3] * torch.sin(t) - torch.cos(t)) ** 2


OSB1_Y = _t([0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751, 0.718,
             0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490, 0.478, 0.467,
             0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406])  # fmt: skip


def osborne_1(x):
    t = 10 * torch.arange(33, dtype=F64)
    return OSB1_Y - (x[0] + x[1] * torch.exp(-t * x[3]) + x[2] * torch.exp(-t * x[4]))


def biggs_exp6(x):
    t = 0.1 * torch.arange(1, 14, dtype=F64)
    y = torch.exp(-t) - 5 * torch.exp(-10 * t) + 3 * torch.exp(-4 * t)
    return (x[2] * torch.exp(-t * x[0]) - x[3] * torch.exp(-t * x[1])
            + x[5] * torch.exp(-t * x[4]) - y)  # fmt: skip


PROBLEMS = {
    "rosenbrock": (rosenbrock, [-1.2, 1.0]),
    "freudenstein_roth": (freudenstein_roth, [0.5, -2.0]),
    "powell_badly_scaled": (powell_badly_scaled, [0.0, 1.0]),
    "brown_badly_scaled": (brown_badly_scaled, [1.0, 1.0]),
    "beale": (beale, [1.0, 1.0]),
    "jennrich_sampson": (jennrich_sampson, [0.3, 0.4]),
    "helical_valley": (helical_valley, [-1.0, 0.0, 0.0]),
    "bard": (bard, [1.0, 1.0, 1.0]),
    "gaussian": (gaussian, [0.4, 1.0, 0.0]),
    "meyer": (meyer, [0.02, 4000.0, 250.0]),
    "box_3d": (box_3d, [0.0, 10.0, 20.0]),
    "powell_singular": (powell_singular, [3.0, -1.0, 0.0, 1.0]),
    "wood": (wood, [-3.0, -1.0, -3.0, -1.0]),
    "kowalik_osborne": (kowalik_osborne, [0.25, 0.39, 0.415, 0.39]),
    "brown_dennis": (brown_dennis, [25.0, 5.0, -5.0, -1.0]),
    "osborne_1": (osborne_1, [0.5, 1.5, -1.0, 0.01, 0.02]),
    "biggs_exp6": (biggs_exp6, [1.0, 2.0, 1.0, 1.0, 1.0, 1.0]),
}
CASES = [(name, scale) for name in PROBLEMS for scale in (1.0, 10.0, 100.0)]
TOL = 1e-10


def _minpack(fn, x0):
    jac = jacrev(fn)
    try:
        with np.errstate(all="ignore"):
            ref = least_squares(lambda b: fn(torch.from_numpy(b)).numpy(), x0.numpy(),
                                jac=lambda b: jac(torch.from_numpy(b)).numpy(), method="lm",
                                ftol=TOL, xtol=TOL, gtol=TOL, max_nfev=1000)  # fmt: skip
    except ValueError:  # a non-finite residual or Jacobian along MINPACK's path
        return math.inf
    return float(ref.cost) if np.isfinite(ref.cost) else math.inf


def _ours(fn, x0):
    try:
        with np.errstate(all="ignore"):
            res = levenberg_marquardt(fn, x0, ftol=TOL, xtol=TOL, gtol=TOL, max_iter=1000)
    except ValueError:  # a non-finite Jacobian along the path
        return math.inf
    return res.fun if math.isfinite(res.fun) else math.inf


@pytest.mark.parametrize("host", ["compiled", "lapack"])
def test_solves_at_least_as_many_mgh_pairs_as_minpack(host, monkeypatch):
    if host == "compiled" and not compiled_trust_region.AVAILABLE:
        pytest.skip("numba is not installed")
    if host == "lapack":  # the NumPy/LAPACK host path, which problems above 48 parameters use
        monkeypatch.setattr(compiled_trust_region, "COMPILED_MAX_PARAMS", 0)
    costs = {}
    for name, scale in CASES:
        fn, x0 = PROBLEMS[name]
        x0 = scale * _t(x0)
        if bool(torch.isfinite(fn(x0)).all()):  # else the scaled start is not a valid point
            costs[name, scale] = (_ours(fn, x0), _minpack(fn, x0))
    best = {name: min(min(v) for (n, _), v in costs.items() if n == name) for name in PROBLEMS}

    def solved(name, cost):  # the lowest cost any run reached on this problem, to 1e-6
        return cost <= best[name] * (1 + 1e-6) + 1e-20

    ours = sum(solved(n, a) for (n, _), (a, _) in costs.items())
    theirs = sum(solved(n, b) for (n, _), (_, b) in costs.items())
    lost = [(k, v) for k, v in costs.items() if solved(k[0], v[1]) and not solved(k[0], v[0])]
    assert ours >= theirs, (ours, theirs, lost)
    assert len(costs) >= 45


@pytest.mark.parametrize("name", ["rosenbrock", "beale", "helical_valley", "powell_singular",
                                  "wood", "box_3d", "brown_badly_scaled"])  # fmt: skip
def test_zero_residual_mgh_problems_from_the_standard_start(name):
    fn, x0 = PROBLEMS[name]
    res = levenberg_marquardt(fn, _t(x0))
    assert res.converged and res.fun < 1e-20, (name, res.fun, res.message)


def test_overflowing_sum_of_squares_is_handled_like_enorm():
    # Jennrich-Sampson from 100 x0: residuals ~1e173, ||r||^2 overflows float64; MINPACK's
    # enorm scales, and so does the solver's norm: it reaches MINPACK's local minimum
    fn, x0 = PROBLEMS["jennrich_sampson"]
    with np.errstate(over="ignore"):
        res = levenberg_marquardt(fn, 100 * _t(x0), ftol=TOL, xtol=TOL, gtol=TOL)
    assert res.fun == pytest.approx(_minpack(fn, 100 * _t(x0)), rel=1e-8)
