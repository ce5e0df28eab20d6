"""Moré's trust-region pieces of Levenberg-Marquardt (J. J. Moré, *The Levenberg-Marquardt
algorithm: implementation and theory*, Lecture Notes in Mathematics 630, 1978; the algorithm of
MINPACK's ``lmder``, ``lmpar``, ``qrsolv``, documented in Moré, Garbow & Hillstrom, *User Guide
for MINPACK-1*, ANL-80-74, 1980).

Written from the published description, on NumPy/SciPy LAPACK in float64 on the host: these are
``n x n`` (and one ``m x n``) factorizations, cheap next to the model's Jacobian, which stays
on the model's device.

* :func:`factor_jacobian` — ``J P = Q R`` with column pivoting (LAPACK ``geqp3``), ``Q^T f``
  and the column norms of ``J``;
* :func:`lmpar` — the Levenberg-Marquardt parameter ``par`` for a trust radius ``delta``:
  ``p`` solves ``(J^T J + par D^T D) p = -J^T f`` with ``| ||D p|| - delta | <= 0.1 delta``
  (or ``par = 0`` when the Gauss-Newton step already lies inside ``1.1 delta``), found by
  Moré's safeguarded Newton iteration on the secular equation ``phi(par) = ||D p|| - delta``
  (at most 10 iterations, bounds ``parl <= par <= paru``; Moré 1978 §5.2);
* :func:`qrsolv` — the least-squares solution of ``[J; sqrt(par) D] p = [-f; 0]`` from ``R``
  (a QR factorization of ``[R; sqrt(par) P^T D P]``, Moré 1978 §3);
* :func:`update_trust_region` — the radius and parameter update from the ratio of actual to
  predicted reduction (``lmder``'s rules and constants below);
* :func:`predicted_reduction` — ``lmder``'s scaled predicted reduction and directional
  derivative.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import lapack

#: MINPACK's constants (lmder, lmpar): ``p1``, ``p5``, ``p25``, ``p75``, ``p0001``, ``p001``.
P1, P5, P25, P75, P0001, P001 = 0.1, 0.5, 0.25, 0.75, 1.0e-4, 1.0e-3
#: MINPACK's recommended initial step bound factor (lmder1, lmdif1): ``delta0 = 100 ||D x0||``.
FACTOR = 100.0
#: ``lmpar`` stops its Newton iteration on the secular equation after 10 iterations.
LMPAR_MAX_ITER = 10
#: MINPACK's ``dwarf``: the smallest positive normalized float64.
DWARF = float(np.finfo(np.float64).tiny)


def _norm(v: np.ndarray) -> float:
    """``||v||`` without overflow or underflow of the squares (MINPACK's ``enorm`` exists for
    this: residuals of 1e160 have a finite norm): plain ``sqrt(v . v)`` when the sum of
    squares is safely representable, else scaled by ``max |v_i|``."""
    scale = float(np.max(np.abs(v), initial=0.0))
    if 1e-140 < scale < 1e140:  # squares in [1e-280, 1e280]: the plain sum is safe
        return math.sqrt(float(v @ v))
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    w = v / scale
    return scale * math.sqrt(float(w @ w))


def column_norms(J: np.ndarray) -> np.ndarray:
    """The Euclidean norms of ``J``'s columns, scaled like :func:`_norm` (no overflow)."""
    scale = np.max(np.abs(J), axis=0, initial=0.0)
    scale = np.where((scale > 0.0) & np.isfinite(scale), scale, 1.0)
    W = J / scale
    return scale * np.sqrt(np.einsum("ij,ij->j", W, W))


def _solve_upper(T: np.ndarray, b: np.ndarray, trans: int = 0) -> np.ndarray:
    """``T x = b`` (``trans=1``: ``T^T x = b``) for upper triangular ``T`` (LAPACK ``trtrs``,
    called directly: these systems are tiny and the wrappers' checks would dominate)."""
    x, _ = lapack.dtrtrs(T, b[:, None], lower=0, trans=trans)
    return x[:, 0]


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
    qr, jpvt, tau, _, _ = lapack.dgeqp3(np.asfortranarray(J))
    qtf, _, _ = lapack.dormqr("L", "T", qr, tau, f[:, None], max(1, n))
    return np.triu(qr[:n]), jpvt - 1, qtf[:n, 0], acnorm


def scaled_gradient_norm(
    R: np.ndarray, ipvt: np.ndarray, qtf: np.ndarray, acnorm: np.ndarray, fnorm: float
) -> float:
    """``lmder``'s ``gnorm``: the largest cosine between ``f`` and a column of ``J``,
    ``max_j |J_j^T f| / (||J_j|| ||f||)`` (zero columns skipped; 0 when ``f = 0``)."""
    if fnorm == 0.0:
        return 0.0
    g = R.T @ (qtf / fnorm)  # (J P)^T f / ||f||
    cn = acnorm[ipvt]
    mask = cn != 0.0
    return float(np.max(np.abs(g[mask] / cn[mask]), initial=0.0))


def _rank(R: np.ndarray) -> int:
    """MINPACK's ``nsing``: the index of the first exactly zero diagonal entry of ``R``."""
    zero = np.flatnonzero(np.diag(R) == 0.0)
    return int(zero[0]) if zero.size else R.shape[1]


