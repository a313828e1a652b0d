"""Tokenize a corpus once, keep it as a flat token array on disk, and cut it into chunks on demand.

A `TokenCorpus` is the random-access record store of the seekable tasks (docs/ARCHITECTURE.md section 3):
`tokens` (flat int32, memory-mapped from `tokens.npy`), per-document `starts` / `lengths` (int64) and
`chunks(max_len)`. It is cached under `cache_dir()` keyed by a hash of its inputs (the source spec with each
file's path, size and mtime, and the vocabulary's `describe()`), written into a temporary directory and
renamed into place, so a kill in the middle of a build never leaves a half-written cache.

Held-out split: `split="validation"` keeps the documents `validation_split.is_held_out` holds out (by
file name and position, the rule streamed corpora use too; decided while building and stored as
`held_out.npy`), `split="train"` the other ~99%, `split="all"` everything.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from flan_ul2r.data.corpus.validation_split import SPLITS, is_held_out, ordinal_mask, ordinal_name

FORMAT_VERSION = 4  # 4: the held-out flag of each document stored (held_out.npy)
_PIECE_CHARS = 1 << 20  # texts longer than this are tokenized in whitespace-cut pieces (100 MB lines work)
_BATCH_DOCS = 1024


def cache_dir() -> Path:
    """`$FLAN_UL2R_CACHE`, else `$XDG_CACHE_HOME/flan_ul2r`, else `~/.cache/flan_ul2r`."""
    if os.environ.get("FLAN_UL2R_CACHE"):
        return Path(os.environ["FLAN_UL2R_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flan_ul2r"


def vocabulary_key(vocab: Any) -> dict[str, Any]:
    """A stable description of a vocabulary for cache keys (its `describe()`)."""
    describe = getattr(vocab, "describe", None)
    return describe() if describe else {"type": type(vocab).__name__, "vocab_size": int(vocab.vocab_size)}


def _split_text(text: str) -> list[str]:
    """Cuts a very long text at whitespace into pieces of about `_PIECE_CHARS` characters."""
    if len(text) <= _PIECE_CHARS:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        end = min(start + _PIECE_CHARS, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + _PIECE_CHARS // 2, end)
            end = cut + 1 if cut > 0 else end
        pieces.append(text[start:end])
        start = end
    return pieces


def encode_documents(texts: list[str], vocab: Any) -> list[np.ndarray]:
    """Token ids of each text through the vocabulary's batch API when it has one (`encode_batch`)."""
    batch = getattr(vocab, "encode_batch", None)
    pieces = [_split_text(t) for t in texts]
    flat = [p for ps in pieces for p in ps]
    ids = batch(flat) if batch is not None else [vocab.encode(t) for t in flat]
    out, i = [], 0
    for ps in pieces:
        parts = [np.asarray(x, np.int32) for x in ids[i:i + len(ps)]]
        out.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
        i += len(ps)
    return out


