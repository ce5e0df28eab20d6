"""Loss landscapes: the loss along lines and planes through parameter space.

* **Linear interpolation** (Goodfellow, Vinyals & Saxe 2015, *Qualitatively characterizing
  neural network optimization problems*): ``L((1 - a) theta_0 + a theta_1)`` from the initial
  to the final weights of a run, or between two runs' solutions (:func:`interpolation`).
* **Random directions with filter normalization** (Li et al. 2018, *Visualizing the Loss
  Landscape of Neural Nets*, seed 003 Fig. 1 and 4): ``L(theta + a d_1 + b d_2)`` with Gaussian
  directions whose every filter (the slice ``d[i]`` along a tensor's first dimension: one
  output channel of a conv, one neuron of a linear layer) is rescaled to the norm of the same
  filter of the weights, ``d[i] <- d[i] / ||d[i]|| * ||theta[i]||`` (their Eq. (1));
  one-dimensional tensors (biases, normalization parameters) get a zero direction, or with
  ``include_bias_and_norm`` the weights themselves, as in the authors' code
  (``normalize_directions_for_weights``) (:func:`filter_normalized_direction`).
* **Hessian eigenvectors**: the same plots along the top eigenvectors of the training loss's
  Hessian (Lanczos on Hessian-vector products, :mod:`goodfit.diagnose.curvature`).

Every grid point is the model evaluated with other weights: on an accelerator
``torch.func.vmap`` over ``torch.func.functional_call`` batches grid points (as many at once as
``memory_mb`` allows); on the CPU, where batched matrix products measured slower than one
product per point (``benchmarks/landscape.py``), a working copy of the model has its weights
overwritten in place at each point and runs one plain forward. The model itself is never
modified. Batch normalization runs in
eval mode with the model's running statistics (``bn="eval"``), or with the statistics of the
evaluated data recomputed at each grid point (``bn="recompute"``: every point sees the whole
subset as one batch, ``torch.func.replace_all_batch_norm_modules_`` on a copy).

Example
-------
>>> ls = random_landscape(net, X[:1000], y[:1000], dims=2, steps=25)  # doctest: +SKIP
>>> plot_landscape(ls, "landscape.png")                               # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from goodfit.train.stacked import has_tied_tensors

__all__ = [
    "Landscape",
    "filter_normalized_direction",
    "hessian_directions",
    "hessian_landscape",
    "interpolation",
    "loss_surface",
    "plot_landscape",
    "random_landscape",
    "trainable_params",
]

Params = dict[str, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
BN_MODES = ("eval", "recompute")


@dataclass
class Landscape:
    """A computed landscape: ``axes`` (one list of coordinates per direction), ``losses``
    (a list for 1-D, ``losses[i][j]`` at ``(axes[0][i], axes[1][j])`` for 2-D), optionally
    ``val_losses`` on held-out data, the loss at the centre and what was evaluated."""

    kind: str
    axes: list[list[float]]
    losses: list[Any]
    center_loss: float
    n_samples: int
    bn: str
    val_losses: list[Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``landscape.json``."""
        return asdict(self)

    def rise_at(self, distance: float) -> float:
        """Sharpness: the mean loss rise over the centre at the grid points that lie
        ``distance`` from it along a direction's axis (the nearest grid coordinate)."""
        rises = []
        grid = np.asarray(self.losses, dtype=float)
        axes = [np.asarray(a) for a in self.axes]
        centre = [int(np.argmin(np.abs(a))) for a in axes]
        for d, a in enumerate(axes):
            for sign in (-1.0, 1.0):
                idx = list(centre)
                idx[d] = int(np.argmin(np.abs(a - sign * distance)))
                rises.append(float(grid[tuple(idx)]) - float(grid[tuple(centre)]))
        return float(np.mean(rises))


