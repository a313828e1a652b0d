"""Resumable evaluation: each task's results go to disk as soon as it finishes (`predictions/<task>.jsonl` and
`tasks/<task>.json`), with a fingerprint of what produced them - the checkpoint path, the model config, a
digest of the weights, the settings, the task's protocol and every example. A re-run of the same command
reuses the tasks whose fingerprint matches and computes the rest, so a preempted run of a long suite
(`flan_paper`: 150 tasks) loses at most the task it was in; a changed checkpoint, setting or data file
recomputes what it touches.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from flan_ul2r import fs
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask
from flan_ul2r.evaluation.runner import EvalSettings, TaskResult

TASKS_DIR = "tasks"


def params_digest(params: Any) -> str:
    """A digest of the weights: per leaf its path, shape, dtype, sum and sum of squares (computed where the
    weights live; rounded to 7 significant digits, so it does not depend on reduction order)."""
    import jax
    import jax.numpy as jnp

    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        x = jnp.asarray(leaf, jnp.float32)
        stats = [f"{float(v):.7g}" for v in (jnp.sum(x), jnp.sum(x * x))]
        h.update(f"{jax.tree_util.keystr(path)}{leaf.shape}{leaf.dtype}{stats}".encode())
    return h.hexdigest()


def model_key(model: Any, model_path: str) -> dict[str, Any]:
    """What identifies the model being evaluated: path, config and (when it has them) its weights."""
    config = getattr(model, "config", None)
    params = getattr(model, "params", None)
    return {"path": str(model_path), "class": type(model).__name__,
            "config": config.to_dict() if hasattr(config, "to_dict") else None,
            "params": params_digest(params) if params is not None else None,
            "max_length": int(getattr(model, "max_length", 0)), "prefix_lm": bool(getattr(model, "prefix_lm",
                                                                                          False))}


def fingerprint(key: dict[str, Any], settings: EvalSettings, task: EvalTask,
                examples: Sequence[EvalExample]) -> str:
    chosen = {k: v for k, v in dataclasses.asdict(settings).items() if k != "progress"}
    h = hashlib.sha256(json.dumps({"model": key, "settings": chosen, "task": task.name,
                                   "protocol": dataclasses.asdict(task.protocol)}, sort_keys=True,
                                  default=str).encode())
    for ex in examples:
        h.update(json.dumps(ex.to_json(), sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def save_task(out_dir: Any, result: TaskResult, print_: str) -> None:
    """Writes the task's prediction rows, then its summary with the fingerprint `print_` (last: a task
    counts as finished only once both are on disk)."""
    out = fs.path(out_dir)
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in result.predictions)
    fs.write_text(out / "predictions" / f"{result.name}.jsonl", lines)
    record = {"fingerprint": print_, "summary": result.summary(), "truncated_ids": result.truncated}
    fs.write_text(out / TASKS_DIR / f"{result.name}.json", json.dumps(record, indent=1, ensure_ascii=False))


def load_task(out_dir: Any, task: EvalTask, print_: str) -> TaskResult | None:
    """The finished task's result from a previous run with the same fingerprint, else None."""
    out = fs.path(out_dir)
    record_path, rows_path = out / TASKS_DIR / f"{task.name}.json", out / "predictions" / f"{task.name}.jsonl"
    if not (record_path.is_file() and rows_path.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text())
        rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line]
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # cut short by a kill: compute it again
    summary = record.get("summary", {})
    if record.get("fingerprint") != print_ or len(rows) != summary.get("count"):
        return None
    return TaskResult(task.name, task.protocol, rows, summary["metrics"], summary["random"],
                      summary["wall_seconds"], list(summary.get("skipped_ids", [])),
                      record.get("truncated_ids", {}), summary.get("max_new_tokens", 0))
