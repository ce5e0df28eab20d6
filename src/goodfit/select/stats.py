"""Statistics of cross-validated scores: per-variant summaries, paired tests against a baseline,
and the ranking of variants.

The k-fold rule of seed 000 §1.2.2 ("The average error through the all models is a measure of
the network performance") gives the mean over folds; this module adds its spread (standard
deviation with ``ddof=1``), a 95% confidence interval from Student's t distribution, and — since
every variant is run on the *same* folds — paired comparisons with the baseline:

- the plain paired t-test (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``), :func:`compare_paired`;
- tests made for resampled splits, whose training sets overlap so that the fold differences are
  correlated: the corrected resampled t-test (Nadeau & Bengio 2003), :func:`corrected_ttest`; the
  5x2cv paired t-test (Dietterich 1998), :func:`paired_ttest_5x2cv`; the combined 5x2cv F-test
  (Alpaydın 1999), :func:`combined_ftest_5x2cv`;
- Holm's step-down adjustment for many comparisons (Holm 1979), :func:`holm`;
- the Bayesian correlated t-test (Corani & Benavoli 2015), :func:`bayesian_correlated_ttest`;
- Cohen's d on the fold differences, :func:`cohens_d`.

:func:`goodfit.select.compare.compare_to_baseline` puts them together for a study.

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

from goodfit.checks import check_real

__all__ = [
    "ALPHA",
    "bayesian_correlated_ttest",
    "cohens_d",
    "combined_ftest_5x2cv",
    "compare_paired",
    "corrected_ttest",
    "higher_is_better",
    "holm",
    "paired_ttest_5x2cv",
    "rank_variants",
    "split_ratio",
    "summarize",
    "wilcoxon_test",
]

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
    w = wilcoxon_test(diff)
    out.update(wilcoxon_stat=w["statistic"], wilcoxon_pvalue=w["pvalue"])
    if w["note"]:
        notes.append(w["note"])
    p = out["t_pvalue"]
    out["significant"] = p is not None and p < alpha
    wp = out["wilcoxon_pvalue"]
    out["wilcoxon_significant"] = wp is not None and wp < alpha
    if out["significant"]:
        out["better"] = bool((diff.mean() > 0) == higher_is_better)
    out["note"] = "; ".join(notes)
    return out


def wilcoxon_test(diffs: Sequence[float]) -> dict[str, Any]:
    """Wilcoxon signed-rank test of paired differences ``d = variant - baseline`` (Wilcoxon 1945;
    ``scipy.stats.wilcoxon(d, zero_method="wilcox")``: zero differences dropped, two-sided).

    The distribution-free check next to the t-tests. With ``m <= 5`` non-zero differences the
    exact two-sided p-value cannot go below ``2 / 2**m`` (0.0625 for 5), which ``note`` says. All
    differences zero give ``p = 1.0``.

    Returns ``{"statistic", "pvalue", "note"}``.
    """
    d = _as_array(diffs, "diffs")
    if d.size == 0 or np.all(d == 0):
        return {"statistic": None, "pvalue": 1.0, "note": "all differences are zero"}
    notes = []
    stat = pvalue = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample / ties warnings: reported in `note`
            w = sps.wilcoxon(d, zero_method="wilcox")
        stat, pvalue = _finite_or_none(w.statistic), _finite_or_none(w.pvalue)
    except ValueError as err:  # e.g. too few non-zero differences for this scipy version
        notes.append(f"wilcoxon not computed: {err}")
    nonzero = int(np.count_nonzero(d))
    if nonzero <= 5:
        notes.append(f"{nonzero} non-zero differences: Wilcoxon p >= {2 / 2**nonzero:.4g}")
    return {"statistic": stat, "pvalue": pvalue, "note": "; ".join(notes)}


def _diffs(diffs: Sequence[float], need: int = 2) -> np.ndarray:
    d = _as_array(diffs, "diffs")
    if d.size < need:
        raise ValueError(f"diffs must hold at least {need} paired differences, got {d.size}")
    return d


def _var(d: np.ndarray) -> float:
    # equal values: exactly 0 (np.var can return ~1e-34 from the rounded mean)
    return 0.0 if d.min() == d.max() else float(d.var(ddof=1))


def _t_test(mean: float, scale: float, df: float) -> tuple[float | None, float]:
    """(t, two-sided p) of ``t = mean / scale``; a zero scale gives p = 1 for a zero mean and
    p = 0 for a non-zero one (t infinite, returned as None)."""
    if scale == 0.0:
        return (0.0, 1.0) if mean == 0.0 else (None, 0.0)
    t = mean / scale
    return t, float(2.0 * sps.t.sf(abs(t), df))


def split_ratio(n_train: Any, n_test: Any, n_splits: int | None = None) -> float:
    """``n_test / n_train`` of the splits: one number, or the mean of the per-split ratios
    ``mean_j(n_test_j / n_train_j)`` when both are given per split (lists of ``n_splits`` sizes;
    a single size on one side is used for every split). Sizes must be integers ``>= 1``."""
    tr = np.atleast_1d(np.asarray(n_train))
    te = np.atleast_1d(np.asarray(n_test))
    for name, arr in (("n_train", tr), ("n_test", te)):
        if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu" or np.any(arr < 1):
            raise ValueError(
                f"{name} must be an integer >= 1 or a list of them (one per split), "
                f"got {np.asarray(n_train if name == 'n_train' else n_test).tolist()!r}"
            )
        if arr.size > 1 and n_splits is not None and arr.size != n_splits:
            raise ValueError(f"{name} must give one size per split ({n_splits}), got {arr.size}")
    if tr.size > 1 and te.size > 1 and tr.size != te.size:
        raise ValueError(f"n_train and n_test list {tr.size} and {te.size} splits")
    return float(np.mean(te / tr))


def corrected_ttest(
    diffs: Sequence[float], *, n_train: Any, n_test: Any, confidence: float = 0.95
) -> dict[str, Any]:
    """Corrected resampled t-test (Nadeau & Bengio 2003, *Inference for the generalization
    error*, Machine Learning 52; Bouckaert & Frank 2004).

    With ``J`` paired differences ``d_j = variant_j - baseline_j`` over the same splits (k for
    k-fold, r·k for repeated k-fold, the repeats of repeated random subsampling)::

        se = sqrt((1/J + n_test/n_train) · var(d, ddof=1))
        t  = mean(d) / se,      J - 1 degrees of freedom,  p = 2 · P(T_{J-1} > |t|)
        CI = mean(d) ± t_{(1+confidence)/2, J-1} · se

    The ``n_test/n_train`` term accounts for the overlap of the training sets, which correlates
    the differences; the plain paired t-test (``1/J`` alone) underestimates the variance and
    rejects a true null too often. Per-split sizes use the mean ratio (:func:`split_ratio`).
    ``var(d) = 0`` gives p = 1 if ``mean(d) = 0`` and p = 0 otherwise (``statistic`` None: a
    constant shift on every split), and a zero-width interval.

    Returns ``{"statistic", "df", "pvalue", "mean_diff", "std_err", "ci_low", "ci_high",
    "confidence", "n_splits", "test_train_ratio"}``.

    >>> r = corrected_ttest([0.02, 0.01, 0.03, 0.00, 0.02], n_train=80, n_test=20)
    >>> round(r["statistic"], 3), r["df"]
    (2.092, 4)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = _diffs(diffs)
    j = int(d.size)
    ratio = split_ratio(n_train, n_test, j)
    mean = float(d.mean())
    se = math.sqrt((1.0 / j + ratio) * _var(d))
    t, p = _t_test(mean, se, j - 1)
    half = float(sps.t.ppf(0.5 + confidence / 2, df=j - 1)) * se
    return {
        "statistic": t,
        "df": j - 1,
        "pvalue": p,
        "mean_diff": mean,
        "std_err": se,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "confidence": confidence,
        "n_splits": j,
        "test_train_ratio": ratio,
    }


