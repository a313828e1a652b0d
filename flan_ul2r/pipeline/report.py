"""The pipeline's report: the 2x2 table (base, +UL2R, +Flan, +UL2R+Flan) of every evaluated metric with its
n and 95% interval, the paired comparisons between the models, the compute ledger, loss curves per stage
and a bar chart with error bars - MODEL_DIR/report.md, report.json, *.png.

Scores, n and intervals of the stages' benchmarks and tasks are read from the stages' own files (eval
results.json); the `<group>-Avg` rows and the paired comparisons are computed from the stages' prediction
files (pipeline/evidence.py); the ledger's sums and shares from stage.json.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from etils import epath

from flan_ul2r import fs
from flan_ul2r.pipeline import evidence
from flan_ul2r.pipeline.plots import plot_losses, plot_results
from flan_ul2r.pipeline.summary import LABELS, opening

MODELS = ("base", "ul2r", "flan", "flan_ul2r")  # the 2x2: neither, UL2R, Flan, both (Flan paper Table 5)
CELL_FIELDS = ("score", "n", "ci_low", "ci_high")


def _bench_cell(b: Mapping[str, Any]) -> dict[str, float]:
    return {"score": b["score"], "n": b.get("n", b.get("count", 0)), "ci_low": b.get("ci_low", math.nan),
            "ci_high": b.get("ci_high", math.nan)}


def _task_cell(t: Mapping[str, Any], metric: str) -> dict[str, float]:
    low, high = (t.get("intervals") or {}).get(metric, (math.nan, math.nan))
    return {"score": t["metrics"][metric], "n": t.get("n", t.get("count", 0)), "ci_low": low,
            "ci_high": high}


def table(results: Mapping[str, Mapping[str, Any]],
          averages: Mapping[str, Mapping[str, dict[str, float]]] | None = None) -> list[dict[str, Any]]:
    """Rows {"metric", "kind", <model>: {score, n, ci_low, ci_high}} from each model's eval results.json:
    every benchmark's score, the `<group>-Avg` rows (`averages`: metric -> model -> cell), the normalized
    average when defined, then every task's metrics."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for model, summary in results.items():
        for bench, b in summary.get("benchmarks", {}).items():
            rows.setdefault((bench, "benchmark"), {})[model] = _bench_cell(b)
        norm = summary.get("normalized_average") or {}
        if norm.get("value") is not None:
            rows.setdefault(("normalized average", "normalized_average"), {})[model] = _bench_cell(
                {**norm, "score": norm["value"]})
        for task, t in summary.get("tasks", {}).items():
            for metric in t.get("metrics", {}):
                rows.setdefault((f"{task} {metric}", "task"), {})[model] = _task_cell(t, metric)
    for metric, cells in (averages or {}).items():
        rows[(metric, "average")] = dict(cells)
    order = {"normalized_average": 0, "benchmark": 1, "average": 1, "task": 2}
    return [{"metric": name, "kind": kind, **values}
            for (name, kind), values in sorted(rows.items(), key=lambda kv: (order[kv[0][1]], kv[0][0]))]


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.2f}"
    return "" if x is None else str(x)


def _cell_text(c: Mapping[str, Any] | None) -> str:
    if not c:
        return ""
    if math.isnan(c.get("ci_low", math.nan)):
        return _fmt(c["score"])
    return f"{_fmt(c['score'])} [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]"


def _n_text(row: Mapping[str, Any], models: Sequence[str]) -> str:
    ns = [str(row[m]["n"]) for m in models if row.get(m)]
    return ns[0] if len(set(ns)) == 1 else "/".join(ns)


def _comparison_line(c: Mapping[str, Any]) -> str:
    significant = "yes" if c["significant"] else "no"
    return (f"| {c['metric']} | {LABELS[c['a']]} - {LABELS[c['b']]} | {c['diff']:+.2f} | "
            f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}] | {significant} | {c['n']} |")


