"""Runs evaluation tasks on a model: batched decoding or scoring, answer extraction, self-consistency,
per-example prediction rows and per-task metrics.

The model is anything with the `flan_ul2r.load_model` interface: `tokenize`, `detokenize`, `vocab.eos_id`,
`max_length`, `prefix_lm`, `generate_batch(prompts, ...)` and `score(contexts, continuations, ...)`.
A prompt that does not fit `max_length` (with its new tokens or continuation) is an error naming the task,
the example and the lengths; nothing is truncated.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from flan_ul2r.evaluation.metrics import exact_match, mean_percent, squad_scores
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol
from flan_ul2r.evaluation.vote import majority_vote


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How to run: `max_examples` per task (None = all), `batch_size`, self-consistency on CoT tasks
    (`num_samples` > 1 samples at `temperature`, majority vote; Wang et al. 2022 used 40), `seed`,
    `append_eos` (end the prompt with EOS as Flan trained its inputs, Chung et al. 2022 section 2.2; None =
    when the model is prefix-LM), `progress` (tqdm bars)."""

    max_examples: int | None = None
    batch_size: int = 8
    num_samples: int = 1
    temperature: float = 0.7
    seed: int = 0
    append_eos: bool | None = None
    progress: bool = True
    # "error": a prompt that does not fit the model's max_length stops the run (never truncated);
    # "skip": such examples are left out, and listed (`skipped`) in results.json and results.md.
    too_long: str = "error"


@dataclasses.dataclass
class TaskResult:
    name: str
    protocol: Protocol
    predictions: list[dict[str, Any]]
    metrics: dict[str, float]
    random: float
    wall_seconds: float
    skipped: list[str] = dataclasses.field(default_factory=list)  # ids too long (too_long="skip")

    @property
    def score(self) -> float:
        return self.metrics[primary_metric(self.protocol)]

    def summary(self) -> dict[str, Any]:
        return {"benchmark": self.protocol.benchmark, "metrics": self.metrics,
                "primary_metric": primary_metric(self.protocol), "score": self.score,
                "count": len(self.predictions), "random": self.random, "mode": self.protocol.mode,
                "cot": self.protocol.cot, "wall_seconds": round(self.wall_seconds, 3),
                "skipped": len(self.skipped), "skipped_ids": list(self.skipped)}


def primary_metric(protocol: Protocol) -> str:
    return "accuracy" if protocol.metric == "accuracy" else "exact_match"


def task_metrics(protocol: Protocol, predictions: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Metrics (percent) recomputed from prediction rows alone (what `predictions/<task>.jsonl` holds)."""
    correct = [bool(p["correct"]) for p in predictions]
    if protocol.metric == "squad":
        return {"exact_match": mean_percent(correct), "f1": mean_percent(p["f1"] for p in predictions)}
    return {primary_metric(protocol): mean_percent(correct)}


def encode(model: Any, text: str) -> list[int]:
    """A prompt's ids as the model read its training examples: `model.encode_prompt` (BOS first, special
    names such as <extra_id_0> mapped) where the model has it, else its tokenizer's ids."""
    encoder = getattr(model, "encode_prompt", None)
    return [int(i) for i in (encoder(text) if encoder is not None else model.tokenize(text))]


def _prompt_ids(model: Any, prompt: str, append_eos: bool) -> list[int]:
    ids = encode(model, prompt)
    return ids + [int(model.vocab.eos_id)] if append_eos else ids


def _check_length(task: str, ex: EvalExample, n_prompt: int, n_extra: int, max_length: int, what: str):
    if n_prompt + n_extra > max_length:
        raise ValueError(f"task {task}, example {ex.id}: prompt of {n_prompt} tokens + {n_extra} {what} = "
                         f"{n_prompt + n_extra} > the model's max_length {max_length}; prompts are never "
                         "truncated: lower the shots or max_new_tokens, or use a longer-context model")


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


