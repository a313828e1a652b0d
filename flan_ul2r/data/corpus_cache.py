"""Tokenize a corpus once, keep it as a flat token array on disk, and cut it into chunks on demand.

A `TokenCorpus` is the random-access record store of the seekable tasks (docs/ARCHITECTURE.md section 3):
`tokens` (flat int32, memory-mapped), `doc_starts` (int64, len = documents + 1) and `chunks(max_len)`.
It is cached under `cache_dir()` keyed by a hash of its inputs (source description with each file's size
and mtime, and the vocabulary's description), written to a temporary directory and renamed into place so a
kill in the middle of a build never leaves a half-written cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir() -> Path:
    """`$FLAN_UL2R_CACHE`, else `$XDG_CACHE_HOME/flan_ul2r`, else `~/.cache/flan_ul2r`."""
    if os.environ.get("FLAN_UL2R_CACHE"):
        return Path(os.environ["FLAN_UL2R_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flan_ul2r"


def vocabulary_key(vocab: Any) -> str:
    """A stable description of a vocabulary for cache keys."""
    describe = getattr(vocab, "describe", None)
    return json.dumps(describe() if describe else {"type": type(vocab).__name__}, sort_keys=True)


def encode_documents(texts: list[str], vocab: Any) -> list[np.ndarray]:
    """Token ids of each text, with the fastest path the vocabulary offers."""
    if getattr(vocab, "describe", None) and vocab.describe().get("kind") == "byte":
        return [np.frombuffer(t.encode("utf-8"), np.uint8).astype(np.int32) + 3 for t in texts]
    batch = getattr(vocab, "encode_batch", None)
    if batch is not None:
        return [np.asarray(ids, np.int32) for ids in batch(texts)]
    return [np.asarray(vocab.encode(t), np.int32) for t in texts]


class TokenCorpus:
    """Flat tokens + document offsets, with `chunks(max_len)` cutting long documents (never dropping them)."""

    def __init__(self, tokens: np.ndarray, doc_starts: np.ndarray, stats: dict[str, Any]):
        self.tokens, self.doc_starts, self.stats = tokens, np.asarray(doc_starts, np.int64), stats

    @property
    def num_documents(self) -> int:
        return len(self.doc_starts) - 1

    @property
    def num_tokens(self) -> int:
        return int(self.doc_starts[-1])

    def chunks(self, max_len: int) -> np.ndarray:
        """int64 [n, 2] rows of (start, length): each document cut into consecutive pieces <= max_len."""
        if max_len <= 0:
            raise ValueError(f"chunks: max_len must be > 0, got {max_len}")
        starts, ends = self.doc_starts[:-1], self.doc_starts[1:]
        pieces = (ends - starts + max_len - 1) // max_len
        doc = np.repeat(np.arange(len(starts)), pieces)
        first = np.repeat(np.cumsum(pieces) - pieces, pieces)
        begin = starts[doc] + (np.arange(len(doc)) - first) * max_len
        return np.stack([begin, np.minimum(begin + max_len, ends[doc]) - begin], axis=1).astype(np.int64)

    def document(self, i: int) -> np.ndarray:
        return np.asarray(self.tokens[self.doc_starts[i]:self.doc_starts[i + 1]])

    # --- building and caching -------------------------------------------------------------------------
    @classmethod
    def from_documents(cls, documents: Iterable[str], vocab: Any, batch_size: int = 1024) -> TokenCorpus:
        """Tokenizes in memory; empty documents are skipped and counted in `stats["empty_documents"]`."""
        parts: list[np.ndarray] = []
        empty = 0
        batch: list[str] = []

        def flush() -> None:
            nonlocal empty
            for ids in encode_documents(batch, vocab):
                if ids.size:
                    parts.append(ids)
                else:
                    empty += 1
            batch.clear()

        for text in documents:
            if not text.strip():
                empty += 1
                continue
            batch.append(text)
            if len(batch) >= batch_size:
                flush()
        flush()
        if not parts:
            raise ValueError(f"corpus is empty: no non-empty document (skipped {empty} empty ones)")
        lengths = np.array([p.size for p in parts], np.int64)
        doc_starts = np.concatenate([[0], np.cumsum(lengths)])
        stats = {"documents": len(parts), "empty_documents": empty, "tokens": int(doc_starts[-1])}
        return cls(np.concatenate(parts).astype(np.int32), doc_starts, stats)

    @classmethod
    def cached(cls, key: dict[str, Any], build_documents, vocab: Any, name: str = "corpus") -> TokenCorpus:
        """Loads the corpus cached under a hash of `key` + the vocabulary, or builds and caches it."""
        digest = hashlib.sha256(
            (json.dumps(key, sort_keys=True) + vocabulary_key(vocab)).encode()).hexdigest()[:16]
        path = cache_dir() / "corpus" / f"{name}-{digest}"
        if (path / "stats.json").is_file():
            return cls.load(path)
        t0 = time.time()
        corpus = cls.from_documents(build_documents(), vocab)
        corpus.stats.update(build_seconds=round(time.time() - t0, 2), key=key)
        corpus.save(path)
        return cls.load(path)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
        try:
            np.save(tmp / "tokens.npy", np.asarray(self.tokens, np.int32))
            np.save(tmp / "doc_starts.npy", self.doc_starts)
            (tmp / "stats.json").write_text(json.dumps(self.stats, indent=1, default=str))
            if path.exists():  # a concurrent builder won; keep theirs
                shutil.rmtree(tmp)
                return
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: Path) -> TokenCorpus:
        tokens = np.load(path / "tokens.npy", mmap_mode="r")
        stats = json.loads((path / "stats.json").read_text())
        return cls(tokens, np.load(path / "doc_starts.npy"), stats)


def build_corpus(spec: Any, vocab: Any) -> TokenCorpus:
    """The cached TokenCorpus of a source spec (`sources.parse_source_spec` syntax) tokenized by `vocab`."""
    from flan_ul2r.data.sources import parse_source_spec, read_documents

    spec = parse_source_spec(spec) if isinstance(spec, str) else spec
    return TokenCorpus.cached(spec.cache_key(), lambda: read_documents(spec), vocab, name=spec.kind)
