"""Calibration of the study's tests: false-positive rate under a true null and power, measured.

Design (Dietterich 1998; Bouckaert & Frank 2004): a large synthetic population
(``make_classification``, binary, ``--population`` samples) is cut into a pool the datasets are
drawn from and a held-out part of ``--eval-size`` samples, "the rest of the population", on
which every fitted model is also scored, so that each learner's *population* accuracy at the
training size used is measured, not assumed. Each of ``--datasets`` small datasets (``--n``
samples, drawn from the pool without replacement) is split the study's ways,

- stratified ``--k``-fold (the study's default kind, k = 5): tests ``paired_t`` and
  ``corrected_t``;
- ``5x2`` (five stratified 2-fold splits): tests ``5x2cv_t``, ``5x2cv_f`` and, for comparison,
  ``corrected_t`` on the same 10 splits;

and on every split three learners are fitted: a small goodfit MLP (``gf.fit``, Adam) with seed
``s`` ("mlp"), the same MLP with seed ``s + 1`` ("mlp'"), and an RBF support-vector machine
("svc", scikit-learn). Then :func:`goodfit.select.compare.compare_to_baseline` runs on each
dataset and the rejections at ``--alpha`` are counted, with the binomial standard error
``sqrt(r (1 - r) / N)``, for

(a) mlp against mlp' (the same learner, another seed): a true null;
(b) mlp against svc with their population accuracies made equal: a true null between different
    learners. The stronger of the two is weakened by flipping each of its predictions with a
    probability q chosen from the measured population accuracies (binary task: a flip turns a
    right prediction wrong and back, so its expected accuracy is ``acc - q (2 acc - 1)``
    exactly), separately for each training size;
(c) mlp against svc with the gap set to ``--gap`` (about 2 points) the same way: power.

q is set from all fits' accuracies on the held-out part, never from validation scores, so the
tests see nothing of it. One comparison per dataset: Holm's adjustment is the identity here.
The Bayesian correlated t-test's decision rate (``P(better) > 0.95`` or ``P(worse) > 0.95`` with
ROPE ``--rope``) is shown under the table for the same pairs.

Run: ``python benchmarks/study_calibration.py [--datasets 300] [--workers 2]``. The defaults
take about 10-20 minutes on 2 CPU cores. ``--json PATH`` keeps every dataset's numbers.

Measured (defaults: ``python benchmarks/study_calibration.py``, N = 300 datasets of n = 300,
stratified 5-fold and 5x2, 2 workers on 2 shared cores, 1011 s). Population accuracy on the
held-out 10,000: trained on 240, mlp 0.8914 ± 0.0006, mlp' 0.8913, svc 0.9117 ± 0.0003 (svc
flipped at q = 0.0247 for (b), 0.0004 for (c)); trained on 150, mlp 0.8788 ± 0.0005, mlp'
0.8786, svc 0.9011 ± 0.0003 (q = 0.0277, 0.0028)::

    test (splits)            FPR (a) same, seed    FPR (b) equal acc            power (c)
    paired_t (kfold)              0.063 ± 0.014        0.073 ± 0.015        0.180 ± 0.022
    corrected_t (kfold)           0.003 ± 0.003        0.013 ± 0.007        0.053 ± 0.013
    5x2cv_t (5x2)                 0.023 ± 0.009        0.027 ± 0.009        0.067 ± 0.014
    5x2cv_f (5x2)                 0.017 ± 0.007        0.010 ± 0.006        0.070 ± 0.015
    corrected_t (5x2)             0.000 ± 0.000        0.000 ± 0.000        0.007 ± 0.005

Power (c) paired on the same datasets against corrected_t (kfold): 5x2cv_t rejects alone on 20
datasets vs 16 (exact McNemar p = 0.62), 5x2cv_f 19 vs 14 (p = 0.49), paired_t 38 vs 0. The plain
paired t-test exceeds alpha in both null cases; the three calibrated tests are conservative and
their power at a 2-point gap on 300 samples is low and statistically indistinguishable here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

TESTS_BY_SCHEME = {
    "kfold": ("paired_t", "corrected_t"),
    "5x2": ("5x2cv_t", "5x2cv_f", "corrected_t"),
}
LEARNERS = ("mlp", "mlp2", "svc")
SCENARIOS = ("a", "b", "c")

_POP: dict = {}


def _population(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    key = (args.population, args.eval_size, args.seed)
    if key not in _POP:
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=args.population,
            n_features=20,
            n_informative=8,
            n_redundant=4,
            n_clusters_per_class=2,
            flip_y=0.05,
            class_sep=1.0,
            random_state=args.seed,
        )
        X = X.astype(np.float32)
        cut = args.population - args.eval_size
        _POP.clear()
        _POP[key] = (X[:cut], y[:cut], X[cut:], y[cut:])
    return _POP[key]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _fit_predict(learner: str, Xtr, ytr, Xs: list, seed: int, args) -> list[np.ndarray]:
    """Fit ``learner`` on (Xtr, ytr) (standardized on Xtr) and predict each array of ``Xs``."""
    mean, std = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-8
    Xtr, Xs = (Xtr - mean) / std, [(x - mean) / std for x in Xs]
    if learner == "svc":
        from sklearn.svm import SVC

        model = SVC(C=args.svc_c, kernel="rbf", gamma="scale").fit(Xtr, ytr)
        return [model.predict(x) for x in Xs]
    import torch

    import goodfit as gf
    from goodfit.nn.models import mlp

    torch.manual_seed(seed)
    net = mlp(Xtr.shape[1], (args.width,), 2)
    gf.fit(
        net,
        (torch.from_numpy(Xtr), torch.from_numpy(ytr).long()),
        optimizer=gf.optim.adam(net.parameters(), lr=args.lr),
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=seed,
        progress=False,
    )
    net.eval()
    with torch.no_grad():
        return [net(torch.from_numpy(x)).argmax(1).numpy() for x in Xs]


def run_dataset(i: int, args: argparse.Namespace) -> dict:
    """Fit every learner on every split of dataset ``i``; return per split and learner the
    right/wrong vector on the validation part and the accuracy on the held-out population."""
    from goodfit.data.splits import make_splits

    Xpool, ypool, Xeval, yeval = _population(args)
    rng = np.random.default_rng([args.seed, i])
    idx = rng.choice(len(ypool), size=args.n, replace=False)
    X, y = Xpool[idx], ypool[idx]
    seed = 2 * (args.seed * 100_003 + i)
    out = {}
    for scheme in TESTS_BY_SCHEME:
        if scheme == "kfold":
            splits = make_splits("stratified_kfold", args.n, y, seed=seed, k=args.k)
        else:
            splits = make_splits("5x2", args.n, y, seed=seed)
        rec = {"n_train": [], "n_test": [], "right": {k: [] for k in LEARNERS}}
        rec["pop_acc"] = {k: [] for k in LEARNERS}
        for tr, va in splits:
            rec["n_train"].append(len(tr))
            rec["n_test"].append(len(va))
            for learner in LEARNERS:
                s = seed + (learner == "mlp2")
                pv, pe = _fit_predict(learner, X[tr], y[tr], [X[va], Xeval], s, args)
                rec["right"][learner].append(pv == y[va])
                rec["pop_acc"][learner].append(float(np.mean(pe == yeval)))
        out[scheme] = rec
    return out


def _flip_plan(acc: dict[str, float], gap: float) -> dict[str, dict[str, float]]:
    """Flip probabilities ``{scenario: {learner: q}}`` that set the population accuracies of mlp
    and svc equal (b) or ``gap`` apart (c): the stronger is weakened to the weaker (+ gap); when
    they are closer than ``gap`` the weaker is weakened to the stronger - gap."""

    def q_for(a: float, target: float) -> float:  # a - q (2a - 1) = target
        return max(0.0, (a - target) / (2 * a - 1))

    hi, lo = sorted(("mlp", "svc"), key=lambda k: -acc[k])
    plan = {"a": {}, "b": {hi: q_for(acc[hi], acc[lo])}}
    if acc[hi] - acc[lo] >= gap:
        plan["c"] = {hi: q_for(acc[hi], acc[lo] + gap)}
    else:
        plan["c"] = {lo: q_for(acc[lo], acc[hi] - gap)}
    return plan


def _scores(rec: dict, scenario: str, plan: dict, rng: np.random.Generator) -> dict[str, list]:
    pair = ("mlp", "mlp2") if scenario == "a" else ("mlp", "svc")
    out = {}
    for learner in pair:
        q = plan[scenario].get(learner, 0.0)
        scores = []
        for right in rec["right"][learner]:
            flips = rng.random(right.size) < q if q > 0 else np.zeros(right.size, bool)
            scores.append(float(np.mean(right ^ flips)))
        out[learner] = scores
    return out


def _population_accuracies(results: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and standard error (over datasets) of each learner's held-out accuracy, per scheme."""
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for scheme in TESTS_BY_SCHEME:
        table[scheme] = {}
        for learner in LEARNERS:
            per = np.array([np.mean(r[scheme]["pop_acc"][learner]) for r in results])
            table[scheme][learner] = (
                float(per.mean()),
                float(per.std(ddof=1) / math.sqrt(per.size)),
            )
    return table


