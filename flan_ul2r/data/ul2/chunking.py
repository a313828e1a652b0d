"""How documents become raw chunks for the denoisers: T5's concatenate-then-split, or one document at a time.

Concatenated (the default, T5-faithful): documents are joined into one stream, each followed by a
separator (EOS by default), and the stream is cut into consecutive chunks of exactly the denoiser's raw
length (`denoisers.raw_length`), so every chunk but the last of a split has the full length. This is T5's
`span_corruption` pipeline, `reduce_concat_tokens` + `split_tokens` (google-research/
text-to-text-transfer-transformer, `t5/data/preprocessors.py`), with two differences: T5 concatenates in
groups of 128 documents (one short tail per group) where we concatenate the whole split (one tail), and
T5 puts nothing between documents where we put EOS (`separator_id=None` gives T5's bare concatenation).

Per document (`concatenate=False`, the project's behaviour before this module): each document is cut into
pieces of at most the raw length, so short documents make short chunks. Effect on span lengths: a chunk
of n < L tokens gets round(n * r) noise tokens, so a mu = 32, r = 0.15 X-denoiser makes ONE span on any
chunk under ~320 tokens, and its examples are short: on the default corpus at length 512 about a third of
chunks had the full length. R (mu = 3) and dense X (r = 0.5) are barely affected.

Two forms of the same chunking:
- `ChunkTable`: random access, record i -> chunk i (the seekable built-in tasks; `tf.gather` on in-graph
  arrays, or numpy for token arrays larger than `IN_GRAPH_TOKENS`);
- `split_stream`: a tf.data transformation over a stream of documents (the seqio preprocessors), with
  one chunk stream per denoiser; documents in the same order give the same chunks as `ChunkTable`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

# Token arrays up to this size are embedded in the tf graph; larger ones are read via numpy_function.
IN_GRAPH_TOKENS = 1 << 26


class ChunkTable:
    """Chunks of raw length `raw_length` over the documents (starts, lengths) of a flat token array."""

    def __init__(self, tokens: np.ndarray, starts: np.ndarray, lengths: np.ndarray, raw_length: int, *,
                 separator_id: int | None, concatenate: bool = True):
        if raw_length < 1:
            raise ValueError(f"ChunkTable: raw_length={raw_length} must be >= 1")
        keep = np.asarray(lengths) > 0  # empty documents are skipped (they would be a lone separator)
        self.tokens, self.raw_length, self.concatenate = tokens, int(raw_length), concatenate
        self.starts = np.asarray(starts, np.int64)[keep]
        self.lengths = np.asarray(lengths, np.int64)[keep]
        self.separator_id = separator_id
        if concatenate:
            sep = 0 if separator_id is None else 1
            self.ends = np.cumsum(self.lengths + sep)  # stream position after document d (and its separator)
            total = int(self.ends[-1]) if len(self.ends) else 0
            self.num_records = -(-total // self.raw_length)
            self.stream_length = total
        else:
            self.rows = _per_document_rows(self.starts, self.lengths, self.raw_length)
            self.num_records = len(self.rows)
        self._graph: dict[str, tf.Tensor] | None = None

    def fetch_numpy(self, index: int) -> np.ndarray:
        """Chunk `index` as int32 (numpy); the reference the TF version is tested against."""
        index = int(index)
        if not self.concatenate:
            start, length = self.rows[index]
            return np.asarray(self.tokens[start:start + length], np.int32)
        q = np.arange(index * self.raw_length, min((index + 1) * self.raw_length, self.stream_length))
        doc = np.searchsorted(self.ends, q, side="right")
        offset = q - (self.ends[doc] - self.lengths[doc] - (0 if self.separator_id is None else 1))
        inside = offset < self.lengths[doc]
        out = np.asarray(self.tokens[np.where(inside, self.starts[doc] + offset, 0)], np.int32)
        if self.separator_id is not None:
            out = np.where(inside, out, np.int32(self.separator_id))
        return out

    def fetch(self, index: tf.Tensor) -> tf.Tensor:
        """Chunk `index` (int64 scalar tensor) as int32[None], inside a tf.data map."""
        if np.size(self.tokens) > IN_GRAPH_TOKENS:
            out = tf.numpy_function(self.fetch_numpy, [index], tf.int32, stateful=False)
            return tf.reshape(out, [-1])
        g = self._tensors()
        index = tf.cast(index, tf.int64)
        if not self.concatenate:
            row = tf.gather(g["rows"], index)
            return tf.slice(g["tokens"], [row[0]], [row[1]])
        raw = tf.constant(self.raw_length, tf.int64)
        q = tf.range(index * raw, tf.minimum((index + 1) * raw, self.stream_length))
        doc = tf.searchsorted(g["ends"], q, side="right")
        sep = 0 if self.separator_id is None else 1
        offset = q - (tf.gather(g["ends"], doc) - tf.gather(g["lengths"], doc) - sep)
        inside = offset < tf.gather(g["lengths"], doc)
        out = tf.gather(g["tokens"], tf.where(inside, tf.gather(g["starts"], doc) + offset, 0))
        if self.separator_id is not None:
            out = tf.where(inside, out, tf.constant(self.separator_id, tf.int32))
        return out

    def _tensors(self) -> dict[str, tf.Tensor]:
        if self._graph is None:
            with tf.init_scope():  # eager, so every tf.function / switch_case branch may capture them
                arrays = {"tokens": np.asarray(self.tokens, np.int32)}
                if self.concatenate:
                    arrays.update(ends=self.ends, lengths=self.lengths, starts=self.starts)
                else:
                    arrays.update(rows=self.rows)
                self._graph = {k: tf.constant(v) for k, v in arrays.items()}
        return self._graph


def _per_document_rows(starts: np.ndarray, lengths: np.ndarray, max_len: int) -> np.ndarray:
    """int64 [n, 2] (start, length): each document cut into consecutive pieces of at most max_len."""
    pieces = (lengths + max_len - 1) // max_len
    doc = np.repeat(np.arange(len(starts)), pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    offset = (np.arange(len(doc)) - first) * max_len
    return np.stack([starts[doc] + offset, np.minimum(lengths[doc] - offset, max_len)], 1).astype(np.int64)


def split_stream(documents: tf.data.Dataset, raw_lengths: Sequence[int], *, separator_id: int | None,
                 concatenate: bool = True) -> tf.data.Dataset:
    """Documents -> raw chunks, as a tf.data stream.

    `documents` yields `(tokens int32[None], branch int32[])`: which of the `raw_lengths` (one per
    denoiser) the document feeds. Each branch concatenates its own documents (separator after each) and
    emits chunks of its raw length; `concatenate=False` cuts every document on its own (no separator,
    as `ChunkTable`). Yields
    `(tokens int32[None], branch int32[])` per chunk; at the end of a finite stream each branch's
    leftover is emitted as a short tail (an infinite stream never ends, so never has a tail).
    """
    raws = [int(r) for r in raw_lengths]
    width = max(raws)
    flush = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int32), tf.constant(-1, tf.int32)))

    def step(leftovers, element):
        tokens, branch = element
        is_flush = tf.equal(branch, -1)
        if separator_id is not None and concatenate:
            tokens = tf.concat([tokens, [tf.constant(separator_id, tf.int32)]], 0)
        rows, lengths, branches, new_left = [], [], [], []
        for j, raw in enumerate(raws):
            mine = tf.logical_or(tf.equal(branch, j), is_flush)
            added = tf.cond(tf.equal(branch, j), lambda t=tokens: t, lambda: tf.zeros([0], tf.int32))
            combined = tf.concat([leftovers[j], added], 0) if concatenate else added
            size = tf.size(combined)
            # Whole chunks, plus the tail when flushing (or always, per document).
            count = tf.where(tf.logical_or(is_flush, not concatenate), (size + raw - 1) // raw, size // raw)
            count = tf.where(mine, count, 0)
            used = tf.minimum(count * raw, size)
            padded = tf.pad(combined[:used], [[0, count * raw - used]])
            rows.append(tf.pad(tf.reshape(padded, [count, raw]), [[0, 0], [0, width - raw]]))
            lengths.append(tf.minimum(raw, used - tf.range(count) * raw))
            branches.append(tf.fill([count], tf.constant(j, tf.int32)))
            new_left.append(combined[used:] if concatenate else leftovers[j])
        out = (tf.concat(rows, 0), tf.concat(lengths, 0), tf.concat(branches, 0))
        return tuple(new_left), out

    initial = tuple(tf.zeros([0], tf.int32) for _ in raws)
    chunks = documents.concatenate(flush).scan(initial, step).unbatch()
    return chunks.map(lambda row, length, branch: (row[:length], branch),
                      num_parallel_calls=tf.data.AUTOTUNE)
