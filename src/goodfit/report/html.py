"""The study report: one self-contained ``report.html`` (inline CSS, plots inlined as base64 PNG,
no script, no external resource), built from the study's ``results`` dict.

``results`` schema (version 1)
------------------------------
A JSON-serializable dict; the study runner writes the same dict as ``results.json``. Keys marked
(opt) may be absent.

.. code-block:: text

    {
      "schema_version": 1,
      "title": str (opt),                       # report heading
      "dataset": {"name": str, ...} (opt),      # shown as key/value pairs (n_train, n_test, ...)
      "metric": str,                            # ranking metric, a key of every fold's "scores",
                                                # e.g. "val_accuracy" or "val_loss"
      "higher_is_better": bool (opt),           # default: inferred from the metric's name
      "baseline": str (opt),                    # default: the first variant
      "reference_error": float | null (opt),    # bias/variance reference; null: best variant's
      "thresholds": {"bias": float, "variance": float} (opt),   # default 0.02 / 0.02
      "splits": {"kind": str, "params": {...}, "seed": int} (opt),
      "variants": {                             # in display order
        "<variant>": {
          "overrides": {"<dotted.key>": value, ...} (opt),
          "description": str (opt),
          "folds": [                            # one entry per finished run (fold)
            {
              "fold": int,                      # same ids across variants (paired tests)
              "scores": {"val_accuracy": float, "val_loss": float,
                         "train_accuracy": float, "train_loss": float,
                         "test_accuracy": float, ...},   # final/best-epoch numbers
              "history": [{"epoch": int, "train_loss": float, "val_loss": float,
                           "train_accuracy": float, "val_accuracy": float, "lr": float, ...}],
              "best_epoch": int (opt), "wall_seconds": float (opt),
              "gradient_flow": GradientFlowCallback.to_dict() (opt)
            }, ...
          ]
        }, ...
      },
      "schedule": {"name": str (opt), "steps": [int], "lr": [float]} (opt),
      "config": dict | str (opt),               # the resolved config (dict, or TOML text)
      "environment": {"python": str, "torch": str, "goodfit": str, "device": str,
                      "platform": str, "wall_seconds": float, ...} (opt),
      "analysis": dict (opt)                    # analyze_results(results); computed if absent
    }

For the bias/variance diagnosis the errors are ``1 - accuracy`` from ``train_accuracy`` and
``val_accuracy`` (mean over folds) when present, else ``train_loss`` / ``val_loss`` (then the
thresholds are in loss units). ``train_accuracy`` should be measured in eval mode on the training
data; the loop's running training accuracy (dropout and augmentation active) overstates the
training error.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from goodfit.diagnose.bias_variance import TABLE
from goodfit.select.analysis import analyze_results, format_number, format_pvalue
from goodfit.select.stats import ALPHA

__all__ = ["render_report", "write_report"]


# -- rendering -----------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0;background:#f6f7f9;color:#1d2330;line-height:1.45}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh;
 box-shadow:0 0 0 1px #e3e6eb}
h1{font-size:1.6rem;margin:0 0 4px}h2{font-size:1.2rem;margin:32px 0 10px;
 border-bottom:2px solid #e3e6eb;padding-bottom:4px}h3{font-size:1rem;margin:18px 0 6px}
.sub{color:#5b6475;font-size:.9rem}
.verdict{background:#eef6ee;border-left:5px solid #2e7d32;padding:12px 16px;margin:16px 0;
 font-size:1.02rem}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin:8px 0}
th,td{border-bottom:1px solid #e3e6eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.best td{background:#f0f8f0;font-weight:600}
.sig{color:#2e7d32;font-weight:700}.worse{color:#c62828;font-weight:700}
.tag{display:inline-block;padding:1px 7px;border-radius:9px;font-size:.8rem;font-weight:600}
.good_fit{background:#e3f2e3;color:#1b5e20}.high_bias{background:#fff3e0;color:#e65100}
.high_variance{background:#fde7e9;color:#b71c1c}
.high_bias_high_variance{background:#f3e5f5;color:#6a1b9a}
img{max-width:100%;height:auto;display:block;margin:8px 0;border:1px solid #eceef2}
pre{background:#f6f8fa;border:1px solid #e3e6eb;padding:10px;overflow:auto;font-size:.8rem;
 max-height:420px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.grid2 figure{margin:0}.grid2 figcaption{font-weight:600;font-size:.9rem}
.note{color:#5b6475;font-size:.84rem}ul{margin:4px 0 4px 20px;padding:0}
table.kv{width:auto;min-width:360px}table.kv th{width:160px}
code{background:#f1f3f6;padding:0 3px;border-radius:3px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _kv_table(d: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(format_number(v) if isinstance(v, float) else v)}</td></tr>"
        for k, v in d.items()
    )
    return f'<table class="kv">{rows}</table>'


_TEST_NAMES = {
    "corrected_t": "the corrected resampled t-test (Nadeau & Bengio 2003)",
    "5x2cv_t": "the 5x2cv paired t-test (Dietterich 1998)",
    "5x2cv_f": "the combined 5x2cv F-test (Alpaydın 1999)",
    "paired_t": "the plain paired t-test",
}
_TEST_WHY = {
    "corrected_t": "The splits share most of their training data, so the per-split differences "
    "are correlated and the plain paired t-test underestimates the variance of their mean; this "
    "test inflates it by (1/J + n_test/n_train) (J splits).",
    "5x2cv_t": "Five repetitions of a 2-fold split keep the two halves' training sets disjoint; "
    "the test uses the first repetition's difference over the pooled variance estimate.",
    "5x2cv_f": "Five repetitions of a 2-fold split; the F statistic pools all ten differences, "
    "which is more robust than the 5x2cv t-test.",
    "paired_t": "<b>Anti-conservative</b>: it ignores that the splits' training sets overlap, so "
    "its false-positive rate exceeds alpha on cross-validation (Dietterich 1998); shown for "
    "comparison only.",
}


def _comparison_cells(c: Mapping[str, Any] | None) -> list[str]:
    if c is None:
        return ['<td class="num">baseline</td>'] + ['<td class="num">–</td>'] * 6 + ["<td></td>"]
    delta = ("+" if (c["mean_diff"] or 0) >= 0 else "") + format_number(c["mean_diff"])
    ci = f"{format_number(c['ci_low'])} – {format_number(c['ci_high'])}"
    mark = ""
    if c["significant"]:
        cls, word = ("sig", "better") if c["better"] else ("worse", "worse")
        mark = f'<span class="{cls}" title="Holm-adjusted p &lt; {c["alpha"]:g}">* {word}</span>'
    probs = f"{c['p_better']:.2f} / {c['p_equivalent']:.2f} / {c['p_worse']:.2f}"
    return [
        f'<td class="num">{_e(delta)}</td><td class="num">{ci}</td>',
        f'<td class="num">{format_pvalue(c["pvalue"])}</td>',
        f'<td class="num">{format_pvalue(c["pvalue_holm"])}</td>',
        f'<td class="num">{format_pvalue(c["wilcoxon_pvalue"])}</td>',
        f'<td class="num">{probs}</td>',
        f'<td class="num">{format_number(c["cohens_d"], 2)}</td><td>{mark}</td>',
    ]


def _scores_table(results: Mapping[str, Any], a: Mapping[str, Any]) -> str:
    r, metric = a["ranking"], a["metric"]
    comparisons = a.get("comparisons", {})
    # the same metric on the test set (never in any split), if the runs measured it, and the
    # other held-out accuracies (clean next to robust, each task of a multitask study)
    extra = [metric.replace("val_", "test_", 1)]
    extra += sorted(k for k in a["metrics"] if k.startswith("val_") and "accuracy" in k)
    extra = [k for k in dict.fromkeys(extra) if k != metric and k in a["metrics"]]
    # ensembles: the members' mean score and the diversity (mean pairwise disagreement)
    extra += [
        k for k in ("val_member_accuracy", "val_member_loss", "val_diversity") if k in a["metrics"]
    ]
    head = (
        "<tr><th>#</th><th>variant</th>"
        f"<th>{_e(metric)} mean ± std</th><th>Δ vs baseline</th><th>Δ CI (corrected)</th>"
        "<th>p</th><th>p (Holm)</th><th>Wilcoxon p</th>"
        "<th>P(better / equiv. / worse)</th><th>Cohen's d</th><th></th>"
        + "".join(f"<th>{_e(k)} mean ± std</th>" for k in extra)
        + "</tr>"
    )
    rows = []
    for rank, name in enumerate(r["order"], start=1):
        s = r["summaries"][name]
        cells = [
            f'<td class="num">{rank}</td><td>{_e(name)}</td>',
            f'<td class="num">{format_number(s["mean"])} ± {format_number(s["std"])}</td>',
            *_comparison_cells(comparisons.get(name)),
        ]
        for k in extra:
            m = a["metrics"][k].get(name)
            cells.append(
                f'<td class="num">{format_number(m["mean"])} ± {format_number(m["std"])}</td>'
                if m
                else '<td class="num">–</td>'
            )
        cls = ' class="best"' if name == r["best"] else ""
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>{_scores_note(r, a, comparisons)}"


def _scores_note(r: Mapping[str, Any], a: Mapping[str, Any], comparisons: Mapping) -> str:
    n, test = len(a["folds"]), a.get("test", "corrected_t")
    first = next(iter(comparisons.values()), None)
    alpha = first["alpha"] if first else ALPHA
    rope = first["rope"] if first else 0.01
    return (
        f'<p class="note">Mean and sample standard deviation over the {n} splits every variant '
        f"finished. Each variant is compared with the baseline <b>{_e(r['baseline'])}</b> split "
        f"by split with {_TEST_NAMES.get(test, _e(test))}. {_TEST_WHY.get(test, '')} "
        f"<b>p (Holm)</b>: adjusted for the {len(comparisons)} comparisons with the baseline "
        f"(Holm–Bonferroni); <b>*</b> marks an adjusted p &lt; {alpha:g}. Δ CI: the "
        f"{100 * (1 - alpha):.0f}% interval of the mean difference with the corrected variance. "
        f"Wilcoxon p: the distribution-free check (with {n} splits its exact p cannot go below "
        f"{format_pvalue(2.0 / 2**n)}). P(better / equiv. / worse): the Bayesian correlated "
        "t-test (Corani & Benavoli "
        f"2015) with a region of practical equivalence of ±{rope:g}.</p>"
    )


def _diagnosis_section(a: Mapping[str, Any]) -> str:
    d = a["diagnosis"]
    if not d:
        return "<p>No training/validation scores to diagnose.</p>"
    basis = a["diagnosis_basis"]
    unit = "error (1 − accuracy)" if basis == "accuracy" else "loss"
    first = next(iter(d.values()))
    rows = []
    for name, x in d.items():
        remedies = "".join(f"<li>{_e(t)}</li>" for t in x["remedies"])
        bias = format_number(x["bias"])
        if x.get("bias_below_reference"):
            bias = "0 (train below the reference)"
        rows.append(
            f"<tr><td>{_e(name)}</td><td class='num'>{format_number(x['train_error'])}</td>"
            f"<td class='num'>{format_number(x['val_error'])}</td><td class='num'>{bias}</td>"
            f"<td class='num'>{format_number(x['variance'])}</td>"
            f"<td><span class='tag {_e(x['diagnosis'])}'>{_e(x['label'])}</span></td>"
            f"<td><ul>{remedies}</ul></td></tr>"
        )
    seed_rows = "".join(
        f"<tr><td>{_e(t)}</td><td>{_e(v)}</td><td>{_e(c)}</td><td>{_e('; '.join(s))}</td></tr>"
        for t, v, c, s in TABLE
    )
    source = a.get("reference_source") or "given"
    where = (
        ""
        if source == "given"
        else f" ({_e(source)}; set [study] reference_error to a "
        "human-level or Bayes error estimate you know for a bias measured from it)"
    )
    return (
        f"<p>Training and validation {unit}, mean over folds, against the reference error "
        f"<b>{format_number(first['reference_error'])}</b>{where}. Bias = max(train − reference, "
        "0): a training error under an estimated reference is no negative bias (high above "
        f"{format_number(first['bias_threshold'])}); variance = validation − train (high above "
        f"{format_number(first['variance_threshold'])}).</p>"
        "<table><tr><th>variant</th><th>train</th><th>validation</th><th>bias</th>"
        "<th>variance</th><th>diagnosis</th><th>recommended remedies</th></tr>"
        + "".join(rows)
        + "</table><h3>The rule (seed 001, “Overfitting Challenge (What to do?)”)</h3>"
        "<table><tr><th>Training Error</th><th>Valid Error</th><th>Cause</th><th>Solution</th>"
        f"</tr>{seed_rows}</table>"
        '<p class="note">High training and validation error at once with a large gap is not a '
        "row of the table: it is reported as “high bias and high variance” with both rows' "
        "remedies.</p>"
    )


def _onset_section(a: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    rows = []
    for name, onsets in a["onsets"].items():
        folds = results["variants"][name].get("folds", [])
        best = [f.get("best_epoch") for f in folds]
        found = [o for o in onsets if o is not None]
        text = ", ".join("–" if o is None else str(o) for o in onsets) if onsets else "no folds"
        summary = (
            f"{len(found)} of {len(onsets)} folds overfit (median onset epoch "
            f"{sorted(found)[len(found) // 2]})"
            if found
            else "no overfitting detected"
        )
        best_txt = ", ".join("–" if b is None else str(b) for b in best)
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(summary)}</td><td>{_e(text)}</td>"
            f"<td>{_e(best_txt)}</td></tr>"
        )
    return (
        "<table><tr><th>variant</th><th>summary</th><th>onset epoch per fold</th>"
        "<th>best epoch per fold</th></tr>" + "".join(rows) + "</table>"
        '<p class="note">Onset: the first epoch where the validation loss (centred moving median '
        "of 5 epochs) reaches its minimum and then rises by more than 1% while the training loss "
        "still falls, with at least 3 epochs after it.</p>"
    )


def _lr_curvature_section(results: Mapping[str, Any]) -> str:
    """LR range test (seed 000's reading of the curve) and curvature (largest stable rate
    2/lambda_max, seed 000; minimum vs saddle, seed 001) of each variant's first fold, when the
    study recorded them (``[study] lr_find = true`` / ``curvature = true``)."""
    lr_rows, curv_rows, curves = [], [], {}
    for name, v in results["variants"].items():
        first = (v.get("folds") or [{}])[0]
        lf, cv = first.get("lr_find"), first.get("curvature")
        if lf:
            curves[name] = lf
            lr_rows.append(
                f"<tr><td>{_e(name)}</td><td class='num'>{format_number(lf.get('suggestion'))}</td>"
                f"<td>{_e(lf.get('reading', ''))}</td></tr>"
            )
        if cv:
            curv_rows.append(
                f"<tr><td>{_e(name)}</td><td class='num'>{format_number(cv.get('lambda_max'))}</td>"
                f"<td class='num'>{format_number(cv.get('lambda_min'))}</td>"
                f"<td class='num'>{format_number(cv.get('trace'))}</td>"
                f"<td class='num'>{format_number(cv.get('max_stable_lr'))}</td>"
                f"<td>{_e(cv.get('verdict', ''))}</td></tr>"
            )
    parts: list[str] = []
    if lr_rows:
        from matplotlib.figure import Figure

        from goodfit.atomic import figure_to_png

        fig = Figure(figsize=(7.5, 3.6), layout="constrained")
        ax = fig.add_subplot()
        for name, lf in curves.items():
            pts = [(x, y) for x, y in zip(lf["lrs"], lf["smoothed"], strict=False)
                   if x is not None and y is not None]  # fmt: skip
            if pts:
                ax.plot(*zip(*pts, strict=True), label=name)
        ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed loss",
               title="LR range test (first fold, at initialization)")  # fmt: skip
        ax.legend(fontsize=8)
        parts.append("<h2>Learning-rate range test</h2>")
        parts.append(_img(figure_to_png(fig), "LR range test per variant"))
        parts.append(
            "<table><tr><th>variant</th><th>suggested lr</th><th>reading (seed 000)</th></tr>"
            + "".join(lr_rows) + "</table>"
        )  # fmt: skip
    if curv_rows:
        parts.append(
            "<h2>Curvature at the trained weights</h2><table><tr><th>variant</th>"
            "<th>&lambda;<sub>max</sub></th><th>&lambda;<sub>min</sub></th><th>trace</th>"
            "<th>largest stable lr (2/&lambda;<sub>max</sub>)</th><th>verdict</th></tr>"
            + "".join(curv_rows) + "</table>"
            '<p class="note">Hessian of the training loss (first fold, up to 1024 training '
            "samples, eval mode); a negative &lambda;<sub>min</sub> beyond round-off means a "
            "saddle point, not a minimum (seed 001).</p>"
        )  # fmt: skip
    return "\n".join(parts)


def _landscape_section(results: Mapping[str, Any]) -> str:
    """Each variant's 1-D loss landscape along a filter-normalized random direction (Li et al.
    2018; first fold, ``[study] landscape = true``) and its sharpness: the loss rise at
    distance 0.5 and 1 from the solution."""
    curves = {name: (v.get("folds") or [{}])[0].get("landscape")
              for name, v in results["variants"].items()}  # fmt: skip
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return ""
    from matplotlib.figure import Figure

    from goodfit.atomic import figure_to_png

    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    rows = []
    for name, ls in curves.items():
        (line,) = ax.plot(ls["axes"][0], ls["losses"], label=f"{name} (train)")
        if ls.get("val_losses"):
            ax.plot(ls["axes"][0], ls["val_losses"], ls="--", color=line.get_color(),
                    label=f"{name} (held out)")  # fmt: skip
        rows.append(
            f"<tr><td>{_e(name)}</td><td class='num'>{format_number(ls['center_loss'])}</td>"
            f"<td class='num'>{format_number(ls.get('rise_at_0.5'))}</td>"
            f"<td class='num'>{format_number(ls.get('rise_at_1'))}</td></tr>"
        )
    ax.set(xlabel="distance along a filter-normalized random direction", ylabel="loss",
           title="Loss landscape around each solution (first fold)")  # fmt: skip
    ax.legend(fontsize=7)
    return (
        "<h2>Loss landscape</h2>" + _img(figure_to_png(fig), "1-D loss landscapes")
        + "<table><tr><th>variant</th><th>loss at the solution</th><th>rise at 0.5</th>"
        "<th>rise at 1</th></tr>" + "".join(rows) + "</table>"
        '<p class="note">Li et al. 2018: directions rescaled filter by filter to the weights\' '
        "norms (biases and normalization parameters fixed), so sharpness is comparable across "
        "architectures; a larger rise is a sharper minimum.</p>"
    )  # fmt: skip


def _gradient_section(results: Mapping[str, Any], a: Mapping[str, Any]) -> str:
    from goodfit.diagnose.gradient_flow import plot_gradient_flow

    parts: list[str] = []
    first: dict[str, Any] = {}
    for name, v in results["variants"].items():
        for i, fold in enumerate(v.get("folds", [])):
            gf = fold.get("gradient_flow")
            if gf and gf.get("steps"):
                first = first or gf
                fid = fold.get("fold", i)
                title = f"{name}, fold {fid}: per-layer gradient norm"
                img = _img(plot_gradient_flow(gf, title=title), title)
                parts.append(
                    f"<figure><figcaption>{_e(name)} (fold {_e(fid)})</figcaption>{img}</figure>"
                )
                break  # one fold per variant is enough to see the flow
    if not parts:
        return ""
    flag_rows = [
        f"<tr><td>{_e(n)}</td><td>{_e(f.get('fold'))}</td><td>{_e(f.get('epoch'))}</td>"
        f"<td>{_e(f.get('layer'))}</td><td>{_e(f.get('kind'))}</td>"
        f"<td class='num'>{format_number(f.get('value'))}</td></tr>"
        for n, flags in a["gradient_flags"].items()
        for f in flags[:50]
    ]
    flags_html = (
        "<h3>Flags</h3><table><tr><th>variant</th><th>fold</th><th>epoch</th><th>layer</th>"
        "<th>flag</th>"
        "<th>norm</th></tr>" + "".join(flag_rows) + "</table>"
        if flag_rows
        else "<p>No vanishing or exploding gradients flagged.</p>"
    )
    return (
        "<h2>Gradient flow</h2>"
        '<p class="note">Per-layer gradient L2 norm (log scale) in the first fold of each '
        "variant that recorded it; vanishing: a layer's mean norm over an epoch at most "
        f"{_e(first.get('vanish_threshold', 1e-7))} times the largest layer's; exploding: "
        f"non-finite, or above {_e(first.get('explode_factor', 100.0))}× the layer's first-epoch "
        "median norm (a “cliff”, seed 001).</p>"
        f'<div class="grid2">{"".join(parts)}</div>' + flags_html
    )


def render_report(results: Mapping[str, Any]) -> str:
    """The report as one HTML string (see :func:`write_report`)."""
    from goodfit.report import plots

    a = results.get("analysis") or analyze_results(results)
    r, metric = a["ranking"], a["metric"]
    title = results.get("title") or "goodfit study"
    created = results.get("created") or _dt.datetime.now().isoformat(timespec="seconds")
    splits = results.get("splits") or {}
    split_txt = ""
    if splits:
        params = ", ".join(f"{k}={v}" for k, v in (splits.get("params") or {}).items())
        split_txt = f"splits: {splits.get('kind', '?')}({params}), seed {splits.get('seed', '–')}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="sub">{_e(created)} · {len(results["variants"])} variants · '
        f"{len(a['folds'])} folds · {_e(split_txt)}</div>",
        f'<div class="verdict">{_e(a["verdict"])}</div>',
    ]
    if results.get("dataset"):
        out.append("<h2>Data</h2>" + _kv_table(results["dataset"]))
    out.append("<h2>Cross-validated scores</h2>" + _scores_table(results, a))
    fold_png = plots.fold_scores(
        {n: r["summaries"][n]["values"] for n in results["variants"]},
        metric=metric,
        baseline=r["baseline"],
        best=r["best"],
    )
    out.append(_img(fold_png, f"{metric} per fold, box and strip plot"))
    out.append("<h2>Diagnosis: bias and variance</h2>" + _diagnosis_section(a))
    out.append("<h2>Overfitting onset</h2>" + _onset_section(a, results))
    out.append("<h2>Learning curves</h2>")
    for name, v in results["variants"].items():
        histories = [f.get("history", []) for f in v.get("folds", [])]
        if not any(histories):
            continue
        overrides = v.get("overrides") or {}
        desc = v.get("description") or ", ".join(f"{k} = {val}" for k, val in overrides.items())
        out.append(f"<h3>{_e(name)}</h3>")
        if desc:
            out.append(f'<div class="note">{_e(desc)}</div>')
        png = plots.learning_curves(
            histories, title=f"{name}: train vs validation", onsets=a["onsets"].get(name, [])
        )
        out.append(_img(png, f"learning curves of {name}"))
    from goodfit.report.confusion import confusion_section

    out.append(confusion_section(results, _img, _e))
    out.append(_gradient_section(results, a))
    out.append(_lr_curvature_section(results))
    out.append(_landscape_section(results))
    sched = results.get("schedule")
    if sched and sched.get("steps"):
        name = sched.get("name") or "learning-rate schedule"
        out.append("<h2>Learning-rate schedule</h2>")
        out.append(_img(plots.schedule_plot(sched["steps"], sched["lr"], title=name), name))
    config = results.get("config")
    if config:
        text = config if isinstance(config, str) else json.dumps(config, indent=2, default=str)
        out.append(f"<h2>Resolved configuration</h2><pre>{_e(text)}</pre>")
    env = results.get("environment")
    if env:
        out.append("<h2>Environment</h2>" + _kv_table(env))
    out.append(
        '<p class="note">Generated by goodfit. This file is self-contained: no scripts, no '
        "network resources.</p></main></body></html>"
    )
    return "\n".join(p for p in out if p)


def write_report(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write the study report as ONE self-contained HTML file.

    Contents: title and verdict; the table of cross-validated scores (mean ± std, 95% CI, paired
    tests against the baseline with significance marks); box + strip plot of fold scores;
    bias/variance diagnosis with seed 001's remedies; overfitting onset; learning curves per
    variant; gradient flow and the learning-rate schedule when present; the resolved config and
    the environment. All user strings are HTML-escaped; plots are inline ``data:`` PNGs.
    ``results`` follows the schema in the module docstring; ``results["analysis"]`` is used when
    present, else computed with :func:`analyze_results`. Returns the path written.
    """
    from goodfit.atomic import atomic_write_text

    return atomic_write_text(path, render_report(results))