def _plans(results: list[dict], args: argparse.Namespace) -> tuple[dict, dict]:
    """The flip plan per scheme from the measured population accuracies (and those)."""
    pop = _population_accuracies(results)
    plans = {s: _flip_plan({k: pop[s][k][0] for k in ("mlp", "svc")}, args.gap) for s in pop}
    return plans, pop


def _degraded(acc: float, q: float) -> float:
    return acc - q * (2 * acc - 1)


def decide_dataset(i: int, res: dict, plans: dict, args: argparse.Namespace) -> dict:
    """``{"test (scheme)": {scenario: (rejected, bayes_decided)}}`` for dataset ``i``."""
    from goodfit.select.compare import compare_to_baseline

    out: dict[str, dict[str, tuple[bool, bool]]] = {}
    for scheme_id, (scheme, tests) in enumerate(TESTS_BY_SCHEME.items()):
        rec = res[scheme]
        for sc_id, scenario in enumerate(SCENARIOS):
            rng = np.random.default_rng([args.seed, i, scheme_id, sc_id, 7])
            sc = _scores(rec, scenario, plans[scheme], rng)
            for test in tests:
                c = compare_to_baseline(
                    sc, "mlp", test=test, n_train=rec["n_train"], n_test=rec["n_test"],
                    alpha=args.alpha, rope=args.rope,
                )  # fmt: skip
                c = next(iter(c.values()))
                decided = max(c["p_better"], c["p_worse"]) > 0.95
                out.setdefault(f"{test} ({scheme})", {})[scenario] = (c["significant"], decided)
    return out


