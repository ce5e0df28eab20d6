"""Cross-validation statistics against scipy and closed forms."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from goodfit.select.stats import (
    bayesian_correlated_ttest,
    cohens_d,
    combined_ftest_5x2cv,
    compare_paired,
    corrected_ttest,
    higher_is_better,
    holm,
    paired_ttest_5x2cv,
    rank_variants,
    split_ratio,
    summarize,
    wilcoxon_test,
)


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


# -- tests made for cross-validation, against plain-Python transcriptions --------------------------
# Student's t and Fisher's F tail probabilities in closed form (Abramowitz & Stegun 26.7.3-4 and
# the finite series of the regularized incomplete beta I_x(a, b) for integer b), so the references
# below share no code with scipy.


def _t_two_sided_p(t, nu):
    """P(|T_nu| > |t|) by Abramowitz & Stegun 26.7.3 (nu odd) / 26.7.4 (nu even)."""
    th = math.atan(abs(t) / math.sqrt(nu))
    s, c = math.sin(th), math.cos(th)
    total, coeff = 0.0, 1.0
    if nu % 2:  # A = 2/pi (theta + sin(theta) (cos + 2/3 cos^3 + 2*4/(3*5) cos^5 + ...))
        power = 1
        while power <= nu - 2:
            total += coeff * c**power
            coeff *= (power + 1) / (power + 2)
            power += 2
        inside = 2 / math.pi * (th + s * total)
    else:  # A = sin(theta) (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        power = 0
        while power <= nu - 2:
            total += coeff * c**power
            coeff *= (power + 1) / (power + 2)
            power += 2
        inside = s * total
    return 1.0 - inside


def _t_quantile(q, nu):
    """The q-quantile (q > 0.5) of Student's t by bisection on the closed-form tail."""
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1 - _t_two_sided_p(mid, nu) / 2 < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _f_10_5_sf(f):
    """P(F_{10,5} > f) = I_x(5/2, 5) with x = 5 / (5 + 10 f), by the finite series
    I_x(a, n) = x^a sum_{j<n} (a)_j / j! (1-x)^j for integer n."""
    a, x = 2.5, 5 / (5 + 10 * f)
    total, term = 0.0, 1.0
    for j in range(5):
        total += term * (1 - x) ** j
        term *= (a + j) / (j + 1)
    return x**a * total


def _mean(xs):
    return sum(xs) / len(xs)


def _var(xs):
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


D10 = [0.021, -0.004, 0.013, 0.030, 0.008, -0.011, 0.017, 0.025, 0.002, 0.012]
D5 = [0.02, 0.01, 0.03, 0.00, 0.02]


def test_closed_form_references_agree_with_scipy():
    # the references themselves, checked once against scipy (not the code under test)
    for nu in (1, 2, 4, 5, 9):
        for t in (0.3, 1.7, 3.1):
            assert _t_two_sided_p(t, nu) == pytest.approx(2 * sps.t.sf(t, nu), rel=1e-10)
        assert _t_quantile(0.975, nu) == pytest.approx(sps.t.ppf(0.975, nu), rel=1e-9)
    for f in (0.4, 1.0, 4.7):
        assert _f_10_5_sf(f) == pytest.approx(sps.f.sf(f, 10, 5), rel=1e-10)


