"""Second-order solvers: Newton, Gauss-Newton, Levenberg-Marquardt and Hessian-free Newton.

Full-batch solvers on a 1-D parameter vector ``x``; every derivative comes from ``torch.func``
(``jacfwd``/``jacrev`` for Jacobians, ``grad``/``hessian`` for Newton, forward-over-reverse
``jvp`` of ``grad`` for Hessian-vector products). A model is given either as a function of a flat
parameter vector or as an ``nn.Module`` (see :func:`module_residuals`, :func:`module_loss` and
:func:`fit_least_squares`, which use ``torch.func.functional_call``).

* :func:`newton` — GBC Algorithm 8.8 with the damping of GBC eq. 8.28,
  ``theta <- theta - (H + alpha I)^{-1} g``, safeguarded by a backtracking line search.
* :func:`gauss_newton` — seed 000 §1.2.3.2, ``W <- W - (J^T J)^{-1} J^T f``, solved as a linear
  least-squares problem (SVD, minimum norm) or by Cholesky, never by an explicit inverse.
* :func:`levenberg_marquardt` — Moré's trust-region Levenberg-Marquardt (1978; MINPACK's
  ``lmder``): ``min ||J p + f||`` subject to ``||D p|| <= delta``, optional box bounds and
  forward-difference Jacobians.
* :func:`levenberg` — seed 000 §1.2.3.2, ``W <- W - (J^T J + mu D)^{-1} J^T f`` with
  Marquardt's scaling ``D = diag(J^T J)`` (``scaling="identity"``: the note's ``mu I``) and
  adaptive ``mu``.
* :func:`hessian_free` — truncated Newton: conjugate gradient on ``(H + alpha I) p = -g`` with
  Hessian-vector products (GBC §8.6 "conjugate gradients"; GBC eq. 8.28 damping).

L-BFGS is not re-implemented: use ``torch.optim.LBFGS`` (the training loop passes it a closure,
``optimizer.step(closure)``), e.g. ``[optimizer] name = "lbfgs"`` in a config.

``SECOND_ORDER`` maps config names to these functions; all options are keyword-only, so an
unknown option raises ``TypeError`` and a bad value ``ValueError``.

Modules: ``result`` (:class:`SecondOrderResult`), ``problem`` (checks, counted evaluations, the
shared start, the Armijo line search), one ``*_solver`` module per method, ``trust_region``
(Moré's ``lmpar``, ``qrsolv`` and radius update), ``bounds`` (box constraints), ``module_bridge``
(an ``nn.Module`` as a function of its flat parameters) and ``fit`` (:data:`SECOND_ORDER`,
:func:`fit_least_squares`).
"""

from goodfit.optim.second_order.fit import SECOND_ORDER, fit_least_squares
from goodfit.optim.second_order.gauss_newton_solver import gauss_newton
from goodfit.optim.second_order.hessian_free_solver import hessian_free
from goodfit.optim.second_order.levenberg_marquardt_solver import levenberg_marquardt
from goodfit.optim.second_order.levenberg_solver import levenberg
from goodfit.optim.second_order.module_bridge import module_loss, module_residuals
from goodfit.optim.second_order.newton_solver import newton
from goodfit.optim.second_order.result import SecondOrderResult

__all__ = [
    "SECOND_ORDER",
    "SecondOrderResult",
    "fit_least_squares",
    "gauss_newton",
    "hessian_free",
    "levenberg",
    "levenberg_marquardt",
    "module_loss",
    "module_residuals",
    "newton",
]
