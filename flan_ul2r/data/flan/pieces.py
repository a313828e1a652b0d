"""Pre-tokenized text pieces: a rendered Flan example is a sequence of piece ids, its tokens the pieces'
tokens laid end to end - one numpy gather per block of examples, no tokenizer call per example.

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
        return TokenizedPieces.build(self.texts, vocabulary)


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


class TokenizedPieces:
    """Token ids of every piece: `flat` holds both variants; `start_offsets`/`context_offsets` [n + 1]."""

    def __init__(self, flat: np.ndarray, context_offsets: np.ndarray, start_offsets: np.ndarray):
        self.flat, self.context_offsets, self.start_offsets = flat, context_offsets, start_offsets
        self.context_lengths = np.diff(context_offsets).astype(np.int64)
        self.start_lengths = np.diff(start_offsets).astype(np.int64)

    @classmethod
    def build(cls, texts: Sequence[str], vocabulary: Any) -> TokenizedPieces:
        if _is_byte_level(vocabulary):  # one id per UTF-8 byte: encode everything at once, then cut
            ids = np.asarray(_encode_all(vocabulary, ["".join(texts)])[0], np.int32)
            lengths = np.fromiter((len(t.encode("utf-8")) for t in texts), np.int64, len(texts))
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            return cls(ids, offsets, offsets)
        start = _encode_all(vocabulary, texts)
        context: list[np.ndarray | None] = [None] * len(texts)
        for anchor_text in ANCHORS:
            todo = [i for i, c in enumerate(context) if c is None]
            anchor = np.asarray(vocabulary.encode(anchor_text), np.int32)
            for i, ids in zip(todo, _encode_all(vocabulary, [anchor_text + texts[i] for i in todo])):
                if len(ids) >= len(anchor) and np.array_equal(ids[: len(anchor)], anchor):
                    context[i] = ids[len(anchor) :]
        context = [s if c is None else c for c, s in zip(context, start)]
        context[0] = start[0] = np.zeros([0], np.int32)
        context_offsets = np.concatenate([[0], np.cumsum([len(c) for c in context])]).astype(np.int64)
        start_offsets = context_offsets[-1] + np.concatenate([[0], np.cumsum([len(s) for s in start])])
        return cls(np.concatenate(context + start).astype(np.int32), context_offsets, start_offsets)

    def lengths(self, pieces: np.ndarray) -> np.ndarray:
        """Token count of each piece id (in context)."""
        return self.context_lengths[pieces]

    def assemble(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of piece rows [b, slots] (0 = empty): flat int32 ids and int64 row lengths. The first
        non-empty piece of a row takes its start-of-sequence tokens."""
        rows = np.asarray(rows, np.int64)
        starts = self.context_offsets[rows]
        lengths = self.context_lengths[rows]
        first = np.argmax(rows > 0, axis=1)
        b = np.arange(len(rows))
        starts[b, first] = self.start_offsets[rows[b, first]]
        lengths[b, first] = self.start_lengths[rows[b, first]]
        flat, _ = gather_ranges(self.flat, starts.reshape(-1), lengths.reshape(-1))
        return flat, lengths.sum(axis=1)


def gather_ranges(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """flat[starts[0]:starts[0] + lengths[0]] + flat[starts[1]:...] + ... in one gather, and the lengths."""
    starts, lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
    run_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    index = np.repeat(starts, lengths) + (np.arange(int(lengths.sum())) - run_start)
    return np.asarray(flat[index]), lengths