@pytest.mark.parametrize(
    ("d", "n_train", "n_test"), [(D10, 270, 30), (D5, 240, 60), (D10, 150, 150)]
)
def test_corrected_ttest_matches_nadeau_bengio(d, n_train, n_test):
    r = corrected_ttest(d, n_train=n_train, n_test=n_test, confidence=0.9)
    j = len(d)
    se = math.sqrt((1 / j + n_test / n_train) * _var(d))
    t = _mean(d) / se
    assert r["statistic"] == pytest.approx(t, rel=1e-12)
    assert r["df"] == j - 1 and r["n_splits"] == j
    assert r["pvalue"] == pytest.approx(_t_two_sided_p(t, j - 1), rel=1e-9)
    half = _t_quantile(0.95, j - 1) * se
    assert r["ci_low"] == pytest.approx(_mean(d) - half, rel=1e-8)
    assert r["ci_high"] == pytest.approx(_mean(d) + half, rel=1e-8)
    assert r["std_err"] == pytest.approx(se, rel=1e-12)
    assert r["test_train_ratio"] == pytest.approx(n_test / n_train)
    # the correction only widens: a larger p than the plain paired t-test on the same numbers
    plain = _mean(d) / math.sqrt(_var(d) / j)
    assert r["pvalue"] > _t_two_sided_p(plain, j - 1)


def test_corrected_ttest_per_split_sizes_use_the_mean_ratio():
    n_train = [270, 271, 269, 270, 270]
    n_test = [30, 29, 31, 30, 30]
    r = corrected_ttest(D5, n_train=n_train, n_test=n_test)
    ratio = _mean([te / tr for tr, te in zip(n_train, n_test, strict=True)])
    assert r["test_train_ratio"] == pytest.approx(ratio, rel=1e-12)
    assert r["std_err"] == pytest.approx(math.sqrt((1 / 5 + ratio) * _var(D5)), rel=1e-12)
    assert split_ratio(270, [30, 30, 30], 3) == pytest.approx(30 / 270)
    with pytest.raises(ValueError, match="n_train must give one size per split"):
        corrected_ttest(D5, n_train=[270, 270], n_test=30)
    with pytest.raises(ValueError, match="n_test must be an integer >= 1"):
        corrected_ttest(D5, n_train=270, n_test=0)
    with pytest.raises(ValueError, match="n_train must be an integer >= 1"):
        corrected_ttest(D5, n_train=27.5, n_test=3)


def test_corrected_ttest_degenerate_cases():
    zero = corrected_ttest([0.0] * 5, n_train=80, n_test=20)
    assert zero["pvalue"] == 1.0 and zero["statistic"] == 0.0 and zero["ci_low"] == 0.0
    shift = corrected_ttest([0.01] * 5, n_train=80, n_test=20)
    assert shift["pvalue"] == 0.0 and shift["statistic"] is None
    assert shift["ci_low"] == shift["ci_high"] == pytest.approx(0.01)
    json.dumps([zero, shift], allow_nan=False)
    with pytest.raises(ValueError, match="at least 2 paired differences"):
        corrected_ttest([0.1], n_train=80, n_test=20)


# 5x2cv: mlxtend's paired_ttest_5x2cv / combined_ftest_5x2cv loops, transcribed (one difference
# per half: score_diff_1 trains on half 1, score_diff_2 on half 2), on fixed differences.
def _mlxtend_5x2(diffs):
    variance_sum, squares, first_diff = 0.0, 0.0, None
    for i in range(5):
        score_diff_1, score_diff_2 = diffs[2 * i], diffs[2 * i + 1]
        score_mean = (score_diff_1 + score_diff_2) / 2.0
        variance_sum += (score_diff_1 - score_mean) ** 2 + (score_diff_2 - score_mean) ** 2
        squares += score_diff_1**2 + score_diff_2**2
        if first_diff is None:
            first_diff = score_diff_1
    t_stat = first_diff / math.sqrt(1 / 5.0 * variance_sum)
    f_stat = squares / (2 * variance_sum)
    return t_stat, _t_two_sided_p(t_stat, 5), f_stat, _f_10_5_sf(f_stat)


# computed once from the transcription above and pinned
PINNED_5X2 = {
    "t": 1.7506079555507355,
    "t_p": 0.1404123154390996,
    "f": 1.927032661570535,
    "f_p": 0.24298963372359428,
}


