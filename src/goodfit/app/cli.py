"""The ``goodfit`` command: train, study, search, lr-find, diagnose, augment, datasets.

A user error (bad config key or value, missing file, malformed data, divergence) prints one
message naming the file, key or value and what is allowed, and exits with status 2 — no
traceback. Tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from goodfit.errors import ConfigError, GoodfitError

__all__ = ["main"]

EXIT_USER_ERROR = 2


def _print_summary(summary: dict[str, Any], out: Path | None) -> None:
    keys = [
        "test_accuracy",
        "test_balanced_accuracy",
        "test_macro_f1",
        "test_loss",
        "test_robust_accuracy_fgsm",
        "test_robust_accuracy_pgd",
        "best_epoch",
        "best_val_loss",
        "best_val_accuracy",
        "final_train_loss",
        "epochs_run",
        "stop_reason",
        "converged",
        "wall_seconds",
    ]
    keys[2:2] = [  # a multitask run's per-task test accuracies (goodfit.app.multitask)
        k for k in summary if k.startswith("test_") and k.endswith("_accuracy") and k not in keys
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
    from goodfit.app.config import load_config
    from goodfit.app.run import resume_config, run_config
    from goodfit.app.run_folder import default_out

    if args.resume:
        out = Path(args.resume)
        if args.out and Path(args.out) != out:
            raise ConfigError("--resume continues the run in its own folder; drop --out")
        cfg = resume_config(out, args.config, args.set)
    else:
        if args.config is None:
            raise ConfigError("goodfit train needs a CONFIG.toml (or --resume RUN_DIR)")
        cfg = load_config(args.config, args.set)
        out = Path(args.out) if args.out else default_out(Path(args.config).stem)
    from goodfit.train.distributed import DataParallel

    # under torchrun (WORLD_SIZE > 1): this process is one rank of a data-parallel run
    parallel = DataParallel.from_env(cfg.train.device, sync_batchnorm=cfg.train.sync_batchnorm)
    try:
        result = run_config(cfg, out, resume=bool(args.resume), force=args.force, parallel=parallel)
    finally:
        if parallel is not None:
            parallel.close()
    if parallel is None or parallel.is_main:
        _print_summary(result.summary, out)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    """``goodfit study [CONFIG.toml]``: the built-in study without a config."""
    import copy

    from goodfit.app.config import apply_overrides, read_toml
    from goodfit.app.run_folder import default_out
    from goodfit.app.study import DEFAULT_STUDY, run_study

    if args.config is None:
        data, source = copy.deepcopy(DEFAULT_STUDY), "built-in study"
    else:
        data, source = read_toml(args.config), str(args.config)
    if args.set:
        data = apply_overrides(data, args.set)
    out = Path(args.out) if args.out else default_out("study")
    results = run_study(
        data, out, source=source, workers=args.workers, force=args.force,
        backend=args.backend, address=args.address,
    )  # fmt: skip
    analysis = results["analysis"]
    print(analysis["verdict"])
    print(f"winner: {analysis['ranking']['best']}")
    print(f"report: {out / 'report.html'}")
    return 0


def _config_data_and_out(args: argparse.Namespace, kind: str) -> tuple[dict[str, Any], Path]:
    """A many-run command's config as plain data (``--set`` applied) and its folder (``--out``,
    else ``runs/<kind>-<config stem>-<time>``)."""
    from goodfit.app.config import apply_overrides, read_toml
    from goodfit.app.run_folder import default_out

    data = read_toml(args.config)
    if args.set:
        data = apply_overrides(data, args.set)
    out = Path(args.out) if args.out else default_out(f"{kind}-{Path(args.config).stem}")
    return data, out


def cmd_search(args: argparse.Namespace) -> int:
    """``goodfit search CONFIG.toml``: an Optuna search over the config's ``[search.space]``."""
    from goodfit.app.search import run_search

    data, out = _config_data_and_out(args, "search")
    result = run_search(
        data,
        out,
        source=str(args.config),
        trials=args.trials,
        workers=args.workers,
        confirm=args.confirm,
        force=args.force,
        backend=args.backend,
        address=args.address,
    )
    best, final = result["best"], result["final"]
    print(f"best trial {best['number']}: {result['metric']} {best['value']:.4f} (cross-validated)")
    for key, value in best["values"].items():
        print(f"  {key} = {value!r}")
    for name in ("best", "base"):
        if "test_accuracy" in final[name]:
            print(f"  test_accuracy ({name} config)  {final[name]['test_accuracy']:.4f}")
        else:
            print(f"  test_loss ({name} config)  {final[name]['test_loss']:.4f}")
    if "confirm" in result:
        print(f"confirm: {result['confirm']['verdict']}")
    print(f"best config: {out / 'best.toml'}")
    print(f"report: {out / 'report.html'}")
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    """``goodfit lr-find CONFIG.toml``: print the suggestions and the reading of the curve."""
    from goodfit.app.config import load_config
    from goodfit.app.lr_find import run_lr_find
    from goodfit.app.run_folder import default_out

    cfg = load_config(args.config, args.set)
    out = Path(args.out) if args.out else default_out(f"lr_find-{Path(args.config).stem}")
    result = run_lr_find(
        cfg, out, steps=args.steps, min_lr=args.min_lr, max_lr=args.max_lr, force=args.force
    )

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3g}"

    print(
        f"lr range test ({len(result.lrs)} of {args.steps} steps, optimizer {cfg.optimizer.name})"
    )
    print(f"  suggested lr        {fmt(result.suggestion)}")
    print(f"  steepest descent    {fmt(result.suggestion_steepest)}")
    print(f"  minimum / 10        {fmt(result.suggestion_min_div10)}")
    print(f"  diverged at         {fmt(result.diverged_at)}")
    print(f"  reading: {result.reading}")
    print(f"output folder: {out}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    """``goodfit diagnose curvature|gradients TARGET``."""
    from goodfit.app.diagnose import run_curvature, run_gradients

    if args.what == "curvature":
        return run_curvature(
            args.target, args.set, args.out, top_k=args.top_k, samples=args.samples
        )
    return run_gradients(args.target, args.set, args.out)


def cmd_sweep(args: argparse.Namespace) -> int:
    """``goodfit sweep CONFIG.toml``: one config key over values (double descent)."""
    from goodfit.app.sweep import run_sweep

    data, out = _config_data_and_out(args, "sweep")
    result = run_sweep(
        data,
        out,
        source=str(args.config),
        workers=args.workers,
        force=args.force,
        backend=args.backend,
        address=args.address,
    )
    print(f"interpolation threshold: {result['interpolation_threshold']}")
    if "emc" in result:
        print(f"effective model complexity: {result['emc']}")
    print(f"report: {out / 'report.html'}")
    return 0


def cmd_landscape(args: argparse.Namespace) -> int:
    """``goodfit landscape RUN_DIR``: the loss landscape of a trained run."""
    from goodfit.app.landscape import run_landscape

    data = run_landscape(
        args.run_dir, kind=args.kind, other=args.to, out=args.out, dims=args.dims,
        steps=args.steps, distance=args.distance, samples=args.samples, val=args.val,
        bn=args.bn, include_bias_and_norm=args.include_bias_and_norm, seed=args.seed,
    )  # fmt: skip
    where = Path(args.out) if args.out else Path(args.run_dir)
    print(f"{data['kind']}: loss at the centre {data['center_loss']:.4f} on {data['n_samples']} "
          "training samples")  # fmt: skip
    print(f"saved {where / 'landscape.json'} and {where / 'landscape.png'}")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    """``goodfit augment preview CONFIG.toml``."""
    from goodfit.app.augment_preview import run_preview

    run_preview(args.config, args.set, args.out, n=args.n)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """``goodfit datasets``: the built-in datasets as a table (or JSON)."""
    from goodfit.data import describe_datasets

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
        "User files: data.name = path to a .npz (X, y[, X_test, y_test]), a .csv (label column) "
        "or an image folder (one subfolder per class)."
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

    _add_run_commands(sub)
    _add_search_command(sub)
    _add_tool_commands(sub)
    _add_model_commands(sub)
    _add_landscape_command(sub)
    _add_sweep_command(sub)
    return parser


def add_set(p: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable): a dotted config override, the value parsed as TOML."""
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optimizer.lr=0.01 (repeatable)",
    )


