"""What a search leaves in its folder: ``best.toml``, ``trials.csv``, ``search.json`` and a
self-contained ``report.html``, with the honest final estimate (the best config and the base
config trained on all training data and scored on the test set no trial saw) and, with
``--confirm``, the two-variant study of base vs best (``confirm/``).

The plots are drawn with matplotlib and inlined as PNG (a few tens of kB each), so the report is
one small file that opens offline; Optuna's plotly figures would need plotly's JavaScript
(several MB) inlined in every report.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import platform
from pathlib import Path
from typing import Any

from goodfit.app.config import config_to_toml
from goodfit.atomic import atomic_write_text

__all__ = ["trial_rows", "write_outputs", "write_trials_csv"]


def _state(t: Any) -> str:
    return t.state.name


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """The columns of ``study.trials_dataframe()`` (Optuna's names: ``number``, ``value``,
    ``datetime_start``, ``datetime_complete``, ``duration``, ``params_<key>``,
    ``user_attrs_<key>`` for scalar attributes, ``state``), one dict a trial, without pandas."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    attrs = sorted(
        {k for t in trials for k, v in t.user_attrs.items() if isinstance(v, str | int | float)}
    )
    rows = []
    for t in trials:
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        row = {
            "number": t.number,
            "value": t.value,
            "datetime_start": t.datetime_start,
            "datetime_complete": t.datetime_complete,
            "duration": duration,
        }
        row.update({f"params_{k}": t.params.get(k) for k in keys})
        row.update({f"user_attrs_{k}": t.user_attrs.get(k) for k in attrs})
        row["state"] = _state(t)
        rows.append(row)
    return rows


def write_trials_csv(study: Any, path: Path) -> None:
    """``trials.csv``: :func:`trial_rows` as CSV."""
    rows = trial_rows(study)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    atomic_write_text(path, buf.getvalue())


def _importances(study: Any, seed: int) -> dict[str, float]:
    """Optuna's fANOVA importances over the complete trials ({} when fewer than two, or when no
    parameter varies)."""
    import warnings

    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}
    return {k: float(v) for k, v in found.items()}


def _final_estimate(plan: Any, best_cfg: Any) -> dict[str, Any]:
    """The best and the base config, each trained on all the training data and scored on the
    test set (one run each, seed ``train.seed``)."""
    from goodfit.app.run import run_config

    out: dict[str, Any] = {}
    for name, cfg in (("best", best_cfg), ("base", plan.base)):
        cfg = cfg.model_copy(deep=True)
        cfg.checkpoint.enabled = False
        summary = run_config(cfg, None, progress=False, write_plots=False).summary
        out[name] = {k: summary[k] for k in summary if k.startswith("test_") or k == "wall_seconds"}
    return out


def _confirm(plan: Any, number: int, values: dict[str, Any], out: Path) -> dict[str, Any]:
    """Base vs best (trial ``number``) as a two-variant study (``out/confirm-trial<number>``:
    an extended search with another winner confirms into a new folder) with the study's
    corrected paired test, on splits of the search's kind drawn afresh (``train.seed + 1``: new
    folds and new initializations, not a replay of the folds that chose the winner)."""
    from goodfit.app.config import apply_overrides
    from goodfit.app.study import run_study

    seed = (plan.base.train.seed + 1) % 2**32
    data = {
        **apply_overrides(plan.data, {"train.seed": seed}),
        "study": {
            "title": "goodfit search --confirm: base vs best",
            "splits": dict(plan.search.splits),
            "metric": plan.metric,
            "baseline": "base",
            "gradient_flow": False,
            "variants": [{"name": "base"}, {"name": "best", "set": values}],
        },
    }
    folder = f"confirm-trial{number}"
    results = run_study(data, out / folder, source=f"{plan.source} (--confirm)", progress=False)
    analysis = results["analysis"]
    return {
        "folder": folder,
        "seed": seed,
        "test": results["test"],
        "verdict": analysis["verdict"],
        "comparison": analysis["comparisons"].get("best"),
    }


