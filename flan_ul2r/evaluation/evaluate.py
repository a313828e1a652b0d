"""Evaluate a model on a list of tasks and write the run's files (the library behind `flan-ul2r eval`).

Order: tasks already finished under `out_dir` with the same fingerprint are reused (resume.py); every other
task is loaded, encoded and checked against the model's length before anything is decoded (prompt_plan.py:
with too_long="error" the run stops there, naming each task and count); then the tasks run one by one, each
written as it finishes, with results.json / results.md rewritten after each (`complete` false until the
last).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from flan_ul2r import fs
from flan_ul2r.evaluation import resume
from flan_ul2r.evaluation.prompt_plan import TaskPlan, check_plans
from flan_ul2r.evaluation.protocol import EvalTask
from flan_ul2r.evaluation.report import markdown, summarize, write_outputs
from flan_ul2r.evaluation.runner import EvalSettings, TaskResult, load_examples, plan, run_plan

REQUIRED_METHODS = ("tokenize", "detokenize", "generate_batch", "score")


def check_model(model: Any, where: str) -> None:
    """The model must offer the decoding/scoring interface and carry a tokenizer."""
    missing = [m for m in REQUIRED_METHODS if not hasattr(model, m)]
    if missing:
        raise ValueError(f"{where}: the loaded model lacks {missing} (flan_ul2r.load_model's decoding and "
                         "scoring interface)")
    if getattr(model, "vocab", None) is None:
        raise ValueError(f"{where}: no tokenizer found with the checkpoint (expected vocab.json and a "
                         "tokenizer/ folder beside it, or tokenizer.json / tokenizer.model in an HF folder)")


def _single_process() -> bool:
    """Resume only where one process decides alone (several hosts must run the same tasks together)."""
    import jax

    return jax.process_count() == 1


def _prepare(model: Any, tasks: Sequence[EvalTask], settings: EvalSettings, out_dir: Any, model_path: str,
             resuming: bool) -> tuple[dict[str, TaskResult], list[tuple[TaskPlan, str]]]:
    """Finished tasks reused from `out_dir`, and a plan (with its fingerprint) for every other task."""
    key = resume.model_key(model, model_path) if resuming else {}
    done, plans = {}, []
    for task in tasks:
        examples = load_examples(task, settings)
        print_ = resume.fingerprint(key, settings, task, examples) if resuming else ""
        found = resume.load_task(out_dir, task, print_) if resuming else None
        if found is not None:
            done[task.name] = found
        else:
            plans.append((plan(model, task, examples, settings), print_))
    return done, plans


def _summary(results: dict[str, TaskResult], tasks: Sequence[EvalTask], settings: EvalSettings,
             model_path: str, suite: str, t0: float) -> dict[str, Any]:
    finished = [results[t.name] for t in tasks if t.name in results]
    summary = summarize(finished, model_path=model_path, suite=suite, settings=dataclasses.asdict(settings),
                        wall_seconds=time.perf_counter() - t0)
    summary["complete"] = len(finished) == len(tasks)
    summary["pending_tasks"] = [t.name for t in tasks if t.name not in results]
    summary["too_long"] = {"setting": settings.too_long,
                           "skipped": {r.name: len(r.skipped) for r in finished if r.skipped},
                           "truncated": {r.name: len(r.truncated) for r in finished if r.truncated}}
    return summary


def _write_partial(out_dir: Any, summary: dict[str, Any]) -> None:
    out = fs.path(out_dir)
    fs.write_text(out / "results.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    fs.write_text(out / "results.md", markdown(summary))


def evaluate(model: Any, tasks: Sequence[EvalTask], settings: EvalSettings | None = None, *,
             out_dir: fs.PathLike | None = None, model_path: str = "", suite: str = "",
             resume_run: bool = True) -> tuple[dict[str, Any], list[TaskResult]]:
    """Runs every task (a progress bar over tasks), summarises, and writes results.json / results.md /
    predictions/<task>.jsonl / tasks/<task>.json under `out_dir` when given (module docstring)."""
    settings = settings or EvalSettings()
    t0 = time.perf_counter()
    resuming = out_dir is not None and resume_run and _single_process()
    results, plans = _prepare(model, tasks, settings, out_dir, model_path, resuming)
    check_plans([p for p, _ in plans], int(model.max_length))
    if results:
        print(f"eval: {len(results)} of {len(tasks)} task(s) already done in {out_dir}; reusing them",
              file=sys.stderr)
    for task_plan, print_ in tqdm(plans, desc=f"eval {suite}".strip(), unit="task",
                                  disable=not settings.progress, dynamic_ncols=True):
        result = run_plan(model, task_plan, settings)
        results[result.name] = result
        if out_dir is not None:
            resume.save_task(out_dir, result, print_)
            _write_partial(out_dir, _summary(results, tasks, settings, model_path, suite, t0))
    summary = _summary(results, tasks, settings, model_path, suite, t0)
    ordered = [results[t.name] for t in tasks]
    if out_dir is not None:
        write_outputs(out_dir, ordered, summary)
    return summary, ordered