def trainable_params(model: nn.Module) -> Params:
    """A detached copy of the model's trainable parameters, by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def filter_normalized_direction(
    params: Params,
    *,
    generator: torch.Generator | None = None,
    include_bias_and_norm: bool = False,
) -> Params:
    """A Gaussian direction, filter-normalized to ``params`` (Li et al. 2018, Eq. (1)).

    Each tensor of two or more dimensions gets ``d ~ N(0, I)`` rescaled filter by filter (its
    first index) to ``||theta[i]|| / (||d[i]|| + 1e-10)`` times itself (the authors' code adds
    ``1e-10``); one-dimensional tensors get zeros, or a copy of ``theta`` with
    ``include_bias_and_norm``.
    """
    out: Params = {}
    for name, w in params.items():
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
        if w.dim() <= 1:
            out[name] = w.clone() if include_bias_and_norm else torch.zeros_like(w)
            continue
        flat_d, flat_w = d.reshape(len(d), -1), w.reshape(len(w), -1)
        scale = flat_w.norm(dim=1) / (flat_d.norm(dim=1) + 1e-10)
        out[name] = (flat_d * scale[:, None]).reshape(w.shape)
    return out


def _bn_model(model: nn.Module, bn: str) -> nn.Module:
    """The module to evaluate: the model in eval mode, or a copy whose batch norms normalize
    with the statistics of the data they see (no running statistics)."""
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
    if bn == "eval":
        return model
    from torch.func import replace_all_batch_norm_modules_

    net = copy.deepcopy(model)
    replace_all_batch_norm_modules_(net)
    net.eval()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    return net


def _activation_numel(model: nn.Module, x: Tensor) -> int:
    """Output elements of every module for one sample (a bound on what vmap keeps alive)."""
    total = [0]

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, Tensor):
            total[0] += out[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return max(1, total[0])


def loss_surface(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    center: Params,
    directions: Sequence[Params],
    coords: Tensor,
    *,
    loss_fn: LossFn | None = None,
    bn: Literal["eval", "recompute"] = "eval",
    batch_size: int | None = None,
    memory_mb: float = 512.0,
    vectorize: bool | None = None,
) -> Tensor:
    """``L(center + sum_k coords[p, k] * directions[k])`` for every row ``p`` of ``coords``
    (shape ``(P, K)``), as a ``(P,)`` tensor; the mean loss over ``(X, y)`` in batches of
    ``batch_size`` samples (all at once by default; always with ``bn="recompute"``).

    ``vectorize``: ``vmap`` over chunks of grid points (as many as ``memory_mb`` holds), or one
    forward per point of a working copy; ``None`` picks ``vmap`` on an accelerator and the loop
    on the CPU, where batched matrix products measured slower than one product per point
    (``benchmarks/landscape.py``)."""
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    net = _bn_model(model, bn)
    was_training = model.training
    if bn == "eval":
        model.eval()
    try:
        return _surface(
            net, X, y, center, directions, coords, loss_fn, bn, batch_size, memory_mb, vectorize
        )
    finally:
        model.train(was_training)


def _surface(
    net: nn.Module,
    X: Tensor,
    y: Tensor,
    center: Params,
    directions: Sequence[Params],
    coords: Tensor,
    loss_fn: LossFn,
    bn: str,
    batch_size: int | None,
    memory_mb: float,
    vectorize: bool | None,
) -> Tensor:
    device = next(iter(center.values())).device
    X, y = X.to(device), y.to(device)
    n = len(X)
    batch = n if batch_size is None or bn == "recompute" else max(1, min(batch_size, n))
    coords = torch.as_tensor(coords, dtype=next(iter(center.values())).dtype).to(device)
    coords = coords.reshape(len(coords), -1)
    if coords.shape[1] != len(directions):
        raise ValueError(f"coords has {coords.shape[1]} columns for {len(directions)} directions")
    stacked = {k: torch.stack([d[k] for d in directions]) for k in center}
    buffers = {k: v for k, v in net.named_buffers()}
    n_params = sum(v.numel() for v in center.values())
    per_point = 4 * (2 * n_params + 3 * _activation_numel(net, X) * batch)
    chunk = max(1, min(len(coords), int(memory_mb * 2**20 // per_point)))
    if vectorize is None:
        vectorize = device.type != "cpu"

    tied = has_tied_tensors(net)

    def loss_at(params: Params, xb: Tensor, yb: Tensor) -> Tensor:
        return loss_fn(functional_call(net, (params, buffers), (xb,), tie_weights=tied), yb)

    batches = [(X[b : b + batch], y[b : b + batch]) for b in range(0, n, batch)]
    with torch.no_grad():
        if not vectorize:
            return _point_by_point(net, loss_fn, center, directions, coords, batches, n)
        batched = vmap(loss_at, in_dims=(0, None, None))
        out = torch.empty(len(coords), dtype=coords.dtype, device=device)
        for start in range(0, len(coords), chunk):
            c = coords[start : start + chunk]
            params = {
                k: center[k] + torch.tensordot(c, stacked[k], dims=([1], [0])) for k in center
            }
            total = torch.zeros(len(c), dtype=coords.dtype, device=device)
            for xb, yb in batches:
                total += batched(params, xb, yb) * len(xb)
            out[start : start + len(c)] = total / n
    return out.cpu()


def _point_by_point(
    net: nn.Module,
    loss_fn: LossFn,
    center: Params,
    directions: Sequence[Params],
    coords: Tensor,
    batches: list[tuple[Tensor, Tensor]],
    n: int,
) -> Tensor:
    """One forward per grid point of a working copy of ``net`` whose tensors are overwritten in
    place with ``center + sum_k c_k d_k`` (skipping the directions that are zero for a tensor:
    biases, norms) — no ``functional_call`` and no allocation per point."""
    work = copy.deepcopy(net)
    if any(isinstance(m, nn.Conv2d) for m in work.modules()):
        # channels_last: the CPU's convolutions and pooling on these maps run faster in it
        # (benchmarks/landscape.py: the 2-D CNN's forward 4x, the residual net's 1.5x); the
        # weights' combinations are computed in the same layout, so none is converted back
        work = work.to(memory_format=torch.channels_last)
        batches = [(_channels_last(xb), yb) for xb, yb in batches]
        center = {k: _channels_last(w) for k, w in center.items()}
        directions = [{k: _channels_last(v) for k, v in d.items()} for d in directions]
    live = {**dict(work.named_parameters()), **dict(work.named_buffers())}
    moving = {k: [j for j, d in enumerate(directions) if bool(d[k].any())] for k in center}
    for k, w in center.items():
        live[k].copy_(w)
    out = torch.empty(len(coords), dtype=torch.float64)
    for i, row in enumerate(coords.tolist()):
        for k, w in center.items():
            if moving[k]:
                first = moving[k][0]
                torch.add(w, directions[first][k], alpha=row[first], out=live[k])
                for j in moving[k][1:]:
                    live[k].add_(directions[j][k], alpha=row[j])
        total = 0.0
        for xb, yb in batches:
            total += float(loss_fn(work(xb), yb)) * len(xb)
        out[i] = total / n
    return out.to(coords.dtype)


def _channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def _grid(distance: float, steps: int) -> np.ndarray:
    """``steps`` coordinates from ``-distance`` to ``distance``, 0 exactly at the middle of an
    odd count."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    half = (steps - 1) / 2
    return distance * (np.arange(steps) - half) / half


