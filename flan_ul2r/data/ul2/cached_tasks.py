"""Built-in UL2R / UL2 / causal-LM tasks over a token corpus: seekable seqio Tasks, and their registration.

Library code: importing this module registers nothing; `register_ul2r_mixture` / `register_lm_task`
register when called (the registration module `flan_ul2r.tasks.ul2r` calls them).

Each task is an `seekable.SeekableTask` (a seqio.Task) with two views of the same data:
- seqio's: `source` = the corpus split's documents as token ids (`{"targets": int32[None]}`, in
  corpus order, or a seeded permutation of documents when shuffling), `preprocessors` =
  `[preprocessors.ul2_denoise(denoisers=[d])]` (or `causal_lm_chunks`), so
  `seqio.get_mixture_or_task("ul2r_x_32_15").get_dataset(...)` is exactly what a user task with the same
  documents and preprocessor yields;
- seekable (the training loader's): record i = chunk i of `chunking.ChunkTable` (the same
  concatenate-with-EOS-then-split chunks, in the same order), example = `preprocessors.make_example` (the
  same denoising) with seed [seed, position] through a stateless permutation of the records.
Splits: `train` and `validation` (`TokenCorpus.split`: `validation_split.py`'s ~1% of documents held out).
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from flan_ul2r.data.core.seekable import SeekableTask, register_seekable_mixture, register_seekable_task
from flan_ul2r.data.corpus.token_cache import TokenCorpus
from flan_ul2r.data.corpus.validation_split import held_out_mask, ordinal_mask
from flan_ul2r.data.ul2.chunking import IN_GRAPH_TOKENS, ChunkTable
from flan_ul2r.data.ul2.denoisers import UL2R, Denoiser
from flan_ul2r.data.ul2.preprocessors import causal_lm_chunks, chunk_length, make_example, ul2_denoise

SPLITS = ("train", "validation")


def array_corpus(documents: Sequence[Sequence[int]], names: Sequence[str] | None = None) -> TokenCorpus:
    """An in-memory TokenCorpus of token-id documents (empty ones are skipped, as corpus builds do).
    Held out for validation by `names` (provenances, e.g. "file.txt:7"), else by their ordinal among all
    given (`validation_split.ordinal_mask`)."""
    if names is not None and len(names) != len(documents):
        raise ValueError(f"array_corpus: {len(names)} names for {len(documents)} documents")
    held = ordinal_mask(len(documents)) if names is None else held_out_mask(names)
    nonempty = np.array([len(d) > 0 for d in documents], bool)
    docs = [np.asarray(d, np.int32) for d in documents if len(d)]
    lengths = np.array([len(d) for d in docs], np.int64)
    tokens = np.concatenate(docs) if docs else np.zeros([0], np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if docs else lengths
    return TokenCorpus(tokens, starts, lengths, {"documents": len(docs),
                                                 "empty_documents": len(documents) - len(docs)},
                       held_out=held[nonempty])


class LazyCorpus:
    """Builds the corpus on first use (thread-safe); caches splits, chunk tables and in-graph tokens."""

    def __init__(self, build: Callable[[], TokenCorpus], name: str):
        self._build, self.name = build, name
        self._corpus: TokenCorpus | None = None
        self._cache: dict[Any, Any] = {}
        self._lock = threading.RLock()

    @property
    def corpus(self) -> TokenCorpus:
        with self._lock:
            if self._corpus is None:
                self._corpus = self._build()
        return self._corpus

    def split(self, split: str) -> TokenCorpus:
        with self._lock:
            if ("split", split) not in self._cache:
                self._cache["split", split] = self.corpus.split(split)
            return self._cache["split", split]

    def table(self, split: str, raw: int, concatenate: bool, separator_id: int | None) -> ChunkTable:
        key = ("table", split, raw, concatenate, separator_id)
        with self._lock:
            if key not in self._cache:
                part = self.split(split)
                table = ChunkTable(part.tokens, part.starts, part.lengths, raw, separator_id=separator_id,
                                   concatenate=concatenate)
                if table.num_records == 0:
                    raise ValueError(f"corpus {self.name!r}, split {split!r}: no tokens "
                                     "(all documents empty?)")
                self._cache[key] = table
            return self._cache[key]

    def documents(self, split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        """The split's non-empty documents as `{"targets": int32[None]}`; shuffled: a seeded order."""
        part = self.split(split)
        keep = np.flatnonzero(part.lengths > 0)
        if shuffle_files:
            keep = np.random.default_rng(None if seed is None else int(seed) % 2**63).permutation(keep)
        starts, lengths = part.starts[keep], part.lengths[keep]
        tokens = part.tokens
        if np.size(tokens) <= IN_GRAPH_TOKENS:
            flat = tf.constant(np.asarray(tokens, np.int32))
            slice_ = lambda a, n: tf.slice(flat, [a], [n])
        else:
            read = lambda a, n: np.asarray(tokens[a:a + n], np.int32)
            slice_ = lambda a, n: tf.reshape(tf.numpy_function(read, [a, n], tf.int32, stateful=False), [-1])
        ds = tf.data.Dataset.from_tensor_slices((starts, lengths))
        return ds.map(lambda a, n: {"targets": slice_(a, n)}, num_parallel_calls=tf.data.AUTOTUNE)


