"""Synchronized BatchNorm: batch statistics over the global batch of a data-parallel run.

Under data parallelism each rank sees only its share of the minibatch; plain BatchNorm would
normalize with that share's statistics. Synchronized BatchNorm (Ioffe & Szegedy's batch
statistics, seed 000 §1.1.5, taken over the union of the shares) all-reduces the per-channel sums
so every rank normalizes with the global batch's mean and biased variance, and updates the running
statistics exactly as one process would (torch's unbiased ``m/(m-1)`` variance, or seed 000's
biased one for :class:`goodfit.nn.norm.BiasedVarBatchNorm`).

On CUDA this is ``torch.nn.SyncBatchNorm``. torch's layer refuses CPU tensors (its kernels are
GPU-only), so on CPU (the gloo backend) :class:`GlooSyncBatchNorm` computes the same statistics
with the differentiable ``torch.distributed.nn.functional.all_reduce``: the backward pass then
all-reduces the gradients of the sums, which is the chain rule through the global statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["GlooSyncBatchNorm", "convert_sync_batchnorm"]


class GlooSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the global batch over all ranks (CPU).

    ``mu = sum x / M`` and ``sigma2 = sum (x - mu)^2 / M`` over the ``M`` values per channel of
    every rank (two all-reduces, the centred second pass for accuracy); the running variance gets
    ``M/(M-1) sigma2`` (torch) or ``sigma2`` (``biased_running_var``, seed 000). In eval mode, or
    without an initialized process group, it is ordinary BatchNorm.
    """

    def __init__(self, *args, biased_running_var: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.biased_running_var = biased_running_var

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, input: Tensor) -> Tensor:
        import torch.distributed as dist

        self._check_input_dim(input)
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return F.batch_norm(
                input, self.running_mean, self.running_var, self.weight, self.bias,
                self.training or self.running_mean is None, self.momentum or 0.0, self.eps,
            )  # fmt: skip
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() / input.shape[1]], dtype=input.dtype)
        dist.all_reduce(count)
        mean = all_reduce(input.sum(dims)) / count
        centred = input - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None:
            self._update_running(mean.detach(), var.detach(), float(count))
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, m: float) -> None:
        self.num_batches_tracked.add_(1)
        w = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = var if self.biased_running_var else var * (m / max(m - 1.0, 1.0))
        self.running_mean.mul_(1.0 - w).add_(mean, alpha=w)
        self.running_var.mul_(1.0 - w).add_(unbiased, alpha=w)


def _converted(bn: _BatchNorm, cuda: bool) -> nn.Module:
    if cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(bn)
    new = GlooSyncBatchNorm(
        bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
        biased_running_var=type(bn).__name__ == "BiasedVarBatchNorm",
    )  # fmt: skip
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias  # the same Parameters: optimizers keep them
    new.running_mean, new.running_var = bn.running_mean, bn.running_var
    new.num_batches_tracked = bn.num_batches_tracked
    new.train(bn.training)
    return new


def convert_sync_batchnorm(model: nn.Module, cuda: bool = False) -> nn.Module:
    """Replace every BatchNorm layer of ``model`` *in place* by a synchronized one (torch's
    ``SyncBatchNorm`` on CUDA, :class:`GlooSyncBatchNorm` on CPU) that shares its parameters and
    buffers, so the optimizer, the state-dict keys and any reference to ``model`` stay valid.
    Returns ``model`` (or the replacement when ``model`` itself is a BatchNorm layer)."""
    if isinstance(model, _BatchNorm) and not isinstance(
        model, GlooSyncBatchNorm | nn.SyncBatchNorm
    ):
        return _converted(model, cuda)
    for name, child in model.named_children():
        setattr(model, name, convert_sync_batchnorm(child, cuda))
    return model
