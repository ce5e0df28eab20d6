"""Moré's trust-region pieces of Levenberg-Marquardt compiled by numba, for small problems.

The same algorithm as :mod:`~goodfit.optim.second_order.trust_region` (J. J. Moré, *The
Levenberg-Marquardt algorithm: implementation and theory*, 1978; MINPACK's ``qrfac``,
``lmpar``, ``qrsolv`` and the host part of ``lmder``, as documented in Moré, Garbow &
Hillstrom, *User Guide for MINPACK-1*, ANL-80-74, 1980, and transcribed here from that
description), with MINPACK's own factorizations: Householder QR with column pivoting and
norm downdating (``qrfac``), Givens rotations for ``[R; sqrt(par) P^T D P]`` (``qrsolv``).

Why a second implementation: on a problem with a handful of parameters each NumPy or LAPACK
call on the host costs 10-20 µs when the model's autograd has just run between two of them
(cold caches; ~1-2 µs when timed in a loop), and one trial step of the LAPACK path makes some
40 of them, as much as the model's Jacobian itself (``benchmarks/nist_lm.py``). Here one call
does the work of a Jacobian (:func:`factor`), one the work of a trial step
(:meth:`CompiledSubproblem.step`). Plain loops beat LAPACK's kernels only on small problems,
so :func:`use_compiled` bounds their use (``levenberg_marquardt_solver``). With MINPACK's
arithmetic come MINPACK's iterates: on the 38 NIST StRD starts the solver makes exactly
scipy's ``lmder`` trial steps (the same residual and Jacobian counts, the same digits).

The kernels (:mod:`~goodfit.optim.second_order._minpack_kernels`) are imported, with numba,
on first use and compiled once, then cached on disk (``cache=True``; the first solve in a
process loads them, ~1 s). :data:`AVAILABLE` is False where numba cannot be imported, and
then the LAPACK path serves every size.
"""

from __future__ import annotations

import functools
import importlib.util
from types import ModuleType

import numpy as np

#: Whether numba can be imported (checked without importing it).
AVAILABLE = importlib.util.find_spec("numba") is not None


@functools.cache
def _kernels() -> ModuleType:
    """The compiled kernels, imported (and numba with them) on first use."""
    from goodfit.optim.second_order import _minpack_kernels

    return _minpack_kernels


__all__ = [
    "AVAILABLE",
    "COMPILED_MAX_PARAMS",
    "COMPILED_MAX_WORK",
    "CompiledSubproblem",
    "factor",
    "use_compiled",
]

#: The compiled path runs up to this many parameters ...
COMPILED_MAX_PARAMS = 48
#: ... and while ``m n^2`` (the pivoted QR's work) is at most this: beyond it LAPACK's QR,
#: faster per flop, wins back more than the compiled calls save. Whole solves, sums of
#: exponentials, 1 thread, compiled / LAPACK wall time: 0.63 at n = 8, m = 32; 0.91 at
#: (8, 1000), (24, 1000); 0.90 at (48, 192) (m n^2 = 4.4e5); 0.99 at (8, 5000) (3.2e5, the
#: residuals dominate); 1.06-1.08 at m n^2 = 2.3e6-1.2e7.
COMPILED_MAX_WORK = 1_000_000


def use_compiled(m: int, n: int) -> bool:
    """Whether an ``m x n`` problem's host work runs compiled (numba importable, ``n <=``
    :data:`COMPILED_MAX_PARAMS`, ``m n^2 <=`` :data:`COMPILED_MAX_WORK`)."""
    return AVAILABLE and n <= COMPILED_MAX_PARAMS and max(m, n) * n * n <= COMPILED_MAX_WORK


def enorm(v: np.ndarray) -> float:
    """``||v||`` without overflow or underflow (compiled ``_enorm``)."""
    return _kernels()._enorm(v)


def scaled_norm(d: np.ndarray, x: np.ndarray) -> float:
    """``||D x||`` for ``D = diag(d)`` (lmder's ``xnorm``)."""
    return _kernels()._scaled_norm(d, x)


class CompiledSubproblem:
    """``min ||J p + f||, ||D p|| <= delta`` for one factored Jacobian, one compiled call per
    trial step (:meth:`step`)."""

    def __init__(self, r: np.ndarray, ipvt: np.ndarray, diag: np.ndarray, qtf: np.ndarray):
        self.r, self.ipvt, self.diag, self.qtf = r, ipvt, diag, qtf

    def step(
        self, delta: float, par: float, fnorm: float, x: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, float, float, float]:
        """``(par, step, x - step, pnorm, prered, dirder)``: the trial point is ``x - step``."""
        step, x_new = np.empty_like(x), np.empty_like(x)
        par, pnorm, prered, dirder = _kernels()._lm_step(
            self.r, self.ipvt, self.diag, self.qtf, delta, par, fnorm, x, step, x_new
        )
        return par, step, x_new, pnorm, prered, dirder


def factor(
    J: np.ndarray, f: np.ndarray, fnorm: float, diag: np.ndarray, first: bool, x: np.ndarray
) -> tuple[CompiledSubproblem, np.ndarray, float, float]:
    """What one Jacobian gives: ``J P = Q R`` by MINPACK's ``qrfac``, ``Q^T f``, the column
    norms, ``lmder``'s ``gnorm``, and ``D`` updated in place (set from the column norms when
    ``first``, then their running maximum: MINPACK ``mode = 1``).

    Returns the subproblem, the column norms, ``gnorm`` and, when ``first``, ``||D x||``
    (else 0).
    """
    r, ipvt, qtf, acnorm, gnorm, xnorm = _kernels()._factor(J, f, fnorm, diag, first, x)
    return CompiledSubproblem(r, ipvt, diag, qtf), acnorm, gnorm, xnorm
