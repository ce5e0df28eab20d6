"""Moré's trust-region pieces of Levenberg-Marquardt (J. J. Moré, *The Levenberg-Marquardt
algorithm: implementation and theory*, Lecture Notes in Mathematics 630, 1978; the algorithm of
MINPACK's ``lmder``, ``lmpar``, ``qrsolv``, documented in Moré, Garbow & Hillstrom, *User Guide
for MINPACK-1*, ANL-80-74, 1980).

Written from the published description, on NumPy/SciPy LAPACK in float64 on the host: these are
``n x n`` (and one ``m x n``) factorizations, cheap next to the model's Jacobian, which stays
on the model's device.

* :func:`factor_jacobian` — ``J P = Q R`` with column pivoting (LAPACK ``geqp3``), ``Q^T f``
  and the column norms of ``J``;
* :class:`Subproblem` — what one Jacobian and its scaling ``D`` give every trial step: the
  Gauss-Newton step, the bounds of ``lmpar``, and :meth:`Subproblem.lmpar`, the
  Levenberg-Marquardt parameter ``par`` for a trust radius ``delta``: ``p`` solves
  ``(J^T J + par D^T D) p = -J^T f`` with ``| ||D p|| - delta | <= 0.1 delta`` (or
  ``par = 0`` when the Gauss-Newton step already lies inside ``1.1 delta``), found by Moré's
  safeguarded Newton iteration on the secular equation ``phi(par) = ||D p|| - delta`` (at
  most 10 iterations, bounds ``parl <= par <= paru``; Moré 1978 §5.2); :func:`lmpar` is the
  same for one call;
* :func:`qrsolv` — the least-squares solution of ``[J; sqrt(par) D] p = [-f; 0]`` from ``R``
  (a QR factorization of ``[R; sqrt(par) P^T D P]``, Moré 1978 §3);
* :func:`update_trust_region` — the radius and parameter update from the ratio of actual to
  predicted reduction (``lmder``'s rules and constants below);
* :func:`predicted_reduction` — ``lmder``'s scaled predicted reduction and directional
  derivative.

MINPACK recomputes the Gauss-Newton step and the bounds ``parl``, ``paru`` in every call of
``lmpar``, though they depend only on ``J``, ``f`` and ``D``, which stay fixed until the next
accepted step; :class:`Subproblem` computes them once per Jacobian (the same values).
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any

import numpy as np
from scipy.linalg import lapack
from threadpoolctl import ThreadpoolController

#: MINPACK's constants (lmder, lmpar): ``p1``, ``p5``, ``p25``, ``p75``, ``p0001``, ``p001``.
P1, P5, P25, P75, P0001, P001 = 0.1, 0.5, 0.25, 0.75, 1.0e-4, 1.0e-3
#: MINPACK's recommended initial step bound factor (lmder1, lmdif1): ``delta0 = 100 ||D x0||``.
FACTOR = 100.0
#: ``lmpar`` stops its Newton iteration on the secular equation after 10 iterations.
LMPAR_MAX_ITER = 10
#: MINPACK's ``dwarf``: the smallest positive normalized float64.
DWARF = float(np.finfo(np.float64).tiny)
#: Sums of squares in ``(_SAFE_LO, _SAFE_HI)`` neither overflowed nor lost a term to underflow
#: that matters (a term that underflowed is below 1e-308, relative 1e-28 of the sum).
_SAFE_LO, _SAFE_HI = 1e-280, 1e280


#: From this many parameters on, the host linear algebra runs with one BLAS thread.
BLAS_SINGLE_THREAD_FROM = 64


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # scans the loaded BLAS libraries once (milliseconds)


def host_blas_threads(n: int) -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread for the host factorizations of an ``n``-parameter problem (``n >=``
    :data:`BLAS_SINGLE_THREAD_FROM`; smaller ones are single-threaded anyway). OpenBLAS's
    threads spin after each call and take the cores from torch's threads computing the next
    Jacobian; measured on a 641-parameter MLP on 2 cores, this made each trial step 3x
    MINPACK's (single-threaded Fortran) instead of 0.9x (``benchmarks/lm_mlp.py``)."""
    if n < BLAS_SINGLE_THREAD_FROM:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=1, user_api="blas")


