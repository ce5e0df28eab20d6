"""compare_to_baseline: the chosen test, Holm across variants, the Bayesian reading and the effect
size per variant, and its argument checks."""

from __future__ import annotations

import json
import math

import pytest

from goodfit.select.compare import (
    DEFAULT_TEST,
    TESTS,
    check_comparison,
    compare_to_baseline,
)
from goodfit.select.stats import (
    bayesian_correlated_ttest,
    cohens_d,
    combined_ftest_5x2cv,
    compare_paired,
    corrected_ttest,
    holm,
    paired_ttest_5x2cv,
)

BASE = [0.90, 0.91, 0.89, 0.90, 0.92, 0.88, 0.91, 0.90, 0.89, 0.93]
DIFFS = {
    "bn": [0.03, 0.02, 0.04, 0.03, 0.02, 0.03, 0.04, 0.02, 0.03, 0.03],
    "l2": [0.01, 0.00, 0.02, 0.01, 0.01, 0.02, -0.01, 0.01, 0.00, 0.00],  # plain p = 0.045
    "noise": [0.01, -0.02, 0.00, 0.01, -0.01, 0.02, -0.01, 0.00, 0.01, 0.00],
}
SCORES = {"baseline": BASE} | {
    name: [b + d for b, d in zip(BASE, diffs, strict=True)] for name, diffs in DIFFS.items()
}
KEYS = {
    "mean_diff", "ci_low", "ci_high", "confidence", "test", "statistic", "df", "pvalue",
    "pvalue_holm", "alpha", "significant", "better", "wilcoxon_pvalue", "p_better",
    "p_equivalent", "p_worse", "rope", "cohens_d", "n_splits", "n_train", "n_test",
    "test_train_ratio", "higher_is_better", "note",
}  # fmt: skip


def _diff(name):
    return [v - b for v, b in zip(SCORES[name], BASE, strict=True)]


@pytest.mark.parametrize("test", TESTS)
def test_every_variant_gets_its_comparison(test):
    out = compare_to_baseline(SCORES, "baseline", test=test, n_train=150, n_test=150)
    assert list(out) == ["bn", "l2", "noise"]
    raw = {}
    for name, c in out.items():
        assert set(c) >= KEYS
        d = _diff(name)
        corrected = corrected_ttest(d, n_train=150, n_test=150, confidence=0.95)
        assert c["mean_diff"] == pytest.approx(sum(d) / len(d))
        assert (c["ci_low"], c["ci_high"]) == pytest.approx(
            (corrected["ci_low"], corrected["ci_high"])
        )
        bayes = bayesian_correlated_ttest(d, n_train=150, n_test=150, rope=0.01)
        for key in ("p_better", "p_equivalent", "p_worse"):
            assert c[key] == pytest.approx(bayes[key])
        assert c["cohens_d"] == pytest.approx(cohens_d(d))
        paired = compare_paired(BASE, SCORES[name])
        assert c["wilcoxon_pvalue"] == pytest.approx(paired["wilcoxon_pvalue"])
        expected = {
            "corrected_t": corrected["pvalue"],
            "paired_t": paired["t_pvalue"],
            "5x2cv_t": paired_ttest_5x2cv(d)["pvalue"],
            "5x2cv_f": combined_ftest_5x2cv(d)["pvalue"],
        }[test]
        assert c["pvalue"] == pytest.approx(expected, rel=1e-12)
        assert c["test"] == test and c["n_splits"] == 10
        assert c["n_train"] == 150 and c["n_test"] == 150 and c["test_train_ratio"] == 1.0
        raw[name] = c["pvalue"]
    adjusted = holm(list(raw.values()))
    for c, p in zip(out.values(), adjusted, strict=True):
        assert c["pvalue_holm"] == pytest.approx(p)
        assert c["significant"] is (p < 0.05)
    json.dumps(out, allow_nan=False)
    assert ("anti-conservative" in out["bn"]["note"]) is (test == "paired_t")


def test_significance_uses_the_holm_adjusted_pvalue():
    out = compare_to_baseline(SCORES, "baseline", test="paired_t", n_train=270, n_test=30)
    bn, l2 = out["bn"], out["l2"]
    assert bn["significant"] and bn["better"] is True
    # l2: significant on its own p, not after Holm's adjustment for three comparisons
    assert l2["pvalue"] < 0.05 <= l2["pvalue_holm"]
    assert not l2["significant"] and l2["better"] is None
    only_l2 = compare_to_baseline(
        {"baseline": BASE, "l2": SCORES["l2"]}, "baseline", test="paired_t", n_train=270, n_test=30
    )
    assert only_l2["l2"]["pvalue_holm"] == only_l2["l2"]["pvalue"] and only_l2["l2"]["significant"]