def _mcnemar(x: list[bool], y: list[bool]) -> tuple[int, int, float]:
    """Datasets where only x rejects, only y rejects, and the exact two-sided McNemar p."""
    from scipy.stats import binomtest

    only_x = sum(a and not b for a, b in zip(x, y, strict=True))
    only_y = sum(b and not a for a, b in zip(x, y, strict=True))
    p = binomtest(only_x, only_x + only_y, 0.5).pvalue if only_x + only_y else 1.0
    return only_x, only_y, float(p)


def summarize(decisions: list[dict], plans: dict, pop: dict) -> dict:
    """Rejection and Bayesian-decision counts per test and scenario; the paired comparison of
    every test's power with the corrected t-test on k-fold (McNemar on the same datasets)."""
    keys = list(decisions[0])
    rejections = {k: {s: sum(d[k][s][0] for d in decisions) for s in SCENARIOS} for k in keys}
    bayes = {}
    for scheme in TESTS_BY_SCHEME:
        key = f"corrected_t ({scheme})"
        bayes[f"bayes ({scheme})"] = {s: sum(d[key][s][1] for d in decisions) for s in SCENARIOS}
    ref = "corrected_t (kfold)"
    power_vs_ref = {
        k: _mcnemar([d[k]["c"][0] for d in decisions], [d[ref]["c"][0] for d in decisions])
        for k in keys
        if k != ref
    }
    return {
        "rejections": rejections,
        "bayes": bayes,
        "power_vs_corrected_t": power_vs_ref,
        "plans": plans,
        "population": pop,
        "per_dataset": decisions,
    }


