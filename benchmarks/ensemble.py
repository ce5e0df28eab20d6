"""Eight bagged networks: ``goodfit.train.fit_many`` (one vmap group) vs 8 sequential
``goodfit.fit`` calls vs torchensemble's ``BaggingClassifier``; and a study with
``[study] vectorize = true`` vs serial.

Cases: (a) 8 MLPs (64-128-10, ReLU) on digits; (b) 8 small CNNs (conv 8 -> pool -> conv 16 ->
pool -> 64 -> 10) on digits' 8x8 images. Same epochs, batch size 64, Adam lr 1e-3, each
member on its own bootstrap sample (fit_many / sequential: the same samples; torchensemble
draws its own bootstrap inside every batch, which is its algorithm). All in one process,
torch's default number of threads (all cores, as a user's run gets them; ``--threads N`` sets
``torch.set_num_threads(N)``), interleaved, median of ``--runs`` runs. torchensemble is
benchmark-only (``pip install --no-deps torchensemble``; its metadata asks for torchvision,
which it never imports).

Study part: ``--study`` runs goodfit's default study (``--study-epochs``, default its own 20),
serial and with ``vectorize = true``, in ``--study-runs`` interleaved pairs after an untimed
one-epoch run of each (so that neither pays the lazy imports), and prints the median wall times,
their ratio and each pair's ratio.

Run: ``python benchmarks/ensemble.py [--runs 3] [--epochs 5] [--threads N] [--study]
[--study-epochs 20] [--study-k 3] [--study-runs 3] [--skip-cases]``
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import goodfit as gf
from goodfit.app.default_study import DEFAULT_STUDY
from goodfit.data import load_dataset
from goodfit.ensemble import bootstrap_indices
from goodfit.train.fit_many import fit_many

K = 8


class MLP(nn.Sequential):  # classes: torchensemble instantiates its estimator itself
    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


class CNN(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )


def _adam(m: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(m.parameters(), lr=1e-3)


def members(make) -> list[nn.Module]:
    """The K initial networks, the same on every side (member k built after manual_seed(k))."""
    out = []
    for k in range(K):
        torch.manual_seed(k)
        out.append(make())
    return out


def run_fit_many(make, X, y, idx, epochs):
    models = members(make)
    t = time.perf_counter()
    res = fit_many(
        models,
        (X, y),
        optimizer=_adam,
        epochs=epochs,
        batch_size=64,
        seeds=list(range(K)),
        indices=idx,
        vectorize=True,
    )
    return time.perf_counter() - t, res.models


def run_sequential(make, X, y, idx, epochs):
    models = members(make)
    t = time.perf_counter()
    for k, m in enumerate(models):
        gf.fit(
            m,
            (X[idx[k]], y[idx[k]]),
            optimizer=_adam(m),
            epochs=epochs,
            batch_size=64,
            seed=k,
            progress=False,
        )
    return time.perf_counter() - t, models


def run_torchensemble(make, X, y, epochs):
    from torchensemble import BaggingClassifier

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, y), batch_size=64, shuffle=True
    )
    ens = BaggingClassifier(estimator=make, n_estimators=K, cuda=False, n_jobs=1)
    ens.set_optimizer("Adam", lr=1e-3)
    torch.manual_seed(0)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the first batch of each epoch
        ens.fit(loader, epochs=epochs, log_interval=10**9, save_model=False)
    return time.perf_counter() - t, list(ens.estimators_)


@torch.no_grad()
def accuracy(models, X, y) -> float:
    probs = torch.stack([m.eval()(X).softmax(1) for m in models]).mean(0)
    return float((probs.argmax(1) == y).float().mean())


def bench_case(name, make, data, epochs, runs):
    (X, y), (Xt, yt) = data
    idx = bootstrap_indices(len(X), K, seed=0)
    sides = {
        "fit_many": lambda: run_fit_many(make, X, y, idx, epochs),
        "sequential fit": lambda: run_sequential(make, X, y, idx, epochs),
        "torchensemble": lambda: run_torchensemble(make, X, y, epochs),
    }
    for side in sides.values():  # warm-up
        side()
    times = {s: [] for s in sides}
    acc = {}
    for _ in range(runs):
        for s, side in sides.items():
            seconds, models = side()
            times[s].append(seconds)
            acc[s] = accuracy(models, Xt, yt)
    med = {s: statistics.median(v) for s, v in times.items()}
    print(f"\n{name}: {K} members, {epochs} epochs, median of {runs} runs")
    for s in sides:
        print(
            f"  {s:15s} {med[s]:7.2f} s   ensemble test acc {acc[s]:.3f}   "
            f"fit_many speed-up x{med[s] / med['fit_many']:.2f}"
        )


def bench_study(epochs: int, k: int | None, runs: int) -> None:
    from goodfit.app.study import run_study

    base = copy.deepcopy(DEFAULT_STUDY)
    base["train"]["epochs"] = epochs
    if k is not None:  # k-fold on the 1437 rows: folds of equal size (5x2's halves differ by one)
        base["study"]["splits"] = {"kind": "stratified_kfold", "k": k}

    def wall(vec: bool, tmp: str, tag: str, epochs: int | None = None) -> float:
        cfg = copy.deepcopy(base)
        cfg["study"]["vectorize"] = vec
        if epochs is not None:
            cfg["train"]["epochs"] = epochs
        t = time.perf_counter()
        run_study(cfg, Path(tmp) / f"{tag}{vec}", progress=False)
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        for vec in (False, True):  # warm-up: lazy imports, kornia's and matplotlib's caches
            wall(vec, tmp, "warm", epochs=1)
        # interleaved (serial, vectorized) pairs: a drift of the machine's speed hits both
        pairs = [(wall(False, tmp, f"s{i}"), wall(True, tmp, f"v{i}")) for i in range(runs)]
    serial = statistics.median(a for a, _ in pairs)
    vec = statistics.median(b for _, b in pairs)
    ratios = ", ".join(f"{b / a:.2f}" for a, b in pairs)
    splits = f"stratified {k}-fold" if k else "5x2"
    print(
        f"\ndefault study ({splits}), {epochs} epochs, median of {runs}: serial {serial:.1f} s, "
        f"vectorize = true {vec:.1f} s (ratio {vec / serial:.2f}; per pair {ratios})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="default: torch's (all cores)")
    ap.add_argument("--study", action="store_true")
    ap.add_argument("--study-epochs", type=int, default=DEFAULT_STUDY["train"]["epochs"])
    ap.add_argument("--study-k", type=int, default=None, help="k-fold splits instead of 5x2")
    ap.add_argument("--study-runs", type=int, default=3, help="interleaved pairs, median")
    ap.add_argument("--skip-cases", action="store_true", help="only the study part")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logging.disable(logging.CRITICAL)  # torchensemble logs every epoch
    ds = load_dataset("digits")
    X, y, Xt, yt = ds.X_train.float(), ds.y_train, ds.X_test.float(), ds.y_test
    py = sys.version.split()[0]
    print(f"threads={torch.get_num_threads()}, torch {torch.__version__}, python {py}")
    if not args.skip_cases:
        bench_case("MLP on digits", MLP, ((X, y), (Xt, yt)), args.epochs, args.runs)
        bench_case("small CNN on digits", CNN, ((X, y), (Xt, yt)), args.epochs, args.runs)
    if args.study:
        bench_study(args.study_epochs, args.study_k, args.study_runs)


if __name__ == "__main__":
    main()
