"""UL2R / UL2 denoising tasks and mixtures, and the plain causal-LM baseline, over token corpora.

Registered on import (cheap: the corpus is built on first use, then cached by DATA-CORE's corpus cache):
- `ul2r_s`, `ul2r_r_3_15`, `ul2r_x_32_15`, `ul2r_x_3_50` and mixture `ul2r` (rates = the UL2R preset
  weights, U-PaLM 2.3: 50/25/12.5/12.5);
- `ul2_r_3_15`, ..., `ul2_s_25` and mixture `ul2` (UL2's 7 denoisers, uniform rates - UNCONFIRMED);
- `lm`: plain causal LM (inputs empty, targets = chunk + EOS), the benchmark baseline.

Record i of a denoiser task is chunk i of `corpus.chunks(raw_length(denoiser, inputs + targets))`: long
documents are split into sequence-sized chunks, not thrown away, and every example fits the model length
without trimming (T5 random_spans_helper arithmetic). The default corpus is the project's stdlib docstring
corpus with the ByteVocabulary; gin chooses another: `ul2r_corpus.spec = %UL2R_CORPUS`,
`ul2r_corpus.vocabulary = "hf:/path/tokenizer.json"`, and the `ul2r` denoisers with
`ul2r_denoisers.denoisers = [...]` (e.g. another reading of U-PaLM's X pairs); entry points call
`register_defaults()` again after parsing gin. `register_ul2r_mixture` registers a user corpus.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

import gin
from flan_ul2r.data.denoisers import UL2, UL2R, Denoiser, causal_lm, denoise, raw_length
from flan_ul2r.data.indexed import IndexedTask, register_indexed_mixture, register_indexed_task

# Token arrays up to this size are embedded in the tf graph; larger ones are read via numpy_function.
_IN_GRAPH_TOKENS = 1 << 26


class ArrayCorpus:
    """A minimal in-memory token corpus (documents -> one flat array) with `chunks(max_len)`.

    The interface the tasks need from DATA-CORE's TokenCorpus: `tokens` (flat int array) and
    `chunks(max_len) -> int64[n, 2]` rows of (start, length), every document cut into pieces of at most
    `max_len` tokens, empty documents skipped.
    """

    def __init__(self, documents: Sequence[Sequence[int]]):
        docs = [np.asarray(d, np.int32) for d in documents if len(d)]
        self.num_empty = len(documents) - len(docs)
        self.tokens = np.concatenate(docs) if docs else np.zeros([0], np.int32)
        self.doc_starts = np.cumsum([0] + [len(d) for d in docs])

    def chunks(self, max_len: int) -> np.ndarray:
        rows = []
        for a, b in zip(self.doc_starts[:-1], self.doc_starts[1:]):
            starts = np.arange(a, b, max_len)
            rows.append(np.stack([starts, np.minimum(starts + max_len, b) - starts], axis=1))
        return np.concatenate(rows).astype(np.int64) if rows else np.zeros([0, 2], np.int64)


class LazyCorpus:
    """Builds the corpus on first use (thread-safe) and caches chunk tables per max_len as TF tensors."""

    def __init__(self, build: Callable[[], Any], name: str):
        self._build, self.name = build, name
        self._corpus: Any = None
        self._tables: dict[int, tuple[tf.Tensor, int]] = {}
        self._lock = threading.Lock()
        self._tokens: tf.Tensor | None = None

    @property
    def corpus(self) -> Any:
        with self._lock:
            if self._corpus is None:
                self._corpus = self._build()
        return self._corpus

    def table(self, max_len: int) -> tuple[tf.Tensor, int]:
        if max_len not in self._tables:
            rows = np.asarray(_chunk_rows(self.corpus, max_len), np.int64).reshape(-1, 2)
            if len(rows) == 0:
                raise ValueError(f"corpus {self.name!r} has no tokens (all documents empty?)")
            with tf.init_scope():  # eager, so every tf.function / switch_case branch may capture it
                self._tables[max_len] = (tf.constant(rows), len(rows))
        return self._tables[max_len]

    def slice(self, start: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
        tokens = np.asarray(self.corpus.tokens)
        if tokens.size <= _IN_GRAPH_TOKENS:
            if self._tokens is None:
                with tf.init_scope():
                    self._tokens = tf.constant(tokens.astype(np.int32))
            return tf.slice(self._tokens, [start], [length])
        out = tf.numpy_function(lambda a, n: np.asarray(tokens[a:a + n], np.int32), [start, length], tf.int32)
        return tf.reshape(out, [-1])


def _chunk_rows(corpus: Any, max_len: int) -> np.ndarray:
    rows = corpus.chunks(max_len)
    if isinstance(rows, tuple):  # (starts, lengths)
        rows = np.stack([np.asarray(rows[0]), np.asarray(rows[1])], axis=1)
    return np.asarray(rows)


def _vocab_ids(vocabulary: Any, denoiser: Denoiser | None) -> dict[str, Any]:
    mode_id = None
    if denoiser is not None and denoiser.mode_token:
        modes = getattr(vocabulary, "mode_token_ids", {})
        if denoiser.mode_token not in modes:
            raise ValueError(f"denoiser {denoiser.name!r}: mode_token={denoiser.mode_token!r} not in the "
                             f"vocabulary's mode tokens {sorted(modes)}")
        mode_id = int(modes[denoiser.mode_token])
    return {"sentinel_ids": tuple(int(s) for s in vocabulary.sentinel_ids), "mode_id": mode_id,
            "eos_id": int(vocabulary.eos_id)}


def make_task(name: str, corpus: LazyCorpus, vocabulary: Any, denoiser: Denoiser | None) -> IndexedTask:
    """One IndexedTask: `denoiser` over `corpus` chunks (None = plain causal LM)."""

    def raw(seqlen) -> int:
        total = int(seqlen["inputs"]) + int(seqlen["targets"])
        return total - 1 if denoiser is None else raw_length(denoiser, total)

    def num_records(split: str, seqlen) -> int:
        return corpus.table(raw(seqlen))[1]

    def fetch(index: tf.Tensor, split: str, seqlen) -> dict[str, tf.Tensor]:
        row = tf.gather(corpus.table(raw(seqlen))[0], index)
        return {"tokens": corpus.slice(row[0], row[1])}

    def preprocess(features: dict[str, tf.Tensor], seed: tf.Tensor, seqlen) -> dict[str, tf.Tensor]:
        ids = _vocab_ids(vocabulary, denoiser)
        if denoiser is None:
            ex = causal_lm(features["tokens"], ids["eos_id"])
        else:
            ex = denoise(features["tokens"], seed, denoiser, ids["sentinel_ids"], ids["mode_id"],
                         ids["eos_id"])
        return {**ex, "task": tf.constant(name)}

    return IndexedTask(name, vocabulary, num_records, fetch, preprocess,
                       string_features=("denoiser", "task"))


def register_ul2r_mixture(name: str, source: Any, vocabulary: Any,
                          denoisers: Sequence[Denoiser] = UL2R) -> list[str]:
    """Registers task `{name}_{denoiser}` per denoiser and mixture `name` (rates = weights).

    `source`: a corpus (`tokens` + `chunks(max_len)`, e.g. DATA-CORE's TokenCorpus) or a zero-argument
    callable building one on first use. Returns the task names. The model length (inputs + targets) is
    the one the caller asks for at read time; raw chunk lengths follow from it (raw_length).
    """
    names = [d.name for d in denoisers]
    if len(set(names)) != len(names):
        raise ValueError(f"register_ul2r_mixture({name!r}): duplicate denoiser names {names}")
    lazy = source if isinstance(source, LazyCorpus) else \
        LazyCorpus(source if callable(source) else (lambda: source), name)
    tasks = [register_indexed_task(make_task(f"{name}_{d.name}", lazy, vocabulary, d)) for d in denoisers]
    register_indexed_mixture(name, [(t.name, d.weight) for t, d in zip(tasks, denoisers)])
    return [t.name for t in tasks]


def register_lm_task(name: str, source: Any, vocabulary: Any) -> str:
    lazy = source if isinstance(source, LazyCorpus) else \
        LazyCorpus(source if callable(source) else (lambda: source), name)
    return register_indexed_task(make_task(name, lazy, vocabulary, None)).name


@gin.configurable
def ul2r_corpus(spec: str = "default", vocabulary: str = "byte") -> tuple[str, str]:
    """gin edge: which corpus and vocabulary the default `ul2r`/`ul2`/`lm` registrations read.

    `spec` "default" = the stdlib docstring corpus; otherwise a DATA-CORE source spec (e.g.
    "jsonl:/data/*.jsonl", "tfds:c4/en"). Bind `ul2r_corpus.spec = %UL2R_CORPUS` in gin.
    """
    return spec, vocabulary


class LazyVocabulary:
    """Stands for the gin-chosen vocabulary (`ul2r_corpus.vocabulary`), built on first attribute use,
    so importing this module before gin parsing is fine and bindings parsed later still apply."""

    def __init__(self) -> None:
        self._vocab: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._vocab is None:
            from flan_ul2r.data.vocabularies import get_vocabulary

            self._vocab = get_vocabulary(ul2r_corpus()[1])
        return getattr(self._vocab, name)


_DEFAULT_VOCAB = LazyVocabulary()


def _default_vocabulary() -> Any:
    return _DEFAULT_VOCAB


def _build_default_corpus() -> Any:
    spec, vocab_spec = ul2r_corpus()
    try:
        if spec == "default":
            from flan_ul2r.data.default_corpus import load_default_corpus

            return load_default_corpus(_DEFAULT_VOCAB)
        from flan_ul2r.data.corpus_cache import build_corpus

        return build_corpus(spec, _DEFAULT_VOCAB)
    except ImportError as e:
        raise RuntimeError(f"ul2r_corpus.spec={spec!r}: the corpus code is not available ({e})") from e


gin.external_configurable(Denoiser, module="flan_ul2r")


@gin.configurable
def ul2r_denoisers(denoisers: Sequence[Denoiser] | None = None) -> tuple[Denoiser, ...]:
    """gin edge: the denoisers of the default `ul2r` mixture (default: the UL2R preset). E.g.

        x/flan_ul2r.Denoiser.name = "x_32_50"
        x/flan_ul2r.Denoiser.kind = "span"
        ...
        ul2r_denoisers.denoisers = [@s/flan_ul2r.Denoiser(), @x/flan_ul2r.Denoiser()]

    Re-run `register_defaults()` after parsing gin (the CLI verbs do) for a binding to take effect.
    """
    return UL2R if denoisers is None else tuple(denoisers)


def register_defaults() -> None:
    """The project's default registrations (see module docstring); cheap, nothing is built yet."""
    vocab = _DEFAULT_VOCAB
    corpus = LazyCorpus(_build_default_corpus, "default")
    register_ul2r_mixture("ul2r", corpus, vocab, ul2r_denoisers())
    register_ul2r_mixture("ul2", corpus, vocab, UL2)
    register_lm_task("lm", corpus, vocab)


register_defaults()


def register_after_gin() -> None:
    register_defaults()
