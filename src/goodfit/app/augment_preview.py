"""``goodfit augment preview CONFIG.toml``: see what the ``[augment]`` section does to the data.

The preview builds the data exactly as training sees it (:func:`goodfit.data.prepare.prepare_data`:
the configured dataset, the holdout split and, unless ``data.standardize = false``, the
standardization fitted on the training part) and the pipeline exactly as training builds it
(:func:`goodfit.app.build.build_augment`, with the same checks), seeds the torch RNG with
``train.seed``, and saves :func:`goodfit.data.augment.preview`'s grid of ``n`` training samples
(top row) and their augmented versions (bottom row): images as images, signals as line plots.

A user error (no ``[augment]`` section, unknown op, a 2-D op on 1-D data, a probability outside
[0, 1], ...) raises :class:`goodfit.errors.ConfigError`; the command line prints its one-line
message and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path

import torch

from goodfit.errors import ConfigError

__all__ = ["MAX_PREVIEW", "run_preview"]

_EXAMPLE = (
    'add one, e.g. [augment] ops = [{name = "affine", degrees = 10, translate = 0.1}] for images '
    'or ops = [{name = "shift", max_shift = 5}] for signals (list: goodfit.data.augment.'
    "AUGMENTATIONS)"
)


#: Most samples a preview draws (a grid wider than this is unreadable and slow to draw).
MAX_PREVIEW = 64


def run_preview(config: str, overrides: list[str], out: str, n: int = 8) -> Path:
    """Save the original-vs-augmented PNG grid of ``n`` training samples of ``config`` to
    ``out`` (parent folders are created) and print its path. User errors raise
    :class:`~goodfit.errors.ConfigError` (exit status 2)."""
    from goodfit.app.build import build_augment, load_dataset_from_config, prepare_from_config
    from goodfit.app.config import load_config
    from goodfit.data.augment import preview

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PREVIEW:
        raise ConfigError(f"-n must be an integer from 1 to {MAX_PREVIEW}, got {n!r}")
    out_path = Path(out)
    if out_path.suffix.lower() != ".png":
        raise ConfigError(f"--out must be a .png file, got {str(out_path)!r}")
    if out_path.is_dir():
        raise ConfigError(f"--out {out_path} is a folder; give a .png file path")
    cfg = load_config(config, overrides)
    if cfg.augment is None or not cfg.augment.ops:
        raise ConfigError(f"{config} has no [augment] section (or it is empty); {_EXAMPLE}")
    prepared = prepare_from_config(cfg, load_dataset_from_config(cfg.data))
    ds = prepared.dataset
    pipeline = build_augment(cfg, tuple(ds.input_shape), ds.num_classes)
    x, y = prepared.train
    y_show = y if ds.task == "classification" else None
    from goodfit.app.run_folder import make_folder

    make_folder(out_path.parent)
    torch.manual_seed(cfg.train.seed)
    try:
        path = preview(pipeline, x, y_show, out_path, n=n)
    except ValueError as err:  # an op that does not fit these data (e.g. snow on grey images)
        raise ConfigError(f"[augment] {err}") from None
    print(
        f"saved {min(n, len(x))} {ds.name} training samples (top) and their augmented versions "
        f"(bottom) to {path}"
    )
    return path
