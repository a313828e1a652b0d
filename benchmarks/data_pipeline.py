"""Data pipeline throughput: the UL2R mixture with packing vs plain causal-LM packing, same corpus.

  python benchmarks/data_pipeline.py [--seconds 10] [--sequence_length 2048] [--batch_size 8]

Prints tokens/s (non-padding tokens of packed [batch, 2048] batches, U-PaLM 2.2's length) of both
pipelines and their ratio. Target on a 2-core machine: UL2R >= 200k tokens/s and ratio >= 0.7.
The corpus is the project's default (stdlib docstrings, ByteVocabulary); if DATA-CORE's corpus code is
not importable, a byte-level corpus of the installed stdlib's .py files is used instead (said in output).
"""
from __future__ import annotations

import argparse
import sysconfig
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from flan_ul2r.data.denoisers import UL2R
from flan_ul2r.data.loader import make_train_iterator
from flan_ul2r.data.ul2r_tasks import LazyCorpus, array_corpus, register_lm_task, register_ul2r_mixture


def _fallback() -> tuple[object, object, str]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    docs = [np.frombuffer(f.read_bytes(), np.uint8).astype(np.int32) + 3 for f in files]
    vocab = SimpleNamespace(sentinel_ids=tuple(range(358, 258, -1)), eos_id=1, bos_id=0, pad_id=0,
                            mode_token_ids={"[NLU]": 359, "[NLG]": 360, "[S2S]": 361})
    return array_corpus(docs), vocab, f"fallback: bytes of {len(files)} stdlib .py files"


def corpus_and_vocab() -> tuple[object, object, str]:
    try:
        from flan_ul2r.tasks import ul2r

        vocab = ul2r._default_vocabulary()
        corpus = ul2r._build_default_corpus()
        return corpus, vocab, "default corpus (stdlib docstrings)"
    except (ImportError, RuntimeError):
        return _fallback()


def measure(name: str, lengths: dict[str, int], batch_size: int, seconds: float) -> tuple[float, int]:
    it = make_train_iterator(name, lengths, batch_size, seed=0)
    next(it)  # warm-up: tracing, corpus tables
    tokens, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tokens += int((next(it)["decoder_segment_ids"] > 0).sum())
    return tokens / (time.perf_counter() - start), tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--sequence_length", type=int, default=2048)
    p.add_argument("--batch_size", type=int, default=8)
    args = p.parse_args()
    corpus, vocab, what = corpus_and_vocab()
    lazy = LazyCorpus(lambda: corpus, "bench")
    register_ul2r_mixture("bench_ul2r", lazy, vocab, UL2R)
    register_lm_task("bench_lm", lazy, vocab)
    half = args.sequence_length // 2
    lengths = {"inputs": half, "targets": args.sequence_length - half}
    print(f"corpus: {what}; {len(np.asarray(lazy.corpus.tokens))} tokens; length {args.sequence_length}, "
          f"batch {args.batch_size}")
    ul2r, n1 = measure("bench_ul2r", lengths, args.batch_size, args.seconds)
    lm, n2 = measure("bench_lm", lengths, args.batch_size, args.seconds)
    print(f"ul2r mixture (packed): {ul2r:,.0f} tokens/s ({n1:,} tokens)")
    print(f"causal LM (packed):    {lm:,.0f} tokens/s ({n2:,} tokens)")
    print(f"ratio ul2r / lm: {ul2r / lm:.3f}  (target >= 0.7; ul2r target >= 200,000 tokens/s)")


if __name__ == "__main__":
    main()
