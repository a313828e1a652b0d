"""The project's default vocabulary: what the built-in registrations (UL2R, Flan) tokenize with.

`configure(vocabulary=...)` is called by the gin edge (`flan_ul2r.tasks.ul2r`, `ul2r_corpus.vocabulary`)
after gin is parsed; library code reads `default_vocabulary()`, a `LazyVocabulary` that builds the
configured vocabulary on first use and follows later `configure` calls, so tasks registered before gin
parsing (at import) still get the vocabulary gin chooses.
"""
from __future__ import annotations

import threading
from typing import Any

import seqio

_CONFIG: dict[str, Any] = {"vocabulary": "byte"}


def configure(vocabulary: str) -> None:
    """Sets the default vocabulary spec (`vocabularies.get_vocabulary` syntax)."""
    _CONFIG["vocabulary"] = vocabulary


def _delegate(method: str) -> Any:
    """A method that calls the resolved vocabulary's `method`."""
    def call(self: LazyVocabulary, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.resolved, method)(*args, **kwargs)

    call.__name__ = method
    return call


class LazyVocabulary(seqio.Vocabulary):
    """A seqio Vocabulary standing for `get_vocabulary(spec())`, built on first use and rebuilt when the
    spec changes; every attribute (sentinel_ids, mode_token_ids, describe, ...) is the built one's."""

    def __init__(self, spec=lambda: _CONFIG["vocabulary"]):
        self._spec, self._built, self._lock = spec, {}, threading.Lock()

    @property
    def resolved(self) -> seqio.Vocabulary:
        spec = self._spec()
        with self._lock:
            if spec not in self._built:
                from flan_ul2r.data.vocab.vocabularies import get_vocabulary

                self._built[spec] = get_vocabulary(spec)
            return self._built[spec]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.resolved, name)

    def __eq__(self, other: object) -> bool:
        other = other.resolved if isinstance(other, LazyVocabulary) else other
        return self.resolved == other

    def __hash__(self) -> int:
        return id(self)

    def __str__(self) -> str:
        return f"LazyVocabulary({self._spec()!r})"

    # seqio.Vocabulary's interface, delegated.
    bos_id = property(lambda self: self.resolved.bos_id)
    eos_id = property(lambda self: self.resolved.eos_id)
    pad_id = property(lambda self: self.resolved.pad_id)
    unk_id = property(lambda self: self.resolved.unk_id)
    extra_ids = property(lambda self: self.resolved.extra_ids)
    vocab_size = property(lambda self: self.resolved.vocab_size)
    _base_vocab_size = property(lambda self: self.resolved._base_vocab_size)

    encode = _delegate("encode")
    decode = _delegate("decode")
    encode_tf = _delegate("encode_tf")
    decode_tf = _delegate("decode_tf")
    _encode = _delegate("_encode")
    _decode = _delegate("_decode")
    _encode_tf = _delegate("_encode_tf")
    _decode_tf = _delegate("_decode_tf")


_DEFAULT = LazyVocabulary()


def default_vocabulary() -> LazyVocabulary:
    """The configured default vocabulary (one object for the whole process)."""
    return _DEFAULT