def _rate(count: int, n: int) -> str:
    r = count / n
    return f"{r:.3f} ± {math.sqrt(r * (1 - r) / n):.3f}"


def report(summary: dict, n: int, args: argparse.Namespace) -> str:
    sizes = {"kfold": args.n * (args.k - 1) // args.k, "5x2": args.n // 2}
    lines = [
        f"population accuracy on the held-out {args.eval_size} samples "
        f"(mean ± SE over {n} datasets):"
    ]
    for scheme, accs in summary["population"].items():
        plan = summary["plans"][scheme]
        parts = [f"{k} {m:.4f} ± {se:.4f}" for k, (m, se) in accs.items()]
        lines.append(f"  trained on {sizes[scheme]:>3} ({scheme:>5}): " + ", ".join(parts))
        for scenario in ("b", "c"):
            ((learner, q),) = plan[scenario].items()
            other = "svc" if learner == "mlp" else "mlp"
            acc = _degraded(accs[learner][0], q)
            lines.append(
                f"    ({scenario}) {learner} with predictions flipped at q = {q:.4f}: {acc:.4f} "
                f"vs {other} {accs[other][0]:.4f} (gap {acc - accs[other][0]:+.4f})"
            )
    lines += ["", f"rejections at alpha = {args.alpha} over N = {n} datasets (rate ± binomial SE):"]
    cols = ("FPR (a) same, seed", "FPR (b) equal acc", "power (c)")
    head = f"{'test (splits)':<22} " + " ".join(f"{c:>20}" for c in cols)
    lines += [head, "-" * len(head)]
    for key, counts in {**summary["rejections"], **summary["bayes"]}.items():
        label = f"{key} P>0.95" if key.startswith("bayes") else key
        lines.append(f"{label:<22} " + " ".join(f"{_rate(counts[s], n):>20}" for s in SCENARIOS))
    lines.append(f"(bayes rows: P(better) or P(worse) > 0.95 with rope {args.rope}; not a test)")
    lines += ["", "power (c), paired on the same datasets: test vs corrected_t (kfold)"]
    for key, (only_x, only_ref, p) in summary["power_vs_corrected_t"].items():
        lines.append(
            f"  {key:<20} rejects alone on {only_x:>3}, corrected_t (kfold) alone on {only_ref:>3}"
            f" (exact McNemar p = {p:.3f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", type=int, default=300, help="number of small datasets (N)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--n", type=int, default=300, help="samples per dataset")
    p.add_argument("--k", type=int, default=5, help="folds of the stratified k-fold kind")
    p.add_argument("--population", type=int, default=60_000)
    p.add_argument("--eval-size", type=int, default=10_000, help="held-out part of the population")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--rope", type=float, default=0.01)
    p.add_argument("--gap", type=float, default=0.02, help="accuracy gap for the power case (c)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--svc-c", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the per-dataset numbers here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.workers <= 1:
        _init_worker()
        results = [run_dataset(i, args) for i in range(args.datasets)]
        plans, pop = _plans(results, args)
        decisions = [decide_dataset(i, r, plans, args) for i, r in enumerate(results)]
    else:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker) as pool:
            results = []
            for done, res in enumerate(
                pool.map(run_dataset, range(args.datasets), [args] * args.datasets), 1
            ):
                results.append(res)
                if done % max(1, args.datasets // 10) == 0:
                    print(f"  {done}/{args.datasets} datasets, {time.perf_counter() - t0:.0f} s",
                          file=sys.stderr, flush=True)  # fmt: skip
            plans, pop = _plans(results, args)
            n = len(results)
            decisions = list(pool.map(decide_dataset, range(n), results, [plans] * n, [args] * n))
    summary = summarize(decisions, plans, pop)
    print(report(summary, args.datasets, args))
    seconds = time.perf_counter() - t0
    print(f"\n{args.datasets} datasets in {seconds:.0f} s with {args.workers} workers")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **summary}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
