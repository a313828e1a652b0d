"""Text pieces tokenized once each: a rendered Flan example is a sequence of piece ids, its tokens the
pieces' tokens laid end to end - one numpy gather per block of examples, no tokenizer call per example.

Piece 0 is the empty string, so "no piece" needs no mask. Each piece has two token sequences:
- at the start of a sequence: `vocab.encode(text)` (what seqio gives inputs and targets, which it
  tokenizes apart);
- in context: the tokens `text` gets after a newline, `encode("\\n" + text)` minus `encode("\\n")`
  when that is a prefix of it (so SentencePiece-style tokenizers add no word-start marker in the middle
  of a prompt); else after "." or "a" the same way; else `encode(text)`.
The byte vocabulary is exact: the ids equal `encode` of the whole text. For subword vocabularies the
decoded text is the same; token boundaries at piece joins may differ from encoding the whole string,
as they do in any pipeline that tokenizes a prompt's parts apart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

ANCHORS = ("\n", ".", "a")  # contexts tried in turn; the first whose own tokens stay a prefix is used
_ENCODE_BATCH = 4096


class PieceTable:
    """Distinct text pieces, added once each; `tokenize(vocab)` gives their token ids."""

    def __init__(self) -> None:
        self.texts: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> int:
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.texts)
            self.texts.append(text)
        return index

    def add_all(self, texts: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.add(t) for t in texts), np.int32)

    def text(self, pieces: Sequence[int]) -> str:
        return "".join(self.texts[int(p)] for p in pieces if p)

    def tokenize(self, vocabulary: Any) -> TokenizedPieces:
        """The pieces' token ids under `vocabulary`, each made on first use (add no piece after this)."""
        return TokenizedPieces(self.texts, vocabulary)


def _encode_all(vocabulary: Any, texts: Sequence[str]) -> list[np.ndarray]:
    batch = getattr(vocabulary, "encode_batch", None)
    out: list[np.ndarray] = []
    for start in range(0, len(texts), _ENCODE_BATCH):
        chunk = list(texts[start : start + _ENCODE_BATCH])
        rows = batch(chunk) if batch is not None else [vocabulary.encode(t) for t in chunk]
        out += [np.asarray(r, np.int32) for r in rows]
    return out


def _is_byte_level(vocabulary: Any) -> bool:
    try:
        return vocabulary.describe().get("kind") == "byte"
    except AttributeError:
        return False


def _encode_pieces(vocabulary: Any, texts: Sequence[str], byte_level: bool
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(in-context ids, start-of-sequence ids) of each text, as the module docstring defines them."""
    if byte_level:  # one id per UTF-8 byte: encode everything at once, then cut
        ids = np.asarray(_encode_all(vocabulary, ["".join(texts)])[0], np.int32)
        lengths = [len(t.encode("utf-8")) for t in texts]
        rows = np.split(ids, np.cumsum(lengths)[:-1])
        return rows, rows  # the same ids at the start and in context
    start = _encode_all(vocabulary, texts)
    context: list[np.ndarray | None] = [None] * len(texts)
    for anchor_text in ANCHORS:
        todo = [i for i, c in enumerate(context) if c is None]
        anchor = np.asarray(vocabulary.encode(anchor_text), np.int32)
        for i, ids in zip(todo, _encode_all(vocabulary, [anchor_text + texts[i] for i in todo])):
            if len(ids) >= len(anchor) and np.array_equal(ids[: len(anchor)], anchor):
                context[i] = ids[len(anchor) :]
    return [s if c is None else c for c, s in zip(context, start)], start


class TokenizedPieces:
    """Token ids of the pieces, each piece tokenized the first time a block needs it: a run that trains on
    a share of a task's examples tokenizes only their pieces, and the start-up tokenizes nothing (the 18
    embedded Flan tasks hold 334K pieces; tokenizing all of them with a 4096-token BPE took 16 s of one
    core in every process that trained Flan). A piece's ids do not depend on when it was tokenized, so
    blocks are the same in any order. Thread-safe: tf.data may call `block` from several threads."""

    def __init__(self, texts: Sequence[str], vocabulary: Any):
        n = len(texts)
        self._texts, self._vocabulary, self._byte = texts, vocabulary, _is_byte_level(vocabulary)
        self._offsets = np.zeros((2, n), np.int64)  # [context, start] offset of each piece in _flat
        self._lengths = np.zeros((2, n), np.int64)
        self._done = np.zeros(n, bool)
        self._done[0] = True  # piece 0, the empty string: no tokens
        self._flat, self._size = np.zeros(1024, np.int32), 0
        self._lock = threading.Lock()

    def _ensure(self, pieces: np.ndarray) -> None:
        """Tokenizes the pieces among `pieces` not tokenized yet (call with the lock held)."""
        need = np.unique(pieces)
        need = need[~self._done[need]]
        if not len(need):
            return
        context, start = _encode_pieces(self._vocabulary, [self._texts[int(i)] for i in need], self._byte)
        self._offsets[0, need], self._lengths[0, need] = self._append(context)
        if start is context:  # byte-level: stored once
            self._offsets[1, need], self._lengths[1, need] = self._offsets[0, need], self._lengths[0, need]
        else:
            self._offsets[1, need], self._lengths[1, need] = self._append(start)
        self._done[need] = True

    def _append(self, rows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Appends `rows` to the flat buffer; returns their offsets and lengths."""
        lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
        offsets = self._size + np.cumsum(lengths) - lengths
        end = self._size + int(lengths.sum())
        if end > len(self._flat):  # grow by doubling: appends cost O(total) overall
            grown = np.zeros(max(2 * len(self._flat), end), np.int32)
            grown[: self._size] = self._flat[: self._size]
            self._flat = grown
        self._flat[self._size : end] = np.concatenate(rows)
        self._size = end
        return offsets, lengths

    def lengths(self, pieces: np.ndarray) -> np.ndarray:
        """Token count of each piece id (in context), any shape."""
        pieces = np.asarray(pieces, np.int64)
        with self._lock:
            self._ensure(pieces)
            return self._lengths[0][pieces]

    def assemble(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of piece rows [b, slots] (0 = empty): flat int32 ids and int64 row lengths. The first
        non-empty piece of a row takes its start-of-sequence tokens."""
        rows = np.asarray(rows, np.int64)
        first = np.argmax(rows > 0, axis=1)
        b = np.arange(len(rows))
        with self._lock:
            self._ensure(rows)
            starts, lengths = self._offsets[0][rows], self._lengths[0][rows]
            starts[b, first] = self._offsets[1][rows[b, first]]
            lengths[b, first] = self._lengths[1][rows[b, first]]
            flat, _ = gather_ranges(self._flat, starts.reshape(-1), lengths.reshape(-1))
        return flat, lengths.sum(axis=1)


def gather_ranges(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """flat[starts[0]:starts[0] + lengths[0]] + flat[starts[1]:...] + ... in one gather, and the lengths."""
    starts, lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
    run_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    index = np.repeat(starts, lengths) + (np.arange(int(lengths.sum())) - run_start)
    return np.asarray(flat[index]), lengths