def results_markdown(rows: Sequence[dict[str, Any]], comparisons: Sequence[dict[str, Any]]) -> list[str]:
    models = [m for m in MODELS if any(m in r for r in rows)]
    lines = ["## Results (the 2x2: Chung et al. 2022, Table 5 compares the same four)", "",
             "Each cell: score [95% interval]; n = examples (per model when they differ). Proportions: "
             "Wilson interval; averages, F1 and the LM loss (nats per byte, lower is better): bootstrap.",
             "", "| metric | n | " + " | ".join(LABELS[m] for m in models) + " |",
             "|---|---:|" + "---:|" * len(models)]
    lines += [f"| {r['metric']} | {_n_text(r, models)} | " + " | ".join(_cell_text(r.get(m)) for m in models)
              + " |" for r in rows]
    lines += ["", "## Paired comparisons (the same examples; paired bootstrap, seeded)", "",
              "| metric | comparison | difference | 95% interval | significant | n |",
              "|---|---|---:|---:|---|---:|"]
    return lines + [_comparison_line(c) for c in comparisons]


def ledger_markdown(ledger: dict[str, Any], stages: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["## Compute ledger", "", "| stage | steps | tokens | TFLOPs | train s | wall s |",
             "|---|---:|---:|---:|---:|---:|"]
    for s in ledger["stages"]:
        lines.append(f"| {s['stage']} | {s['steps']} | {s['tokens']:,} | {s['flops'] / 1e12:,.2f} | "
                     f"{s['train_seconds']:.0f} | {s['wall_seconds']:.0f} |")
    lines += ["", f"Base pretraining compute: {ledger['base_pretraining_flops'] / 1e12:,.2f} TFLOPs "
                  f"({ledger['base_pretraining_source']}).", ""]
    lines += [f"- {name}: **{share:.3g}%** of the base model's pretraining compute"
              for name, share in ledger["percent_of_base_pretraining"].items()]
    lines += ["", "## Stages", ""] + [f"- `{s['stage']}`: {s.get('checkpoint', '')}" for s in stages]
    return lines


def markdown(rows: Sequence[dict[str, Any]], comparisons: Sequence[dict[str, Any]], ledger: dict[str, Any],
             stages: Sequence[dict[str, Any]], title: str) -> str:
    lines = [f"# {title}", "", opening(comparisons), ""]
    lines += results_markdown(rows, comparisons) + [""] + ledger_markdown(ledger, stages)
    lines += ["", "Plots: `loss_curves.png` (training loss per stage), `results.png` (scores with 95% "
                  "intervals).", ""]
    return "\n".join(lines)


def write_report(model_dir: epath.Path, results: Mapping[str, Mapping[str, Any]], ledger: dict[str, Any],
                 stages: Sequence[dict[str, Any]], stage_dirs: Mapping[str, epath.Path], title: str
                 ) -> dict[str, Any]:
    examples = {m: evidence.benchmark_examples(r) for m, r in results.items()}
    benchmarks: dict[str, dict[str, Any]] = {}
    for r in results.values():
        benchmarks.update(r.get("benchmarks", {}))
    averages: dict[str, dict[str, dict[str, float]]] = {}
    derived: dict[str, dict[str, Any]] = {}
    for model in results:
        examples[model], merged = evidence.with_averages(examples[model], benchmarks)
        derived.update({name: bench for name, bench in merged.items() if name not in benchmarks})
        for name, bench in derived.items():
            if name in examples[model]:
                averages.setdefault(name, {})[model] = evidence.cell(examples[model][name], bench)
    benchmarks.update(derived)
    rows = table(results, averages)
    compared = evidence.comparisons(examples, benchmarks)
    report = {"title": title, "opening": opening(compared), "models": list(results), "table": rows,
              "comparisons": compared, "ledger": ledger, "stages": list(stages),
              "results_files": {m: str(model_dir / "eval" / m / "results.json") for m in results}}
    fs.write_text(model_dir / "report.json", json.dumps(report, indent=1) + "\n")
    fs.write_text(model_dir / "report.md", markdown(rows, compared, ledger, stages, title))
    plot_losses(stage_dirs, model_dir / "loss_curves.png")
    if rows:
        plot_results(rows, model_dir / "results.png", MODELS, LABELS)
    return report
