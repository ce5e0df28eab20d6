"""The study report: self-contained HTML (no external resources, data: URIs only), escaping,
analysis consistent with goodfit.select.stats, plots are PNGs, results are strict JSON."""

from __future__ import annotations

import base64
import json
import math
import re

import pytest

from goodfit.report import plots
from goodfit.report.html import render_report, write_report
from goodfit.select.analysis import analyze_results
from goodfit.select.stats import rank_variants

PNG = b"\x89PNG\r\n\x1a\n"
EVIL = '<script>alert("x")</script>'


def _history(epochs, overfit):
    return [
        {
            "epoch": e,
            "train_loss": 2.0 * math.exp(-e / 3),
            "val_loss": 0.1 + 2.0 * math.exp(-e / 3) + overfit * max(0, e - 6) ** 2 / 20,
            "train_accuracy": 1 - math.exp(-e / 3),
            "val_accuracy": 0.95 - math.exp(-e / 3),
        }
        for e in range(1, epochs + 1)
    ]


def _results():
    spec = {
        "baseline": ([0.90, 0.91, 0.92], [1.0, 1.0, 1.0], 1.0),
        "l2": ([0.95, 0.93, 0.96], [0.99, 0.99, 0.98], 0.0),
        f"drop{EVIL}": ([0.92, 0.92, 0.93], [0.97, 0.96, 0.97], 0.2),
    }
    variants = {}
    for name, (val, train, overfit) in spec.items():
        folds = [
            {
                "fold": k,
                "scores": {
                    "val_accuracy": val[k],
                    "train_accuracy": train[k],
                    "val_loss": 1 - val[k],
                    "train_loss": 1 - train[k],
                    "test_accuracy": val[k] - 0.01,
                },
                "history": _history(14, overfit),
                "best_epoch": 6,
            }
            for k in range(3)
        ]
        variants[name] = {"overrides": {"note": EVIL}, "folds": folds}
    variants["l2"]["folds"][0]["gradient_flow"] = {
        "layers": ["fc1", f"fc2{EVIL}"],
        "steps": [0, 5, 10, 15],
        "norms": [[0.5, 0.1], [0.4, 0.2], [0.3, None], [0.2, 0.0]],
        "flags": [{"epoch": 2, "step": 10, "layer": "fc2", "kind": "exploding", "value": None}],
        "every": 5,
    }
    return {
        "schema_version": 1,
        "title": f"study {EVIL}",
        "metric": "val_accuracy",
        "baseline": "baseline",
        "variants": variants,
        "schedule": {"name": "cosine", "steps": [0, 10, 20], "lr": [0.1, 0.05, 0.0]},
        "config": {"optimizer": {"name": EVIL}},
        "environment": {"torch": "2.x", "device": "cpu", "wall_seconds": 1.5},
        "dataset": {"name": EVIL},
    }


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert write_report(_results(), path) == path
    return path.read_text(encoding="utf-8")


def test_report_is_self_contained(report_html):
    html = report_html
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # no external resources of any kind: every src/href is a data: URI, no scripts, no links
    for attr, value in re.findall(r'\b(src|href)\s*=\s*["\']([^"\']*)', html, flags=re.I):
        assert value.startswith("data:image/png;base64,"), (attr, value[:40])
    assert not re.search(r"https?://", html)
    assert not re.search(r"<\s*(script|link|iframe|object|embed)\b", html, flags=re.I)
    assert "@import" not in html and "url(" not in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    # fold plot + 3 learning curves + 1 gradient flow + schedule
    assert len(images) == 6
    for data in images:
        assert base64.b64decode(data).startswith(PNG)


def test_report_escapes_user_strings(report_html):
    html = report_html
    assert "<script>" not in html and EVIL not in html
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert html.count(escaped) >= 4  # title, variant name, config, dataset, overrides, layer


def test_report_contents(report_html):
    html = report_html
    for text in (
        "Cross-validated scores",
        "Diagnosis: bias and variance",
        "Overfitting onset",
        "Learning curves",
        "Gradient flow",
        "Learning-rate schedule",
        "Resolved configuration",
        "Environment",
        "Use early stopping (train less)",
        "high variance",
    ):
        assert text in html, text


def test_analysis_matches_stats_and_is_strict_json():
    results = _results()
    a = analyze_results(results)
    direct = rank_variants(
        {
            n: [f["scores"]["val_accuracy"] for f in v["folds"]]
            for n, v in results["variants"].items()
        },
        True,
        baseline="baseline",
    )
    assert a["ranking"] == direct
    assert a["ranking"]["best"] == "l2"
    assert a["verdict"].startswith("Best variant: l2")
    assert a["diagnosis_basis"] == "accuracy"
    # reference = best validation error = 1 - mean(l2 val acc); baseline: train err 0, val err
    # 0.09 -> variance 0.09 > 0.02: high variance
    assert a["diagnosis"]["l2"]["reference_error"] == pytest.approx(1 - (0.95 + 0.93 + 0.96) / 3)
    assert a["diagnosis"]["baseline"]["diagnosis"] == "high_variance"
    assert a["onsets"]["l2"] == [None, None, None]
    assert all(o is not None for o in a["onsets"]["baseline"])
    assert a["gradient_flags"]["l2"][0]["fold"] == 0
    results["analysis"] = a
    json.loads(json.dumps(results, allow_nan=False))  # the results.json the runner writes


def test_analysis_uses_folds_every_variant_finished_and_loss_basis():
    results = _results()
    for v in results["variants"].values():
        for f in v["folds"]:
            del f["scores"]["train_accuracy"]
    results["variants"]["l2"]["folds"].pop()  # l2 finished folds 0 and 1 only
    a = analyze_results(results)
    assert a["folds"] == [0, 1]
    assert a["ranking"]["summaries"]["baseline"]["n"] == 2
    assert a["diagnosis_basis"] == "loss"
    results["metric"] = "val_loss"  # minimized, inferred from the name
    assert analyze_results(results)["higher_is_better"] is False


def test_minimal_results_render_without_optional_parts():
    results = {
        "metric": "val_accuracy",
        "variants": {"a": {"folds": [{"fold": 0, "scores": {"val_accuracy": 0.9}}]}},
    }
    html = render_report(results)
    assert "Best variant: a" in html and "Gradient flow" not in html
    with pytest.raises(ValueError, match="ranking metric"):
        analyze_results({"variants": results["variants"]})
    with pytest.raises(ValueError, match="at least one variant"):
        analyze_results({"metric": "val_accuracy", "variants": {}})


def test_plots_return_png_and_write_path(tmp_path):
    png = plots.fold_scores(
        {"a": [0.9, 0.92], "b": [0.95, 0.94]}, metric="acc", path=tmp_path / "f.png"
    )
    assert png.startswith(PNG) and (tmp_path / "f.png").read_bytes() == png
    assert plots.learning_curves([_history(5, 0.0)], onsets=[3]).startswith(PNG)
    assert plots.schedule_plot([0, 1, 2], [1.0, 0.1, 0.001]).startswith(PNG)