def test_corrected_test_is_the_default_and_more_cautious_than_paired():
    assert DEFAULT_TEST == "corrected_t"
    out = compare_to_baseline(SCORES, "baseline", n_train=270, n_test=30)
    plain = compare_to_baseline(SCORES, "baseline", test="paired_t", n_train=270, n_test=30)
    for name in out:
        assert out[name]["test"] == "corrected_t"
        assert out[name]["pvalue"] > plain[name]["pvalue"]


def test_direction_per_split_sizes_and_confidence():
    losses = {k: [1 - v for v in vals] for k, vals in SCORES.items()}
    out = compare_to_baseline(
        losses, "baseline", n_train=[270] * 10, n_test=[30] * 10, higher_is_better=False, alpha=0.1
    )
    bn = out["bn"]
    assert bn["mean_diff"] < 0 and bn["better"] is True and bn["p_better"] > 0.9
    assert bn["n_train"] == [270] * 10 and bn["confidence"] == pytest.approx(0.9)
    assert bn["test_train_ratio"] == pytest.approx(30 / 270)
    ratio = sum(te / tr for tr, te in zip(range(270, 280), range(30, 40), strict=True)) / 10
    mixed = compare_to_baseline(
        SCORES, "baseline", n_train=list(range(270, 280)), n_test=list(range(30, 40))
    )
    assert mixed["bn"]["test_train_ratio"] == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test": "ttest"}, r"test must be one of \['corrected_t', '5x2cv_t', '5x2cv_f', "
                            r"'paired_t'\], got 'ttest'"),
        ({"alpha": 0.0}, r"alpha must be a finite number > 0 and < 1, got 0\.0"),
        ({"alpha": 1.0}, r"alpha must be a finite number > 0 and < 1"),
        ({"alpha": float("nan")}, r"alpha must be a finite number > 0 and < 1"),
        ({"rope": -0.01}, r"rope must be a finite number >= 0, got -0\.01"),
        ({"n_train": 0}, "n_train must be an integer >= 1"),
        ({"n_test": [30] * 3}, r"n_test must give one size per split \(5\), got 3"),
        ({"higher_is_better": 1}, "higher_is_better must be true or false"),
        ({"test": "5x2cv_t"}, r"test='5x2cv_t' needs the 10 splits of the '5x2' .* got 5"),
        ({"test": "5x2cv_f"}, r"test='5x2cv_f' needs the 10 splits"),
    ],
)  # fmt: skip
def test_bad_arguments_name_the_parameter(kwargs, match):
    scores = {"base": BASE[:5], "x": SCORES["bn"][:5]}
    args = {"test": "corrected_t", "n_train": 270, "n_test": 30, **kwargs}
    with pytest.raises(ValueError, match=match):
        compare_to_baseline(scores, "base", **args)


def test_bad_scores():
    kw = {"n_train": 270, "n_test": 30}
    with pytest.raises(ValueError, match="baseline must be one of"):
        compare_to_baseline(SCORES, "base", **kw)
    with pytest.raises(ValueError, match="at least two variants"):
        compare_to_baseline({"base": BASE}, "base", **kw)
    with pytest.raises(ValueError, match="one score per split for every variant"):
        compare_to_baseline({"base": BASE, "x": BASE[:5]}, "base", **kw)
    with pytest.raises(ValueError, match=r"scores\['x'\] must be finite"):
        compare_to_baseline({"base": [0.1, 0.2], "x": [0.1, math.inf]}, "base", **kw)
    with pytest.raises(ValueError, match="at least 2 splits"):
        compare_to_baseline({"base": [0.1], "x": [0.2]}, "base", **kw)


def test_check_comparison_up_front():
    assert check_comparison("5x2cv_f", 0.05, 0.0, n_splits=10) == ("5x2cv_f", 0.05, 0.0)
    assert check_comparison("5x2cv_t", 0.05, 0.01) == ("5x2cv_t", 0.05, 0.01)  # splits unknown yet
    with pytest.raises(ValueError, match="needs the 10 splits"):
        check_comparison("5x2cv_t", 0.05, 0.01, n_splits=20)
    with pytest.raises(ValueError, match="alpha must be"):
        check_comparison("corrected_t", "0.05", 0.01)


def test_identical_variant_is_not_significant_and_practically_equivalent():
    out = compare_to_baseline({"a": BASE, "b": list(BASE)}, "a", n_train=270, n_test=30)
    b = out["b"]
    assert b["pvalue"] == 1.0 and b["pvalue_holm"] == 1.0 and not b["significant"]
    assert b["p_equivalent"] == 1.0 and b["cohens_d"] == 0.0 and b["wilcoxon_pvalue"] == 1.0
    json.dumps(out, allow_nan=False)