def _trial_entry(t: Any, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": t.number,
        "state": _state(t),
        "value": t.value,
        "values": values,
        "intermediate": sorted([int(k), float(v)] for k, v in t.intermediate_values.items()),
        "user_attrs": {k: v for k, v in t.user_attrs.items() if k != "curves"},
        "duration": (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else None,
    }


def _counts(trials: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        out[_state(t).lower()] = out.get(_state(t).lower(), 0) + 1
    return out


def write_outputs(plan: Any, out: Path, *, confirm: bool, t0: float) -> dict[str, Any]:
    """``best.toml``, ``trials.csv``, the final estimate (and ``--confirm``), ``search.json``,
    ``report.html``; returns the ``search.json`` dict (``wall_seconds`` from ``t0``, a
    ``time.perf_counter()`` reading, to the end of the final estimate)."""
    import time

    import optuna
    import torch

    from goodfit.app.search import STUDY_NAME, best_config, journal_storage, trial_values
    from goodfit.train.history import json_safe

    study = optuna.load_study(study_name=STUDY_NAME, storage=journal_storage(out))
    best_cfg = best_config(plan, study)
    best = study.best_trial
    best_values = trial_values(plan, best.params)
    header = (
        f"# goodfit search: the best of {len(study.trials)} trials (trial {best.number}, "
        f"{plan.metric} {best.value:.4f} over {len(plan.splits)} splits)\n"
        f"# goodfit train best.toml trains it\n"
    )
    atomic_write_text(out / "best.toml", header + config_to_toml(best_cfg.to_dict()))
    write_trials_csv(study, out / "trials.csv")
    trials = study.get_trials(deepcopy=False)
    result: dict[str, Any] = {
        "schema_version": 1,
        "storage": "study.journal",
        "study_name": STUDY_NAME,
        "metric": plan.metric,
        "direction": plan.direction,
        "config_hash": plan.config_hash,
        "sampler": plan.search.sampler,
        "pruner": plan.search.pruner,
        "splits": {
            "kind": plan.splits_kind,
            "n_splits": len(plan.splits),
            "seed": plan.base.train.seed,
            **plan.search.splits,
        },
        "counts": _counts(trials),
        "best": {
            "number": best.number,
            "value": best.value,
            "values": best_values,
            "folds": best.user_attrs.get("folds"),
        },
        "importances": _importances(study, plan.base.train.seed),
        "final": _final_estimate(plan, best_cfg),
        "trials": [_trial_entry(t, trial_values(plan, t.params)) for t in trials],
        "dataset": {
            "name": plan.dataset.name,
            "n_train": plan.dataset.n_train,
            "n_test": plan.dataset.n_test,
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "threads": torch.get_num_threads(),
            "wall_seconds": None,
        },
    }
    if confirm:
        result["confirm"] = _confirm(plan, best.number, best_values, out)
    result["environment"]["wall_seconds"] = round(time.perf_counter() - t0, 2)
    result = json_safe(result)
    atomic_write_text(out / "search.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / "report.html", render_search_report(result, plan.params))
    return result


# -- the report ------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    from goodfit.atomic import figure_to_png

    data = base64.b64encode(figure_to_png(fig)).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _history_plot(result: dict[str, Any]) -> str:
    """Each trial's value (pruned trials at their last reported value), the best so far."""
    fig = _figure(7.5, 3.4)
    ax = fig.add_subplot()
    maximize = result["direction"] == "maximize"
    best, xs, ys = None, [], []
    for t in result["trials"]:
        value = t["value"]
        if t["state"] == "PRUNED" and t["intermediate"]:
            value = t["intermediate"][-1][1]
        if value is None or not math.isfinite(value):
            continue
        color = "#1f77b4" if t["state"] == "COMPLETE" else "#bbbbbb"
        ax.scatter([t["number"]], [value], color=color, s=18, zorder=3)
        if t["state"] == "COMPLETE":
            best = value if best is None else (max if maximize else min)(best, value)
        if best is not None:
            xs.append(t["number"])
            ys.append(best)
    ax.step(xs, ys, where="post", color="#d62728", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(result["metric"])
    ax.set_title("optimization history (grey: pruned, at its last reported value)")
    ax.legend(loc="best")
    return _png(fig)


def _importance_plot(importances: dict[str, float]) -> str:
    if not importances:
        return '<p class="note">Too few completed trials (or no varying parameter) for fANOVA.</p>'
    fig = _figure(7.5, 0.5 + 0.35 * len(importances))
    ax = fig.add_subplot()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="#1f77b4")
    ax.set_xlabel("importance (fANOVA, normalized)")
    return _png(fig)


def _slice_plots(result: dict[str, Any], params: list[Any]) -> str:
    """The metric against each parameter over the complete trials."""
    complete = [t for t in result["trials"] if t["state"] == "COMPLETE" and t["value"] is not None]
    if not complete or not params:
        return ""
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig = _figure(3.2 * cols, 2.6 * rows)
    for i, p in enumerate(params):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = [
            (t["values"][p.key], t["value"], t["number"]) for t in complete if p.key in t["values"]
        ]
        if p.kind == "choice":
            labels = [json.dumps(c) if not isinstance(c, str) else c for c in p.choices]
            xs = [p.choices.index(v) for v, _, _ in pts]
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        else:
            xs = [math.log10(v) if p.log else v for v, _, _ in pts]
            ax.tick_params(labelsize=7)
        ax.scatter(xs, [v for _, v, _ in pts], c=[n for _, _, n in pts], cmap="viridis", s=16)
        ax.set_title(f"log10({p.key})" if p.log else p.key, fontsize=9)
        if i % cols == 0:
            ax.set_ylabel(result["metric"], fontsize=8)
    return _png(fig)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else _e(json.dumps(v) if isinstance(v, list) else v)


def _final_section(result: dict[str, Any]) -> str:
    final = result["final"]
    rows = "".join(
        f"<tr><td>{_e(name)}</td>"
        + "".join(f"<td>{_fmt(final[name].get(k))}</td>" for k in ("test_accuracy", "test_loss"))
        + "</tr>"
        for name in ("best", "base")
    )
    text = (
        "<h2>Final estimate</h2><p>The best trial's score is optimistic: it was selected on "
        "these folds. Both configs were trained once more on all training data and scored on "
        "the test set no trial saw (a single run each: not a significance test).</p>"
        "<table><tr><th>config</th><th>test_accuracy</th><th>test_loss</th></tr>"
        f"{rows}</table>"
    )
    confirm = result.get("confirm")
    if confirm:
        test, verdict = _e(confirm["test"]), _e(confirm["verdict"])
        text += (
            f"<h3>--confirm: base vs best on fresh folds (seed {confirm['seed']}), {test}</h3>"
            f"<p>{verdict}</p>"
        )
    return text


def render_search_report(result: dict[str, Any], params: list[Any]) -> str:
    """The self-contained ``report.html`` of a search (inline CSS and PNG, no script)."""
    best, counts = result["best"], result["counts"]
    values = "".join(
        f"<tr><td>{_e(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in best["values"].items()
    )
    count_text = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>goodfit search</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:0 auto;padding:20px;
color:#1d2330}}table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #e3e6eb;
padding:4px 10px;text-align:left}}img{{max-width:100%}}.note{{color:#5b6475}}</style></head><body>
<h1>goodfit search</h1>
<p>{_e(result["dataset"]["name"])}: {len(result["trials"])} trials ({_e(count_text)}), sampler
{_e(result["sampler"])}, pruner {_e(result["pruner"])}, {result["splits"]["n_splits"]}
{_e(result["splits"]["kind"])} splits, metric {_e(result["metric"])} ({_e(result["direction"])}),
{result["environment"]["wall_seconds"]:.0f} s.</p>
<h2>Best trial: {best["number"]} ({_e(result["metric"])} {best["value"]:.4f})</h2>
<table>{values}</table><p class="note">best.toml holds it as a complete config.</p>
{_final_section(result)}
<h2>Optimization history</h2>{_history_plot(result)}
<h2>Parameter importances</h2>{_importance_plot(result["importances"])}
<h2>Each parameter</h2>{_slice_plots(result, params)}
<p class="note">Optuna study: study.journal, study name {_e(result["study_name"])}.</p>
</body></html>
"""
