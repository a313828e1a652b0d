"""Evaluate a model on a list of tasks and write the run's files (the library behind `flan-ul2r eval`)."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from flan_ul2r.evaluation.protocol import EvalTask
from flan_ul2r.evaluation.report import summarize, write_outputs
from flan_ul2r.evaluation.runner import EvalSettings, TaskResult, run_task

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


def evaluate(model: Any, tasks: Sequence[EvalTask], settings: EvalSettings | None = None, *,
             out_dir: str | Path | None = None, model_path: str = "", suite: str = ""
             ) -> tuple[dict[str, Any], list[TaskResult]]:
    """Runs every task (a progress bar over tasks, one per task over examples), summarises, and writes
    results.json / results.md / predictions/<task>.jsonl under `out_dir` when given."""
    settings = settings or EvalSettings()
    t0 = time.perf_counter()
    results = []
    for task in tqdm(tasks, desc=f"eval {suite}".strip(), unit="task", disable=not settings.progress,
                     dynamic_ncols=True):
        results.append(run_task(model, task, settings))
    summary = summarize(results, model_path=model_path, suite=suite, settings=dataclasses.asdict(settings),
                        wall_seconds=time.perf_counter() - t0)
    if out_dir is not None:
        write_outputs(out_dir, results, summary)
    return summary, results