def _evaluate_grid(
    model: nn.Module,
    data: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None,
    center: Params,
    directions: list[Params],
    axes: list[np.ndarray],
    **kwargs: Any,
) -> tuple[list[Any], list[Any] | None]:
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    coords = torch.from_numpy(mesh)
    shape = tuple(len(a) for a in axes)

    def run(X: Tensor, y: Tensor) -> list[Any]:
        losses = loss_surface(model, X, y, center, directions, coords, **kwargs)
        return losses.reshape(shape).tolist()

    return run(*data), (run(*val) if val is not None else None)


def _center_index(axes: list[np.ndarray]) -> tuple[int, ...]:
    return tuple(int(np.argmin(np.abs(a))) for a in axes)


def random_landscape(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    *,
    dims: int = 2,
    steps: int = 25,
    distance: float = 1.0,
    seed: int = 0,
    include_bias_and_norm: bool = False,
    val: tuple[Tensor, Tensor] | None = None,
    **kwargs: Any,
) -> Landscape:
    """The loss on a ``steps`` (x ``steps``) grid in ``[-distance, distance]`` along ``dims``
    (1 or 2) filter-normalized random directions around the model's weights (Li et al.
    2018). ``kwargs`` go to :func:`loss_surface` (``loss_fn``, ``bn``, ``batch_size``, ...)."""
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    center = trainable_params(model)
    g = torch.Generator().manual_seed(seed)
    directions = [
        filter_normalized_direction(
            center, generator=g, include_bias_and_norm=include_bias_and_norm
        )
        for _ in range(dims)
    ]
    axes = [_grid(distance, steps)] * dims
    losses, val_losses = _evaluate_grid(model, (X, y), val, center, directions, axes, **kwargs)
    centre = float(np.asarray(losses)[_center_index(axes)])
    info = {"directions": "filter-normalized random", "seed": seed, "distance": distance,
            "include_bias_and_norm": include_bias_and_norm}  # fmt: skip
    return Landscape(f"random_{dims}d", [a.tolist() for a in axes], losses, centre, len(X),
                     kwargs.get("bn", "eval"), val_losses, info)  # fmt: skip


