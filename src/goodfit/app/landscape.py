"""``goodfit landscape RUN_DIR``: the loss landscape of a trained run (the runner behind it).

The run folder's ``config.toml`` rebuilds the data exactly as the run saw them (the same split,
standardization and label noise) and the model, whose weights come from ``model.pt`` (and
``init.pt`` for the line init -> final). Kinds (:mod:`goodfit.diagnose.landscape`):

- ``interpolation``: the straight line from ``init.pt`` to ``model.pt`` (Goodfellow et al. 2015);
- ``between``: the line from this run's solution to another run's (``--to OTHER_RUN``);
- ``random``: 1-D or 2-D, filter-normalized random directions (Li et al. 2018);
- ``hessian``: 1-D or 2-D, the top Hessian eigenvectors.

Evaluated on the first ``--samples`` rows of the part the model trained on (and of the
validation part with ``--val``); writes ``landscape.json`` and ``landscape.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from goodfit.app.run_folder import make_folder, read_marker
from goodfit.atomic import atomic_write_text
from goodfit.errors import ConfigError

__all__ = ["KINDS", "landscape_of_model", "load_run", "run_landscape"]

KINDS = ("random", "hessian", "interpolation", "between")


def _weights(path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters stored in ``path`` (a state dict) for ``model``'s layout."""
    from goodfit.train.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = next((s.strip() for s in str(err).splitlines() if s.strip()), str(err))
        raise ConfigError(f"{path} does not fit the run's model: {first}") from None
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_run(run_dir: str | Path) -> tuple[Any, Any, torch.nn.Module, Path]:
    """(config, prepared data, model with the final weights, folder) of a finished
    ``goodfit train`` folder; anything else is a :class:`ConfigError`."""
    from goodfit.app.build import build_model, load_dataset_from_config, prepare_from_config
    from goodfit.app.config import load_config

    path = Path(run_dir)
    marker = read_marker(path) if path.is_dir() else None
    if marker is None or marker.get("kind") != "train" or not (path / "config.toml").exists():
        raise ConfigError(
            f"{path} is not a goodfit run folder (expected a folder written by goodfit train, "
            "with .goodfit-run, config.toml and model.pt)"
        )
    if not (path / "model.pt").exists():
        raise ConfigError(
            f"{path} has no model.pt (the run did not finish); resume it with "
            f"goodfit train --resume {path}"
        )
    cfg = load_config(path / "config.toml")
    prepared = prepare_from_config(cfg, load_dataset_from_config(cfg.data))
    ds = prepared.dataset
    model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
    _weights(path / "model.pt", model)
    return cfg, prepared, model, path


def _check_options(kind: str, dims: int, steps: int, samples: int, bn: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if dims not in (1, 2):
        raise ConfigError(f"--dims must be 1 or 2, got {dims!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 3:
        raise ConfigError(f"--steps must be an integer >= 3, got {steps!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"--samples must be an integer >= 1, got {samples!r}")
    if bn not in ("eval", "recompute"):
        raise ConfigError(f"--bn must be eval or recompute, got {bn!r}")


def landscape_of_model(
    model: torch.nn.Module,
    prepared: Any,
    *,
    kind: str = "random",
    dims: int = 2,
    steps: int = 25,
    distance: float = 1.0,
    samples: int = 1024,
    val: bool = False,
    bn: str = "eval",
    include_bias_and_norm: bool = False,
    seed: int = 0,
    start: dict[str, torch.Tensor] | None = None,
    end: dict[str, torch.Tensor] | None = None,
) -> Any:
    """A :class:`goodfit.diagnose.landscape.Landscape` of ``model`` on the first ``samples``
    rows of ``prepared.train`` (and ``prepared.val`` with ``val``); ``start``/``end`` are the
    line's ends for ``interpolation`` and ``between``."""
    from goodfit.diagnose import landscape as L
    from goodfit.train.loop import default_loss

    _check_options(kind, dims, steps, samples, bn)
    X, y = (t[:samples] for t in prepared.train)
    held = None
    if val:
        if prepared.val is None:
            raise ConfigError("--val needs a validation part: the run has data.val_fraction = 0")
        held = tuple(t[:samples] for t in prepared.val)
    common = {"val": held, "bn": bn, "loss_fn": default_loss(prepared.dataset.task)}
    if kind == "random":
        return L.random_landscape(model, X, y, dims=dims, steps=steps, distance=distance,
                                  seed=seed, include_bias_and_norm=include_bias_and_norm,
                                  **common)  # fmt: skip
    if kind == "hessian":
        return L.hessian_landscape(model, X, y, dims=dims, steps=steps, distance=distance,
                                   seed=seed, **common)  # fmt: skip
    if start is None or end is None:
        raise ConfigError(f"--kind {kind} needs the two ends of the line")
    return L.interpolation(model, start, end, X, y, kind=kind, **common)


def run_landscape(
    run_dir: str,
    *,
    kind: str = "random",
    other: str | None = None,
    out: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Compute the landscape of a run folder and write ``landscape.json`` and
    ``landscape.png`` (into ``out``, default the run folder); returns the JSON data."""
    _check_options(kind, options.get("dims", 2), options.get("steps", 25),
                   options.get("samples", 1024), options.get("bn", "eval"))  # fmt: skip
    cfg, prepared, model, path = load_run(run_dir)
    if options.get("seed") is None:  # the directions are drawn from the run's one seed
        options["seed"] = cfg.train.seed
    start = end = None
    if kind == "interpolation":
        if not (path / "init.pt").exists():
            raise ConfigError(
                f"{path} has no init.pt (a run from before goodfit kept the initial weights); "
                "train it again to plot the line init -> final"
            )
        end = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        start = _weights(path / "init.pt", model)
        _weights(path / "model.pt", model)  # the buffers (BN statistics) of the solution
    elif kind == "between":
        if other is None:
            raise ConfigError("--kind between needs --to OTHER_RUN (a second run folder)")
        _, _, other_model, _ = load_run(other)
        start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        end = _other_params(model, other_model, Path(other))
    elif other is not None:
        raise ConfigError(f"--to is for --kind between, not --kind {kind}")
    ls = landscape_of_model(model, prepared, kind=kind, start=start, end=end, **options)
    from goodfit.diagnose.landscape import plot_landscape

    out_dir = Path(out) if out else path
    make_folder(out_dir)
    data = {"run": str(path), "to": other, **ls.to_dict()}
    atomic_write_text(out_dir / "landscape.json", json.dumps(data) + "\n")
    plot_landscape(ls, out_dir / "landscape.png", title=f"{path.name}: {ls.kind}")
    return data


def _other_params(
    model: torch.nn.Module, other_model: torch.nn.Module, other: Path
) -> dict[str, torch.Tensor]:
    """The other run's trainable parameters, which must match this run's names and shapes."""
    mine = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    theirs = {n: p.detach().clone() for n, p in other_model.named_parameters() if p.requires_grad}
    if mine.keys() != theirs.keys() or any(theirs[n].shape != s for n, s in mine.items()):
        raise ConfigError(
            f"{other} holds another architecture than the first run: the line between two "
            "solutions needs the same [model]"
        )
    return theirs
