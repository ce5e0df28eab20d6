"""What the solvers share: the start point, the size guard and the checks, the counted
evaluations of a least-squares problem (residuals, Jacobian) and of a scalar objective (value,
gradient, Hessian, Hessian-vector products), and the Armijo line search.

Every derivative comes from ``torch.func``: ``jacfwd``/``jacrev`` for Jacobians (or, for
Levenberg-Marquardt in reverse mode, ``jacrev``'s construction, ``vmap`` over vector-Jacobian
products, on the autograd graph of a trial evaluation: :meth:`_LeastSquares.residuals_recorded`),
``grad``/``hessian`` for Newton, forward-over-reverse ``jvp`` of ``grad`` for Hessian-vector
products.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

from goodfit.checks import check_int

__all__ = ["AUTO_FWD_MIN_ENTRIES", "AUTO_FWD_MIN_RATIO", "DENSE_MAX_JACOBIAN", "DENSE_MAX_PARAMS",
           "auto_jacobian_mode"]  # fmt: skip

#: Default largest parameter count for the dense methods (J is m x n, the Hessian n x n).
DENSE_MAX_PARAMS = 5000
#: Default largest Jacobian (m * n entries) for the dense least-squares methods.
DENSE_MAX_JACOBIAN = 50_000_000


#: ``jac="auto"`` takes forward mode only when the residuals outnumber the parameters by this
#: factor (the measured crossover of the AD cost argument, :func:`auto_jacobian_mode`) ...
AUTO_FWD_MIN_RATIO = 2
#: ... and the Jacobian has at least this many entries (below it, overhead decides).
AUTO_FWD_MIN_ENTRIES = 4096


def auto_jacobian_mode(m: int, n: int) -> str:
    """The AD mode of ``jac="auto"`` for an ``m x n`` Jacobian: ``"fwd"``
    (``torch.func.jacfwd``) when ``m >= 2 n`` and ``m n >= 4096``, else ``"rev"``
    (``torch.func.jacrev``).

    The standard cost argument (Griewank & Walther, *Evaluating Derivatives*, 2nd ed. 2008,
    ch. 3-4): forward mode costs about ``n`` Jacobian-vector products, reverse mode about
    ``m`` vector-Jacobian products, each a small multiple of one evaluation of the residuals
    (itself about proportional to ``m`` for a model applied row by row), so forward mode wins
    once ``m`` exceeds ``n`` by the ratio of those multiples. ``torch.func`` computes all
    ``n`` (``m``) products in one ``vmap`` over ``jvp`` (``vjp``); ``jacfwd``'s ``vmap``
    wraps every operation of the forward pass in both the batching and the forward-AD layer,
    ``jacrev``'s only the backward pass, so on small problems, where per-operation overhead
    and not arithmetic decides, reverse mode wins whatever the shape.

    Measured (torch 2.13 CPU, 1 thread, ``jacfwd`` time / ``jacrev`` time; ``randomness``
    made no difference): the 19 NIST StRD Jacobians (``m n <= 2000``, ``3 <= m/n <= 71``)
    1.0-4.0 (Gauss1 250 x 8 0.98, Kirby2 151 x 5 3.6); tanh MLPs, ``n = 17``: 0.96 at ``m =
    100`` (``m n = 1700``), 0.57 at ``m = 250`` (4250), 0.05 at ``m = 1000``; ``n = 129``:
    1.72 at ``m = 100`` (``m/n = 0.8``), 0.37 at 300 (``m/n = 2.3``), 0.12 at 1000; ``n =
    641``: 1.50 at ``m = 641``, 1.12 at 1000 (``m/n = 1.6``), 0.40 at 2000 (``m/n = 3.1``);
    the NIST models on a finer grid (``m = 1000``: ``m n`` 6000-8000): 0.10-0.37. Both
    thresholds lie between measured points on either side (forward lost at ``m/n <= 1.6``
    and at ``m n <= 2000``, won at ``m/n >= 2.3`` with ``m n >= 4250``). A model without
    forward-mode formulas falls back to reverse mode (:meth:`_LeastSquares.jacobian`).
    """
    if m >= AUTO_FWD_MIN_RATIO * n and m * n >= AUTO_FWD_MIN_ENTRIES:
        return "fwd"
    return "rev"


def _as_x0(x0: Tensor | Sequence[float]) -> Tensor:
    x = torch.as_tensor(x0)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.ndim != 1 or x.numel() == 0:
        raise ValueError(
            f"x0 must be a non-empty 1-D parameter vector, got shape {tuple(x.shape)}; "
            "flatten the parameters (module_residuals/module_loss do this for an nn.Module)"
        )
    return x.detach().clone()


def _check_dense(n: int, max_params: int, method: str, m: int | None = None) -> None:
    check_int("max_params", max_params, low=1)
    if n > max_params:
        raise ValueError(
            f"{method}: the model has {n} parameters, more than max_params={max_params} for a "
            f"dense second-order method (it builds an {'m x ' if m else ''}{n} x {n} matrix); "
            "use hessian_free (Hessian-vector products, no dense matrix) or a first-order "
            "optimizer such as adam, or raise max_params"
        )
    if m is not None and m * n > DENSE_MAX_JACOBIAN:
        raise ValueError(
            f"{method}: the Jacobian would be {m} x {n} = {m * n} entries, more than "
            f"{DENSE_MAX_JACOBIAN}; use hessian_free or a first-order optimizer such as adam"
        )


def _check_residual(r: Tensor, m: int | None, method: str) -> Tensor:
    if not isinstance(r, Tensor):
        raise ValueError(f"{method}: residuals(x) must return a Tensor, got {type(r).__name__}")
    if r.ndim != 1:
        raise ValueError(
            f"{method}: residuals(x) must return a 1-D tensor of shape (m,), got shape "
            f"{tuple(r.shape)}; flatten it (e.g. (pred - y).reshape(-1)) after checking that "
            "pred and y have the same shape"
        )
    if m is not None and r.shape[0] != m:
        raise ValueError(
            f"{method}: residual shape mismatch: residuals(x) returned {r.shape[0]} values, "
            f"but {m} at x0; the residual vector must have a fixed length"
        )
    return r


def _check_jacobian(J: Tensor, method: str) -> None:
    if not bool(torch.isfinite(J).all()):
        bad = (~torch.isfinite(J)).any(dim=0).nonzero().flatten().tolist()
        raise ValueError(
            f"{method}: non-finite Jacobian (NaN/inf in the columns of parameters {bad[:10]}) "
            "at a point where the residuals are finite; check the model for 0/0, log(0) or "
            "overflow there, or use hessian_free or a first-order optimizer"
        )


class _LeastSquares:
    """Residual/Jacobian evaluation with counting (shared by Gauss-Newton and LM)."""

    def __init__(self, residuals: Callable[[Tensor], Tensor], x0: Tensor, jac: str, method: str):
        if jac not in ("auto", "fwd", "rev", "fd"):
            raise ValueError(f"jac must be 'auto', 'fwd', 'rev' or 'fd', got {jac!r}")
        self.fn = residuals
        self.method = method
        self.n_fev = 0
        self.n_jev = 0
        self.m: int | None = None
        r0 = self.residuals(x0)
        self.m = r0.shape[0]
        self.r0 = r0
        self.jac = auto_jacobian_mode(self.m, x0.numel()) if jac == "auto" else jac
        # the torch.func transforms, built once per solve, when first needed (rebuilding them
        # costs on every Jacobian; building the unused one costs on every solve)
        self._jacrev: Callable[[Tensor], Tensor] | None = None
        self._jacfwd: Callable[[Tensor], Tensor] | None = None
        self._basis: Tensor | None = None  # I_m, the cotangents of a recorded Jacobian
        self._recordable = True  # False once the model failed under autograd (record)

    def _rev(self, x: Tensor) -> Tensor:
        if self._jacrev is None:
            self._jacrev = jacrev(self.fn)
        return self._jacrev(x)

    def _fwd(self, x: Tensor) -> Tensor:
        if self._jacfwd is None:
            self._jacfwd = jacfwd(self.fn)
        return self._jacfwd(x)

    def residuals(self, x: Tensor) -> Tensor:
        """``r(x)``, evaluated without autograd (``no_grad`` entered here unless the caller
        already did: a solver's loop enters it once instead of once per evaluation)."""
        self.n_fev += 1
        if torch.is_grad_enabled():
            with torch.no_grad():
                r = self.fn(x)
        else:
            r = self.fn(x)
        r = _check_residual(r, self.m, self.method)
        return r.detach() if r.requires_grad else r

    def residuals_recorded(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """``r(x)`` as :meth:`residuals` (counted the same) and, in reverse mode
        (``jac="rev"``), the autograd record of that evaluation, from which :meth:`jacobian`
        builds ``J(x)`` without evaluating ``r`` again; ``None`` in the other modes (the
        residuals are then evaluated without autograd) or where ``r`` does not depend on
        ``x`` through autograd.

        ``jacrev(f)(x)`` is ``vmap(vjp_fn)(I_m)`` for ``_, vjp_fn = torch.func.vjp(f, x)``
        (the rows of the identity as cotangents, ``torch._functorch.eager_transforms``);
        here the graph is recorded by ordinary autograd (``x`` a leaf that requires grad)
        and the Jacobian is ``vmap`` over ``torch.autograd.grad`` of it with the same
        cotangents: the same backward formulas on the same values, so the same Jacobian bit
        for bit (checked on the NIST StRD problems, ``tests/test_nist.py``, and an MLP).
        Recording costs little next to a plain evaluation (torch 2.13 CPU, 1 thread, the 19
        NIST models: 1.3-1.7x a ``no_grad`` evaluation, median 1.5x, where recording by
        ``torch.func.vjp``, whose wrapping of every operation is what makes ``jacrev``'s
        forward pass dear, costs 2.2-10.6x, median 4.7x), so a solver that needs the
        Jacobian at most of its trial points (an accepted Levenberg-Marquardt step) saves a
        forward pass per Jacobian and pays little on a rejected one. Whole solves, the 38
        NIST starts: median time 0.74x that of plain evaluations and ``jacrev`` (0.96x with
        ``torch.func.vjp`` recording instead)."""
        record = self.record(x)
        if record is None:
            return self.residuals(x), None
        self.n_fev += 1
        return record[1].detach(), record

    def record(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """The autograd record ``(x, r(x))`` of :meth:`residuals_recorded`, not counted in
        ``n_fev`` (the forward pass of a Jacobian, as inside ``jacrev``); ``None`` unless in
        reverse mode, where ``r`` does not depend on ``x`` through autograd, and for good
        once the model fails under autograd (``jacrev`` then reports it)."""
        if self.jac != "rev" or not self._recordable:
            return None
        x_rec = x.detach().requires_grad_()
        try:
            with torch.enable_grad():
                out = self.fn(x_rec)
        except RuntimeError:  # e.g. an in-place update of x: evaluated as before
            self._recordable = False
            return None
        out = _check_residual(out, self.m, self.method)
        if not out.requires_grad:  # constant in x for autograd: jacrev decides what J is
            return None
        return x_rec, out

    def _recorded(self, record: tuple[Tensor, Tensor]) -> Tensor:
        """``J`` from :meth:`residuals_recorded`'s record: ``vmap`` over the vector-Jacobian
        products with the rows of ``I_m``, as ``jacrev`` (zeros for an unused ``x``, as
        there)."""
        x_rec, out = record
        if self._basis is None:
            self._basis = torch.eye(out.shape[0], dtype=out.dtype, device=out.device)

        def vjp_row(v: Tensor) -> Tensor:
            return torch.autograd.grad(
                out, x_rec, v, retain_graph=True, allow_unused=True, materialize_grads=True
            )[0]

        return vmap(vjp_row)(self._basis)

    def jacobian(
        self,
        x: Tensor,
        r: Tensor | None = None,
        *,
        check: bool = True,
        record: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """``J(x)``; ``r = residuals(x)`` when known (the forward differences reuse it);
        ``record`` from :meth:`residuals_recorded` at ``x`` when reverse mode recorded that
        evaluation: ``J`` from it, no new forward pass. Each call is one Jacobian evaluation
        in ``n_jev`` either way (``n_fev`` counts the residual evaluations the solver asks
        for, never the forward pass inside a Jacobian). ``check=False`` leaves the test for
        NaN/inf to the caller (:func:`_check_jacobian`)."""
        self.n_jev += 1
        if record is not None:
            J = self._recorded(record)
        elif self.jac == "fd":
            J = self._forward_difference(x, self.residuals(x) if r is None else r)
        elif self.jac == "fwd":
            try:
                J = self._fwd(x)
            except NotImplementedError:  # an op without forward-mode AD: use reverse mode
                self.jac = "rev"
                J = self._rev(x)
        else:
            J = self._rev(x)
        if J.ndim != 2 or J.shape[0] != self.m:
            raise ValueError(
                f"{self.method}: residual shape mismatch: the Jacobian has shape "
                f"{tuple(J.shape)}, expected ({self.m}, {x.numel()}); the residual vector "
                "must have a fixed length"
            )
        J = J.detach()
        if check:
            _check_jacobian(J, self.method)
        return J

    def _forward_difference(self, x: Tensor, r: Tensor) -> Tensor:
        """MINPACK ``fdjac2`` (used by ``lmdif``): column ``j`` is ``(r(x + h_j e_j) - r(x)) /
        h_j`` with ``h_j = sqrt(eps) |x_j|`` (``sqrt(eps)`` where ``x_j = 0``), ``eps`` the
        machine precision of ``x``'s dtype; ``n`` residual evaluations, counted in ``n_fev``.
        For models torch cannot differentiate (``jac="fd"``)."""
        root_eps = math.sqrt(torch.finfo(x.dtype).eps)
        h = root_eps * x.abs()
        h = torch.where(h == 0, torch.full_like(h, root_eps), h)
        cols = []
        for j in range(x.numel()):
            xj = x.clone()
            xj[j] = xj[j] + h[j]
            cols.append((self.residuals(xj) - r) / h[j])
        return torch.stack(cols, dim=1)


def _lstsq(A: Tensor, b: Tensor) -> Tensor:
    """Minimum-norm least-squares solution ``p`` of ``min ||A p - b||`` (``b`` 1-D) by the SVD:
    LAPACK ``gelsd`` on the CPU (what NumPy and SciPy use), ``torch.linalg.svd`` elsewhere;
    singular values below ``eps * max(m, n) * s_max`` count as zero (LAPACK's default rcond).

    Not torch's CPU default ``gelsy``: torch hands it an uninitialized pivot array, which LAPACK
    reads as "keep these columns in front, unpivoted", so on a rank-deficient ``A`` (the
    Jacobian of an MLP with dead or saturated units has zero columns) its rank estimate and its
    solution depend on leftover memory: a zero step, a step that raises the linear model's
    residual, a different answer on each run (pytorch/pytorch#187411).
    """
    if A.device.type == "cpu":
        return torch.linalg.lstsq(A, b.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    return _svd_lstsq(A, b)  # torch offers only "gels" (full rank) off the CPU


def _svd_lstsq(A: Tensor, b: Tensor) -> Tensor:
    """``A^+ b`` from ``torch.linalg.svd``, singular values below ``eps * max(m, n) * s_max``
    dropped (the same rule as ``gelsd``), for devices without a rank-revealing driver."""
    u, sv, vh = torch.linalg.svd(A, full_matrices=False)
    cutoff = torch.finfo(A.dtype).eps * max(A.shape) * sv.max()
    inv = torch.where(sv > cutoff, 1.0 / sv, torch.zeros_like(sv))
    return vh.mT @ (inv * (u.mT @ b))


def _gradient_cosine(J: Tensor, r: Tensor) -> float:
    """MINPACK's gtol test value: max_j |J_j^T r| / (||J_j|| ||r||)."""
    rn = torch.linalg.vector_norm(r)
    cn = torch.linalg.vector_norm(J, dim=0)
    if rn == 0:
        return 0.0
    g = (J.T @ r).abs()
    mask = cn > 0
    if not bool(mask.any()):
        return 0.0
    return float((g[mask] / (cn[mask] * rn)).max())


def _cost(r: Tensor) -> float:
    return 0.5 * float(torch.dot(r, r))


def _start_least_squares(
    residuals: Callable[[Tensor], Tensor], x0: Any, jac: str, method: str, max_params: int
) -> tuple[Any, Tensor, Tensor, float]:
    """Shared start of Gauss-Newton and Levenberg-Marquardt: the checked start point, the
    problem (size guard before and after the first residual), ``r(x0)`` and its cost."""
    x = _as_x0(x0)
    _check_dense(x.numel(), max_params, method)
    prob = _LeastSquares(residuals, x, jac, method)
    _check_dense(x.numel(), max_params, method, prob.m)
    r = prob.r0
    if not bool(torch.isfinite(r).all()):
        raise ValueError(f"{method}: residuals are non-finite at x0; choose another start")
    return prob, x, r, _cost(r)


class _Objective:
    """Scalar objective with counting: value, gradient, Hessian, Hessian-vector products."""

    def __init__(self, loss: Callable[[Tensor], Tensor], method: str):
        self.fn = loss
        self.method = method
        self.n_fev = self.n_jev = self.n_hev = 0
        self._vg = torch.func.grad_and_value(self._scalar)

    def _scalar(self, x: Tensor) -> Tensor:
        v = self.fn(x)
        if not isinstance(v, Tensor) or v.numel() != 1:
            shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"{self.method}: loss(x) must return a scalar tensor, got {shape}")
        return v.reshape(())

    def value(self, x: Tensor) -> float:
        self.n_fev += 1
        with torch.no_grad():
            return float(self._scalar(x))

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        self.n_fev += 1
        self.n_jev += 1
        g, v = self._vg(x)
        g = g.detach()
        if not bool(torch.isfinite(g).all()):
            raise ValueError(
                f"{self.method}: non-finite gradient at a point with loss {float(v)}; "
                "check the model for 0/0, log(0) or overflow, or use a first-order optimizer"
            )
        return float(v), g

    def hessian(self, x: Tensor) -> Tensor:
        self.n_hev += 1
        H = hessian(self._scalar)(x).detach()
        if not bool(torch.isfinite(H).all()):
            raise ValueError(
                f"{self.method}: non-finite Hessian; use hessian_free or a first-order optimizer"
            )
        return 0.5 * (H + H.T)

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        self.n_hev += 1
        return jvp(grad(self._scalar), (x,), (v,))[1].detach()


def _armijo(
    obj: _Objective, x: Tensor, f: float, g: Tensor, p: Tensor, c1: float = 1e-4
) -> tuple[float, float]:
    """Backtracking line search (halving) until the Armijo condition holds; returns (t, f_new)."""
    slope = float(torch.dot(g, p))
    t = 1.0
    for _ in range(60):
        f_new = obj.value(x + t * p)
        if math.isfinite(f_new) and f_new <= f + c1 * t * slope:
            return t, f_new
        t *= 0.5
    return 0.0, f
