"""Statistics of cross-validated scores: per-variant summaries, paired tests against a baseline,
and the ranking of variants.

The k-fold rule of seed 000 §1.2.2 ("The average error through the all models is a measure of
the network performance") gives the mean over folds; this module adds its spread (standard
deviation with ``ddof=1``), a 95% confidence interval from Student's t distribution, and — since
every variant is run on the *same* folds — paired comparisons with the baseline (paired t-test,
``scipy.stats.ttest_rel``; Wilcoxon signed-rank, ``scipy.stats.wilcoxon``).

All functions take plain sequences / dicts and return plain dicts of Python floats, ints, bools,
strings and ``None`` (never NaN or inf), so results serialize to strict JSON.

Example
-------
>>> from goodfit.select.stats import rank_variants
>>> r = rank_variants({"base": [0.90, 0.91, 0.89], "l2": [0.93, 0.94, 0.92]}, higher_is_better=True)
>>> r["best"], round(r["margin_over_runner_up"], 3)
('l2', 0.03)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = ["ALPHA", "compare_paired", "higher_is_better", "rank_variants", "summarize"]

#: Significance level of the paired tests.
ALPHA = 0.05


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _as_array(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite numbers, got {list(map(float, arr))}")
    return arr


def summarize(values: Sequence[float], *, confidence: float = 0.95) -> dict[str, Any]:
    """Mean, standard deviation and confidence interval of one variant's fold scores.

    ``std`` uses ``ddof=1`` (sample standard deviation); the interval is
    ``mean ± t_{(1+confidence)/2, n-1} · std / sqrt(n)`` (Student's t, as
    ``scipy.stats.t.interval``). With one value ``std`` and the interval are ``None``; with zero
    spread the interval is ``[mean, mean]``.

    Returns ``{"n", "mean", "std", "ci_low", "ci_high", "confidence", "min", "max", "values"}``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    arr = _as_array(values, "values")
    n = int(arr.size)
    if n == 0:
        raise ValueError("values must hold at least one score, got an empty sequence")
    mean = float(arr.mean())
    out: dict[str, Any] = {
        "n": n,
        "mean": mean,
        "std": None,
        "ci_low": None,
        "ci_high": None,
        "confidence": confidence,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "values": [float(v) for v in arr],
    }
    if n >= 2:
        # equal values: exactly 0 (arr.std can return ~1e-16 from the rounded mean)
        std = 0.0 if arr.min() == arr.max() else float(arr.std(ddof=1))
        half = float(sps.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
        out.update(std=std, ci_low=mean - half, ci_high=mean + half)
    return out


def compare_paired(
    baseline: Sequence[float],
    variant: Sequence[float],
    *,
    alpha: float = ALPHA,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Paired comparison of a variant with the baseline over the same folds.

    ``diff = variant - baseline`` fold by fold. Two-sided paired t-test (``scipy.stats.ttest_rel``)
    and Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, zero differences dropped,
    ``zero_method="wilcox"``). ``significant`` is the t-test's ``p < alpha``; the Wilcoxon test is
    reported next to it (``wilcoxon_significant``) as the distribution-free check. Note that with
    ``n <= 5`` non-zero differences the exact two-sided Wilcoxon p-value cannot go below
    ``2 / 2**n`` (0.0625 for 5 folds), so it can never be significant at 0.05.

    Degenerate cases are reported, not raised: all differences zero gives p-values 1.0 and
    ``significant=False``; a constant non-zero difference gives the t-test ``p = 0.0`` (its
    statistic is infinite, stored as ``None``); fewer than 2 pairs give ``None`` p-values.

    Returns ``{"n", "mean_diff", "std_diff", "t_stat", "t_pvalue", "wilcoxon_stat",
    "wilcoxon_pvalue", "significant", "wilcoxon_significant", "better", "note"}`` where ``better``
    is True/False when ``significant`` (in the metric's direction) and ``None`` otherwise.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    a = _as_array(baseline, "baseline")
    b = _as_array(variant, "variant")
    if a.shape != b.shape:
        raise ValueError(
            f"baseline and variant must have one score per fold each, got {a.size} and {b.size}"
        )
    n = int(a.size)
    diff = b - a
    out: dict[str, Any] = {
        "n": n,
        "mean_diff": float(diff.mean()) if n else None,
        "std_diff": float(diff.std(ddof=1)) if n >= 2 else None,
        "t_stat": None,
        "t_pvalue": None,
        "wilcoxon_stat": None,
        "wilcoxon_pvalue": None,
        "significant": False,
        "wilcoxon_significant": False,
        "better": None,
        "note": "",
    }
    notes = []
    if n < 2:
        out["note"] = f"need at least 2 paired folds for a test, got {n}"
        return out
    if np.all(diff == 0):
        out.update(t_stat=0.0, t_pvalue=1.0, wilcoxon_pvalue=1.0, note="identical scores")
        return out
    if np.all(diff == diff[0]):
        # ttest_rel divides by a zero standard deviation: t = ±inf, p = 0 (a constant shift)
        out.update(t_stat=None, t_pvalue=0.0)
        notes.append("constant difference on every fold")
    else:
        res = sps.ttest_rel(b, a)
        out.update(t_stat=_finite_or_none(res.statistic), t_pvalue=_finite_or_none(res.pvalue))
    nonzero = int(np.count_nonzero(diff))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample / ties warnings: reported in `note`
            w = sps.wilcoxon(b, a, zero_method="wilcox")
        out.update(
            wilcoxon_stat=_finite_or_none(w.statistic), wilcoxon_pvalue=_finite_or_none(w.pvalue)
        )
    except ValueError as err:  # e.g. too few non-zero differences for this scipy version
        notes.append(f"wilcoxon not computed: {err}")
    if nonzero <= 5:
        notes.append(f"{nonzero} non-zero differences: Wilcoxon p >= {2 / 2**nonzero:.4g}")
    p = out["t_pvalue"]
    out["significant"] = p is not None and p < alpha
    wp = out["wilcoxon_pvalue"]
    out["wilcoxon_significant"] = wp is not None and wp < alpha
    if out["significant"]:
        out["better"] = bool((diff.mean() > 0) == higher_is_better)
    out["note"] = "; ".join(notes)
    return out


def higher_is_better(metric: str) -> bool:
    """Direction of a metric from its name: accuracies, F1, AUC, R² are maximized; losses and
    errors minimized. Raises ``ValueError`` for a name it cannot tell."""
    name = metric.lower()
    if any(s in name for s in ("loss", "error", "mse", "mae", "rmse", "nll", "perplexity")):
        return False
    if any(s in name for s in ("acc", "f1", "auc", "r2", "precision", "recall", "score")):
        return True
    raise ValueError(
        f"cannot tell whether metric {metric!r} is maximized or minimized; "
        "pass higher_is_better explicitly"
    )


def rank_variants(
    results: Mapping[str, Sequence[float]],
    higher_is_better: bool,
    *,
    baseline: str | None = None,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """Rank variants by their mean fold score and compare each with the baseline.

    Order: best mean first in the metric's direction (ties broken by name).
    ``margin_over_runner_up`` and ``margin_over_baseline`` are differences of means signed so
    that positive means "the best is better" (``mean_best - mean_other`` when maximizing,
    ``mean_other - mean_best`` when minimizing). ``baseline`` defaults to the first key of
    ``results``; every other variant is compared with it by :func:`compare_paired` over the
    same folds.

    Returns ``{"order", "best", "runner_up", "baseline", "higher_is_better",
    "margin_over_runner_up", "margin_over_baseline", "best_vs_baseline", "summaries",
    "comparisons"}``.
    """
    if not results:
        raise ValueError("results must name at least one variant, got none")
    names = list(results)
    if baseline is None:
        baseline = names[0]
    if baseline not in results:
        raise ValueError(f"baseline must be one of {names}, got {baseline!r}")
    summaries = {name: summarize(results[name]) for name in names}
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(names, key=lambda name: (-sign * summaries[name]["mean"], name))
    comparisons = {
        name: compare_paired(
            results[baseline], results[name], alpha=alpha, higher_is_better=higher_is_better
        )
        for name in names
        if name != baseline
    }
    best = order[0]
    runner_up = order[1] if len(order) > 1 else None

    def margin(other: str | None) -> float | None:
        if other is None or other == best:
            return None
        return sign * (summaries[best]["mean"] - summaries[other]["mean"])

    return {
        "order": order,
        "best": best,
        "runner_up": runner_up,
        "baseline": baseline,
        "higher_is_better": bool(higher_is_better),
        "margin_over_runner_up": margin(runner_up),
        "margin_over_baseline": margin(baseline),
        "best_vs_baseline": comparisons.get(best),
        "summaries": summaries,
        "comparisons": comparisons,
    }