def _norm(v: np.ndarray) -> float:
    """``||v||`` without overflow or underflow of the squares (MINPACK's ``enorm`` exists for
    this: residuals of 1e160 have a finite norm): plain ``sqrt(v . v)`` when the sum of
    squares is safely representable, else scaled by ``max |v_i|``."""
    s = float(np.dot(v, v))
    if _SAFE_LO < s < _SAFE_HI:
        return math.sqrt(s)
    scale = float(np.max(np.abs(v), initial=0.0))
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    w = v / scale
    return scale * math.sqrt(float(w @ w))


def column_norms(J: np.ndarray) -> np.ndarray:
    """The Euclidean norms of ``J``'s columns, scaled like :func:`_norm` (no overflow)."""
    s = np.einsum("ij,ij->j", J, J)
    # the range test on the host's floats (a NaN makes the sum fail it: the scaled path)
    sl = s.tolist()
    if sl and min(sl) > _SAFE_LO and sum(sl) < _SAFE_HI:
        return np.sqrt(s)
    scale = np.max(np.abs(J), axis=0, initial=0.0)
    scale = np.where((scale > 0.0) & np.isfinite(scale), scale, 1.0)
    W = J / scale
    return scale * np.sqrt(np.einsum("ij,ij->j", W, W))


def _solve_upper(T: np.ndarray, b: np.ndarray, trans: int = 0) -> np.ndarray:
    """``T x = b`` (``trans=1``: ``T^T x = b``) for upper triangular ``T`` (LAPACK ``trtrs``,
    called directly: these systems are tiny and the wrappers' checks would dominate)."""
    x, _ = lapack.dtrtrs(T, b, lower=0, trans=trans)
    return x


def factor_jacobian(J: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, ...]:
    """``J P = Q R`` by Householder QR with column pivoting (MINPACK ``qrfac``; LAPACK
    ``geqp3`` pivots the same way: largest remaining column norm first).

    Returns ``R`` (``n x n`` upper triangular), ``ipvt`` (column ``j`` of ``R`` is parameter
    ``ipvt[j]``), the first ``n`` entries of ``Q^T f``, and the column norms of ``J``. A wide
    ``J`` (``m < n``) is padded with zero rows, which changes neither problem.
    """
    m, n = J.shape
    if m < n:
        J = np.vstack([J, np.zeros((n - m, n))])
        f = np.concatenate([f, np.zeros(n - m)])
    acnorm = column_norms(J)
    qr, jpvt, tau, _, _ = lapack.dgeqp3(np.array(J, order="F"), overwrite_a=1)
    qtf, _, _ = lapack.dormqr("L", "T", qr, tau, f[:, None], max(1, n))
    R = qr[:n] * _upper(n) if n <= _SMALL else np.triu(qr[:n])
    return R, jpvt - 1, qtf[:n, 0], acnorm


#: Up to this size the upper triangular mask is kept (``np.triu`` rebuilds it on every call).
_SMALL = 64


@functools.lru_cache(maxsize=_SMALL)
def _upper(n: int) -> np.ndarray:
    return np.triu(np.ones((n, n)))


def scaled_gradient_norm(
    R: np.ndarray,
    ipvt: np.ndarray,
    qtf: np.ndarray,
    acnorm: np.ndarray,
    fnorm: float,
    rtq: np.ndarray | None = None,
) -> float:
    """``lmder``'s ``gnorm``: the largest cosine between ``f`` and a column of ``J``,
    ``max_j |J_j^T f| / (||J_j|| ||f||)`` (zero columns skipped; 0 when ``f = 0``);
    ``rtq = R^T qtf = (J P)^T f`` when the caller has it."""
    if fnorm == 0.0:
        return 0.0
    g = np.abs(R.T @ qtf if rtq is None else rtq)  # |(J P)^T f|
    cn = acnorm[ipvt]
    if cn.all():
        return float((g / cn).max()) / fnorm
    nz = cn != 0.0
    return float((g[nz] / cn[nz]).max()) / fnorm if nz.any() else 0.0