def hessian_directions(
    model: nn.Module, X: Tensor, y: Tensor, *, k: int = 2, loss_fn: LossFn | None = None,
    seed: int = 0,
) -> tuple[list[Params], list[float]]:  # fmt: skip
    """The top-``k`` eigenvectors (unit norm) and eigenvalues of the Hessian of the loss at the
    model's weights, in eval mode, float64 (Lanczos, ``scipy.sparse.linalg.eigsh``; dense
    ``eigh`` below :data:`goodfit.diagnose.curvature.DENSE_LIMIT` parameters)."""
    from goodfit.diagnose.curvature import DENSE_LIMIT, hvp_function
    from goodfit.optim.second_order import module_loss

    was_training = model.training
    model.eval()
    try:
        loss, x0 = module_loss(model, loss_fn or torch.nn.functional.cross_entropy, X, y,
                               dtype=torch.float64)  # fmt: skip
        hvp = hvp_function(loss, x0)
        n = x0.numel()
        if n <= DENSE_LIMIT:
            w, v = torch.linalg.eigh(hvp(torch.eye(n, dtype=torch.float64)))
            w, v = w.flip(0)[:k].numpy(), v.flip(1)[:, :k].numpy()
        else:
            from scipy.sparse.linalg import LinearOperator, eigsh

            def mv(u: np.ndarray) -> np.ndarray:
                return hvp(torch.from_numpy(np.ascontiguousarray(u.reshape(-1)))).numpy()

            op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
            v0 = np.random.default_rng(seed).standard_normal(n)
            w, v = eigsh(op, k=k, which="LA", tol=1e-6, v0=v0)
            order = np.argsort(w)[::-1]
            w, v = w[order], v[:, order]
    finally:
        model.train(was_training)
    center = trainable_params(model)
    out = []
    for j in range(v.shape[1]):
        vec = torch.from_numpy(np.ascontiguousarray(v[:, j]))
        chunks = torch.split(vec, [t.numel() for t in center.values()])
        out.append(
            {
                n_: c.reshape(t.shape).to(t)
                for (n_, t), c in zip(center.items(), chunks, strict=True)
            }
        )
    return out, [float(e) for e in w]