class TokenCorpus:
    """Flat tokens + per-document (start, length, held out); `chunks(max_len)` cuts long documents, never
    drops them. `held_out` (bool per document; default: by ordinal, `validation_split.ordinal_mask`)."""

    def __init__(self, tokens: np.ndarray, starts: np.ndarray, lengths: np.ndarray, stats: dict[str, Any],
                 path: Path | None = None, held_out: np.ndarray | None = None):
        self.tokens = tokens
        self.starts, self.lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
        self.held_out = ordinal_mask(len(self.starts)) if held_out is None else np.asarray(held_out, bool)
        self.stats, self.path = stats, path

    @property
    def num_documents(self) -> int:
        return len(self.starts)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def document(self, i: int) -> np.ndarray:
        return np.asarray(self.tokens[self.starts[i]:self.starts[i] + self.lengths[i]])

    def chunks(self, max_len: int, min_len: int = 1) -> np.ndarray:
        """int64 [n, 2] rows of (start, length): each document cut into consecutive pieces of at most
        `max_len` tokens, in document order; pieces shorter than `min_len` (only ever a document's last
        piece or a short document) are left out."""
        if max_len <= 0 or min_len <= 0:
            raise ValueError(f"chunks: max_len and min_len must be > 0, got {max_len=}, {min_len=}")
        starts, lengths = self.starts, self.lengths
        pieces = (lengths + max_len - 1) // max_len
        doc = np.repeat(np.arange(len(starts)), pieces)
        first = np.repeat(np.cumsum(pieces) - pieces, pieces)
        offset = (np.arange(len(doc)) - first) * max_len
        begin = starts[doc] + offset
        length = np.minimum(lengths[doc] - offset, max_len)
        keep = length >= min_len
        return np.stack([begin[keep], length[keep]], axis=1).astype(np.int64)

    def split(self, name: str) -> TokenCorpus:
        """The documents of split `name` ("train" ~99%, "validation" ~1%, "all"); shares `tokens`."""
        if name not in SPLITS:
            raise ValueError(f"corpus split {name!r}: expected one of {SPLITS}")
        if name == "all":
            return self
        keep = self.held_out if name == "validation" else ~self.held_out
        stats = dict(self.stats, split=name, split_documents=int(keep.sum()),
                     split_tokens=int(self.lengths[keep].sum()))
        return TokenCorpus(self.tokens, self.starts[keep], self.lengths[keep], stats, self.path,
                           self.held_out[keep])

    # --- building ---------------------------------------------------------------------------------------
    @classmethod
    def build(cls, documents: Iterable[Any], vocab: Any, out_dir: Path,
              stats: dict[str, Any] | None = None) -> TokenCorpus:
        """Tokenizes `documents` into `out_dir` (streaming to disk); empty ones are skipped and counted.
        Each document is a `sources.Document` (held out by its provenance) or a text (by its ordinal)."""
        from tqdm import tqdm

        out_dir.mkdir(parents=True, exist_ok=True)
        lengths: list[np.ndarray] = []
        held: list[np.ndarray] = []
        empty, total = 0, 0
        raw_path = out_dir / "tokens.bin"
        with open(raw_path, "wb") as raw, tqdm(desc="tokenizing corpus", unit=" docs", delay=3.0,
                                                  mininterval=1.0) as bar:
            for batch in _batches(_named(documents), _BATCH_DOCS):
                encoded = encode_documents([text for text, _ in batch], vocab)
                n = np.array([e.size for e in encoded], np.int64)
                empty += int((n == 0).sum())
                for e in encoded:
                    if e.size:
                        raw.write(np.ascontiguousarray(e, np.int32).tobytes())
                lengths.append(n[n > 0])
                held.append(np.array([is_held_out(name) for _, name in batch], bool)[n > 0])
                total += int(n.sum())
                bar.update(len(batch))
        doc_lengths = np.concatenate(lengths) if lengths else np.zeros([0], np.int64)
        if doc_lengths.size == 0:
            raise ValueError(f"corpus is empty: no document has any token ({empty} empty documents skipped)")
        tokens = np.lib.format.open_memmap(out_dir / "tokens.npy", mode="w+", dtype=np.int32, shape=(total,))
        flat = np.memmap(raw_path, dtype=np.int32, mode="r", shape=(total,))
        for a in range(0, total, 1 << 26):
            tokens[a:a + (1 << 26)] = flat[a:a + (1 << 26)]
        tokens.flush()
        del tokens, flat
        raw_path.unlink()
        starts = np.concatenate([[0], np.cumsum(doc_lengths)[:-1]]).astype(np.int64)
        np.save(out_dir / "starts.npy", starts)
        np.save(out_dir / "lengths.npy", doc_lengths)
        np.save(out_dir / "held_out.npy", np.concatenate(held))
        all_stats = dict(stats or {})
        all_stats.update(documents=int(doc_lengths.size), tokens=total,
                         empty_documents=int(all_stats.get("empty_documents", 0)) + empty,
                         vocabulary=vocabulary_key(vocab), format=FORMAT_VERSION)
        (out_dir / "stats.json").write_text(json.dumps(all_stats, indent=1, default=str))
        return cls.load(out_dir)

    @classmethod
    def load(cls, path: Path) -> TokenCorpus:
        path = Path(path)
        stats = json.loads((path / "stats.json").read_text())
        return cls(np.load(path / "tokens.npy", mmap_mode="r"), np.load(path / "starts.npy"),
                   np.load(path / "lengths.npy"), stats, path, np.load(path / "held_out.npy"))

    @classmethod
    def cached(cls, key: dict[str, Any], build_documents: Callable[[dict[str, Any]], Iterable[Any]],
               vocab: Any, name: str = "corpus") -> TokenCorpus:
        """Loads the corpus cached under a hash of `key` + the vocabulary, or builds it atomically.

        `build_documents(stats)` returns the documents (as `build` takes them) and may record source stats
        in `stats`.
        """
        digest = hashlib.sha256(json.dumps({"key": key, "vocab": vocabulary_key(vocab),
                                            "format": FORMAT_VERSION}, sort_keys=True, default=str
                                           ).encode()).hexdigest()[:16]
        path = cache_dir() / "corpus" / f"{_safe(name)}-{digest}"
        if (path / "stats.json").is_file():
            return cls.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
        try:
            t0 = time.time()
            stats: dict[str, Any] = {"key": key}
            cls.build(build_documents(stats), vocab, tmp, stats)
            stats_file = tmp / "stats.json"
            written = json.loads(stats_file.read_text())
            written["build_seconds"] = round(time.time() - t0, 2)
            stats_file.write_text(json.dumps(written, indent=1, default=str))
            try:
                os.rename(tmp, path)
            except OSError:  # a concurrent builder finished first: keep theirs
                if not (path / "stats.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls.load(path)



def _named(documents: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """(text, provenance) of each document; a plain text is named by its ordinal (`ordinal_name`)."""
    for i, doc in enumerate(documents):
        yield (doc, ordinal_name(i)) if isinstance(doc, str) else (doc.text, doc.provenance)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]


def build_corpus(spec: Any, vocab: Any) -> TokenCorpus:
    """The cached TokenCorpus of a source spec (e.g. "jsonl:/data/*.jsonl#text") tokenized by `vocab`."""
    from flan_ul2r.data.corpus.sources import (
        SourceStats,
        parse_source_spec,
        read_documents,
        source_fingerprint,
    )

    spec = parse_source_spec(spec)

    def documents(stats: dict[str, Any]) -> Iterator[Any]:
        source_stats = SourceStats()
        yield from read_documents(spec, source_stats)
        stats.update(source_documents=source_stats.documents, empty_documents=source_stats.empty_documents,
                     files=len(source_stats.files))

    return TokenCorpus.cached(source_fingerprint(spec), documents, vocab, name=f"{spec.kind}")