def test_5x2cv_tests_match_dietterich_alpaydin_and_mlxtend():
    t, tp, f, fp = _mlxtend_5x2(D10)
    assert (t, tp, f, fp) == pytest.approx(tuple(PINNED_5X2.values()), rel=1e-12)
    rt = paired_ttest_5x2cv(D10)
    assert rt["statistic"] == pytest.approx(PINNED_5X2["t"], rel=1e-12) and rt["df"] == 5
    assert rt["pvalue"] == pytest.approx(PINNED_5X2["t_p"], rel=1e-9)
    rf = combined_ftest_5x2cv(D10)
    assert rf["statistic"] == pytest.approx(PINNED_5X2["f"], rel=1e-12) and rf["df"] == [10, 5]
    assert rf["pvalue"] == pytest.approx(PINNED_5X2["f_p"], rel=1e-9)
    # the t-test reads only the first difference of the first repetition: order matters
    swapped = [D10[1], D10[0], *D10[2:]]
    assert paired_ttest_5x2cv(swapped)["statistic"] == pytest.approx(
        D10[1]
        / math.sqrt(sum((a - b) ** 2 / 2 for a, b in zip(D10[::2], D10[1::2], strict=True)) / 5)
    )
    assert combined_ftest_5x2cv(swapped)["pvalue"] == pytest.approx(rf["pvalue"], rel=1e-12)


def test_5x2cv_tests_degenerate_and_bad_input():
    const = [0.01, 0.01] * 5  # every repetition's two folds agree: zero variance
    assert paired_ttest_5x2cv(const)["pvalue"] == 0.0
    assert combined_ftest_5x2cv(const)["pvalue"] == 0.0
    assert paired_ttest_5x2cv([0.0] * 10)["pvalue"] == 1.0
    assert combined_ftest_5x2cv([0.0] * 10)["pvalue"] == 1.0
    with pytest.raises(ValueError, match="10 differences of a 5x2"):
        paired_ttest_5x2cv(D5)
    with pytest.raises(ValueError, match="10 differences of a 5x2"):
        combined_ftest_5x2cv([*D10, 0.0])


