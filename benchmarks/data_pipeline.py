"""Data pipeline throughput: the UL2R mixture with packing vs plain causal-LM packing, same corpus; and
the `flan` mixture at FLAN v2's 2048 + 512 (byte vocabulary, and a 32k BPE trained here).

  python benchmarks/data_pipeline.py [--seconds 10] [--sequence_length 2048] [--batch_size 8] [--no_flan]

Prints tokens/s (non-padding tokens of packed [batch, 2048] batches, U-PaLM 2.2's length) of both
pipelines and their ratio. Target on a 2-core machine: UL2R >= 200k tokens/s and ratio >= 0.7.
Flan rows (`flan_rows`): packed 2048 + 512 tokens/s with the byte vocabulary (target >= 1M) and with a
32k byte-level BPE `tokenizer.json` trained with `tokenizers` on the default corpus (target >= 0.5M;
trained once, cached under $FLAN_UL2R_CACHE/bench/), printed beside the UL2R figure.
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
from flan_ul2r.tasks.ul2r import ArrayCorpus, LazyCorpus, register_lm_task, register_ul2r_mixture


def _fallback() -> tuple[object, object, str]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    docs = [np.frombuffer(f.read_bytes(), np.uint8).astype(np.int32) + 3 for f in files]
    vocab = SimpleNamespace(sentinel_ids=tuple(range(358, 258, -1)), eos_id=1, bos_id=0, pad_id=0,
                            mode_token_ids={"[NLU]": 359, "[NLG]": 360, "[S2S]": 361})
    return ArrayCorpus(docs), vocab, f"fallback: bytes of {len(files)} stdlib .py files"


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


def train_bpe(vocab_size: int = 32_000) -> str:
    """A byte-level BPE tokenizer.json trained on the default corpus (cached); returns its directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from flan_ul2r.data.corpus_cache import cache_dir
    from flan_ul2r.data.default_corpus import default_corpus_documents

    out = cache_dir() / "bench" / f"bpe{vocab_size}"
    if not (out / "tokenizer.json").is_file():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(default_corpus_documents(), trainer)
        out.mkdir(parents=True, exist_ok=True)
        tok.save(str(out / "tokenizer.json"))
    return str(out)


def flan_rows(batch_size: int, seconds: float, ul2r: float) -> None:
    """The `flan` mixture, packed at 2048 + 512 (FLAN v2 SEQUENCE_LEN), byte vocabulary and a 32k BPE."""
    import flan_ul2r.tasks.flan  # noqa: F401 - registers `flan` (byte vocabulary unless gin says otherwise)
    from flan_ul2r.data import flan_mixing, instruction_tasks
    from flan_ul2r.data.instruction_suite import SUITE, SUITE_SIZES, generate
    from flan_ul2r.data.vocabularies import get_vocabulary

    lengths = {"inputs": 2048, "targets": 512}
    byte, n1 = measure("flan", lengths, batch_size, seconds)
    bpe = get_vocabulary("hf:" + train_bpe())
    names = [instruction_tasks.register_instruction_task(
        f"bench_bpe_{t.name}", lambda split, t=t: generate(t, SUITE_SIZES[split], split), t.templates,
        family=t.family, style_mix=flan_mixing.style_mix_for(t.family), vocabulary=bpe, lettered=t.lettered,
        num_examples=SUITE_SIZES["train"], join_mixtures=False) for t in SUITE if not t.held_out]
    instruction_tasks.register_instruction_mixture("bench_flan_bpe", names, flan_mixing.FAMILY_RATES_PAPER,
                                                   flan_mixing.FAMILY_CAPS)
    sub, n2 = measure("bench_flan_bpe", lengths, batch_size, seconds)
    print(f"flan mixture 2048+512 (packed, byte):    {byte:,.0f} tokens/s ({n1:,} tokens; "
          "target >= 1,000,000)")
    print(f"flan mixture 2048+512 (packed, 32k BPE): {sub:,.0f} tokens/s ({n2:,} tokens; target >= 500,000)")
    print(f"beside ul2r (packed, byte): {ul2r:,.0f} tokens/s; flan byte / ul2r: {byte / ul2r:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--sequence_length", type=int, default=2048)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--no_flan", action="store_true", help="skip the Flan rows")
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
    if not args.no_flan:
        flan_rows(args.batch_size, args.seconds, ul2r)


if __name__ == "__main__":
    main()
