"""Compare every variant of a study with its baseline over the same splits: the chosen test with
Holm's adjustment across the comparisons, the Wilcoxon check, the Bayesian correlated t-test and
the effect size, in one JSON-ready dict per variant.

Why not the plain paired t-test by default: the splits of k-fold (or repeated k-fold) share most of
their training data, so the per-split differences are correlated and ``var(d)/J`` underestimates
the variance of their mean; the plain test then rejects a true null more often than ``alpha``
(Dietterich 1998; Nadeau & Bengio 2003; Bouckaert & Frank 2004). The tests offered
(:data:`TESTS`):

- ``"corrected_t"``: corrected resampled t-test (Nadeau & Bengio 2003), any splits kind;
- ``"5x2cv_t"``: 5x2cv paired t-test (Dietterich 1998), the ``"5x2"`` splits kind only;
- ``"5x2cv_f"``: combined 5x2cv F-test (Alpaydın 1999), the ``"5x2"`` splits kind only;
- ``"paired_t"``: the plain paired t-test, kept for comparison; anti-conservative.

Example
-------
>>> from goodfit.select.compare import compare_to_baseline
>>> scores = {"base": [0.90, 0.91, 0.89, 0.90, 0.92], "l2": [0.93, 0.94, 0.92, 0.95, 0.94]}
>>> c = compare_to_baseline(scores, "base", test="corrected_t", n_train=400, n_test=100)
>>> round(c["l2"]["mean_diff"], 3), c["l2"]["significant"], round(c["l2"]["p_better"], 2)
(0.032, True, 0.98)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from goodfit.checks import check_bool, check_choice, check_real
from goodfit.select import stats

__all__ = [
    "DEFAULT_TEST",
    "DEFAULT_TEST_5X2",
    "FIVE_BY_TWO_TESTS",
    "TESTS",
    "check_comparison",
    "compare_to_baseline",
    "default_test",
]

#: The tests :func:`compare_to_baseline` can run.
TESTS = ("corrected_t", "5x2cv_t", "5x2cv_f", "paired_t")

#: Tests that need the 10 splits of the ``"5x2"`` splits kind.
FIVE_BY_TWO_TESTS = ("5x2cv_t", "5x2cv_f")

#: The test valid on any splits: :func:`compare_to_baseline`'s default, and a study's on splits
#: other than ``"5x2"``. ``benchmarks/study_calibration.py`` (300 datasets of 300 samples)
#: measured false-positive rates 0.003 / 0.013 (same learner / equal-accuracy learners) and power
#: 0.053 at a 2-point gap for it on stratified 5-fold.
DEFAULT_TEST = "corrected_t"

#: A study's default on its default ``"5x2"`` splits: the combined 5x2cv F-test, the most powerful
#: of the tests whose measured false-positive rate stayed at or below alpha (0.017 / 0.010, power
#: 0.070; the 5x2cv t-test 0.023 / 0.027, 0.067; the corrected t-test above). The lead is not
#: significant (McNemar p = 0.49 against the corrected t-test); the plain paired t-test exceeded
#: alpha (0.063 / 0.073) and is never a default.
DEFAULT_TEST_5X2 = "5x2cv_f"


def default_test(splits_kind: str) -> str:
    """The default test for a study on ``splits_kind``: :data:`DEFAULT_TEST_5X2` on ``"5x2"``,
    else :data:`DEFAULT_TEST` (the 5x2cv tests need those ten splits)."""
    return DEFAULT_TEST_5X2 if splits_kind == "5x2" else DEFAULT_TEST


_NOTES = {
    "corrected_t": "corrected resampled t-test (Nadeau & Bengio 2003)",
    "5x2cv_t": "5x2cv paired t-test (Dietterich 1998)",
    "5x2cv_f": "combined 5x2cv F-test (Alpaydın 1999)",
    "paired_t": (
        "plain paired t-test: ignores the overlap of the training sets and is anti-conservative "
        "on cross-validation splits (Dietterich 1998; Nadeau & Bengio 2003)"
    ),
}


def check_comparison(
    test: str, alpha: float, rope: float, n_splits: int | None = None
) -> tuple[str, float, float]:
    """Validate the options of :func:`compare_to_baseline` up front (before any training).

    ``test`` must be one of :data:`TESTS`, ``alpha`` in ``(0, 1)``, ``rope >= 0``; the 5x2cv tests
    need ``n_splits == 10`` (the ``"5x2"`` splits kind). Raises ``ValueError`` naming the
    parameter; returns ``(test, alpha, rope)``.
    """
    test = check_choice("test", test, TESTS)
    alpha = check_real("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)
    rope = check_real("rope", rope, low=0.0)
    if test in FIVE_BY_TWO_TESTS and n_splits is not None and n_splits != 10:
        raise ValueError(
            f"test={test!r} needs the 10 splits of the '5x2' splits kind (5 repetitions of a "
            f"stratified 2-fold split), got {n_splits} splits; use splits kind '5x2' or "
            "test='corrected_t'"
        )
    return test, alpha, rope


def _scores(scores: Mapping[str, Sequence[float]], baseline: str) -> dict[str, np.ndarray]:
    if not isinstance(scores, Mapping) or len(scores) < 2:
        got = f"{len(scores)} variants" if isinstance(scores, Mapping) else type(scores).__name__
        raise ValueError(
            "scores must map at least two variants (a baseline and one more) to their per-split "
            f"scores, got {got}"
        )
    if baseline not in scores:
        raise ValueError(f"baseline must be one of {list(scores)}, got {baseline!r}")
    out = {}
    for name, values in scores.items():
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"scores[{name!r}] must be finite numbers, got {arr.tolist()}")
        out[name] = arr
    sizes = {name: int(arr.size) for name, arr in out.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"scores must hold one score per split for every variant, got {sizes}")
    if out[baseline].size < 2:
        raise ValueError(f"scores need at least 2 splits per variant, got {out[baseline].size}")
    return out


def _sizes(value: Any) -> int | list[int]:
    arr = np.asarray(value)
    return int(arr) if arr.ndim == 0 else [int(v) for v in arr]


def _test_pvalue(
    test: str, diff: np.ndarray, corrected: dict, paired: dict
) -> tuple[Any, Any, float]:
    """(statistic, df, p) of the chosen test."""
    if test == "corrected_t":
        return corrected["statistic"], corrected["df"], corrected["pvalue"]
    if test == "paired_t":
        p = paired["t_pvalue"]
        return paired["t_stat"], int(diff.size) - 1, 1.0 if p is None else p
    res = (stats.paired_ttest_5x2cv if test == "5x2cv_t" else stats.combined_ftest_5x2cv)(diff)
    return res["statistic"], res["df"], res["pvalue"]


def compare_to_baseline(
    scores: Mapping[str, Sequence[float]],
    baseline: str,
    *,
    test: str = DEFAULT_TEST,
    n_train: int | Sequence[int],
    n_test: int | Sequence[int],
    alpha: float = stats.ALPHA,
    rope: float = 0.01,
    higher_is_better: bool = True,
) -> dict[str, dict[str, Any]]:
    """Compare each variant with ``baseline`` over the same splits.

    ``scores[name][j]`` is variant ``name``'s score on split ``j`` (every variant on the same
    splits, in the order the splitter yields them; for the 5x2cv tests the 10 splits of the
    ``"5x2"`` kind). ``d = scores[variant] - scores[baseline]`` split by split. ``n_train`` /
    ``n_test`` are the sizes of each split's training and validation parts: one number each, or
    one per split when splits differ in size (then the tests use the mean ratio
    ``mean_j(n_test_j / n_train_j)``, :func:`goodfit.select.stats.split_ratio`).

    Per variant:

    - ``test``'s two-sided ``pvalue`` (:data:`TESTS`) and its Holm–Bonferroni adjustment over all
      compared variants, ``pvalue_holm`` (:func:`goodfit.select.stats.holm`);
      ``significant = pvalue_holm < alpha``; ``better`` (True/False when significant, in the
      metric's direction, else None);
    - ``mean_diff`` with its corrected ``1 - alpha`` interval ``ci_low, ci_high`` (Nadeau–Bengio
      variance, whatever the test; per comparison, not adjusted for multiplicity);
    - ``wilcoxon_pvalue`` (raw, the distribution-free check);
    - ``p_better, p_equivalent, p_worse`` of the Bayesian correlated t-test with ROPE
      ``[-rope, rope]`` (:func:`goodfit.select.stats.bayesian_correlated_ttest`);
    - ``cohens_d`` = mean(d) / sd(d) (:func:`goodfit.select.stats.cohens_d`).

    Returns ``{variant: {"mean_diff", "ci_low", "ci_high", "confidence", "test", "statistic",
    "df", "pvalue", "pvalue_holm", "alpha", "significant", "better", "wilcoxon_pvalue",
    "p_better", "p_equivalent", "p_worse", "rope", "cohens_d", "n_splits", "n_train", "n_test",
    "test_train_ratio", "higher_is_better", "note"}}`` for every variant but the baseline, in
    the order of ``scores``. Raises ``ValueError`` naming the parameter for an unknown ``test``,
    ``alpha`` outside (0, 1), a negative ``rope``, a 5x2cv test without 10 splits, bad sizes or
    scores.
    """
    arrays = _scores(scores, baseline)
    j = int(arrays[baseline].size)
    test, alpha, rope = check_comparison(test, alpha, rope, n_splits=j)
    higher_is_better = check_bool("higher_is_better", higher_is_better)
    stats.split_ratio(n_train, n_test, j)  # validates the sizes
    base = arrays[baseline]
    out: dict[str, dict[str, Any]] = {}
    for name, arr in arrays.items():
        if name == baseline:
            continue
        diff = arr - base
        corrected = stats.corrected_ttest(
            diff, n_train=n_train, n_test=n_test, confidence=1 - alpha
        )
        paired = stats.compare_paired(base, arr, alpha=alpha, higher_is_better=higher_is_better)
        statistic, df, pvalue = _test_pvalue(test, diff, corrected, paired)
        bayes = stats.bayesian_correlated_ttest(
            diff, n_train=n_train, n_test=n_test, rope=rope, higher_is_better=higher_is_better
        )
        notes = [_NOTES[test]] + ([paired["note"]] if paired["note"] else [])
        out[name] = {
            "mean_diff": corrected["mean_diff"],
            "ci_low": corrected["ci_low"],
            "ci_high": corrected["ci_high"],
            "confidence": corrected["confidence"],
            "test": test,
            "statistic": statistic,
            "df": df,
            "pvalue": pvalue,
            "pvalue_holm": None,
            "alpha": alpha,
            "significant": False,
            "better": None,
            "wilcoxon_pvalue": paired["wilcoxon_pvalue"],
            "p_better": bayes["p_better"],
            "p_equivalent": bayes["p_equivalent"],
            "p_worse": bayes["p_worse"],
            "rope": rope,
            "cohens_d": stats.cohens_d(diff),
            "n_splits": j,
            "n_train": _sizes(n_train),
            "n_test": _sizes(n_test),
            "test_train_ratio": corrected["test_train_ratio"],
            "higher_is_better": higher_is_better,
            "note": "; ".join(notes),
        }
    adjusted = stats.holm([c["pvalue"] for c in out.values()])
    for c, p in zip(out.values(), adjusted, strict=True):
        c["pvalue_holm"] = p
        c["significant"] = p < alpha
        if c["significant"]:
            c["better"] = (c["mean_diff"] > 0) == higher_is_better
    return out