def _holm_step_down(pvalues, alpha):
    """Holm's rule as written: reject H_(1), H_(2), ... while p_(k) < alpha / (m - k + 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    rejected = set()
    for k, i in enumerate(order, start=1):
        if pvalues[i] >= alpha / (m - k + 1):
            break
        rejected.add(i)
    return rejected


def _holm_adjusted(pvalues):
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out, running = [0.0] * m, 0.0
    for k, i in enumerate(order, start=1):
        running = max(running, (m - k + 1) * pvalues[i])
        out[i] = min(1.0, running)
    return out


@pytest.mark.parametrize(
    "pvalues",
    [
        [0.01, 0.04, 0.03],
        [0.001, 0.2, 0.012, 0.04, 0.9],
        [0.02, 0.02, 0.02, 0.5],  # ties
        [0.6, 0.7, 0.9],  # capped at 1
        [0.03],
    ],
)
def test_holm_matches_the_step_down_rule(pvalues):
    adjusted = holm(pvalues)
    assert adjusted == pytest.approx(_holm_adjusted(pvalues), rel=1e-12)
    assert all(0 <= a <= 1 and a >= p for a, p in zip(adjusted, pvalues, strict=True))
    ranks = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    assert all(adjusted[a] <= adjusted[b] for a, b in itertools.pairwise(ranks))  # monotone
    for alpha in (0.01, 0.03, 0.05, 0.1, 0.5):
        by_adjusted = {i for i, a in enumerate(adjusted) if a < alpha}
        assert by_adjusted == _holm_step_down(pvalues, alpha)


def test_holm_bad_input():
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"pvalues must be in \[0, 1\]"):
        holm([0.1, 1.2])
    with pytest.raises(ValueError, match="finite"):
        holm([0.1, float("nan")])


def _posterior_mc(d, n_train, n_test, n=400_000, seed=0):
    j = len(d)
    rho = n_test / (n_train + n_test)
    scale = math.sqrt((1 / j + rho / (1 - rho)) * _var(d))
    rng = np.random.default_rng(seed)
    return _mean(d) + scale * rng.standard_t(j - 1, size=n), scale


@pytest.mark.parametrize(
    ("d", "n_train", "n_test", "rope"),
    [(D10, 270, 30, 0.01), (D5, 240, 60, 0.01), (D10, 150, 150, 0.005), (D5, 80, 20, 0.0)],
)
def test_bayesian_correlated_ttest_against_monte_carlo(d, n_train, n_test, rope):
    sample, scale = _posterior_mc(d, n_train, n_test)
    n = sample.size
    mc = {
        "p_worse": float(np.mean(sample < -rope)),
        "p_equivalent": float(np.mean((sample >= -rope) & (sample <= rope))),
        "p_better": float(np.mean(sample > rope)),
    }
    r = bayesian_correlated_ttest(d, n_train=n_train, n_test=n_test, rope=rope)
    assert r["scale"] == pytest.approx(scale, rel=1e-12) and r["loc"] == pytest.approx(_mean(d))
    assert r["df"] == len(d) - 1
    for key, p in mc.items():
        # 5 binomial standard errors of the Monte-Carlo estimate (plus 1/n for p near 0 or 1):
        # a false alarm has probability < 1e-6 per comparison
        tol = 5 * math.sqrt(max(p * (1 - p), 1 / n) / n)
        assert abs(r[key] - p) < tol, (key, r[key], p, tol)
    assert r["p_better"] + r["p_equivalent"] + r["p_worse"] == pytest.approx(1.0)
    if rope == 0:
        assert r["p_equivalent"] == 0.0
    # a loss: the same numbers read the other way round
    loss = bayesian_correlated_ttest(
        d, n_train=n_train, n_test=n_test, rope=rope, higher_is_better=False
    )
    assert loss["p_better"] == pytest.approx(r["p_worse"]) and loss["p_worse"] == r["p_better"]


def test_bayesian_correlated_ttest_zero_variance_and_rope_check():
    inside = bayesian_correlated_ttest([0.005] * 5, n_train=80, n_test=20, rope=0.01)
    assert (inside["p_better"], inside["p_equivalent"], inside["p_worse"]) == (0.0, 1.0, 0.0)
    above = bayesian_correlated_ttest([0.02] * 5, n_train=80, n_test=20, rope=0.01)
    assert (above["p_better"], above["p_equivalent"], above["p_worse"]) == (1.0, 0.0, 0.0)
    edge = bayesian_correlated_ttest([0.01] * 5, n_train=80, n_test=20, rope=0.01)
    assert edge["p_equivalent"] == 1.0  # the ROPE is closed
    below = bayesian_correlated_ttest([-0.02] * 5, n_train=80, n_test=20, higher_is_better=False)
    assert below["p_better"] == 1.0 and below["scale"] == 0.0
    with pytest.raises(ValueError, match=r"rope must be a finite number >= 0, got -0\.1"):
        bayesian_correlated_ttest(D5, n_train=80, n_test=20, rope=-0.1)


def test_cohens_d_on_fold_differences():
    assert cohens_d(D10) == pytest.approx(_mean(D10) / math.sqrt(_var(D10)), rel=1e-12)
    assert cohens_d([0.0, 0.0, 0.0]) == 0.0
    assert cohens_d([0.01, 0.01]) is None
    with pytest.raises(ValueError, match="at least 2"):
        cohens_d([0.1])


def test_wilcoxon_test_on_differences_matches_scipy():
    w = wilcoxon_test(D10)
    ref = sps.wilcoxon(D10)
    assert w["statistic"] == pytest.approx(ref.statistic) and w["pvalue"] == pytest.approx(
        ref.pvalue, rel=1e-12
    )
    assert wilcoxon_test([0.0, 0.0])["pvalue"] == 1.0
    assert "4 non-zero differences: Wilcoxon p >= 0.125" in wilcoxon_test(D5)["note"]  # one zero
