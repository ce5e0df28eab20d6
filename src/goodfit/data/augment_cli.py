"""``goodfit augment preview CONFIG.toml``: see what the ``[augment]`` section does to the data.

The preview builds the data exactly as training sees it (:func:`goodfit.build.prepare_data`:
the configured dataset, the holdout split and, unless ``data.standardize = false``, the
standardization fitted on the training part) and the pipeline exactly as training builds it
(:func:`goodfit.build.build_augment`, with the same checks), seeds the torch RNG with
``train.seed``, and saves :func:`goodfit.data.augment.preview`'s grid of ``n`` training samples
(top row) and their augmented versions (bottom row): images as images, signals as line plots.

A user error (no ``[augment]`` section, unknown op, a 2-D op on 1-D data, a probability outside
[0, 1], ...) raises :class:`goodfit.errors.ConfigError`; the command line prints its one-line
message and exits with status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from goodfit.errors import ConfigError

__all__ = ["run_preview_cli"]

_EXAMPLE = (
    'add one, e.g. [augment] ops = [{name = "affine", degrees = 10, translate = 0.1}] for images '
    'or ops = [{name = "shift", max_shift = 5}] for signals (list: goodfit.data.augment.'
    "AUGMENTATIONS)"
)


def run_preview_cli(args: argparse.Namespace) -> int:
    """Run ``goodfit augment preview``: save the original-vs-augmented PNG grid, print its path.

    Parameters
    ----------
    args : argparse.Namespace
        ``config`` (path to the TOML file), ``set`` (list of ``KEY=VALUE`` overrides), ``out``
        (PNG path; parent folders are created) and ``n`` (number of samples, >= 1).

    Returns
    -------
    int
        0 on success. User errors raise :class:`~goodfit.errors.ConfigError` (exit status 2).
    """
    from goodfit.build import build_augment, prepare_data
    from goodfit.config import load_config
    from goodfit.data.augment import preview

    n = args.n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"-n must be an integer >= 1, got {n!r}")
    cfg = load_config(args.config, getattr(args, "set", None))
    if not cfg.augment or ("ops" in cfg.augment and not cfg.augment["ops"]):
        raise ConfigError(f"{args.config} has no [augment] section (or it is empty); {_EXAMPLE}")
    prepared = prepare_data(cfg.data, cfg.train.seed)
    ds = prepared.dataset
    pipeline = build_augment(cfg, tuple(ds.input_shape), ds.num_classes)
    x, y = prepared.train
    y_show = y if ds.task == "classification" else None
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must be a .png file, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.train.seed)
    try:
        path = preview(pipeline, x, y_show, out, n=n)
    except ValueError as err:  # an op that does not fit these data (e.g. snow on grey images)
        raise ConfigError(f"[augment] {err}") from None
    shown = min(n, len(x))
    print(
        f"saved {shown} {ds.name} training samples (top) and their augmented versions "
        f"(bottom) to {path}"
    )
    return 0
