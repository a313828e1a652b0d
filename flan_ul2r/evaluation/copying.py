"""In-context copying: can the model repeat a passage it has just read?

Infilling (U-PaLM section 4) asks a model to find its sentinel in the prompt and to write what belongs
around it: a lookup by content into its own context. Copying a repeated passage needs the same kind of
lookup (find where the current token was seen before, read what came next), and it is the simpler of the
two: the answer is written out in the context. Olsson et al. 2022 ("In-context Learning and Induction
Heads") use exactly this test, the loss on a repeated sequence, to tell whether a model has formed
induction heads. So a model that cannot copy cannot be expected to infill, and this row tells a
miniature's missing infilling apart from a broken recipe.

Each passage is `length` tokens of a held-out document (the default corpus's validation split, as for
infilling and the LM loss), read twice in a row after BOS: `BOS p p`. The score of a passage is the
teacher-forced top-1 accuracy over the second copy's tokens, in percent (the first token of the second copy
is left out: nothing before it says that the passage starts again). `first_read_accuracy`, the same
measure on the first copy, is what the model gets without looking back. A model that copies scores near
100; one that does not, about its first-read score. The interval is the bootstrap over passages.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from flan_ul2r import fs
from flan_ul2r.evaluation.lm_loss import windows
from flan_ul2r.evaluation.report import example_scores, score_interval

BENCHMARK = "Copying"
METRIC = "copy_accuracy"
FIRST_READ = "first_read_accuracy"
MAX_LENGTH = 64  # tokens per passage: a short paragraph of the default corpus


def passages(model: Any, documents: Sequence[str], length: int, limit: int) -> list[tuple[str, list[int]]]:
    """Up to `limit` (id, ids) pieces of exactly `length` tokens: the full windows of each document (a
    shorter last piece is left out)."""
    out = [(f"doc{d}.{w}", piece) for d, text in enumerate(documents)
           for w, piece in enumerate(windows(model.tokenize(text), length)) if len(piece) == length]
    return out[:limit]


def top1_hits(logits: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """hits[i] = whether the prediction at position i (argmax of logits[i]) is ids[i + 1]."""
    return np.asarray(logits[:-1].argmax(-1) == np.asarray(ids[1:]), bool)


def evaluate_copying(model: Any, documents: Sequence[str], *, out_dir: fs.PathLike | None = None,
                     batch_size: int = 8, max_passages: int = 200) -> dict[str, Any]:
    """Reads every passage twice (causal attention after BOS) and returns a summary shaped like an eval
    suite's results.json (`benchmarks`, `tasks`); writes predictions/copying.jsonl (one row per passage:
    id, copy_accuracy, first_read_accuracy, tokens) under `out_dir`."""
    t0 = time.perf_counter()
    bos = list(model.encode_prompt(""))
    length = min(MAX_LENGTH, (int(model.max_length) - len(bos)) // 2)
    if length < 2:
        raise ValueError(f"copying: the model's max_length {model.max_length} leaves no room for a passage "
                         "read twice")
    pieces = passages(model, documents, length, max_passages)
    if not pieces:
        raise ValueError(f"copying: no held-out document has {length} tokens to repeat (max_length "
                         f"{model.max_length})")
    rows = []
    for start in range(0, len(pieces), batch_size):
        chunk = pieces[start:start + batch_size]
        batch = [bos + p + p for _, p in chunk]
        for (name, _), ids, logits in zip(chunk, batch, np.asarray(model.logits(batch))):
            hits = top1_hits(logits, ids)
            first = hits[len(bos):len(bos) + length - 1]  # predicting tokens 2..length of the first copy
            second = hits[len(bos) + length:]  # predicting tokens 2..length of the repeat
            rows.append({"id": name, METRIC: float(second.mean()), FIRST_READ: float(first.mean()),
                         "tokens": length})
    values = {m: example_scores(rows, m) for m in (METRIC, FIRST_READ)}  # percent per passage
    scores = {m: float(v.mean()) for m, v in values.items()}
    spans = {m: list(score_interval([v], m)) for m, v in values.items()}  # graded: the bootstrap
    if out_dir is not None:
        folder = fs.path(out_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "copying.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = {"count": len(rows), "n": len(rows), "random": 0.0, "passage_tokens": length,
              FIRST_READ: scores[FIRST_READ]}
    task = {"benchmark": BENCHMARK, "metrics": scores, "primary_metric": METRIC, "score": scores[METRIC],
            "mode": "score", "cot": False, "skipped": 0, "skipped_ids": [], "file": "copying",
            "wall_seconds": round(time.perf_counter() - t0, 3), "intervals": spans, **common}
    bench = {"score": scores[METRIC], "metric": METRIC, "aggregate": "micro", "tasks": 1,
             "ci_low": spans[METRIC][0], "ci_high": spans[METRIC][1], **common}
    return {"benchmarks": {BENCHMARK: bench}, "tasks": {"copying": task}}
