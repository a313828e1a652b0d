"""Infilling, the second way to prompt a UL2R model (U-PaLM section 4): a held-out passage with a blank
(`<extra_id_0>`) is given in `[NLU]` mode, `<extra_id_1>` at its end as the text goes on (U-PaLM's prompt,
flan_ul2r/decoding/infill.py), and the model writes the missing words through its sentinel.

Passages come from documents no run trained on (the default corpus's validation split, the one rule of
flan_ul2r/data/corpus/validation_split.py). Each passage is a window of `WINDOW_WORDS`
words with one blank of 1-3 consecutive words (R-denoiser-sized: UL2's regular spans have a mean length of
3 tokens, U-PaLM section 2.3), never at the window's edges, and never only words that SQuAD normalisation
removes (punctuation, articles). The metric is exact match of the filled span
against the removed words (SQuAD normalisation), and SQuAD F1 for partial credit.
"""
from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Sequence
from typing import Any

from flan_ul2r import fs
from flan_ul2r.evaluation.metrics import squad_normalize, squad_scores
from flan_ul2r.evaluation.report import example_scores, score_interval

WINDOW_WORDS = 24
BLANK = "<extra_id_0>"
BENCHMARK = "Infilling"
CLOSED_BENCHMARK = "Infilling-Closed"


@dataclasses.dataclass(frozen=True)
class InfillExample:
    id: str
    text: str  # the passage with BLANK where the words were
    answer: str  # the removed words


def heldout_documents() -> list[str]:
    """The default corpus's validation documents (never in a training split)."""
    from flan_ul2r.data.corpus.default_corpus import default_corpus_documents

    return default_corpus_documents("validation")


def make_examples(documents: Sequence[str], num: int, seed: int = 0, windows_per_document: int | None = 1
                  ) -> list[InfillExample]:
    """`num` passages with one blank of 1-3 words each, from documents in a seeded order.
    `windows_per_document` = 1: one window per document at a random start (id `doc<i>`); k > 1 or None
    (all): up to k non-overlapping windows of each document after a random offset (ids `doc<i>.<k>`), so
    a small held-out set yields more passages - each passage's text is still seen only once."""
    rng = random.Random(seed)
    order = list(range(len(documents)))
    rng.shuffle(order)
    out: list[InfillExample] = []
    for i in order:
        words = documents[i].split()
        if len(words) < WINDOW_WORDS:
            continue
        if windows_per_document == 1:
            starts = [(f"doc{i}", rng.randrange(len(words) - WINDOW_WORDS + 1))]
        else:
            offset = rng.randrange(len(words) % WINDOW_WORDS + 1)
            count = (len(words) - offset) // WINDOW_WORDS
            count = count if windows_per_document is None else min(count, windows_per_document)
            starts = [(f"doc{i}.{k}", offset + k * WINDOW_WORDS) for k in range(count)]
        for name, start in starts:
            out.append(_blanked(name, words[start:start + WINDOW_WORDS], rng))
            if len(out) == num:
                return out
    if not out:
        raise ValueError(f"infilling: no document has {WINDOW_WORDS} words")
    return out


def _blanked(name: str, window: list[str], rng: random.Random) -> InfillExample:
    """The window with 1-3 consecutive inner words replaced by BLANK (never the first or the last). Words
    that SQuAD normalisation empties ("->", "the", "a") are redrawn: an empty answer would count an empty
    fill as exact (up to 20 draws, then the last one is kept)."""
    for _ in range(20):
        length = rng.randint(1, 3)
        at = rng.randrange(1, WINDOW_WORDS - length)
        answer = " ".join(window[at:at + length])
        if squad_normalize(answer):
            break
    text = " ".join(window[:at] + [BLANK] + window[at + length:])
    return InfillExample(name, text, answer)


