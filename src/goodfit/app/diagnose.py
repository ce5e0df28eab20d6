"""``goodfit diagnose curvature|gradients CONFIG.toml|RUN_DIR``: the runners behind the command.

- With a run folder (written by ``goodfit train``), the diagnosis uses its resolved
  ``config.toml`` and its trained weights (``model.pt``).
- With a config, the config is trained first (in memory, nothing written but the diagnosis).

``curvature`` prints the Hessian's extreme eigenvalues, its trace (Hutchinson), the condition
number, the minimum/saddle verdict and the largest stable learning rate ``2 / lambda_max``
(seed 000's ``eta <= 2/M``), and saves ``curvature.png`` + ``curvature.json``.
``gradients`` trains with :class:`~goodfit.diagnose.gradient_flow.GradientFlowCallback` and saves
``gradient_flow.png`` + ``gradient_flow.json`` with the vanishing/exploding flags.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from goodfit.app.run_folder import make_folder
from goodfit.atomic import atomic_write_text
from goodfit.errors import ConfigError

__all__ = ["run_curvature", "run_gradients"]


def _resolve(target: str, overrides: list[str]) -> tuple[Any, Path | None, Path]:
    """(config, run_dir or None, default output folder)."""
    from goodfit.app.config import load_config

    path = Path(target)
    if path.is_dir():
        if not (path / "config.toml").exists():
            raise ConfigError(f"{path} is not a goodfit run folder (no config.toml)")
        return load_config(path / "config.toml", overrides), path, path
    return load_config(path, overrides), None, Path("runs") / f"diagnose-{path.stem}"


def _trained_model(cfg: Any, run_dir: Path | None, extra_callbacks: list[Any]) -> tuple[Any, Any]:
    """The trained model and the prepared data of ``cfg`` (weights of ``run_dir`` if given)."""
    from goodfit.app.build import build_model, load_dataset_from_config, prepare_from_config
    from goodfit.app.run import run_config

    prepared = prepare_from_config(cfg, load_dataset_from_config(cfg.data))
    if run_dir is not None and not extra_callbacks:
        weights = run_dir / "model.pt"
        if not weights.exists():
            raise ConfigError(
                f"{run_dir} has no model.pt (the run did not finish); resume it with "
                f"goodfit train --resume {run_dir}"
            )
        ds = prepared.dataset
        model = build_model(cfg.model, ds.input_shape, ds.num_outputs)
        from goodfit.train.checkpoint import load_checkpoint

        try:
            model.load_state_dict(load_checkpoint(weights))
        except RuntimeError as err:  # another architecture (e.g. --set model.widths=[..])
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            detail = next((x for x in lines if "size mismatch" in x or "key" in x), lines[0])
            raise ConfigError(
                f"{weights} does not fit the configured model (was [model] changed with "
                f"--set?): {detail}"
            ) from None
        return model, prepared
    cfg = cfg.model_copy(deep=True)
    cfg.checkpoint.enabled = False
    result = run_config(cfg, None, data=prepared, extra_callbacks=extra_callbacks, progress=None)
    return result.model, prepared


def run_curvature(
    target: str, overrides: list[str], out: str | None, *, top_k: int = 5, samples: int = 2048
) -> int:
    """Hessian spectrum of the training loss at the trained weights (``target``: a run folder
    or a config, trained first in memory); saves ``curvature.png`` and ``curvature.json``."""
    from goodfit.diagnose.curvature import curvature_report, plot_spectrum
    from goodfit.train.loop import default_loss

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"--top-k must be an integer >= 1, got {top_k!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"--samples must be an integer >= 1, got {samples!r}")
    cfg, run_dir, default_out = _resolve(target, overrides)
    model, prepared = _trained_model(cfg, run_dir, [])
    X, y = prepared.train
    n = min(len(X), samples)
    report = curvature_report(model, default_loss(prepared.dataset.task), X[:n], y[:n], k=top_k)
    out_dir = Path(out) if out else default_out
    make_folder(out_dir)
    plot_spectrum(report, out_dir / "curvature.png")
    atomic_write_text(out_dir / "curvature.json", json.dumps(report.to_dict(), indent=2) + "\n")
    print(f"parameters          {report.n_params}")
    print(f"training loss       {report.loss:.6g}  (on {n} samples, eval mode)")
    print(f"top eigenvalues     {', '.join(f'{v:.4g}' for v in report.top_eigenvalues)}")
    print(f"smallest eigenvalue {report.lambda_min:.4g}")
    print(f"trace (Hutchinson)  {report.trace:.4g} ± {report.trace_stderr:.2g}")
    cond = report.condition_number
    print(f"condition number    {cond:.4g}" if math.isfinite(cond) else "condition number    inf")
    print(f"largest stable lr   {report.max_stable_lr:.4g}  (2 / lambda_max)")
    print(f"verdict             {report.verdict}")
    print(f"saved {out_dir / 'curvature.png'} and {out_dir / 'curvature.json'}")
    return 0


def run_gradients(target: str, overrides: list[str], out: str | None) -> int:
    """Train with per-layer gradient norms recorded; plot them and list the flags."""
    from goodfit.diagnose.gradient_flow import GradientFlowCallback, plot_gradient_flow

    cfg, _, default_out = _resolve(target, overrides)
    callback = GradientFlowCallback()
    _trained_model(cfg, None, [callback])
    out_dir = Path(out) if out else default_out
    make_folder(out_dir)
    plot_gradient_flow(callback, out_dir / "gradient_flow.png")
    data = callback.to_dict()
    atomic_write_text(out_dir / "gradient_flow.json", json.dumps(data, indent=1) + "\n")
    final = data["norms"][-1] if data.get("norms") else []
    for name, value in zip(data.get("layers", []), final, strict=False):
        print(f"  {name:<24} last gradient norm {value:.3g}")
    flags = data.get("flags", [])
    if not flags:
        print("no vanishing or exploding gradients flagged")
    for flag in flags[:20]:
        print(f"  epoch {flag['epoch']} step {flag['step']}: {flag['layer']} {flag['kind']}")
    print(f"saved {out_dir / 'gradient_flow.png'} and {out_dir / 'gradient_flow.json'}")
    return 0