def _five_by_two(diffs: Sequence[float]) -> tuple[np.ndarray, float]:
    d = _as_array(diffs, "diffs")
    if d.size != 10:
        raise ValueError(
            "diffs must hold the 10 differences of a 5x2 cross-validation (5 repetitions of a "
            f"2-fold split, in the order the '5x2' splits kind yields them), got {d.size}"
        )
    p = d.reshape(5, 2)
    s2 = ((p - p.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)  # s_i^2 per repetition
    s2 = np.where(p[:, 0] == p[:, 1], 0.0, s2)  # exactly 0 for equal pairs
    return p, float(s2.sum())


def paired_ttest_5x2cv(diffs: Sequence[float]) -> dict[str, Any]:
    """5x2cv paired t-test (Dietterich 1998, *Approximate statistical tests for comparing
    supervised classification learning algorithms*, Neural Computation 10(7)).

    ``diffs`` are the 10 differences ``p_i^(j) = variant - baseline`` of repetition ``i = 1..5``,
    fold ``j = 1, 2``, in the order the ``"5x2"`` splits kind yields them (repetition by
    repetition). With ``p̄_i = (p_i^(1) + p_i^(2)) / 2`` and
    ``s_i² = (p_i^(1) - p̄_i)² + (p_i^(2) - p̄_i)²``::

        t = p_1^(1) / sqrt((1/5) · Σ_i s_i²),   5 degrees of freedom,  p = 2 · P(T_5 > |t|)

    (as mlxtend's ``paired_ttest_5x2cv``). ``Σ s_i² = 0`` gives p = 1 if ``p_1^(1) = 0`` and
    p = 0 otherwise (``statistic`` None).

    Returns ``{"statistic", "df", "pvalue"}``.
    """
    p, s2 = _five_by_two(diffs)
    t, pvalue = _t_test(float(p[0, 0]), math.sqrt(s2 / 5.0), 5)
    return {"statistic": t, "df": 5, "pvalue": pvalue}


def combined_ftest_5x2cv(diffs: Sequence[float]) -> dict[str, Any]:
    """Combined 5x2cv F-test (Alpaydın 1999, *Combined 5x2 cv F test for comparing supervised
    classification learning algorithms*, Neural Computation 11(8)).

    With the notation of :func:`paired_ttest_5x2cv`::

        f = Σ_i Σ_j (p_i^(j))² / (2 · Σ_i s_i²),   F(10, 5),  p = P(F_{10,5} > f)

    (as mlxtend's ``combined_ftest_5x2cv``). It uses all ten differences rather than one, and is
    more robust than the 5x2cv t-test. ``Σ s_i² = 0`` gives p = 1 if every difference is zero
    and p = 0 otherwise (``statistic`` None).

    Returns ``{"statistic", "df", "pvalue"}`` with ``df = [10, 5]``.
    """
    p, s2 = _five_by_two(diffs)
    num = float((p**2).sum())
    if s2 == 0.0:
        f, pvalue = (None, 1.0) if num == 0.0 else (None, 0.0)
    else:
        f = num / (2.0 * s2)
        pvalue = float(sps.f.sf(f, 10, 5))
    return {"statistic": f, "df": [10, 5], "pvalue": pvalue}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (Holm 1979, *A simple sequentially rejective multiple
    test procedure*, Scand. J. Statist. 6).

    Sort the ``m`` p-values ascending, ``p_(1) <= ... <= p_(m)``; the adjusted values are::

        p̃_(i) = min(1, max_{k <= i} (m - k + 1) · p_(k))

    returned in the input order. Rejecting where ``p̃ < alpha`` controls the family-wise error
    rate at ``alpha`` under any dependence between the tests (step-down; monotone in the sorted
    order; capped at 1). Equals ``statsmodels.stats.multitest.multipletests(method="holm")``.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    p = _as_array(pvalues, "pvalues")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"pvalues must be in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return [float(v) for v in out]


def bayesian_correlated_ttest(
    diffs: Sequence[float],
    *,
    n_train: Any,
    n_test: Any,
    rope: float = 0.01,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Bayesian correlated t-test (Corani & Benavoli 2015, *A Bayesian approach for comparing
    cross-validated algorithms on multiple data sets*, Machine Learning 100; Benavoli, Corani,
    Demšar & Zaffalon 2017, *Time for a change*, JMLR 18(77)).

    The posterior of the mean difference ``mu`` of ``d = variant - baseline`` over ``J``
    correlated splits is Student's t with ``J - 1`` degrees of freedom, location ``mean(d)`` and
    scale ``sqrt((1/J + rho/(1 - rho)) · var(d, ddof=1))``, where ``rho = n_test / n_total`` is
    the correlation of the differences (Nadeau & Bengio's heuristic; ``rho/(1-rho) =
    n_test/n_train``, the mean per-split ratio for per-split sizes). With a region of practical
    equivalence ``[-rope, rope]``::

        P(worse) = P(mu < -rope),  P(equivalent) = P(-rope <= mu <= rope),  P(better) = P(mu > rope)

    oriented by ``higher_is_better`` (for a loss, ``mu < -rope`` is *better*). ``var(d) = 0``
    leaves no spread: the posterior is a point mass at ``mean(d)``, so the probability of the
    region holding ``mean(d)`` is 1 (the ROPE is closed).

    Returns ``{"p_better", "p_equivalent", "p_worse", "loc", "scale", "df", "rope"}``.
    """
    rope = check_real("rope", rope, low=0.0)
    d = _diffs(diffs)
    j = int(d.size)
    ratio = split_ratio(n_train, n_test, j)  # = rho / (1 - rho)
    loc = float(d.mean())
    scale = math.sqrt((1.0 / j + ratio) * _var(d))
    if scale == 0.0:
        below, inside = float(loc < -rope), float(-rope <= loc <= rope)
    else:
        below = float(sps.t.cdf(-rope, j - 1, loc=loc, scale=scale))
        inside = float(sps.t.cdf(rope, j - 1, loc=loc, scale=scale)) - below
    above = max(0.0, 1.0 - below - inside)
    better, worse = (above, below) if higher_is_better else (below, above)
    return {
        "p_better": better,
        "p_equivalent": max(0.0, inside),
        "p_worse": worse,
        "loc": loc,
        "scale": scale,
        "df": j - 1,
        "rope": float(rope),
    }


def cohens_d(diffs: Sequence[float]) -> float | None:
    """Cohen's d of paired differences (Cohen 1988; "d_z"): ``mean(d) / sd(d, ddof=1)``.

    The standardized effect size of the fold differences (it grows with the consistency of the
    difference across splits, not with the number of splits). ``0.0`` when every difference is
    zero; ``None`` (infinite) for a constant non-zero difference.
    """
    d = _diffs(diffs)
    sd = math.sqrt(_var(d))
    mean = float(d.mean())
    if sd == 0.0:
        return 0.0 if mean == 0.0 else None
    return mean / sd


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
