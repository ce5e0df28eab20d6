"""The analysis of a study's results: ranking with paired statistics over the folds, the
bias/variance diagnosis, overfitting onsets, gradient flags and the verdict in words.

Takes the ``results`` dict a study writes as ``results.json`` (its schema is in
:mod:`goodfit.report.html`) and returns plain data; :mod:`goodfit.report` only draws it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from goodfit.diagnose.bias_variance import (
    DEFAULT_BIAS_THRESHOLD,
    DEFAULT_VARIANCE_THRESHOLD,
    diagnose_variants,
)
from goodfit.diagnose.overfitting import overfitting_onset
from goodfit.select.compare import DEFAULT_TEST, compare_to_baseline
from goodfit.select.stats import ALPHA, higher_is_better, rank_variants, summarize

__all__ = ["SCHEMA_VERSION", "analyze_results", "format_number", "format_pvalue"]

SCHEMA_VERSION = 1


def _fold_scores(results: Mapping[str, Any], metric: str) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for name, variant in results["variants"].items():
        scores = {}
        for i, fold in enumerate(variant.get("folds", [])):
            value = fold.get("scores", {}).get(metric)
            if value is not None and math.isfinite(value):
                scores[int(fold.get("fold", i))] = float(value)
        out[name] = scores
    return out


def _mean_score(variant: Mapping[str, Any], key: str) -> float | None:
    vals = [f.get("scores", {}).get(key) for f in variant.get("folds", [])]
    vals = [float(v) for v in vals if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def _diagnosis(
    results: Mapping[str, Any], variants: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Seed 001's bias/variance table per variant, on errors ``1 - accuracy`` (train in eval
    mode, validation on the held-out part) when every variant has them, else on losses."""
    basis = "accuracy"
    errors: dict[str, tuple[float, float]] = {}
    for name, v in variants.items():
        tr, va = _mean_score(v, "train_accuracy"), _mean_score(v, "val_accuracy")
        if tr is not None and va is not None:
            errors[name] = (1.0 - tr, 1.0 - va)
    if len(errors) != len(variants):
        basis, errors = "loss", {}
        for name, v in variants.items():
            tr, va = _mean_score(v, "train_loss"), _mean_score(v, "val_loss")
            if tr is not None and va is not None:
                errors[name] = (tr, va)
    thresholds = results.get("thresholds") or {}
    diagnosis = (
        diagnose_variants(
            errors,
            results.get("reference_error"),
            bias_threshold=thresholds.get("bias", DEFAULT_BIAS_THRESHOLD),
            variance_threshold=thresholds.get("variance", DEFAULT_VARIANCE_THRESHOLD),
        )
        if errors
        else {}
    )
    return basis, diagnosis


def analyze_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """Statistics and diagnosis of a study's ``results`` (schema in the module docstring).

    Returns a JSON-ready dict: ``metric``, ``higher_is_better``, ``folds`` (fold ids used: those
    every variant finished), ``ranking`` (:func:`goodfit.select.stats.rank_variants`),
    ``metrics`` (``{metric: {variant: summarize(...)}}`` for every score key),
    ``diagnosis`` (:func:`goodfit.diagnose.bias_variance.diagnose_variants`) and
    ``diagnosis_basis`` ("accuracy" or "loss"), ``reference_error`` and ``reference_source``
    (what the bias is measured from), ``comparisons`` (each variant against the baseline with
    the study's ``test``: :func:`goodfit.select.compare.compare_to_baseline`), ``onsets``
    (overfitting onset per fold), ``gradient_flags`` (per variant), ``verdict`` (one paragraph
    of plain text).
    """
    variants = results.get("variants") or {}
    if not variants:
        raise ValueError("results['variants'] must name at least one variant, got none")
    metric = results.get("metric")
    if not metric:
        raise ValueError("results['metric'] must name the ranking metric, e.g. 'val_accuracy'")
    hib = results.get("higher_is_better")
    hib = higher_is_better(metric) if hib is None else bool(hib)
    per_variant = _fold_scores(results, metric)
    empty = [n for n, s in per_variant.items() if not s]
    if empty:
        raise ValueError(f"variants {empty} have no fold with a finite {metric!r} score")
    common = sorted(set.intersection(*(set(s) for s in per_variant.values())))
    if not common:
        raise ValueError("the variants share no finished fold, so they cannot be compared")
    baseline = results.get("baseline") or next(iter(variants))
    fold_scores = {n: [s[f] for f in common] for n, s in per_variant.items()}
    ranking = rank_variants(
        fold_scores,
        hib,
        baseline=baseline,
        alpha=ALPHA,
    )
    keys: dict[str, None] = {}
    for v in variants.values():
        for fold in v.get("folds", []):
            keys.update(dict.fromkeys(fold.get("scores", {})))
    metrics: dict[str, dict[str, Any]] = {}
    for key in keys:
        per = _fold_scores(results, key)
        metrics[key] = {n: summarize(list(s.values())) for n, s in per.items() if s}

    basis, diagnosis = _diagnosis(results, variants)
    onsets = {
        name: [overfitting_onset(f.get("history", [])) for f in v.get("folds", [])]
        for name, v in variants.items()
    }
    flags = {
        name: [
            dict(flag, fold=f.get("fold", i))
            for i, f in enumerate(v.get("folds", []))
            for flag in (f.get("gradient_flow") or {}).get("flags", [])
        ]
        for name, v in variants.items()
    }
    analysis = {
        "metric": metric,
        "higher_is_better": hib,
        "folds": common,
        "ranking": ranking,
        "comparisons": _comparisons(results, fold_scores, common, hib),
        "test": results.get("test") or DEFAULT_TEST,
        "reference_error": results.get("reference_error"),
        "reference_source": "given"
        if results.get("reference_error") is not None
        else "the best variant's mean validation error (no [study] reference_error given)",
        "metrics": metrics,
        "diagnosis": diagnosis,
        "diagnosis_basis": basis,
        "onsets": onsets,
        "gradient_flags": flags,
    }
    analysis["verdict"] = _verdict(analysis)
    return analysis