def add_workers(p: argparse.ArgumentParser, text: str) -> None:
    """``--workers N``: how many runs (or trials) at a time."""
    p.add_argument("--workers", type=int, default=None, help=text)


def add_backend(p: argparse.ArgumentParser) -> None:
    """``--backend {process,ray}`` and ``--address``: where the runs (or trials) execute."""
    p.add_argument(
        "--backend", choices=["process", "ray"], default=None,
        help="process: this machine's process pool (default); ray: Ray tasks (goodfit[ray])",
    )  # fmt: skip
    p.add_argument("--address", default=None, help="a Ray cluster to join (default: local Ray)")


def add_force(p: argparse.ArgumentParser) -> None:
    """``--force``: write into a non-empty folder that is not a goodfit run folder."""
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --out folder that is not a goodfit run folder",
    )


def _add_run_commands(sub: Any) -> None:
    """``train`` and ``study``."""
    p = sub.add_parser("train", help="train one config and write a run folder")
    p.add_argument("config", nargs="?", help="CONFIG.toml")
    add_set(p)
    p.add_argument("--out", help="run folder (default: runs/<config>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run bit-for-bit")
    add_force(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("study", help="cross-validated comparison of strategies, with a report")
    p.add_argument("config", nargs="?", help="study CONFIG.toml (default: the built-in study)")
    add_set(p)
    p.add_argument("--out", help="study folder (default: runs/study-<time>)")
    add_workers(p, "runs at a time, in separate processes (default: the study's `workers`, 1)")
    add_backend(p)
    add_force(p)
    p.set_defaults(func=cmd_study)


def _add_search_command(sub: Any) -> None:
    """``search``."""
    p = sub.add_parser("search", help="hyperparameter search (Optuna), cross-validated, resumable")
    p.add_argument("config", help="CONFIG.toml with a [search] table")
    add_set(p)
    p.add_argument("--out", help="search folder (default: runs/search-<config>-<time>)")
    p.add_argument(
        "--trials", type=int, default=None, help="finished trials to reach (extends a search)"
    )
    add_workers(p, "trials at a time, in processes sharing the study's storage")
    add_backend(p)
    p.add_argument(
        "--confirm", action="store_true", help="re-run base vs best as a two-variant study"
    )
    add_force(p)
    p.set_defaults(func=cmd_search)


def _add_tool_commands(sub: Any) -> None:
    """``lr-find``, ``diagnose``, ``augment preview``, ``datasets``."""
    p = sub.add_parser("lr-find", help="learning-rate range test on a config")
    p.add_argument("config", help="CONFIG.toml")
    add_set(p)
    p.add_argument("--out", help="folder for lr_find.png and lr_find.json")
    p.add_argument("--steps", type=int, default=200, help="number of sweep steps")
    p.add_argument("--min-lr", type=float, default=1e-6)
    p.add_argument("--max-lr", type=float, default=10.0)
    add_force(p)
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


def cmd_predict(args: argparse.Namespace) -> int:
    """``goodfit predict RUN_DIR DATA``: the run's model on new data, to a CSV."""
    from goodfit.app.predict import describe, run_predict

    print(describe(run_predict(args.run_dir, args.data, args.out)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``goodfit export RUN_DIR``: a self-contained model for plain PyTorch."""
    from goodfit.app.export import export_run

    meta = export_run(args.run_dir, args.format, args.out)
    print(f"exported {meta['format']} -> {meta['path']} (inputs {meta['input_shape']}, raw)")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    """``goodfit clean CONFIG.toml``: suspect labels by confident learning."""
    from goodfit.app.clean import run_clean
    from goodfit.app.config import load_config
    from goodfit.app.run_folder import default_out

    cfg = load_config(args.config, args.set)
    out = Path(args.out) if args.out else default_out(f"clean-{Path(args.config).stem}")
    result = run_clean(cfg, out, write_npz=args.write_npz, force=args.force)
    print(f"{result['n_issues']} suspect labels of {result['n_train']} training samples")
    print(f"report: {out / 'clean.html'}")
    return 0


def _add_model_commands(sub: Any) -> None:
    """``predict``, ``export``, ``clean``."""
    from goodfit.app.export import FORMATS

    p = sub.add_parser("predict", help="predict with a trained run on a .npz/.csv/image folder")
    p.add_argument("run_dir", help="RUN_DIR of a finished `goodfit train`")
    p.add_argument("data", help="DATA: a .npz (X[, y]), a .csv or an image folder")
    p.add_argument("--out", help="CSV to write (default: predictions.csv)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a run's model (+ preprocessing) for plain torch")
    p.add_argument("run_dir", help="RUN_DIR of a finished `goodfit train`")
    p.add_argument("--format", choices=list(FORMATS), default="torchscript")
    p.add_argument("--out", help="file to write (default: in RUN_DIR)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("clean", help="find suspect labels (out-of-fold confident learning)")
    p.add_argument("config", help="CONFIG.toml")
    add_set(p)
    p.add_argument("--out", help="folder for clean.json/.csv/.html (default: runs/clean-...)")
    p.add_argument("--write-npz", metavar="PATH", help="write the data without the suspects")
    add_force(p)
    p.set_defaults(func=cmd_clean)


def _add_landscape_command(sub: Any) -> None:
    """``landscape``."""
    p = sub.add_parser("landscape", help="loss landscape of a trained run (lines and planes)")
    p.add_argument("run_dir", help="a run folder written by goodfit train")
    p.add_argument("--kind", default="random", help="random | hessian | interpolation | between")
    p.add_argument("--to", metavar="OTHER_RUN", help="second run folder (--kind between)")
    p.add_argument("--dims", type=int, default=2, help="1 or 2 directions (random, hessian)")
    p.add_argument("--steps", type=int, default=25, help="grid points per direction")
    p.add_argument("--distance", type=float, default=1.0, help="grid half-width")
    p.add_argument("--samples", type=int, default=1024, help="training samples evaluated")
    p.add_argument("--val", action="store_true", help="also the validation part")
    p.add_argument("--bn", default="eval", help="eval (running stats) | recompute")
    p.add_argument(
        "--include-bias-and-norm", action="store_true", help="random directions move biases too"
    )
    p.add_argument("--seed", type=int, default=None, help="directions' seed (default: train.seed)")
    p.add_argument("--out", help="output folder (default: the run folder)")
    p.set_defaults(func=cmd_landscape)


def _add_sweep_command(sub: Any) -> None:
    """``sweep``."""
    p = sub.add_parser("sweep", help="sweep one config key (double descent), with a report")
    p.add_argument("config", help="CONFIG.toml with a [sweep] table (param, values)")
    add_set(p)
    p.add_argument("--out", help="sweep folder (default: runs/sweep-<config>-<time>)")
    add_workers(p, "points at a time, in separate processes (default: the sweep's `workers`)")
    add_backend(p)
    add_force(p)
    p.set_defaults(func=cmd_sweep)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``goodfit`` command; returns the exit status."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
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
