"""Runs evaluation tasks on a model: batched decoding or scoring, answer extraction, self-consistency,
per-example prediction rows and per-task metrics.

The model is anything with the `flan_ul2r.load_model` interface: `tokenize`, `detokenize`, `vocab.eos_id`,
`max_length`, `prefix_lm`, `generate_batch(prompts, ...)` and `score(contexts, continuations, ...)`.
Prompts are encoded and checked against `max_length` first (flan_ul2r/evaluation/prompt_plan.py); then
each task goes to the model in one call, which sorts, batches and shares the few-shot prefix.
"""
from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Sequence
from typing import Any

from flan_ul2r.evaluation.metrics import exact_match, mean_percent, squad_scores
from flan_ul2r.evaluation.prompt_plan import TaskPlan, check_plans, plan_task
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol
from flan_ul2r.evaluation.vote import majority_vote


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How to run: `max_examples` per task (None = all), `batch_size`, self-consistency on CoT tasks
    (`num_samples` > 1 samples at `temperature`, majority vote; Wang et al. 2022 used 40), `seed`,
    `append_eos` (end the prompt with EOS as Flan trained its inputs, Chung et al. 2022 section 2.2; None =
    when the model is prefix-LM), `progress` (tqdm bars), `too_long` ("error", "skip" or "truncate_left":
    flan_ul2r/evaluation/prompt_plan.py), `max_new_tokens` (None = each task's budget, prompt_plan.py)."""

    max_examples: int | None = None
    batch_size: int = 8
    num_samples: int = 1
    temperature: float = 0.7
    seed: int = 0
    append_eos: bool | None = None
    progress: bool = True
    too_long: str = "error"
    max_new_tokens: int | None = None


@dataclasses.dataclass
class TaskResult:
    name: str
    protocol: Protocol
    predictions: list[dict[str, Any]]
    metrics: dict[str, float]
    random: float
    wall_seconds: float
    skipped: list[str] = dataclasses.field(default_factory=list)  # ids too long (too_long="skip")
    truncated: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # "truncate_left"
    max_new_tokens: int = 0

    @property
    def score(self) -> float:
        return self.metrics[primary_metric(self.protocol)]

    def summary(self) -> dict[str, Any]:
        return {"benchmark": self.protocol.benchmark, "metrics": self.metrics,
                "primary_metric": primary_metric(self.protocol), "score": self.score,
                "count": len(self.predictions), "random": self.random, "mode": self.protocol.mode,
                "cot": self.protocol.cot, "wall_seconds": round(self.wall_seconds, 3),
                "skipped": len(self.skipped), "skipped_ids": list(self.skipped),
                "truncated": len(self.truncated), "max_new_tokens": self.max_new_tokens}


def primary_metric(protocol: Protocol) -> str:
    return "accuracy" if protocol.metric == "accuracy" else "exact_match"


def task_metrics(protocol: Protocol, predictions: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Metrics (percent) recomputed from prediction rows alone (what `predictions/<task>.jsonl` holds)."""
    correct = [bool(p["correct"]) for p in predictions]
    if protocol.metric == "squad":
        return {"exact_match": mean_percent(correct), "f1": mean_percent(p["f1"] for p in predictions)}
    return {primary_metric(protocol): mean_percent(correct)}


def _text(model: Any, ids: Sequence[int], stops: Sequence[str]) -> str:
    ids = [int(i) for i in ids]
    eos = int(model.vocab.eos_id)
    if eos in ids:
        ids = ids[: ids.index(eos)]
    text = model.detokenize(ids)
    for s in stops:
        if s in text:
            text = text[: text.index(s)]
    return text


def _score_row(protocol: Protocol, ex: EvalExample, answer: str | None) -> dict[str, Any]:
    if protocol.metric == "squad":
        em, f1 = squad_scores(answer, ex.references)
        return {"correct": em, "f1": f1}
    return {"correct": exact_match(answer, ex.references)}


def _with_progress(method: Any, progress: bool) -> dict[str, Any]:
    """`progress=` for model methods that take it (LoadedModel's show a bar over batches)."""
    return {"progress": progress} if "progress" in inspect.signature(method).parameters else {}


def _row(ex: EvalExample, plan: TaskPlan, **fields: Any) -> dict[str, Any]:
    row = {"id": ex.id, "prompt": ex.prompt, **fields, "reference": ex.references[0],
           "references": list(ex.references)}
    if ex.id in plan.truncated:
        row["truncated"] = plan.truncated[ex.id]
    return row


def _generate_rows(model: Any, plan: TaskPlan, s: EvalSettings) -> list[dict[str, Any]]:
    """The whole task in one call: the model sorts the prompts by length, batches them and reads a shared
    few-shot prefix once (flan_ul2r/decoding/prefix_cache.py)."""
    p = plan.task.protocol
    voting = p.cot and s.num_samples > 1
    outs = model.generate_batch(
        plan.prompts, max_new_tokens=plan.budget, stop_sequences=tuple(p.stop_sequences), stop_at_eos=True,
        num_samples=s.num_samples if voting else 1, temperature=s.temperature if voting else 0.0,
        seed=s.seed, batch_size=s.batch_size, **_with_progress(model.generate_batch, s.progress))
    rows = []
    for ex, samples in zip(plan.examples, outs):
        texts = [_text(model, ids, p.stop_sequences) for ids in samples]
        answers = [p.extract(t, ex) for t in texts]
        answer = majority_vote(answers) if voting else answers[0]
        row = _row(ex, plan, output=texts[0], extracted=answer)
        if voting:
            row.update(samples=texts, sample_answers=answers)
        rows.append({**row, **_score_row(p, ex, answer)})
    return rows


def _rank_rows(model: Any, plan: TaskPlan, s: EvalSettings) -> list[dict[str, Any]]:
    contexts = [ctx for ctx, choices in zip(plan.prompts, plan.choices) for _ in choices]
    conts = [c for choices in plan.choices for c in choices]
    scores = model.score(contexts, conts, batch_size=s.batch_size, **_with_progress(model.score, s.progress))
    rows, k = [], 0
    for ex in plan.examples:
        logps = [float(lp) for lp, _ in scores[k: k + len(ex.choices)]]
        k += len(ex.choices)
        best = ex.choices[max(range(len(logps)), key=lambda j: (logps[j], -j))]
        rows.append(_row(ex, plan, output=best, extracted=best, choices=list(ex.choices), scores=logps,
                         correct=exact_match(best, ex.references)))
    return rows


def load_examples(task: EvalTask, settings: EvalSettings) -> list[EvalExample]:
    """The task's examples (the first `max_examples`); an error when there are none."""
    examples = list(task.load())
    if settings.max_examples is not None:
        examples = examples[: settings.max_examples]
    if not examples:
        raise ValueError(f"task {task.name}: no examples")
    return examples


def plan(model: Any, task: EvalTask, examples: Sequence[EvalExample], settings: EvalSettings) -> TaskPlan:
    return plan_task(model, task, examples, too_long=settings.too_long, append_eos=settings.append_eos,
                     max_new_tokens=settings.max_new_tokens)


def run_plan(model: Any, plan: TaskPlan, settings: EvalSettings = EvalSettings()) -> TaskResult:
    """Runs a planned task (prompt_plan.py) and scores it."""
    t0 = time.perf_counter()
    task = plan.task
    rows = (_rank_rows if task.protocol.mode == "rank" else _generate_rows)(model, plan, settings) \
        if plan.examples else []
    chances = [ex.chance for ex in plan.examples]
    random = (sum(chances) / len(chances)) if chances and all(c is not None for c in chances) \
        else task.protocol.random
    return TaskResult(task.name, task.protocol, rows, task_metrics(task.protocol, rows), random,
                      time.perf_counter() - t0, plan.skipped, plan.truncated, plan.budget)


def run_task(model: Any, task: EvalTask, settings: EvalSettings = EvalSettings()) -> TaskResult:
    """Loads, plans (a prompt that does not fit is an error unless `settings.too_long` says otherwise),
    runs and scores one task."""
    planned = plan(model, task, load_examples(task, settings), settings)
    check_plans([planned], int(model.max_length))
    return run_plan(model, planned, settings)