def qrsolv(
    R: np.ndarray, ipvt: np.ndarray, sdiag_scale: np.ndarray, qtb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares solution ``x`` of ``J x = b``, ``S x = 0`` with ``S = diag(sdiag_scale)``,
    given ``J P = Q R`` and ``qtb = Q^T b``: ``[R; P^T S P]`` is factored again (Householder
    here; MINPACK uses Givens rotations, which gives the same triangle up to row signs) into
    an upper triangular ``T``, and ``T z = (first n of) Q2^T [qtb; 0]``, ``x = P z``.

    Returns ``x`` and ``T`` (for :func:`lmpar`'s Newton correction; only its upper triangle
    is ``T``, below it lie LAPACK's Householder vectors).
    """
    n = R.shape[1]
    A = np.zeros((2 * n, n + 1), order="F")  # [R qtb; P^T S P 0]: the QR of [A b] holds Q^T b
    A[:n, :n] = R
    A[n + np.arange(n), np.arange(n)] = sdiag_scale[ipvt]
    A[:n, n] = qtb
    qr, _, _, _ = lapack.dgeqrf(A)
    T, rhs = qr[:n, :n], qr[:n, n]  # trtrs reads only T's upper triangle
    return _singular_solve(T, rhs, ipvt), T


def _singular_solve(T: np.ndarray, rhs: np.ndarray, ipvt: np.ndarray) -> np.ndarray:
    """``x`` with ``T z = rhs`` on T's numerically nonsingular leading block (the rest of z set
    to zero, as MINPACK does) and ``x[ipvt] = z`` (undo the column pivoting)."""
    n = T.shape[1]
    nsing = _rank(T)
    z = np.zeros(n)
    if nsing:
        z[:nsing] = _solve_upper(T[:nsing, :nsing], rhs[:nsing])
    x = np.empty(n)
    x[ipvt] = z
    return x


def lmpar(
    R: np.ndarray,
    ipvt: np.ndarray,
    diag: np.ndarray,
    qtb: np.ndarray,
    delta: float,
    par: float,
) -> tuple[float, np.ndarray]:
    """Moré's Levenberg-Marquardt parameter (MINPACK ``lmpar``, Moré 1978 §5.2).

    Given ``J P = Q R``, ``qtb = Q^T b``, the scaling ``diag`` (``D``), the radius ``delta`` and
    a starting ``par``, returns ``par >= 0`` and ``x`` solving ``(J^T J + par D^2) x = J^T b``
    with either ``par = 0`` and ``||D x|| <= 1.1 delta`` (the Gauss-Newton step fits), or
    ``| ||D x|| - delta | <= 0.1 delta``, or the 10th iterate. The step of
    ``min ||J p + f||, ||D p|| <= delta`` is ``p = -x`` for ``b = f``.
    """
    n = R.shape[1]
    # the Gauss-Newton direction (least squares with the singular part set to zero)
    nsing = _rank(R)
    x = _singular_solve(R, qtb, ipvt)
    dx = diag * x
    dxnorm = float(_norm(dx))
    fp = dxnorm - delta
    if fp <= P1 * delta:
        return 0.0, x
    # lower bound parl = -phi(0) / phi'(0) when J has full rank, else 0
    parl = 0.0
    if nsing == n:
        w = _solve_upper(R, (diag * dx / dxnorm)[ipvt], trans=1)
        parl = fp / delta / float(w @ w)
    # upper bound paru = ||(J D^-1)^T b|| / delta
    gnorm = float(_norm((R.T @ qtb) / diag[ipvt]))
    paru = gnorm / delta
    if paru == 0.0:
        paru = DWARF / min(delta, P1)
    par = min(max(par, parl), paru)
    if par == 0.0:
        par = gnorm / dxnorm
    for it in range(1, LMPAR_MAX_ITER + 1):
        if par == 0.0:
            par = max(DWARF, P001 * paru)
        x, T = qrsolv(R, ipvt, np.sqrt(par) * diag, qtb)
        dx = diag * x
        dxnorm = float(_norm(dx))
        fp_old, fp = fp, dxnorm - delta
        if abs(fp) <= P1 * delta or (parl == 0.0 and fp <= fp_old < 0.0) or it == LMPAR_MAX_ITER:
            break
        # Newton correction: parc = -phi / phi' * (phi + delta) / delta (Moré 1978 (5.5))
        w = _solve_upper(T, (diag * dx / dxnorm)[ipvt], trans=1)
        parc = fp / delta / float(w @ w)
        if fp > 0.0:
            parl = max(parl, par)
        elif fp < 0.0:
            paru = min(paru, par)
        par = max(parl, par + parc)
    return par, x


def predicted_reduction(
    R: np.ndarray, ipvt: np.ndarray, p: np.ndarray, par: float, pnorm: float, fnorm: float
) -> tuple[float, float]:
    """``lmder``'s scaled predicted reduction ``prered = (||J p||^2 + 2 par ||D p||^2) /
    ||f||^2`` and directional derivative ``dirder = -(||J p||^2 + par ||D p||^2) / ||f||^2``
    (``||J p|| = ||R P^T p||``)."""
    temp1 = float(_norm(R @ p[ipvt])) / fnorm
    temp2 = np.sqrt(par) * pnorm / fnorm
    return temp1 * temp1 + temp2 * temp2 / P5, -(temp1 * temp1 + temp2 * temp2)


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
