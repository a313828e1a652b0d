"""Data pipeline throughput: UL2R vs plain causal-LM packing, seekable vs seqio paths, byte and 32k BPE;
and the `flan` mixture at FLAN v2's 2048 + 512.

  python benchmarks/data_pipeline.py [--seconds 10] [--sequence_length 2048] [--batch_size 8]

Prints packed tokens/s (non-padding tokens of [batch, 2048] batches, U-PaLM 2.2's length) on the default
corpus (stdlib docstrings) for:
- `lm`: the built-in causal-LM task (seekable path) - the baseline every ratio is against;
- `ul2r`: the built-in UL2R mixture (seekable path, T5 concatenate-then-split chunks);
- `plain seqio task`: a user's seqio.Task (TextLineDataSource + seqio's rekey / tokenize /
  append_eos_after_trim) through the loader's seqio path (tokenizing on the fly);
- `ul2r via seqio preprocessors`: a user's per-denoiser seqio tasks (TextLineDataSource + tokenize +
  `ul2_denoise`) mixed with the UL2R rates, seqio path;
- the seqio path's resume cost: seconds to skip examples (a resume re-reads what the run consumed);
then the same for a 32k BPE `tokenizer.json` trained here with `tokenizers` on the default corpus (cached).
Targets: byte UL2R >= 2M tokens/s and >= 0.9x plain LM packing; BPE UL2R >= 1.5M tokens/s; `flan` packed
2048 + 512 >= 1M tokens/s (byte) and >= 0.5M tokens/s (32k BPE).
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

import seqio

from flan_ul2r.data.core.example_streams import task_seed
from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.data.corpus.default_corpus import default_corpus_documents, load_default_corpus
from flan_ul2r.data.corpus.token_cache import cache_dir
from flan_ul2r.data.ul2.cached_tasks import LazyCorpus, register_lm_task, register_ul2r_mixture
from flan_ul2r.data.ul2.denoisers import UL2R
from flan_ul2r.data.ul2.preprocessors import ul2_denoise
from flan_ul2r.data.vocab.vocabularies import get_vocabulary


def measure(name: str, lengths: dict[str, int], batch_size: int, seconds: float) -> tuple[float, float]:
    """(packed tokens per wall second, CPU seconds of this process per million tokens). The CPU figure
    counts every thread (tf.data's too), so it depends less on what else runs on a shared machine."""
    it = make_train_iterator(name, lengths, batch_size, seed=0)
    next(it)  # warm-up: tracing, corpus tables, shuffle buffers
    tokens, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        tokens += int((next(it)["decoder_segment_ids"] > 0).sum())
    return tokens / (time.perf_counter() - start), (time.process_time() - cpu) / tokens * 1e6


def corpus_text_file() -> Path:
    """The default corpus as a text file, one document per line (what a user's TextLineDataSource reads)."""
    path = cache_dir() / "bench" / "stdlib_docstrings.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(" ".join(d.split()) for d in default_corpus_documents()) + "\n")
    return path


def train_bpe_tokenizer(vocab_size: int = 32_000) -> Path:
    """A byte-level BPE tokenizer.json trained with `tokenizers` on the default corpus (cached)."""
    path = cache_dir() / "bench" / f"bpe{vocab_size}" / "tokenizer.json"
    if not path.is_file():
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        t0 = time.perf_counter()
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(default_corpus_documents(), trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(path))
        print(f"trained a {vocab_size} BPE tokenizer in {time.perf_counter() - t0:.1f} s: {path}")
    return path


def register_user_tasks(prefix: str, vocab: Any) -> tuple[str, str]:
    """A user's plain seqio task and UL2R-by-preprocessors mixture over the corpus text file."""
    source = seqio.TextLineDataSource({"train": str(corpus_text_file())})
    feature = lambda eos: seqio.Feature(vocab, add_eos=eos)
    for name in [f"{prefix}_plain"] + [f"{prefix}_pre_{d.name}" for d in UL2R]:
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        f"{prefix}_plain", source=source,
        preprocessors=[seqio.map_over_dataset(lambda line: {"text": line}),
                       functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
                       seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
        output_features={"targets": feature(True)})
    for d in UL2R:
        seqio.TaskRegistry.add(
            f"{prefix}_pre_{d.name}", source=source,
            preprocessors=[seqio.map_over_dataset(lambda line: {"targets": line}),
                           seqio.preprocessors.tokenize, functools.partial(ul2_denoise, denoisers=[d])],
            output_features={"inputs": feature(False), "targets": feature(False)})
    seqio.MixtureRegistry.remove(f"{prefix}_pre")
    seqio.MixtureRegistry.add(f"{prefix}_pre", [(f"{prefix}_pre_{d.name}", d.weight) for d in UL2R])
    return f"{prefix}_plain", f"{prefix}_pre"


def skip_seconds(task_name: str, lengths: dict[str, int], count: int) -> float:
    """Seconds the seqio path spends skipping `count` examples of a task (what a resume costs)."""
    task = seqio.get_mixture_or_task(task_name)

    def first_after(n: int) -> float:
        ds = task.get_dataset(lengths, shuffle=True, seed=task_seed(0, task_name), num_epochs=None,
                              trim_output_features=False)
        t0 = time.perf_counter()
        next(iter(ds.skip(n)))
        return time.perf_counter() - t0

    first_after(0)  # warm-up
    return max(first_after(count) - first_after(0), 1e-9)


def ul2r_rows(args: argparse.Namespace) -> dict[str, Any]:
    """This file's rows (issue 11): byte vocabulary, then the 32k BPE tokenizer."""
    half = args.sequence_length // 2
    lengths = {"inputs": half, "targets": args.sequence_length - half}
    results: dict[str, Any] = {}
    for label, spec in (("byte", "byte"), ("bpe32k", f"hf:{train_bpe_tokenizer()}")):
        vocab = get_vocabulary(spec)
        t0 = time.perf_counter()
        corpus = load_default_corpus(vocab)
        build = time.perf_counter() - t0
        lazy = LazyCorpus(lambda c=corpus: c, f"bench-{label}")
        register_ul2r_mixture(f"bench_{label}_ul2r", lazy, vocab, UL2R)
        register_lm_task(f"bench_{label}_lm", lazy, vocab)
        plain, pre = register_user_tasks(f"bench_{label}", vocab)
        print(f"[{label}] default corpus: {corpus.num_tokens:,} tokens (tokenized or loaded from cache in "
              f"{build:.1f} s); length {args.sequence_length}, batch {args.batch_size}")
        rows = {"causal LM (lm, seekable)": f"bench_{label}_lm", "UL2R mixture (ul2r, seekable)":
                f"bench_{label}_ul2r", "plain seqio task (seqio path)": plain,
                "UL2R via seqio preprocessors (seqio path)": pre}
        figures = {row: measure(name, lengths, args.batch_size, args.seconds) for row, name in rows.items()}
        rates = {row: f[0] for row, f in figures.items()}
        lm, lm_cpu = figures["causal LM (lm, seekable)"]
        for row, (rate, cpu) in figures.items():
            print(f"  {row:<44} {rate:>12,.0f} tokens/s {rate / lm:5.2f}x lm   CPU {cpu:6.2f} s per M tokens "
                  f"({lm_cpu / cpu:4.2f}x lm's CPU efficiency)")
        skip = skip_seconds(f"{pre}_x_32_15", lengths, args.skip)
        print(f"  resume on the seqio path: skipping {args.skip:,} examples of {pre}_x_32_15 takes "
              f"{skip:.2f} s ({skip / args.skip * 1e6:,.0f} s per million examples per task per host); "
              "the checkpoint holds a few integers of JSON")
        results[label] = {**{row: round(r) for row, r in rates.items()}, "skip_seconds_per_million": round(
            skip / args.skip * 1e6, 1)}
    byte_ul2r = results["byte"]["UL2R mixture (ul2r, seekable)"]
    print(f"targets: byte UL2R {byte_ul2r:,} >= 2,000,000 tokens/s and ratio "
          f"{byte_ul2r / results['byte']['causal LM (lm, seekable)']:.2f} >= 0.9; BPE UL2R "
          f"{results['bpe32k']['UL2R mixture (ul2r, seekable)']:,} >= 1,500,000 tokens/s (noisy shared CPU)")
    return results


def flan_rows(args: argparse.Namespace, ul2r_byte: float) -> dict[str, Any]:
    """The `flan` mixture, packed at 2048 + 512 (FLAN v2 SEQUENCE_LEN), byte vocabulary and a 32k BPE."""
    import flan_ul2r.tasks.flan  # noqa: F401 - registers `flan` (byte vocabulary unless gin says otherwise)
    from flan_ul2r.data.flan import instruction_tasks
    from flan_ul2r.data.flan import mixing as flan_mixing
    from flan_ul2r.data.flan.suite.tasks import SUITE, SUITE_SIZES, generate

    lengths = {"inputs": 2048, "targets": 512}
    byte, _ = measure("flan", lengths, args.batch_size, args.seconds)
    bpe = get_vocabulary(f"hf:{train_bpe_tokenizer()}")
    names = [instruction_tasks.register_instruction_task(
        f"bench_bpe_{t.name}", lambda split, t=t: generate(t, SUITE_SIZES[split], split), t.templates,
        family=t.family, style_mix=flan_mixing.style_mix_for(t.family), vocabulary=bpe, lettered=t.lettered,
        num_examples=SUITE_SIZES["train"], join_mixtures=False) for t in SUITE if not t.held_out]
    instruction_tasks.register_instruction_mixture("bench_flan_bpe", names, flan_mixing.FAMILY_RATES_PAPER,
                                                   flan_mixing.FAMILY_CAPS)
    sub, _ = measure("bench_flan_bpe", lengths, args.batch_size, args.seconds)
    print(f"flan mixture 2048+512 (packed, byte):    {byte:>12,.0f} tokens/s (target >= 1,000,000)")
    print(f"flan mixture 2048+512 (packed, 32k BPE): {sub:>12,.0f} tokens/s (target >= 500,000)")
    print(f"beside ul2r (packed, byte): {ul2r_byte:,.0f} tokens/s; flan byte / ul2r: {byte / ul2r_byte:.2f}")
    return {"byte": round(byte), "bpe32k": round(sub)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--sequence_length", type=int, default=2048)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--skip", type=int, default=5000, help="examples skipped for the resume-cost row")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--no_flan", action="store_true", help="skip the Flan rows")
    args = p.parse_args()
    results = {"ul2r": ul2r_rows(args)}
    if not args.no_flan:
        results["flan"] = flan_rows(args, results["ul2r"]["byte"]["UL2R mixture (ul2r, seekable)"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
