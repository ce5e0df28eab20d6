"""The ``goodfit`` command: train, study, lr-find, diagnose, augment, datasets.

A user error (bad config key or value, missing file, malformed data, divergence) prints one
message naming the file, key or value and what is allowed, and exits with status 2 — no
traceback. Tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_USER_ERROR = 2


def _default_out(config: str | None, command: str) -> Path:
    stem = Path(config).stem if config else command
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _load(args: argparse.Namespace) -> Any:
    from goodfit.config import load_config

    return load_config(args.config, getattr(args, "set", None))


def _print_summary(summary: dict[str, Any], out: Path | None) -> None:
    keys = [
        "test_accuracy",
        "test_loss",
        "best_epoch",
        "best_val_loss",
        "best_val_accuracy",
        "final_train_loss",
        "epochs_run",
        "stop_reason",
        "wall_seconds",
    ]
    shown = {k: summary[k] for k in keys if k in summary}
    width = max(map(len, shown), default=0)
    for key, value in shown.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {text}")
    if out is not None:
        print(f"run folder: {out}")


def cmd_train(args: argparse.Namespace) -> int:
    """``goodfit train``: one config (or a run folder to resume) into a run folder."""
    from goodfit.train.run import run_config

    if args.resume:
        from goodfit.config import load_config

        out = Path(args.resume)
        saved = out / "config.toml"
        if not saved.exists():
            from goodfit.errors import ConfigError

            raise ConfigError(f"--resume {out}: no config.toml there; is it a goodfit run folder?")
        cfg = load_config(saved, args.set)
    else:
        if args.config is None:
            from goodfit.errors import ConfigError

            raise ConfigError("goodfit train needs a CONFIG.toml (or --resume RUN_DIR)")
        cfg = _load(args)
        out = Path(args.out) if args.out else _default_out(args.config, "train")
    result = run_config(cfg, out, resume=bool(args.resume))
    _print_summary(result.summary, out)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from goodfit.select.study import run_study_cli

    return run_study_cli(args)


def cmd_lr_find(args: argparse.Namespace) -> int:
    from goodfit.diagnose.lr_find import run_lr_find_cli

    return run_lr_find_cli(args)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from goodfit.diagnose import cli as diagnose_cli

    if args.what == "curvature":
        return diagnose_cli.run_curvature_cli(args)
    return diagnose_cli.run_gradient_cli(args)


def cmd_augment(args: argparse.Namespace) -> int:
    from goodfit.data.augment_cli import run_preview_cli

    return run_preview_cli(args)


def cmd_datasets(args: argparse.Namespace) -> int:
    """``goodfit datasets``: the built-in datasets as a table (or JSON)."""
    from goodfit.data.datasets import describe_datasets

    rows = describe_datasets()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="goodfit built-in datasets")
    for col in ("name", "task", "train", "test", "input shape", "classes", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            r["task"],
            str(r["n_train"]),
            str(r["n_test"]),
            "x".join(map(str, r["input_shape"])),
            str(r["num_classes"] or "-"),
            r["description"],
        )
    Console().print(table)
    print(
        "User files: data.name = path to a .npz (X, y[, X_test, y_test]) or a .csv (label column)."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``goodfit`` command and its subcommands."""
    from goodfit import __version__

    parser = argparse.ArgumentParser(
        prog="goodfit",
        description="Train neural networks well: which initialization, optimizer, schedule and "
        "regularization make your model fit, and why.",
    )
    parser.add_argument("--version", action="version", version=f"goodfit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_set(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set optimizer.lr=0.01 (repeatable)",
        )

    p = sub.add_parser("train", help="train one config and write a run folder")
    p.add_argument("config", nargs="?", help="CONFIG.toml")
    add_set(p)
    p.add_argument("--out", help="run folder (default: runs/<config>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run bit-for-bit")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("study", help="cross-validated comparison of strategies, with a report")
    p.add_argument("config", nargs="?", help="study CONFIG.toml (default: the built-in study)")
    add_set(p)
    p.add_argument("--out", help="study folder (default: runs/study-<time>)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs at a time, in separate processes (default: the study's `workers`, 1 if unset)",
    )
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("lr-find", help="learning-rate range test on a config")
    p.add_argument("config", help="CONFIG.toml")
    add_set(p)
    p.add_argument("--out", help="folder for lr_find.png and lr_find.json")
    p.add_argument("--steps", type=int, default=200, help="number of sweep steps")
    p.add_argument("--min-lr", type=float, default=1e-6)
    p.add_argument("--max-lr", type=float, default=10.0)
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("diagnose", help="curvature or gradient-flow diagnostics")
    p.add_argument("what", choices=["curvature", "gradients"])
    p.add_argument("target", help="CONFIG.toml or a RUN_DIR")
    add_set(p)
    p.add_argument("--out", help="folder for plots (default: next to the target)")
    p.add_argument("--top-k", type=int, default=5, help="eigenvalues at each end (curvature)")
    p.add_argument(
        "--samples", type=int, default=2048, help="training samples in the full-batch loss"
    )
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("augment", help="augmentation tools")
    asub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = asub.add_parser("preview", help="save a PNG grid of original vs augmented samples")
    q.add_argument("config", help="CONFIG.toml with an [augment] section")
    add_set(q)
    q.add_argument("--out", default="augment_preview.png", help="PNG path")
    q.add_argument("-n", type=int, default=8, help="number of samples")
    q.set_defaults(func=cmd_augment)

    p = sub.add_parser("datasets", help="list the built-in datasets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``goodfit`` command; returns the exit status."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    from goodfit.errors import GoodfitError

    try:
        return int(args.func(args) or 0)
    except GoodfitError as err:
        print(f"goodfit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("goodfit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
