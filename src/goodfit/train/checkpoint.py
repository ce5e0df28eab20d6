"""Checkpoints: atomic writes and everything needed to continue a run bit-for-bit.

A checkpoint is a plain dict of tensors, numbers, strings and containers, saved with
``torch.save`` and loaded with ``torch.load(weights_only=True)`` — no arbitrary pickles. The random
states of torch, NumPy and Python are stored as integer tensors for that reason.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goodfit.atomic import atomic_write
from goodfit.errors import CheckpointError

__all__ = ["capture_rng_state", "load_checkpoint", "restore_rng_state", "save_checkpoint"]

CHECKPOINT_NAME = "last.pt"


def capture_rng_state(loader_generator: torch.Generator | None = None) -> dict[str, Any]:
    """The RNG states of torch (CPU and CUDA), NumPy, Python and the loader's generator."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def restore_rng_state(
    state: dict[str, Any], loader_generator: torch.Generator | None = None
) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"])


def save_checkpoint(
    state: dict[str, Any], directory: str | Path, name: str = CHECKPOINT_NAME
) -> Path:
    """Write ``state`` to ``directory/name`` atomically: a temporary file in the same folder,
    flushed to disk, then renamed over the old checkpoint, so a kill at any moment leaves either
    the old or the new checkpoint, never a torn one."""
    return atomic_write(Path(directory) / name, lambda handle: torch.save(state, handle))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: nothing in the
    file runs). A truncated, empty, foreign or malicious file raises
    :class:`goodfit.errors.CheckpointError`, whose message never suggests unsafe loading."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds on a damaged or foreign file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in first or "Weights only load failed" in first:
            first = "it holds objects other than tensors and plain data"
        raise CheckpointError(
            f"{path} is damaged or not a goodfit checkpoint ({first[:200]}); it was not loaded"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is not a goodfit checkpoint (it holds a {type(state).__name__})"
        )
    return state