def _rank(R: np.ndarray) -> int:
    """MINPACK's ``nsing``: the index of the first exactly zero diagonal entry of ``R``."""
    d = R.diagonal()
    if d.all():
        return R.shape[1]
    return int(np.flatnonzero(d == 0.0)[0])


def _leading_solve(T: np.ndarray, rhs: np.ndarray, nsing: int) -> np.ndarray:
    """``z`` with ``T z = rhs`` on T's leading ``nsing x nsing`` block, the rest of ``z`` set to
    zero (MINPACK's treatment of a singular triangle)."""
    if nsing == T.shape[1]:
        return _solve_upper(T, rhs)
    z = np.zeros(T.shape[1])
    if nsing:
        z[:nsing] = _solve_upper(T[:nsing, :nsing], rhs[:nsing])
    return z


class _DampedQR:
    """The QR factorization of ``[R qtb; S 0]`` for diagonal ``S`` (``n x n``), ``R`` upper
    triangular: LAPACK ``tpqrt`` (triangular-pentagonal QR), which touches only the nonzero
    triangles (about ``2/3 n^3`` flops; a dense QR of the ``2n x (n+1)`` stack costs 5 times
    that). The extra column carries ``qtb`` through the same reflections, so the triangle's
    last column is ``(first n of) Q2^T [qtb; 0]``."""

    def __init__(self, R: np.ndarray, qtb: np.ndarray):
        n = R.shape[1]
        self.n, self.nb = n, min(n + 1, 32)
        self.top = np.zeros((n + 1, n + 1), order="F")  # [R qtb; 0 0]
        self.top[:n, :n] = R
        self.top[:n, n] = qtb
        # [S 0], allocated once: tpqrt overwrites it in place, so each call zeroes it again
        self.low = np.zeros((n, n + 1), order="F")
        self.low_flat = self.low.reshape(-1, order="F")  # a view (``low`` is Fortran-ordered)
        self.diag = np.arange(0, n * n, n + 1)  # S's entries in the flat (Fortran) ``low``

    def __call__(self, sdiag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``T`` (upper triangle of the result) and the rotated right-hand side."""
        n, low = self.n, self.low
        low.fill(0.0)
        self.low_flat[self.diag] = sdiag  # low[j, j] = sdiag[j]
        a, _, _, _ = lapack.dtpqrt(n, self.nb, self.top, low, overwrite_b=1)
        return a[:n, :n], a[:n, n]


def qrsolv(
    R: np.ndarray, ipvt: np.ndarray, sdiag_scale: np.ndarray, qtb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares solution ``x`` of ``J x = b``, ``S x = 0`` with ``S = diag(sdiag_scale)``,
    given ``J P = Q R`` and ``qtb = Q^T b``: ``[R; P^T S P]`` is factored again (Householder
    here, :class:`_DampedQR`; MINPACK uses Givens rotations, which gives the same triangle up
    to row signs) into an upper triangular ``T``, and ``T z = (first n of) Q2^T [qtb; 0]``,
    ``x = P z``.

    Returns ``x`` and ``T`` (for :func:`lmpar`'s Newton correction).
    """
    T, rhs = _DampedQR(R, qtb)(sdiag_scale[ipvt])
    x = np.empty(R.shape[1])
    x[ipvt] = _leading_solve(T, rhs, _rank(T))
    return x, T


class Subproblem:
    """``min ||J p + f||, ||D p|| <= delta`` for one Jacobian (``J P = Q R``, ``qtb = Q^T f``)
    and scaling ``D``, for any number of radii: MINPACK ``lmpar`` with what does not depend
    on ``delta`` (the Gauss-Newton step, ``parl``'s and ``paru``'s ingredients, the
    factorization's fixed part) computed once, and only when a radius first needs it.

    Vectors in the pivoted order (``z[j]`` is parameter ``ipvt[j]``) until :meth:`unpivot`.
    """

    def __init__(
        self,
        R: np.ndarray,
        ipvt: np.ndarray,
        diag: np.ndarray,
        qtb: np.ndarray,
        rtq: np.ndarray | None = None,
    ):
        """``rtq = R^T qtb`` (``(J P)^T b``) when the caller has it (:func:`scaled_gradient_norm`
        needs it too)."""
        self.R, self.ipvt, self.qtb, self.n = R, ipvt, qtb, R.shape[1]
        self.rtq, self.diag = rtq, diag
        self.dp = diag[ipvt]  # D, pivoted
        # the Gauss-Newton direction (least squares with the singular part set to zero)
        self.nsing = _rank(R)
        self.z_gn = _leading_solve(R, qtb, self.nsing)
        self.dxnorm_gn = _norm(self.dp * self.z_gn)
        self._bounds: tuple[float, float] | None = None
        self._damped: _DampedQR | None = None
        self._inverse: np.ndarray | None = None  # ipvt's inverse permutation

    def unpivot(self, z: np.ndarray) -> np.ndarray:
        """``x`` with ``x[ipvt] = z``."""
        if self._inverse is None:
            self._inverse = np.argsort(self.ipvt)
        return z[self._inverse]

    def _bound_terms(self) -> tuple[float, float]:
        """``||w||^2`` of ``phi'(0)`` (``parl = -phi(0) / phi'(0)``, full rank only; 0
        otherwise) and ``gnorm = ||(J D^-1)^T b||`` (``paru = gnorm / delta``)."""
        if self._bounds is None:
            dp, w2 = self.dp, 0.0
            if self.nsing == self.n:
                w = _solve_upper(self.R, dp * dp * self.z_gn / self.dxnorm_gn, trans=1)
                w2 = float(np.dot(w, w))
            rtq = self.R.T @ self.qtb if self.rtq is None else self.rtq
            self._bounds = (w2, _norm(rtq / dp))
        return self._bounds

    def lmpar(self, delta: float, par: float) -> tuple[float, np.ndarray, float]:
        """Moré's Levenberg-Marquardt parameter (MINPACK ``lmpar``, Moré 1978 §5.2).

        Returns ``par >= 0``, the pivoted ``z`` of ``x`` solving ``(J^T J + par D^2) x =
        J^T b`` with either ``par = 0`` and ``||D x|| <= 1.1 delta`` (the Gauss-Newton step
        fits), or ``| ||D x|| - delta | <= 0.1 delta``, or the 10th iterate; and ``||D x||``.
        The step of ``min ||J p + f||, ||D p|| <= delta`` is ``p = -x`` for ``b = f``.
        """
        dxnorm = self.dxnorm_gn
        fp = dxnorm - delta
        if fp <= P1 * delta:
            return 0.0, self.z_gn, dxnorm
        w2, gnorm = self._bound_terms()
        parl = fp / delta / w2 if self.nsing == self.n else 0.0
        paru = gnorm / delta
        if paru == 0.0:
            paru = DWARF / min(delta, P1)
        par = min(max(par, parl), paru)
        if par == 0.0:
            par = gnorm / dxnorm
        if self._damped is None:
            self._damped = _DampedQR(self.R, self.qtb)
        dp = self.dp
        for it in range(1, LMPAR_MAX_ITER + 1):
            if par == 0.0:
                par = max(DWARF, P001 * paru)
            T, rhs = self._damped(math.sqrt(par) * dp)
            z = _leading_solve(T, rhs, _rank(T))
            dz = dp * z
            dxnorm = _norm(dz)
            fp_old, fp = fp, dxnorm - delta
            if abs(fp) <= P1 * delta or (parl == 0.0 and fp <= fp_old < 0.0):
                break
            if it == LMPAR_MAX_ITER:
                break
            # Newton correction: parc = -phi / phi' * (phi + delta) / delta (Moré 1978 (5.5))
            w = _solve_upper(T, dp * dz / dxnorm, trans=1)
            parc = fp / delta / float(np.dot(w, w))
            if fp > 0.0:
                parl = max(parl, par)
            elif fp < 0.0:
                paru = min(paru, par)
            par = max(parl, par + parc)
        return par, z, dxnorm

    def step(
        self, delta: float, par: float, fnorm: float, x: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, float, float, float]:
        """One trial step of ``lmder`` from ``x`` (``b = f``): :meth:`lmpar`, the step ``p =
        -step`` and :meth:`predicted_reduction`; returns ``(par, step, x - step, ||D p||,
        prered, dirder)``."""
        par, z, pnorm = self.lmpar(delta, par)
        step = self.unpivot(z)
        prered, dirder = self.predicted_reduction(z, par, pnorm, fnorm)
        return par, step, x - step, pnorm, prered, dirder

    def predicted_reduction(
        self, z: np.ndarray, par: float, pnorm: float, fnorm: float
    ) -> tuple[float, float]:
        """:func:`predicted_reduction` for the step ``p = -x``, ``x`` pivoted as ``z``
        (``||J p|| = ||R z||``)."""
        return _predicted(_norm(self.R @ z), par, pnorm, fnorm)


def lmpar(
    R: np.ndarray,
    ipvt: np.ndarray,
    diag: np.ndarray,
    qtb: np.ndarray,
    delta: float,
    par: float,
) -> tuple[float, np.ndarray]:
    """Moré's Levenberg-Marquardt parameter (MINPACK ``lmpar``, Moré 1978 §5.2) for one
    radius: :meth:`Subproblem.lmpar`, returning ``par`` and ``x`` (unpivoted)."""
    sub = Subproblem(R, ipvt, diag, qtb)
    par, z, _ = sub.lmpar(delta, par)
    return par, sub.unpivot(z)


def _predicted(jpnorm: float, par: float, pnorm: float, fnorm: float) -> tuple[float, float]:
    temp1 = jpnorm / fnorm
    temp2 = math.sqrt(par) * pnorm / fnorm
    return temp1 * temp1 + temp2 * temp2 / P5, -(temp1 * temp1 + temp2 * temp2)


def predicted_reduction(
    R: np.ndarray, ipvt: np.ndarray, p: np.ndarray, par: float, pnorm: float, fnorm: float
) -> tuple[float, float]:
    """``lmder``'s scaled predicted reduction ``prered = (||J p||^2 + 2 par ||D p||^2) /
    ||f||^2`` and directional derivative ``dirder = -(||J p||^2 + par ||D p||^2) / ||f||^2``
    (``||J p|| = ||R P^T p||``)."""
    return _predicted(_norm(R @ p[ipvt]), par, pnorm, fnorm)


def update_trust_region(
    ratio: float,
    actred: float,
    dirder: float,
    fnorm: float,
    fnorm1: float,
    pnorm: float,
    delta: float,
    par: float,
) -> tuple[float, float]:
    """``lmder``'s update of the step bound ``delta`` and of ``par`` (Moré 1978 §4 step (d)).

    * ``ratio <= 0.25``: shrink, ``delta <- temp * min(delta, pnorm / 0.1)``,
      ``par <- par / temp`` with ``temp = 0.5`` if ``actred >= 0``, else
      ``temp = 0.5 dirder / (dirder + 0.5 actred)`` (the minimizer of the quadratic through
      the actual reduction), and ``temp = 0.1`` if that is below 0.1 or if
      ``0.1 fnorm1 >= fnorm`` (the residual grew tenfold);
    * ``ratio >= 0.75`` or ``par = 0``: expand, ``delta <- pnorm / 0.5``, ``par <- 0.5 par``;
    * otherwise unchanged.
    """
    if ratio <= P25:
        temp = P5 if actred >= 0.0 else P5 * dirder / (dirder + P5 * actred)
        if P1 * fnorm1 >= fnorm or temp < P1:
            temp = P1
        return temp * min(delta, pnorm / P1), par / temp
    if par == 0.0 or ratio >= P75:
        return pnorm / P5, P5 * par
    return delta, par
