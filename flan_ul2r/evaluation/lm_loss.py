"""Causal language-modelling loss on held-out text: what UL2R costs (or gains) the model as a plain LM.

UL2R should cost little left-to-right quality: U-PaLM's zero- and one-shot tasks, read left to right,
improve over PaLM's (Tay et al. 2022, section 3: 26 NLP tasks, 66.5 -> 69.4). This measures the loss itself
in miniature: the negative log-likelihood of documents no stage trained on (the default corpus's
validation split), each read causally from BOS in windows of the model's context. The
score is nats per byte of text (lower is better; per byte, so vocabularies compare), its interval the
bootstrap over windows of the ratio sum(nll) / sum(bytes) (`evaluation/intervals.py`).
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from etils import epath

from flan_ul2r import fs
from flan_ul2r.evaluation import intervals

BENCHMARK = "LM-Loss"
METRIC = "nll_per_byte"


def windows(ids: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive pieces of at most `size` ids covering `ids` once."""
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def evaluate_lm_loss(model: Any, documents: Sequence[str], *, out_dir: str | epath.Path | None = None,
                     batch_size: int = 8) -> dict[str, Any]:
    """Scores every document (no prefix: causal attention after BOS) and returns a summary shaped like an
    eval suite's results.json (`benchmarks`, `tasks`); writes predictions/lm_loss.jsonl (one row per
    window: id, nll, tokens, bytes) under `out_dir`."""
    t0 = time.perf_counter()
    bos = model.encode_prompt("")
    ids, pieces = [], []
    for d, text in enumerate(documents):
        for w, piece in enumerate(windows(model.tokenize(text), int(model.max_length) - len(bos))):
            ids.append(f"doc{d}.{w}")
            pieces.append(piece)
    if not pieces:
        raise ValueError("lm loss: no held-out text to score")
    scores = model.score([bos] * len(pieces), pieces, prefix_lm=False, batch_size=batch_size)
    rows = [{"id": i, "nll": -float(lp), "tokens": len(p), "bytes": len(model.detokenize(p).encode("utf-8"))}
            for i, p, (lp, _) in zip(ids, pieces, scores)]
    data = [[[r["nll"], r["bytes"]] for r in rows]]
    loss = intervals.statistic(data, "ratio")
    low, high = intervals.bootstrap(data, "ratio")
    tokens, size = sum(r["tokens"] for r in rows), sum(r["bytes"] for r in rows)
    if out_dir is not None:
        folder = fs.path(out_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lm_loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"benchmark": BENCHMARK, "metrics": {METRIC: loss}, "primary_metric": METRIC, "score": loss,
            "count": len(rows), "n": len(rows), "tokens": tokens, "bytes": size, "random": float("nan"),
            "mode": "score",
            "cot": False, "wall_seconds": round(time.perf_counter() - t0, 3), "skipped": 0, "skipped_ids": [],
            "intervals": {METRIC: [low, high]}}
    bench = {"score": loss, "random": float("nan"), "metric": METRIC, "aggregate": "ratio", "tasks": 1,
             "count": len(rows), "n": len(rows), "tokens": tokens, "bytes": size, "ci_low": low,
             "ci_high": high, "lower_is_better": True}
    return {"benchmarks": {BENCHMARK: bench}, "tasks": {"lm_loss": task}}