def format_number(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals (scientific when tiny or huge), ``–`` when missing."""
    if x is None or not math.isfinite(x):
        return "–"
    if x != 0 and (abs(x) < 10**-digits or abs(x) >= 1e6):
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def format_pvalue(p: float | None) -> str:
    """A p-value to 4 decimals, ``< 0.0001`` below that, ``–`` when missing."""
    if p is None:
        return "–"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _split_sizes(results: Mapping[str, Any], folds: list[int]) -> tuple[list[int], list[int]]:
    """Per-split training and validation sizes for the corrected tests: stored with each fold
    (``n_train``, ``n_test``), else derived for k-fold from the dataset's size."""
    first = next(iter(results["variants"].values()))
    by_id = {int(f.get("fold", i)): f for i, f in enumerate(first.get("folds", []))}
    if all("n_train" in by_id.get(f, {}) for f in folds):
        return [int(by_id[f]["n_train"]) for f in folds], [int(by_id[f]["n_test"]) for f in folds]
    k = len(folds)
    n = int((results.get("dataset") or {}).get("n_train") or 100 * k)
    return [n - n // k] * k, [n // k] * k


def _comparisons(
    results: Mapping[str, Any], scores: dict[str, list[float]], folds: list[int], hib: bool
) -> dict[str, dict[str, Any]]:
    """Each variant against the baseline: the study's test, Holm-adjusted, with the corrected
    CI, the Wilcoxon check and the Bayesian correlated t-test (:mod:`goodfit.select.compare`)."""
    if len(scores) < 2 or len(folds) < 2:
        return {}
    n_train, n_test = _split_sizes(results, folds)
    return compare_to_baseline(
        scores,
        results.get("baseline") or next(iter(scores)),
        test=results.get("test") or DEFAULT_TEST,
        n_train=n_train,
        n_test=n_test,
        alpha=results.get("alpha", ALPHA),
        rope=results.get("rope", 0.01),
        higher_is_better=hib,
    )


def _verdict(a: Mapping[str, Any]) -> str:
    """The study's answer in words: the best variant, whether it beats the baseline by the
    chosen (Holm-adjusted) test, the Bayesian probabilities, and its diagnosis."""
    r = a["ranking"]
    best, metric = r["best"], a["metric"]
    s = r["summaries"][best]
    fmt = format_number
    text = f"Best variant: {best} with {metric} {fmt(s['mean'])}"
    if s["std"] is not None:
        text += f" ± {fmt(s['std'])} (95% CI {fmt(s['ci_low'])} to {fmt(s['ci_high'])})"
    text += f" over {s['n']} splits."
    if r["runner_up"] is not None:
        text += f" Margin over the runner-up {r['runner_up']}: {fmt(r['margin_over_runner_up'])}."
    c = a.get("comparisons", {}).get(best)
    if best == r["baseline"]:
        text += " The baseline itself is best."
    elif c is not None:
        word = "significantly better than" if c["significant"] else "not significantly better than"
        text += (
            f" {best} is {word} the baseline ({r['baseline']}): difference "
            f"{fmt(c['mean_diff'])} ({100 * c['confidence']:.0f}% CI {fmt(c['ci_low'])} to "
            f"{fmt(c['ci_high'])}), {c['test']} p = {format_pvalue(c['pvalue'])}, "
            f"Holm-adjusted p = {format_pvalue(c['pvalue_holm'])} over "
            f"{len(a['comparisons'])} comparisons at alpha = {c['alpha']:g}. "
            f"{best} is better than the baseline with probability {c['p_better']:.2f}; the "
            f"chance they are practically equivalent (within ±{c['rope']:g}) is "
            f"{c['p_equivalent']:.2f}."
        )
    d = a["diagnosis"].get(best)
    if d:
        text += f" Diagnosis of {best}: {d['label']}."
        if d["diagnosis"] != "good_fit":
            text += " Remedies: " + "; ".join(d["remedies"]) + "."
    return text
