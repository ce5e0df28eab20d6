"""Cross-validation statistics against scipy and closed forms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from goodfit.select.stats import compare_paired, higher_is_better, rank_variants, summarize


def test_summarize_matches_scipy_t_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(0.9, 0.02, size=7)
    s = summarize(x)
    assert s["n"] == 7
    assert s["mean"] == pytest.approx(np.mean(x), rel=1e-12)
    assert s["std"] == pytest.approx(np.std(x, ddof=1), rel=1e-12)
    lo, hi = sps.t.interval(0.95, df=6, loc=np.mean(x), scale=sps.sem(x))
    assert s["ci_low"] == pytest.approx(lo, rel=1e-12)
    assert s["ci_high"] == pytest.approx(hi, rel=1e-12)
    assert s["values"] == [float(v) for v in x]


def test_summarize_closed_form_and_degenerate_cases():
    # [1, 2, 3]: mean 2, std 1, half-width t_{0.975,2} / sqrt(3) with t_{0.975,2} = 4.302652729...
    s = summarize([1.0, 2.0, 3.0])
    assert s["std"] == pytest.approx(1.0)
    assert s["ci_high"] - 2.0 == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    one = summarize([0.5])
    assert one["mean"] == 0.5 and one["std"] is None and one["ci_low"] is None
    flat = summarize([0.7, 0.7, 0.7])
    assert flat["std"] == 0.0 and flat["ci_low"] == flat["ci_high"] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence must be in"):
        summarize([1.0, 2.0], confidence=1.5)


def test_compare_paired_matches_scipy():
    rng = np.random.default_rng(1)
    base = rng.normal(0.90, 0.01, size=10)
    var = base + rng.normal(0.01, 0.01, size=10)
    c = compare_paired(base, var)
    t = sps.ttest_rel(var, base)
    w = sps.wilcoxon(var, base)
    assert c["t_stat"] == pytest.approx(t.statistic, rel=1e-12)
    assert c["t_pvalue"] == pytest.approx(t.pvalue, rel=1e-12)
    assert c["wilcoxon_stat"] == pytest.approx(w.statistic)
    assert c["wilcoxon_pvalue"] == pytest.approx(w.pvalue, rel=1e-12)
    assert c["mean_diff"] == pytest.approx(np.mean(var - base), rel=1e-12)
    assert c["significant"] is bool(t.pvalue < 0.05)
    assert c["wilcoxon_significant"] is bool(w.pvalue < 0.05)


def test_compare_paired_flags_and_direction():
    base = [0.90, 0.91, 0.92, 0.90, 0.93]
    better = [0.95, 0.93, 0.96, 0.94, 0.97]
    c = compare_paired(base, better)
    assert c["significant"] and c["better"] is True
    # same numbers as a loss (lower is better): significant, but worse
    c = compare_paired(base, better, higher_is_better=False)
    assert c["significant"] and c["better"] is False
    # 5 folds: exact Wilcoxon p is at least 2/2**5 = 0.0625, never significant at 0.05
    assert c["wilcoxon_pvalue"] == pytest.approx(0.0625)
    assert not c["wilcoxon_significant"] and "0.0625" in c["note"]
    noisy = compare_paired(base, [0.91, 0.90, 0.93, 0.89, 0.93])
    assert not noisy["significant"] and noisy["better"] is None


def test_compare_paired_degenerate_inputs_do_not_raise():
    same = compare_paired([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert same["t_pvalue"] == 1.0 and same["wilcoxon_pvalue"] == 1.0
    assert not same["significant"] and same["note"] == "identical scores"
    shift = compare_paired([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert shift["t_pvalue"] == 0.0 and shift["t_stat"] is None and shift["significant"]
    single = compare_paired([0.9], [0.95])
    assert single["t_pvalue"] is None and not single["significant"]
    assert "at least 2" in single["note"]
    some_zero = compare_paired([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.2, 4.5])
    assert some_zero["wilcoxon_pvalue"] is not None
    for c in (same, shift, single, some_zero):
        json.dumps(c, allow_nan=False)  # strict JSON: no NaN/inf anywhere
    with pytest.raises(ValueError, match="one score per fold"):
        compare_paired([1.0, 2.0], [1.0])


def test_rank_variants_maximize_and_minimize():
    results = {
        "baseline": [0.90, 0.91, 0.92, 0.90, 0.93],
        "l2": [0.95, 0.93, 0.96, 0.94, 0.97],
        "dropout": [0.92, 0.92, 0.93, 0.91, 0.95],
    }
    r = rank_variants(results, higher_is_better=True)
    means = {k: np.mean(v) for k, v in results.items()}
    assert r["order"] == ["l2", "dropout", "baseline"]
    assert r["best"] == "l2" and r["runner_up"] == "dropout" and r["baseline"] == "baseline"
    assert r["margin_over_runner_up"] == pytest.approx(means["l2"] - means["dropout"])
    assert r["margin_over_baseline"] == pytest.approx(means["l2"] - means["baseline"])
    assert set(r["comparisons"]) == {"l2", "dropout"}
    assert r["best_vs_baseline"] is r["comparisons"]["l2"]
    json.dumps(r, allow_nan=False)

    losses = {k: [1 - x for x in v] for k, v in results.items()}
    r = rank_variants(losses, higher_is_better=False)
    assert r["order"] == ["l2", "dropout", "baseline"]
    assert r["margin_over_runner_up"] == pytest.approx(means["l2"] - means["dropout"])
    assert r["comparisons"]["l2"]["better"] is True


def test_rank_variants_baseline_best_and_errors():
    r = rank_variants({"base": [0.9, 0.95], "x": [0.8, 0.85]}, True)
    assert r["best"] == "base" and r["margin_over_baseline"] is None
    assert r["best_vs_baseline"] is None
    with pytest.raises(ValueError, match="baseline must be one of"):
        rank_variants({"a": [1.0, 2.0]}, True, baseline="b")
    with pytest.raises(ValueError, match="at least one variant"):
        rank_variants({}, True)


def test_higher_is_better_from_name():
    assert higher_is_better("val_accuracy") and higher_is_better("test_acc")
    assert not higher_is_better("val_loss") and not higher_is_better("test_error")
    with pytest.raises(ValueError, match="pass higher_is_better"):
        higher_is_better("epochs")
