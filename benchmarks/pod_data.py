"""Data at pod scale: time to the first UL2R batch, cached corpus vs per-host streaming, extrapolated.

  python benchmarks/pod_data.py [--mb 16] [--files 16] [--hosts 4] [--seconds 20]

Writes a `--mb` MB JSONL corpus in `--files` files (the default corpus's documents, repeated), tokenizes
with a 32k BPE `tokenizer.json` (trained here, `data_pipeline.train_bpe_tokenizer`), and measures on this
machine (one "host"):
- cached path (`ul2r_corpus.cache=True`: what every source spec did before): the whole source is
  tokenized into the local cache before step 1, on every host: MB/s, then hours for 100 GB;
- streaming path (`ul2r_corpus.cache=False`, `flan_ul2r.data.ul2.corpus_tasks`): host 0 of `--hosts` reads
  only its files, tokenizes in parallel batches as it goes: seconds to the first packed UL2R batch
  (1024 + 1024 tokens, U-PaLM section 2.2), then packed tokens/s per host;
- file listing time (the only step that grows with the corpus on the streaming path), per file;
- the resume cost on the streaming path (a counted skip re-reads what the host consumed) at the end of a
  U-PaLM-sized run: 20k steps x batch 32 x 2048 tokens = 1.3B tokens (Tay et al. 2022, section 2.4).
The machine is shared (2 cores, other jobs): figures are noisy; a TPU host has ~100x the cores, which
this script does not assume (every extrapolation uses this machine's measured per-host rate).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time
from pathlib import Path

from data_pipeline import train_bpe_tokenizer

from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.data.corpus.default_corpus import default_corpus_documents
from flan_ul2r.data.ul2.corpus_tasks import corpus_for, register_corpus_mixture
from flan_ul2r.data.vocab.vocabularies import get_vocabulary

GB100 = 100e9
UPALM_TOKENS = 20_000 * 32 * 2048  # Tay et al. 2022, section 2.4


def write_corpus(folder: Path, megabytes: float, files: int) -> int:
    """JSONL files of the default corpus's documents (repeated, tagged by copy) totalling ~megabytes."""
    docs = default_corpus_documents()
    outs = [open(folder / f"part-{i:05d}.jsonl", "w", encoding="utf-8") for i in range(files)]
    written, copy = 0, 0
    while written < megabytes * 1e6:
        for j, d in enumerate(docs):
            line = json.dumps({"text": f"[copy {copy}] {d}"}) + "\n"
            outs[(copy * len(docs) + j) % files].write(line)
            written += len(line.encode())
        copy += 1
    for f in outs:
        f.close()
    return written


def time_cached(spec: str, vocab) -> tuple[float, int]:
    from flan_ul2r.data.corpus.token_cache import build_corpus

    t0 = time.perf_counter()
    corpus = build_corpus(spec, vocab)
    return time.perf_counter() - t0, corpus.num_tokens


def time_stream(spec: str, vocab, hosts: int, seconds: float) -> tuple[float, float]:
    """(seconds to the first batch, packed tokens/s afterwards) on host 0 of `hosts`."""
    lengths = {"inputs": 1024, "targets": 1024}
    t0 = time.perf_counter()
    register_corpus_mixture("pod_ul2r", corpus_for(spec, vocab, cache=False), vocab)
    it = make_train_iterator("pod_ul2r", lengths, max(32 // hosts, 1), seed=0, shard_index=0,
                             num_shards=hosts)
    next(it)
    first = time.perf_counter() - t0
    tokens, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tokens += int((next(it)["decoder_segment_ids"] > 0).sum())
    return first, tokens / (time.perf_counter() - start)


def listing_seconds_per_file(pattern: str, count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(20):
        glob.glob(pattern)
    return (time.perf_counter() - t0) / 20 / count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=16)
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args()
    vocab_spec = f"hf:{train_bpe_tokenizer()}"
    with tempfile.TemporaryDirectory(prefix="pod_data-") as tmp:
        os.environ["FLAN_UL2R_CACHE"] = os.path.join(tmp, "cache")  # a cold cache: what a new host sees
        folder = Path(tmp, "corpus")
        folder.mkdir()
        size = write_corpus(folder, args.mb, args.files)
        spec = f"jsonl:{folder}/part-*.jsonl"
        vocab = get_vocabulary(vocab_spec)
        cache_s, tokens = time_cached(spec, vocab)
        first_s, rate = time_stream(spec, vocab, args.hosts, args.seconds)
        per_file = listing_seconds_per_file(f"{folder}/part-*.jsonl", args.files)
    bytes_per_token = size / tokens
    mbps = size / cache_s / 1e6
    print(f"corpus: {size / 1e6:.1f} MB in {args.files} JSONL files, {tokens:,} tokens with a 32k BPE "
          f"({bytes_per_token:.2f} bytes of text per token)")
    print(f"cached path: tokenized the whole source in {cache_s:.1f} s = {mbps:.2f} MB/s "
          f"({tokens / cache_s:,.0f} tokens/s) per host")
    print(f"  100 GB: {GB100 / (mbps * 1e6) / 3600:,.1f} hours per host before step 1, "
          f"{GB100 / bytes_per_token * 4 / 1e9:,.0f} GB of token cache per host")
    print(f"streaming path, host 0 of {args.hosts} (reads {args.files // args.hosts} of {args.files} files): "
          f"first UL2R batch after {first_s:.1f} s; then {rate:,.0f} packed tokens/s per host")
    print(f"  100 GB in 10,000 files: listing {per_file * 1e4:.2f} s; the first batch needs only the first "
          f"documents of the host's files, so it arrives after ~{first_s + per_file * 1e4:.1f} s, "
          "independent of the corpus size")
    for hosts in (8, 64, 128):
        per_host = UPALM_TOKENS / hosts
        print(f"  U-PaLM's 1.3B tokens on {hosts:>3} hosts: {per_host / 1e6:,.0f}M tokens per host = "
              f"{per_host / rate / 60:,.1f} min of this machine's streaming per host over the run; "
              f"resuming at the end re-reads them: {per_host / rate / 60:,.1f} min")


if __name__ == "__main__":
    main()
