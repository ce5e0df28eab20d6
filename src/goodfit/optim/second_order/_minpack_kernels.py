"""numba kernels of :mod:`~goodfit.optim.second_order.compiled_trust_region`: MINPACK's
``enorm``, ``qrfac``, ``qrsolv``, ``lmpar`` and the host part of ``lmder`` (Moré, Garbow &
Hillstrom, *User Guide for MINPACK-1*, ANL-80-74, 1980), transcribed from that description
with MINPACK's loop order, so that the arithmetic is MINPACK's. Imported on first use only
(importing numba costs ~0.4 s); compiled once and cached on disk.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from goodfit.optim.second_order.trust_region import (
    _SAFE_HI,
    _SAFE_LO,
    DWARF,
    LMPAR_MAX_ITER,
    P001,
    P1,
    P5,
    P25,
)

#: MINPACK's ``p05`` (qrfac's test for recomputing a downdated column norm).
P05 = 0.05
_EPSMCH = float(np.finfo(np.float64).eps)


@njit(cache=True, error_model="numpy")
def _enorm(v):
    """``||v||`` without overflow or underflow of the squares (MINPACK ``enorm``'s purpose):
    the plain sum of squares when it is safely representable, else scaled by ``max |v_i|``
    (the rule of ``trust_region._norm``)."""
    s = 0.0
    for x in v:
        s += x * x
    if s > _SAFE_LO and s < _SAFE_HI:
        return math.sqrt(s)
    if s != s:
        return s  # NaN in v
    vmax = 0.0
    for x in v:
        if abs(x) > vmax:
            vmax = abs(x)
    if vmax == 0.0 or vmax == math.inf:
        return vmax
    s = 0.0
    for x in v:
        s += (x / vmax) * (x / vmax)
    return vmax * math.sqrt(s)


@njit(cache=True, error_model="numpy")
def _qrfac(a, rdiag, acnorm, ipvt):
    """MINPACK ``qrfac`` with pivoting on ``a`` (``n x mm``: row ``j`` is column ``j`` of
    ``J``), in place: Householder vectors in ``a[j, j:]`` (``a[j, j]`` = 1 + ...), the strict
    upper triangle of ``R`` in ``a[k, j]`` (``j < k``), its diagonal in ``rdiag``; the column
    of largest remaining norm first, norms downdated and recomputed when cancellation has
    eaten them (``p05 (rdiag / wa)^2 <= epsmch``)."""
    n, mm = a.shape
    wa = np.empty(n)
    for j in range(n):
        acnorm[j] = _enorm(a[j])
        rdiag[j] = acnorm[j]
        wa[j] = acnorm[j]
        ipvt[j] = j
    for j in range(n):
        kmax = j
        for k in range(j, n):
            if rdiag[k] > rdiag[kmax]:
                kmax = k
        if kmax != j:
            for i in range(mm):
                a[j, i], a[kmax, i] = a[kmax, i], a[j, i]
            rdiag[kmax] = rdiag[j]
            wa[kmax] = wa[j]
            ipvt[j], ipvt[kmax] = ipvt[kmax], ipvt[j]
        ajnorm = _enorm(a[j, j:])
        if ajnorm != 0.0:
            if a[j, j] < 0.0:
                ajnorm = -ajnorm
            for i in range(j, mm):
                a[j, i] /= ajnorm
            a[j, j] += 1.0
            for k in range(j + 1, n):
                s = 0.0
                for i in range(j, mm):
                    s += a[j, i] * a[k, i]
                temp = s / a[j, j]
                for i in range(j, mm):
                    a[k, i] -= temp * a[j, i]
                if rdiag[k] != 0.0:
                    temp = a[k, j] / rdiag[k]
                    rdiag[k] *= math.sqrt(max(0.0, 1.0 - temp * temp))
                    if P05 * (rdiag[k] / wa[k]) ** 2 <= _EPSMCH:
                        rdiag[k] = _enorm(a[k, j + 1 :])
                        wa[k] = rdiag[k]
        rdiag[j] = -ajnorm


@njit(cache=True, error_model="numpy")
def _factor(J, f, fnorm, diag, first, x):
    """The work of one Jacobian in ``lmder``: ``qrfac``, ``Q^T f``, ``R``, ``gnorm``, and
    ``D`` updated in place (``first``: from the column norms; then their running maximum);
    returns ``(r, ipvt, qtf, acnorm, gnorm, xnorm)``, ``xnorm = ||D x||`` when ``first``."""
    n = J.shape[1]
    mm = max(J.shape[0], n)  # a wide J is padded with zero rows (neither problem changes)
    a = np.zeros((n, mm))
    a[:, : J.shape[0]] = J.T
    rdiag, acnorm = np.empty(n), np.empty(n)
    ipvt = np.empty(n, dtype=np.int64)
    _qrfac(a, rdiag, acnorm, ipvt)
    # Q^T f by the same reflections (lmder), then R as an n x n matrix
    wa4 = np.zeros(mm)
    wa4[: f.shape[0]] = f
    qtf = np.empty(n)
    r = np.zeros((n, n))
    for j in range(n):
        if a[j, j] != 0.0:
            s = 0.0
            for i in range(j, mm):
                s += a[j, i] * wa4[i]
            temp = -s / a[j, j]
            for i in range(j, mm):
                wa4[i] += temp * a[j, i]
        qtf[j] = wa4[j]
        for i in range(j):
            r[i, j] = a[j, i]
        r[j, j] = rdiag[j]
    # lmder's gnorm: max_j |(J P)_j^T f| / (||J_j|| ||f||), zero columns skipped
    gnorm = 0.0
    if fnorm != 0.0:
        for j in range(n):
            l = ipvt[j]
            if acnorm[l] != 0.0:
                s = 0.0
                for i in range(j + 1):
                    s += r[i, j] * (qtf[i] / fnorm)
                gnorm = max(gnorm, abs(s / acnorm[l]))
    # mode = 1: D from the column norms (zeros replaced by 1), then their running maximum
    xnorm = 0.0
    if first:
        for j in range(n):
            diag[j] = acnorm[j] if acnorm[j] != 0.0 else 1.0
        xnorm = _enorm(diag * x)
    for j in range(n):
        diag[j] = max(diag[j], acnorm[j])
    return r, ipvt, qtf, acnorm, gnorm, xnorm


@njit(cache=True, error_model="numpy")
def _qrsolv(r, ipvt, d, qtb, x, sdiag):
    """MINPACK ``qrsolv``: ``x`` solving ``J x = b``, ``D x = 0`` in the least-squares sense,
    given ``J P = Q R`` (upper triangle of ``r``) and ``qtb = Q^T b``: Givens rotations
    eliminate ``P^T D P`` from ``[R; P^T D P]``, the resulting triangle ``S`` is left in
    ``sdiag`` (diagonal) and the strict lower triangle of ``r`` (transposed); ``R``'s upper
    triangle and diagonal are kept."""
    n = r.shape[0]
    wa = np.empty(n)
    for j in range(n):
        for i in range(j, n):
            r[i, j] = r[j, i]
        x[j] = r[j, j]
        wa[j] = qtb[j]
    for j in range(n):
        l = ipvt[j]
        if d[l] != 0.0:
            for k in range(j, n):
                sdiag[k] = 0.0
            sdiag[j] = d[l]
            qtbpj = 0.0
            for k in range(j, n):
                if sdiag[k] == 0.0:
                    continue
                if abs(r[k, k]) < abs(sdiag[k]):
                    cotan = r[k, k] / sdiag[k]
                    sin = P5 / math.sqrt(P25 + P25 * cotan * cotan)
                    cos = sin * cotan
                else:
                    tan = sdiag[k] / r[k, k]
                    cos = P5 / math.sqrt(P25 + P25 * tan * tan)
                    sin = cos * tan
                r[k, k] = cos * r[k, k] + sin * sdiag[k]
                temp = cos * wa[k] + sin * qtbpj
                qtbpj = -sin * wa[k] + cos * qtbpj
                wa[k] = temp
                for i in range(k + 1, n):
                    temp = cos * r[i, k] + sin * sdiag[i]
                    sdiag[i] = -sin * r[i, k] + cos * sdiag[i]
                    r[i, k] = temp
        sdiag[j] = r[j, j]
        r[j, j] = x[j]
    nsing = n
    for j in range(n):
        if sdiag[j] == 0.0 and nsing == n:
            nsing = j
        if nsing < n:
            wa[j] = 0.0
    for j in range(nsing - 1, -1, -1):
        s = 0.0
        for i in range(j + 1, nsing):
            s += r[i, j] * wa[i]
        wa[j] = (wa[j] - s) / sdiag[j]
    for j in range(n):
        x[ipvt[j]] = wa[j]


@njit(cache=True, error_model="numpy")
def _lmpar(r, ipvt, diag, qtb, delta, par, x, sdiag):
    """MINPACK ``lmpar`` (Moré 1978 §5.2): ``par >= 0`` and ``x`` solving ``(J^T J + par D^2)
    x = J^T b`` with ``par = 0`` if the Gauss-Newton step fits in ``1.1 delta``, else
    ``| ||D x|| - delta | <= 0.1 delta`` or the 10th iterate of the safeguarded Newton
    iteration on the secular equation; returns ``(par, ||D x||)``."""
    n = r.shape[0]
    wa1, wa2 = np.empty(n), np.empty(n)
    nsing = n
    for j in range(n):
        wa1[j] = qtb[j]
        if r[j, j] == 0.0 and nsing == n:
            nsing = j
        if nsing < n:
            wa1[j] = 0.0
    for k in range(nsing - 1, -1, -1):  # the Gauss-Newton direction
        wa1[k] /= r[k, k]
        temp = wa1[k]
        for i in range(k):
            wa1[i] -= r[i, k] * temp
    for j in range(n):
        x[ipvt[j]] = wa1[j]
    for j in range(n):
        wa2[j] = diag[j] * x[j]
    dxnorm = _enorm(wa2)
    fp = dxnorm - delta
    if fp <= P1 * delta:
        return 0.0, dxnorm
    parl = 0.0  # lower bound: a Newton step from 0 (full rank only)
    if nsing >= n:
        for j in range(n):
            l = ipvt[j]
            wa1[j] = diag[l] * (wa2[l] / dxnorm)
        for j in range(n):
            s = 0.0
            for i in range(j):
                s += r[i, j] * wa1[i]
            wa1[j] = (wa1[j] - s) / r[j, j]
        temp = _enorm(wa1)
        parl = ((fp / delta) / temp) / temp
    for j in range(n):  # upper bound: ||(J D^-1)^T b|| / delta
        s = 0.0
        for i in range(j + 1):
            s += r[i, j] * qtb[i]
        wa1[j] = s / diag[ipvt[j]]
    gnorm = _enorm(wa1)
    paru = gnorm / delta
    if paru == 0.0:
        paru = DWARF / min(delta, P1)
    par = min(max(par, parl), paru)
    if par == 0.0:
        par = gnorm / dxnorm
    for it in range(1, LMPAR_MAX_ITER + 1):
        if par == 0.0:
            par = max(DWARF, P001 * paru)
        temp = math.sqrt(par)
        for j in range(n):
            wa1[j] = temp * diag[j]
        _qrsolv(r, ipvt, wa1, qtb, x, sdiag)
        for j in range(n):
            wa2[j] = diag[j] * x[j]
        dxnorm = _enorm(wa2)
        temp = fp
        fp = dxnorm - delta
        if abs(fp) <= P1 * delta or (parl == 0.0 and fp <= temp and temp < 0.0):
            break
        if it == LMPAR_MAX_ITER:
            break
        # Newton correction: S^T w = P^T D (D x) / ||D x||, parc = (fp / delta) / ||w||^2
        for j in range(n):
            l = ipvt[j]
            wa1[j] = diag[l] * (wa2[l] / dxnorm)
        for j in range(n):
            wa1[j] /= sdiag[j]
            temp = wa1[j]
            for i in range(j + 1, n):
                wa1[i] -= r[i, j] * temp
        temp = _enorm(wa1)
        parc = ((fp / delta) / temp) / temp
        if fp > 0.0:
            parl = max(parl, par)
        elif fp < 0.0:
            paru = min(paru, par)
        par = max(parl, par + parc)
    return par, dxnorm


@njit(cache=True, error_model="numpy")
def _lm_step(r, ipvt, diag, qtf, delta, par, fnorm, x, step, x_new):
    """One trial step of ``lmder``: ``lmpar``, the step ``p = -step`` (``x_new = x - step``),
    ``pnorm = ||D p||`` and the scaled predicted reduction and directional derivative."""
    n = r.shape[0]
    sdiag = np.empty(n)
    par, pnorm = _lmpar(r, ipvt, diag, qtf, delta, par, step, sdiag)
    for j in range(n):
        x_new[j] = x[j] - step[j]
    wa3 = np.zeros(n)  # R P^T p
    for j in range(n):
        temp = step[ipvt[j]]
        for i in range(j + 1):
            wa3[i] += r[i, j] * temp
    temp1 = _enorm(wa3) / fnorm
    temp2 = math.sqrt(par) * pnorm / fnorm
    prered = temp1 * temp1 + temp2 * temp2 / P5
    dirder = -(temp1 * temp1 + temp2 * temp2)
    return par, pnorm, prered, dirder


@njit(cache=True, error_model="numpy")
def _scaled_norm(d, x):
    """``||D x||`` (``lmder``'s ``xnorm``)."""
    return _enorm(d * x)
