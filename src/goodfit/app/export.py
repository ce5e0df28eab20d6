"""``goodfit export RUN_DIR``: the run's model with its preprocessing baked in, loadable by
plain PyTorch.

The exported module computes ``model((x - mean) / std)`` on *raw* inputs (the standardization
fitted on the run's training part, :mod:`goodfit.app.predict`) and returns the model's outputs
(logits for classification; apply ``softmax`` for probabilities). Two formats:

- ``torchscript``: ``torch.jit.trace`` of the module in eval mode, saved with
  ``torch.jit.save``; load with ``torch.jit.load(path)``.
- ``exported-program``: ``torch.export.export`` with a dynamic batch dimension, saved with
  ``torch.export.save``; load with ``torch.export.load(path).module()``.

Neither needs goodfit to load or run. ``export.json`` beside the file records the input shape,
the task and the class labels, so a user knows what the outputs mean.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from goodfit.errors import ConfigError

__all__ = ["FORMATS", "BakedModel", "export_run"]

#: format -> default file name in the run folder
FORMATS = {"torchscript": "model.torchscript.pt", "exported-program": "model.pt2"}


class BakedModel(nn.Module):
    """``model((x - mean) / std)``: the run's standardization as buffers, then the model."""

    def __init__(self, model: nn.Module, mean: torch.Tensor | None, std: torch.Tensor | None):
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean if mean is not None else torch.zeros(()))
        self.register_buffer("std", std if std is not None else torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def export_run(
    run_dir: str | Path, fmt: str = "torchscript", out: str | Path | None = None
) -> dict[str, Any]:
    """Export the run at ``run_dir`` as ``fmt`` (:data:`FORMATS`) to ``out`` (default: in the
    run folder); returns ``{"path", "format", "input_shape", "task", "classes"}``."""
    from goodfit.app.predict import load_run
    from goodfit.atomic import atomic_write, atomic_write_text

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not known; allowed: {', '.join(FORMATS)}")
    run = load_run(run_dir)
    baked = BakedModel(run.model, run.mean, run.std).eval()
    example = torch.randn(2, *run.input_shape, generator=torch.Generator().manual_seed(0))
    path = Path(out) if out is not None else Path(run_dir) / FORMATS[fmt]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates jit
        if fmt == "torchscript":
            traced = torch.jit.trace(baked, example)
            atomic_write(path, lambda handle: torch.jit.save(traced, handle))
        else:
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(baked, (example,), dynamic_shapes=({0: batch},))
            atomic_write(path, lambda handle: torch.export.save(program, handle))
    meta = {
        "path": str(path),
        "format": fmt,
        "input_shape": list(run.input_shape),
        "task": run.task,
        "outputs": "logits" if run.task == "classification" else "values",
        "classes": run.classes,
    }
    atomic_write_text(path.with_name(path.name + ".json"), json.dumps(meta, indent=2) + "\n")
    return meta
