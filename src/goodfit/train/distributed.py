"""Data-parallel training of one run: torch.distributed + DistributedDataParallel under torchrun.

``torchrun --nproc_per_node=N -m goodfit train CONFIG.toml`` starts ``N`` ranks; each builds the
same run, and :func:`goodfit.fit` (``parallel=DataParallel.from_env(...)``) trains it data-parallel:

- **The same minibatches as one process.** Every rank draws the same per-epoch permutation (the
  loop's generator, seeded by the run's seed) and cuts the same global minibatches of
  ``batch_size``; rank ``r`` takes the ``r``-th of ``N`` contiguous, near-equal pieces
  (``torch.tensor_split``), so the union of the ranks' batches is the one-process batch.
- **The same gradient.** DDP averages the ranks' gradients. With uneven pieces (``n_r`` samples
  of a batch of ``B``) rank ``r`` back-propagates ``(n_r N / B)`` times its mean loss, so the
  average ``(1/N) sum_r (n_r N / B) mean_r = (1/B) sum_i l_i`` is the gradient of the one-process
  batch mean (the weight is 1 when ``N`` divides ``B``).
- **The same metrics.** Per-batch training losses and correct counts are all-reduced once per
  epoch; validation is split across ranks and its sums all-reduced, so every rank holds the same
  history (up to float32 round-off of the summation order).
- **One decision.** After every validation and every epoch, rank 0's stop reason (early
  stopping, a callback's stop) and its learning rates (a plateau reduction) are broadcast; a
  non-finite loss is seen in the all-reduced losses by every rank at once.
- **One writer.** Only rank 0 writes checkpoints (atomically); the checkpoint holds every rank's
  random state (dropout and augmentation are seeded per rank: rank 0 with the run's seed, rank
  ``r`` with a seed derived from ``(seed, r)``), and a resume reads it on rank 0 and broadcasts
  it, so every rank continues bit-for-bit.

Callbacks run on every rank and see the same state, except ``trainer.loss`` (the last batch's
loss), which is the rank's share's. Closure optimizers (L-BFGS) are not supported: their line
search would need a collective per function evaluation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from goodfit.errors import CheckpointError, ConfigError
from goodfit.nn.sync_batchnorm import convert_sync_batchnorm
from goodfit.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)

if TYPE_CHECKING:
    from goodfit.train.loop import Trainer

__all__ = ["DataParallel", "rank_seed", "torchrun_world_size"]


def torchrun_world_size() -> int:
    """The ``WORLD_SIZE`` torchrun sets (1 when not launched by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s own random draws (dropout, augmentation): the run's ``seed``
    on rank 0 (so rank 0 draws as one process would), else a hash of ``(seed, rank)`` by NumPy's
    ``SeedSequence`` (independent streams, reproducible)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


class DataParallel:
    """One rank of a data-parallel run (see the module docstring); pass it as ``fit(parallel=)``.

    ``rank``/``world_size`` come from the process group; ``device`` is the rank's device
    (``cuda:LOCAL_RANK`` on GPUs, else CPU); ``sync_batchnorm`` converts BatchNorm layers to
    synchronized ones (:func:`goodfit.nn.sync_batchnorm.convert_sync_batchnorm`).
    """

    def __init__(self, device: str | torch.device = "cpu", *, sync_batchnorm: bool = False):
        if not dist.is_initialized():
            raise RuntimeError("DataParallel needs an initialized torch.distributed process group")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = torch.device(device)
        self.sync_batchnorm = sync_batchnorm
        self.checkpointing = False
        self._sizes: list[tuple[int, int]] = []

    @classmethod
    def from_env(cls, device: str = "cpu", *, sync_batchnorm: bool = False) -> DataParallel | None:
        """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``
        ...): gloo on CPU, NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``). ``None`` when not
        launched by torchrun or with one process: then nothing changes."""
        if torchrun_world_size() <= 1:
            return None
        cuda = torch.device(device).type == "cuda"
        if cuda:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        return cls(device, sync_batchnorm=sync_batchnorm)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run folder and checkpoints."""
        return self.rank == 0

    def close(self) -> None:
        """Leave the process group."""
        if dist.is_initialized():
            dist.destroy_process_group()

    # -- set-up --------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, state: dict[str, Any] | None) -> nn.Module:
        """Per-rank random state (restored from ``state`` or seeded by :func:`rank_seed`),
        synchronized BatchNorm if asked, and the DDP wrapper used for the training forward."""
        if trainer._needs_closure:
            raise ConfigError(
                "data-parallel training does not support closure optimizers (L-BFGS, "
                "second-order); use a first-order optimizer or run in one process"
            )
        if state is not None:
            ranks = state.get("rng_ranks")
            if ranks is None or len(ranks) != self.world_size:
                found = "one process" if ranks is None else f"{len(ranks)} processes"
                raise CheckpointError(
                    f"the checkpoint was written by {found}; resume it with "
                    f"torchrun --nproc_per_node={1 if ranks is None else len(ranks)} "
                    f"(this launch has {self.world_size})"
                )
            restore_rng_state(ranks[self.rank], trainer.loader_generator)
        elif self.rank > 0:
            generator_state = trainer.loader_generator.get_state()
            from goodfit.train.loop import seed_everything

            seed_everything(rank_seed(trainer.seed, self.rank))
            trainer.loader_generator.set_state(generator_state)  # the shared permutation
        self.checkpointing = self._broadcast(trainer.checkpoint_dir is not None)
        if self.sync_batchnorm:
            trainer.model = convert_sync_batchnorm(trainer.model, self.device.type == "cuda")
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(trainer.model, device_ids=ids)

    def resume_state(self, path: Path | None) -> dict[str, Any] | None:
        """The checkpoint to resume from, read on rank 0 (``path`` when it exists) and sent to
        every rank, so the other ranks need no access to the run folder."""
        state = (
            load_checkpoint(path) if self.is_main and path is not None and path.exists() else None
        )
        return self._broadcast(state)

    # -- the minibatch -------------------------------------------------------------------------
    def share(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's piece of the global minibatch ``idx`` and its loss weight ``n_r N / B``."""
        mine = torch.tensor_split(idx, self.world_size)[self.rank]
        if len(idx) < self.world_size:
            raise ConfigError(
                f"a minibatch of {len(idx)} samples cannot be shared by {self.world_size} "
                "processes; use train.batch_size >= the number of processes"
            )
        self._sizes.append((len(idx), len(mine)))
        return mine, len(mine) * self.world_size / len(idx)

    def reduce_epoch(
        self, losses: torch.Tensor, outputs: list[torch.Tensor], targets: list[torch.Tensor]
    ) -> tuple[torch.Tensor, float | None]:
        """The global per-batch mean losses (from the ranks' ``loss * n_r`` sums) and the global
        training accuracy (``None`` without classification outputs): one all-reduce."""
        sizes, self._sizes = self._sizes[-len(losses) :], []
        glob = torch.tensor([g for g, _ in sizes], dtype=torch.float64)
        local = torch.tensor([n for _, n in sizes], dtype=torch.float64)
        correct = 0.0
        if outputs:
            pred = torch.cat(outputs).argmax(dim=1)
            hard = torch.cat(targets)
            hard = hard.argmax(dim=1) if hard.ndim > 1 else hard
            correct = float((pred == hard).sum())
        buf = torch.cat([losses.detach().double().cpu() * local, torch.tensor([correct])])
        buf = self._all_reduce(buf)
        batch_losses = (buf[:-1] / glob).to(losses.dtype).to(losses.device)
        accuracy = float(buf[-1] / glob.sum()) if outputs else None
        return batch_losses, accuracy

    # -- validation and decisions ----------------------------------------------------------------
    def evaluate(
        self, model: nn.Module, X: torch.Tensor, y: torch.Tensor, **kwargs: Any
    ) -> dict[str, float]:
        """:func:`goodfit.train.loop.evaluate` split across ranks (contiguous pieces of ``X``), its
        sums all-reduced: the metrics of the whole set, identical on every rank. Balanced accuracy
        and macro-F1 (``class_metrics=True``) are not sums over pieces: then every rank evaluates
        the whole set (the ranks' models are equal, so are their results)."""
        from goodfit.train.loop import evaluate

        if kwargs.get("class_metrics"):
            return evaluate(model, X, y, **kwargs)
        piece = torch.tensor_split(torch.arange(len(X)), self.world_size)[self.rank]
        lo, hi = (int(piece[0]), int(piece[-1]) + 1) if len(piece) else (0, 0)
        part = evaluate(model, X[lo:hi], y[lo:hi], **kwargs)
        keys = sorted(part)
        local = [part[k] * (hi - lo) for k in keys]  # sums; accuracies as whole counts
        local = [
            round(v) if k.endswith("accuracy") else v for k, v in zip(keys, local, strict=True)
        ]
        sums = self._all_reduce(torch.tensor([*local, hi - lo], dtype=torch.float64))
        return {k: float(sums[i] / sums[-1]) for i, k in enumerate(keys)}

    def agree(self, trainer: Trainer) -> None:
        """Rank 0's stop reason and learning rates on every rank (one broadcast)."""
        lrs = [float(g["lr"]) for g in trainer.optimizer.param_groups]
        reason, lrs = self._broadcast((trainer.stop_reason, lrs))
        trainer.stop_reason = reason
        for group, lr in zip(trainer.optimizer.param_groups, lrs, strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    # -- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self, trainer: Trainer) -> None:
        """Rank 0 writes the checkpoint (atomically) with every rank's random state."""
        if not self.checkpointing:
            return
        rng = capture_rng_state(trainer.loader_generator)
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(rng, gathered, dst=0)
        if self.is_main:
            state = trainer._checkpoint_state()
            state["rng_ranks"] = gathered
            save_checkpoint(state, trainer.checkpoint_dir)

    # -- collectives ------------------------------------------------------------------------------
    def _broadcast(self, value: Any) -> Any:
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def _all_reduce(self, buf: torch.Tensor) -> torch.Tensor:
        moved = buf.to(self._comm_device())
        dist.all_reduce(moved)
        return moved.cpu()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")
