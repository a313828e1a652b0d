"""The pipeline's evidence: per-example scores of the four models read back from their prediction files,
the summary rows built from them (`<group>-Avg`), and the paired comparisons the papers' claims are
about (flan_ul2r/evaluation/intervals.py: paired bootstrap, seeded).

An example is matched across models by (task, id); a comparison uses the examples both models have (a
prompt skipped as too long for one model is left out of both), and says how many (`n`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from flan_ul2r import fs
from flan_ul2r.evaluation import intervals
from flan_ul2r.evaluation.report import example_scores, score_interval

# (a, b): the differences a - b the papers speak of. UL2R vs the base (U-PaLM sections 3-4), Flan vs the base
# and Flan-U vs Flan (Chung et al. 2022, Table 5), Flan-U vs the base (both recipes together).
PAIRS = (("ul2r", "base"), ("flan", "base"), ("flan_ul2r", "flan"), ("flan_ul2r", "base"))
AVERAGED_GROUPS = ("Heldout", "Heldin")  # `<group>-Avg`: the mean over every task x style cell of the group
AVG = "Avg"

Examples = dict[str, dict[str, Any]]  # task -> {example id -> score, or [nll, bytes] for a loss}


def _kind(bench: Mapping[str, Any]) -> str:
    return {"macro": "macro", "ratio": "ratio"}.get(bench.get("aggregate", "micro"), "micro")


def task_examples(task: Mapping[str, Any]) -> dict[str, Any]:
    """{id: value} from a task's predictions file: the primary metric in percent, or [nll, bytes]."""
    path = fs.path(task["predictions"])
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if task["primary_metric"] == "nll_per_byte":
        return {r["id"]: [r["nll"], r["bytes"]] for r in rows}
    return dict(zip((r["id"] for r in rows), example_scores(rows, task["primary_metric"])))


def benchmark_examples(results: Mapping[str, Any]) -> dict[str, Examples]:
    """benchmark -> task -> {id: value}, for every task of a model's results that names its predictions."""
    out: dict[str, Examples] = {}
    for name, task in results.get("tasks", {}).items():
        if task.get("predictions") and task.get("count", 0):
            out.setdefault(task["benchmark"], {})[name] = task_examples(task)
    return out


def group_of(benchmark: str) -> str | None:
    group = benchmark.split("-", 1)[0]
    return group if group in AVERAGED_GROUPS and benchmark != f"{group}-{AVG}" else None


def with_averages(examples: dict[str, Examples], benchmarks: dict[str, dict[str, Any]]
                  ) -> tuple[dict[str, Examples], dict[str, dict[str, Any]]]:
    """Adds `<group>-Avg` for each averaged group present: its strata are every task of the group's rows
    (one per task x style), its score their macro average."""
    examples, benchmarks = dict(examples), dict(benchmarks)
    for group in AVERAGED_GROUPS:
        members = [b for b in examples if group_of(b) == group]
        if not members:
            continue
        merged = {task: ids for b in members for task, ids in examples[b].items()}
        examples[f"{group}-{AVG}"] = merged
        benchmarks[f"{group}-{AVG}"] = {"metric": "mean of task x style cells", "aggregate": "macro",
                                        "members": sorted(members)}
    return examples, benchmarks


def cell(examples: Examples, bench: Mapping[str, Any]) -> dict[str, float]:
    """{score, n, ci_low, ci_high} of one model's benchmark from its examples (the report's cells)."""
    kind = _kind(bench)
    strata = [np.asarray(list(ids.values()), np.float64) for ids in examples.values()]
    low, high = score_interval(strata, bench.get("metric", ""), kind)
    n = sum(len(s) for s in strata)
    return {"score": intervals.statistic(strata, kind) if n else math.nan, "n": n, "ci_low": low,
            "ci_high": high}


def paired(a: Examples, b: Examples) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The two models' values on the examples both have, task by task, in one order."""
    sa, sb = [], []
    for task in sorted(set(a) & set(b)):
        ids = sorted(set(a[task]) & set(b[task]))
        if ids:
            sa.append(np.asarray([a[task][i] for i in ids], np.float64))
            sb.append(np.asarray([b[task][i] for i in ids], np.float64))
    return sa, sb


def comparisons(examples: Mapping[str, dict[str, Examples]], benchmarks: Mapping[str, Mapping[str, Any]]
                ) -> list[dict[str, Any]]:
    """[{metric, a, b, diff, ci_low, ci_high, significant, n}] for every benchmark and pair present."""
    out = []
    for metric, bench in benchmarks.items():
        for a, b in PAIRS:
            if metric not in examples.get(a, {}) or metric not in examples.get(b, {}):
                continue
            sa, sb = paired(examples[a][metric], examples[b][metric])
            if not sa:
                continue
            diff, low, high = intervals.paired_bootstrap(sa, sb, _kind(bench))
            out.append({"metric": metric, "a": a, "b": b, "diff": diff, "ci_low": low, "ci_high": high,
                        "significant": intervals.significant(low, high), "n": sum(len(s) for s in sa),
                        "lower_is_better": bool(bench.get("lower_is_better", False))})
    return out