def _generate_rows(model: Any, task: EvalTask, examples: list[EvalExample], s: EvalSettings, bar: tqdm
                   ) -> list[dict[str, Any]]:
    p = task.protocol
    voting = p.cot and s.num_samples > 1
    kwargs = dict(max_new_tokens=p.max_new_tokens, stop_sequences=tuple(p.stop_sequences), stop_at_eos=True,
                  num_samples=s.num_samples if voting else 1, temperature=s.temperature if voting else 0.0,
                  seed=s.seed, batch_size=s.batch_size)
    append_eos = bool(getattr(model, "prefix_lm", False)) if s.append_eos is None else s.append_eos
    prompts = []
    for ex in examples:
        prompts.append(_prompt_ids(model, ex.prompt, append_eos))
        _check_length(task.name, ex, len(prompts[-1]), p.max_new_tokens, int(model.max_length),
                      "new tokens")
    rows = []
    for start in range(0, len(examples), s.batch_size):
        outs = model.generate_batch(prompts[start: start + s.batch_size], **kwargs)
        for ex, samples in zip(examples[start: start + s.batch_size], outs):
            texts = [_text(model, ids, p.stop_sequences) for ids in samples]
            answers = [p.extract(t, ex) for t in texts]
            answer = majority_vote(answers) if voting else answers[0]
            row = {"id": ex.id, "prompt": ex.prompt, "output": texts[0], "extracted": answer,
                   "reference": ex.references[0], "references": list(ex.references)}
            if voting:
                row.update(samples=texts, sample_answers=answers)
            rows.append({**row, **_score_row(p, ex, answer)})
        bar.update(len(outs))
    return rows


def _rank_rows(model: Any, task: EvalTask, examples: list[EvalExample], s: EvalSettings, bar: tqdm
               ) -> list[dict[str, Any]]:
    append_eos = bool(getattr(model, "prefix_lm", False)) if s.append_eos is None else s.append_eos
    rows = []
    for start in range(0, len(examples), s.batch_size):
        chunk = examples[start: start + s.batch_size]
        contexts, conts = [], []
        for ex in chunk:
            if not ex.choices:
                raise ValueError(f"task {task.name}, example {ex.id}: rank classification needs choices")
            ctx = _prompt_ids(model, ex.prompt, append_eos)
            for c in ex.choices:
                cont = [int(i) for i in model.tokenize(c)]
                _check_length(task.name, ex, len(ctx), len(cont), int(model.max_length),
                              "continuation tokens")
                contexts.append(ctx)
                conts.append(cont)
        scores = model.score(contexts, conts, batch_size=s.batch_size)
        k = 0
        for ex in chunk:
            logps = [float(lp) for lp, _ in scores[k: k + len(ex.choices)]]
            k += len(ex.choices)
            best = ex.choices[max(range(len(logps)), key=lambda j: (logps[j], -j))]
            rows.append({"id": ex.id, "prompt": ex.prompt, "output": best, "extracted": best,
                         "reference": ex.references[0], "references": list(ex.references),
                         "choices": list(ex.choices), "scores": logps,
                         "correct": exact_match(best, ex.references)})
        bar.update(len(chunk))
    return rows


def run_task(model: Any, task: EvalTask, settings: EvalSettings = EvalSettings()) -> TaskResult:
    """Loads the task's examples (the first `max_examples`), runs them and scores them."""
    t0 = time.perf_counter()
    examples = list(task.load())
    if settings.max_examples is not None:
        examples = examples[: settings.max_examples]
    if not examples:
        raise ValueError(f"task {task.name}: no examples")
    skipped: list[str] = []
    if settings.too_long == "skip":
        fits = [_fits(model, task.protocol, ex, settings) for ex in examples]
        skipped = [ex.id for ex, ok in zip(examples, fits) if not ok]
        examples = [ex for ex, ok in zip(examples, fits) if ok]
    elif settings.too_long != "error":
        raise ValueError(f"EvalSettings.too_long={settings.too_long!r}: use 'error' or 'skip'")
    with tqdm(total=len(examples), desc=task.name, unit="ex", leave=False, disable=not settings.progress,
              dynamic_ncols=True) as bar:
        run = _rank_rows if task.protocol.mode == "rank" else _generate_rows
        rows = run(model, task, examples, settings, bar)
    chances = [ex.chance for ex in examples]
    random = (sum(chances) / len(chances)) if chances and all(c is not None for c in chances) \
        else task.protocol.random
    return TaskResult(task.name, task.protocol, rows, task_metrics(task.protocol, rows), random,
                      time.perf_counter() - t0, skipped)


def _fits(model: Any, protocol: Protocol, ex: EvalExample, s: EvalSettings) -> bool:
    """Whether the example's prompt plus what it needs after it fits the model's max_length."""
    append_eos = bool(getattr(model, "prefix_lm", False)) if s.append_eos is None else s.append_eos
    need = len(_prompt_ids(model, ex.prompt, append_eos))
    if protocol.mode == "rank":
        need += max((len(model.tokenize(c)) for c in ex.choices), default=0)
    else:
        need += protocol.max_new_tokens
    return need <= int(model.max_length)
