"""Suite results: benchmark scores from task scores, the normalized average, and the files a run writes
(`results.json`, `results.md`, `predictions/<task>.jsonl`)."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flan_ul2r import fs
from flan_ul2r.evaluation.metrics import NORMALIZED_AVERAGE_COMPONENTS, normalized_average
from flan_ul2r.evaluation.runner import TaskResult


def benchmark_scores(results: Sequence[TaskResult]) -> dict[str, dict[str, Any]]:
    """Per benchmark: the score (macro = mean of its tasks; micro = over all its examples, the protocol's
    `aggregate`), the random baseline aggregated the same way, and counts. Tasks whose every example was
    skipped as too long (EvalSettings.too_long="skip") have no score and are left out of the aggregate."""
    groups: dict[str, list[TaskResult]] = {}
    for r in results:
        groups.setdefault(r.protocol.benchmark, []).append(r)
    out = {}
    for name, every in groups.items():
        rs = [r for r in every if r.predictions]
        counts = [len(r.predictions) for r in rs]
        weights = counts if every[0].protocol.aggregate == "micro" else [1] * len(rs)
        total = sum(weights)
        nan = float("nan")
        out[name] = {"score": sum(w * r.score for w, r in zip(weights, rs)) / total if total else nan,
                     "random": sum(w * r.random for w, r in zip(weights, rs)) / total if total else nan,
                     "metric": every[0].summary()["primary_metric"], "aggregate": every[0].protocol.aggregate,
                     "tasks": len(rs), "count": sum(counts), "skipped": sum(len(r.skipped) for r in every)}
    return out


def summarize(results: Sequence[TaskResult], *, model_path: str, suite: str, settings: dict[str, Any],
              wall_seconds: float) -> dict[str, Any]:
    benches = benchmark_scores(results)
    norm = None
    scored = {k: v for k, v in benches.items() if v["tasks"]}  # every example skipped: no score
    if any(c in benches for c in NORMALIZED_AVERAGE_COMPONENTS):
        norm = normalized_average({k: v["score"] for k, v in scored.items()},
                                  {k: v["random"] for k, v in scored.items()})
    return {"model_path": model_path, "suite": suite, "settings": settings,
            "wall_seconds": round(wall_seconds, 3), "num_examples": sum(len(r.predictions) for r in results),
            "benchmarks": benches, "normalized_average": norm,
            "tasks": {r.name: r.summary() for r in results}}


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.2f}"
    return str(x)


def markdown(summary: dict[str, Any]) -> str:
    """A table per benchmark (its tasks and metrics), then the benchmarks, then the normalized average."""
    lines = [f"# Evaluation of `{summary['model_path']}` (suite `{summary['suite']}`)", ""]
    if summary.get("pending_tasks"):
        lines += [f"Partial results: {len(summary['pending_tasks'])} task(s) still to run (a re-run of the "
                  "same command resumes).", ""]
    for bench, b in summary["benchmarks"].items():
        tasks = {n: t for n, t in summary["tasks"].items() if t["benchmark"] == bench}
        keys = sorted({k for t in tasks.values() for k in t["metrics"]})
        lines += [f"## {bench}", "", "| task | n | " + " | ".join(keys) + " |",
                  "|---|---:|" + "---:|" * len(keys)]
        lines += [f"| {n} | {t['count']} | " + " | ".join(_fmt(t["metrics"].get(k, "")) for k in keys) + " |"
                  for n, t in tasks.items()]
        skipped = {n: t["skipped"] for n, t in tasks.items() if t.get("skipped")}
        if skipped:
            lines += ["", "Left out as longer than the model's max_length (EvalSettings.too_long='skip'): " +
                      ", ".join(f"{n} {k}" for n, k in skipped.items())]
        truncated = {n: t["truncated"] for n, t in tasks.items() if t.get("truncated")}
        if truncated:
            lines += ["", "Prompts cut to fit (too_long='truncate_left': oldest exemplars, then the left): " +
                      ", ".join(f"{n} {k}" for n, k in truncated.items())]
        lines += ["", f"{bench}: **{_fmt(b['score'])}** ({b['metric']}, {b['aggregate']} over {b['tasks']} "
                      f"task(s), {b['count']} examples; random {_fmt(b['random'])})", ""]
    lines += ["## Benchmarks", "", "| benchmark | score | random | examples |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {_fmt(b['score'])} | {_fmt(b['random'])} | {b['count']} |"
              for k, b in summary["benchmarks"].items()]
    norm = summary.get("normalized_average")
    if norm is not None:
        lines += ["", "## Normalized average (Chung et al. 2022, section 2.3)", "",
                  "| component | score | random | normalized |", "|---|---:|---:|---:|"]
        for c in NORMALIZED_AVERAGE_COMPONENTS:
            if c in norm["normalized"]:
                row = (summary["benchmarks"][c]["score"], norm["random"][c], norm["normalized"][c])
                lines.append(f"| {c} | " + " | ".join(_fmt(x) for x in row) + " |")
            else:
                lines.append(f"| {c} | missing | | |")
        value = "n/a (missing: " + ", ".join(norm["missing"]) + ")" if norm["value"] is None else \
            _fmt(norm["value"])
        lines += ["", f"Normalized average: **{value}**"]
    return "\n".join(lines) + "\n"


def write_outputs(out_dir: str | Path, results: Sequence[TaskResult], summary: dict[str, Any]) -> Path:
    """Writes results.json, results.md and predictions/<task>.jsonl; returns the directory."""
    out = fs.path(out_dir)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    for r in results:
        with (out / "predictions" / f"{r.name}.jsonl").open("w", encoding="utf-8") as f:
            for row in r.predictions:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "results.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    (out / "results.md").write_text(markdown(summary), encoding="utf-8")
    return out