def hessian_landscape(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    *,
    dims: int = 2,
    steps: int = 25,
    distance: float = 1.0,
    val: tuple[Tensor, Tensor] | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> Landscape:
    """As :func:`random_landscape` along the top ``dims`` Hessian eigenvectors (unit norm,
    so ``distance`` is in parameter-space units)."""
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    directions, eig = hessian_directions(model, X, y, k=dims, loss_fn=kwargs.get("loss_fn"),
                                         seed=seed)  # fmt: skip
    center = trainable_params(model)
    axes = [_grid(distance, steps)] * dims
    losses, val_losses = _evaluate_grid(model, (X, y), val, center, directions, axes, **kwargs)
    centre = float(np.asarray(losses)[_center_index(axes)])
    info = {"directions": "top Hessian eigenvectors", "eigenvalues": eig, "distance": distance}
    return Landscape(f"hessian_{dims}d", [a.tolist() for a in axes], losses, centre, len(X),
                     kwargs.get("bn", "eval"), val_losses, info)  # fmt: skip


def interpolation(
    model: nn.Module,
    start: Params,
    end: Params,
    X: Tensor,
    y: Tensor,
    *,
    alphas: Sequence[float] | None = None,
    val: tuple[Tensor, Tensor] | None = None,
    kind: str = "interpolation",
    **kwargs: Any,
) -> Landscape:
    """``L(start + a (end - start))`` for each ``a`` (default -0.5 to 1.5 by 0.05, with 0 and 1
    exact): a = 0 is ``start``, a = 1 is ``end`` (Goodfellow et al. 2015). The model supplies
    the architecture and the buffers (BN running statistics) of the evaluation."""
    a = np.arange(-10, 31) / 20 if alphas is None else np.asarray(alphas, dtype=float)
    if start.keys() != end.keys() or any(start[k].shape != end[k].shape for k in start):
        raise ValueError("start and end must hold the same parameters with the same shapes")
    direction = {k: end[k] - start[k] for k in start}
    losses, val_losses = _evaluate_grid(model, (X, y), val, start, [direction], [a], **kwargs)
    i0 = int(np.argmin(np.abs(a)))
    dist = math.sqrt(sum(float(d.double().pow(2).sum()) for d in direction.values()))
    return Landscape(kind, [a.tolist()], losses, float(losses[i0]), len(X),
                     kwargs.get("bn", "eval"), val_losses, {"distance": dist})  # fmt: skip


def plot_landscape(ls: Landscape, path: str | os.PathLike[str], title: str = "") -> Any:
    """A line plot (1-D), or a contour plot and a 3-D surface side by side (2-D); saved to
    ``path`` (PNG, atomically) and returned as a matplotlib Figure."""
    from matplotlib.figure import Figure

    from goodfit.atomic import atomic_savefig

    title = title or ls.kind.replace("_", " ")
    if len(ls.axes) == 1:
        fig = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(ls.axes[0], ls.losses, label="train")
        if ls.val_losses is not None:
            ax.plot(ls.axes[0], ls.val_losses, label="validation")
        for mark in (0.0, 1.0) if ls.kind in ("interpolation", "between") else (0.0,):
            ax.axvline(mark, color="0.7", lw=0.8)
        ax.set(xlabel="alpha" if ls.kind in ("interpolation", "between") else "distance",
               ylabel="loss", title=title)  # fmt: skip
        ax.legend(fontsize=8)
    else:
        fig = Figure(figsize=(11.0, 4.6), layout="constrained")
        draw_2d(fig, ls, title, (1, 2, 1), (1, 2, 2))
    atomic_savefig(fig, path)
    return fig


def draw_2d(fig: Any, ls: Landscape, title: str, contour_at: tuple, surface_at: tuple) -> None:
    """A 2-D landscape's contour plot and 3-D surface into ``fig`` at the two subplot specs."""
    a, b = np.meshgrid(ls.axes[0], ls.axes[1], indexing="ij")
    z = np.asarray(ls.losses, dtype=float)
    ax = fig.add_subplot(*contour_at)
    levels = np.linspace(z.min(), min(z.max(), z.min() + 5 * (np.median(z) - z.min() + 1e-9)), 30)
    cs = ax.contour(a, b, z, levels=levels, cmap="viridis")
    ax.clabel(cs, cs.levels[::6], fontsize=6)
    ax.plot([0], [0], "r+")
    ax.set(xlabel="direction 1", ylabel="direction 2", title=f"{title} (contours)", aspect="equal")
    ax3 = fig.add_subplot(*surface_at, projection="3d")
    ax3.plot_surface(a, b, np.minimum(z, levels[-1]), cmap="viridis", linewidth=0)
    ax3.set(xlabel="direction 1", ylabel="direction 2", zlabel="loss", title=f"{title} (surface)")