def evaluate_infilling(model: Any, examples: Sequence[InfillExample], *, out_dir: fs.PathLike | None = None,
                       batch_size: int = 8, max_new_tokens: int = 32, too_long: str = "error"
                       ) -> dict[str, Any]:
    """Infills every example (greedy, `[NLU]`) and returns a summary shaped like an eval suite's
    results.json (`benchmarks`, `tasks`); writes predictions/infilling.jsonl under `out_dir`.
    Two benchmarks from the same predictions: `Infilling` (exact match of the filled words) and
    `Infilling-Closed` (the share of passages answered in the denoising format: `<extra_id_0>`, the span,
    then the closing `<extra_id_1>` within `max_new_tokens`; a causal model that only continues the text
    scores 0 whatever its words). `too_long`: a passage whose prompt + `max_new_tokens` exceeds the model's
    context is an error ("error") or left out and listed (`skipped_ids`, "skip"), as in
    `EvalSettings.too_long`."""
    t0 = time.perf_counter()
    examples, skipped = _fitting(model, examples, max_new_tokens, too_long)
    rows = _predictions(model, examples, max_new_tokens, batch_size)
    if out_dir is not None:
        folder = fs.path(out_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "infilling.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    common = {"random": 0.0, "mode": "infill", "cot": False, "skipped": len(skipped), "skipped_ids": skipped,
              "wall_seconds": round(time.perf_counter() - t0, 3), "count": len(rows), "n": len(rows),
              "file": "infilling"}
    out: dict[str, Any] = {"benchmarks": {}, "tasks": {}}
    for task, benchmark, metrics in (("infilling", BENCHMARK, ("exact_match", "f1")),
                                     ("infilling_closed", CLOSED_BENCHMARK, ("closed",))):
        values = {m: example_scores(rows, m) for m in metrics}  # percent per passage
        scores = {m: float(v.mean()) for m, v in values.items()}
        spans = {m: list(score_interval([v], m)) for m, v in values.items()}
        primary = metrics[0]
        out["tasks"][task] = {"benchmark": benchmark, "metrics": scores, "primary_metric": primary,
                              "score": scores[primary], "intervals": spans, **common}
        out["benchmarks"][benchmark] = {"score": scores[primary], "random": 0.0, "metric": primary,
                                        "aggregate": "micro", "tasks": 1, "count": len(rows), "n": len(rows),
                                        "ci_low": spans[primary][0], "ci_high": spans[primary][1]}
    return out


def _predictions(model: Any, examples: Sequence[InfillExample], max_new_tokens: int, batch_size: int
                 ) -> list[dict[str, Any]]:
    """One row per passage: the filled words, exact match and F1 against the removed words, and whether
    the answer was written in the denoising format (`closed`)."""
    first, closing = model.vocab.sentinel_ids[:2]
    filled = model.infill_detailed([e.text for e in examples], mode="nlu", max_new_tokens=max_new_tokens,
                                   batch_size=batch_size)
    rows = []
    for ex, samples in zip(examples, filled):
        spans, ids = samples[0].spans, list(samples[0].token_ids)
        prediction = spans[0] if spans else ""
        correct, f1 = squad_scores(prediction, [ex.answer])
        rows.append({"id": ex.id, "prompt": ex.text, "output": prediction, "reference": ex.answer,
                     "correct": bool(correct), "f1": float(f1),
                     "closed": bool(ids) and ids[0] == first and closing in ids})
    return rows


def _fitting(model: Any, examples: Sequence[InfillExample], max_new_tokens: int, too_long: str
             ) -> tuple[list[InfillExample], list[str]]:
    """(the examples that fit the model's context, the ids of those that do not) under `too_long`. A passage
    has no exemplars to drop and cutting it would change its blanks, so "truncate_left" leaves it out as
    "skip" does (the eval suites' setting, shared by the pipeline)."""
    from flan_ul2r.decoding.infill import infill_prompt

    if too_long not in ("error", "skip", "truncate_left"):
        raise ValueError(f"infilling: too_long={too_long!r}; use 'error', 'skip' or 'truncate_left'")
    limit = int(model.max_length)
    kept, skipped = [], []
    for ex in examples:
        need = len(infill_prompt(model.vocab, ex.text, "nlu")[0]) + max_new_tokens
        if need <= limit:
            kept.append(ex)
        elif too_long != "error":
            skipped.append(ex.id)
        else:
            raise ValueError(f"infilling: passage {ex.id}: {need} tokens with max_new_tokens "
                             f"{max_new_tokens} > the model's max_length {limit}; set too_long='skip' to "
                             "leave such passages out")
    if not kept:
        raise ValueError(f"infilling: none of the {len(examples)} passages fits the model's max_length "
                         f"{limit}")
    return kept, skipped