class CorpusSource(seqio.DataSource):
    """seqio DataSource: the documents of a LazyCorpus split (seqio shards them by example per host)."""

    def __init__(self, corpus: LazyCorpus, splits: Sequence[str]):
        self.corpus = corpus
        super().__init__(splits=splits, caching_permitted=False)

    @property
    def supports_arbitrary_sharding(self) -> bool:
        return False

    def list_shards(self, split: str) -> Sequence[str]:
        return [split]

    def get_dataset(self, split: str = "train", shuffle: bool = True, seed: int | None = None,
                    shard_info: seqio.ShardInfo | None = None, *, sequence_length: Any = None,
                    use_cached: bool = False, num_epochs: int | None = 1) -> tf.data.Dataset:
        ds = self.corpus.documents(split, shuffle, seed)
        return ds.shard(shard_info.num_shards, shard_info.index) if shard_info else ds


def make_task(name: str, corpus: LazyCorpus, vocabulary: Any, denoiser: Denoiser | None, *,
              concatenate: bool = True, separator: bool = True, eos_after_inputs: bool = False,
              splits: Sequence[str] = SPLITS) -> SeekableTask:
    """One task: `denoiser` over `corpus` (None = plain causal LM); both views (module docstring).
    The callables it hands to tf.data are plain TF ops and Python: they skip autograph (and so does
    `table`, which only they call)."""

    def table(split: str, seqlen) -> ChunkTable:
        sep = int(vocabulary.eos_id) if separator else None
        return corpus.table(split, chunk_length(denoiser, seqlen, eos_after_inputs), concatenate, sep)

    @tf.autograph.experimental.do_not_convert
    def num_records(split: str, seqlen) -> int:
        return table(split, seqlen).num_records

    @tf.autograph.experimental.do_not_convert
    def fetch(index: tf.Tensor, split: str, seqlen) -> dict[str, tf.Tensor]:
        return {"tokens": table(split, seqlen).fetch(index)}

    @tf.autograph.experimental.do_not_convert
    def preprocess(features: dict[str, tf.Tensor], seed: tf.Tensor, seqlen) -> dict[str, tf.Tensor]:
        return make_example(features["tokens"], seed, denoiser, vocabulary, eos_after_inputs)

    options = {"concatenate": concatenate, "separator": separator}
    if denoiser is None:
        prep = functools.partial(causal_lm_chunks, **options)
    else:
        prep = functools.partial(ul2_denoise, denoisers=[denoiser], eos_after_inputs=eos_after_inputs,
                                 **options)
    source = CorpusSource(corpus, splits=list(splits))
    return SeekableTask(name, vocabulary, num_records, fetch, preprocess, splits=tuple(splits),
                       string_features=("denoiser",), source=source, preprocessors=[prep])


def _lazy(source: Any, name: str) -> LazyCorpus:
    if isinstance(source, LazyCorpus):
        return source
    return LazyCorpus(source if callable(source) else (lambda: source), name)


def register_ul2r_mixture(name: str, source: Any, vocabulary: Any, denoisers: Sequence[Denoiser] = UL2R,
                          **options: Any) -> list[str]:
    """Registers task `{name}_{denoiser}` per denoiser and seqio Mixture `name` (rates = weights).

    `source`: a TokenCorpus (e.g. `array_corpus(docs)`), a LazyCorpus, or a zero-argument callable
    building one on first use. `options`: `make_task`'s (concatenate, separator, eos_after_inputs,
    splits). The model length is the one the reader asks for; raw chunk lengths follow from it.
    Returns the task names.
    """
    names = [d.name for d in denoisers]
    if len(set(names)) != len(names):
        raise ValueError(f"register_ul2r_mixture({name!r}): duplicate denoiser names {names}")
    lazy = _lazy(source, name)
    tasks = [register_seekable_task(make_task(f"{name}_{d.name}", lazy, vocabulary, d, **options))
             for d in denoisers]
    register_seekable_mixture(name, [(t.name, d.weight) for t, d in zip(tasks, denoisers)])
    return [t.name for t in tasks]


def register_lm_task(name: str, source: Any, vocabulary: Any, **options: Any) -> str:
    """Registers plain causal-LM task `name` over a corpus (the benchmark baseline)."""
    return register_seekable_task(make_task(name, _lazy(source, name), vocabulary, None, **options)).name
