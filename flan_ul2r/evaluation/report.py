"""Suite results: benchmark scores from task scores, the normalized average, and the files a run writes
(`results.json`, `results.md`, `predictions/<task>.jsonl`). Every score carries its n and a 95% interval
(`evaluation/intervals.py`): Wilson for a proportion, the stratified bootstrap for F1 and macro averages."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from etils import epath

from flan_ul2r import fs
from flan_ul2r.evaluation import intervals
from flan_ul2r.evaluation.metrics import NORMALIZED_AVERAGE_COMPONENTS, normalize_score, normalized_average
from flan_ul2r.evaluation.runner import TaskResult

# Per-example scores between 0 and 1 (not right/wrong): their intervals are the bootstrap, not Wilson's.
GRADED_METRICS = ("f1", "copy_accuracy", "first_read_accuracy")


def example_scores(rows: Sequence[dict[str, Any]], metric: str) -> np.ndarray:
    """Each prediction row's score in percent: 100 x its value for a graded metric (`f1`; `copy_accuracy`,
    `first_read_accuracy`: evaluation/copying.py), its `closed` flag for `closed` (evaluation/infilling.py),
    else 100 x `correct`."""
    key = metric if metric in (*GRADED_METRICS, "closed") else "correct"
    return 100.0 * np.asarray([float(r[key]) for r in rows], np.float64)


def score_interval(strata: Sequence[np.ndarray], metric: str, aggregate: str = "micro"
                   ) -> tuple[float, float]:
    """The 95% interval of a score from its per-example values (percent), one array per task: Wilson for a
    proportion pooled over examples, else the bootstrap (`macro`: mean of the tasks' scores; `ratio`: a
    ratio of sums over [value, weight] rows, as the LM loss per byte)."""
    if metric not in GRADED_METRICS and aggregate == "micro":
        values = np.concatenate([np.asarray(s) for s in strata]) if strata else np.zeros(0)
        return intervals.wilson_percent(float(values.sum() / 100.0), len(values))
    return intervals.bootstrap(strata, aggregate if aggregate in ("macro", "ratio") else "micro")


def task_intervals(r: TaskResult) -> dict[str, list[float]]:
    """{metric: [low, high]} for each of the task's metrics."""
    return {m: list(score_interval([example_scores(r.predictions, m)], m)) for m in r.metrics}


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
        metric, aggregate = every[0].summary()["primary_metric"], every[0].protocol.aggregate
        low, high = score_interval([example_scores(r.predictions, metric) for r in rs], metric, aggregate)
        out[name] = {"score": sum(w * r.score for w, r in zip(weights, rs)) / total if total else nan,
                     "random": sum(w * r.random for w, r in zip(weights, rs)) / total if total else nan,
                     "metric": metric, "aggregate": aggregate,
                     "tasks": len(rs), "count": sum(counts), "skipped": sum(len(r.skipped) for r in every),
                     "n": sum(counts), "ci_low": low, "ci_high": high}
    return out


def normalized_average_interval(results: Sequence[TaskResult], benches: dict[str, dict[str, Any]]
                                ) -> tuple[float, float]:
    """The bootstrap interval of the normalized average: every component's tasks resampled (one seed per
    component), each resample normalized and averaged as the score is (Chung et al. 2022, section 2.3)."""
    parts = []
    for i, c in enumerate(NORMALIZED_AVERAGE_COMPONENTS):
        rs = [r for r in results if r.protocol.benchmark == c and r.predictions]
        strata = [example_scores(r.predictions, benches[c]["metric"]) for r in rs]
        kind = "macro" if benches[c]["aggregate"] == "macro" else "micro"
        samples = intervals.bootstrap_samples(strata, kind, seed=intervals.SEED + i)
        parts.append(np.asarray([normalize_score(x, benches[c]["random"]) for x in samples]))
    return intervals.percentile_interval(np.mean(parts, axis=0))


def summarize(results: Sequence[TaskResult], *, model_path: str, suite: str, settings: dict[str, Any],
              wall_seconds: float) -> dict[str, Any]:
    benches = benchmark_scores(results)
    norm = None
    scored = {k: v for k, v in benches.items() if v["tasks"]}  # every example skipped: no score
    if any(c in benches for c in NORMALIZED_AVERAGE_COMPONENTS):
        norm = normalized_average({k: v["score"] for k, v in scored.items()},
                                  {k: v["random"] for k, v in scored.items()})
        if norm["value"] is not None and all(c in scored for c in NORMALIZED_AVERAGE_COMPONENTS):
            norm["ci_low"], norm["ci_high"] = normalized_average_interval(results, benches)
            norm["n"] = sum(benches[c]["count"] for c in NORMALIZED_AVERAGE_COMPONENTS)
    tasks = {}
    for r in results:
        tasks[r.name] = {**r.summary(), "n": len(r.predictions), "intervals": task_intervals(r)}
    return {"model_path": model_path, "suite": suite, "settings": settings,
            "wall_seconds": round(wall_seconds, 3), "num_examples": sum(len(r.predictions) for r in results),
            "benchmarks": benches, "normalized_average": norm,
            "tasks": tasks}


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.2f}"
    return str(x)


def _interval(b: dict[str, Any]) -> str:
    low, high = b.get("ci_low"), b.get("ci_high")
    return "" if low is None else f"[{_fmt(low)}, {_fmt(high)}]"


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
    lines += ["## Benchmarks", "", "| benchmark | score | 95% interval | random | examples |",
              "|---|---:|---:|---:|---:|"]
    lines += [f"| {k} | {_fmt(b['score'])} | {_interval(b)} | {_fmt(b['random'])} | {b['count']} |"
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
        lines += ["", f"Normalized average: **{value}** {_interval(norm)}".rstrip()]
    return "\n".join(lines) + "\n"


def write_outputs(out_dir: fs.PathLike, results: Sequence[TaskResult], summary: dict[str, Any]) -> epath.Path:
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
