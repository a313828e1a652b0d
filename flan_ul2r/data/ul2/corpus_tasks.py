"""The built-in UL2R tasks over a corpus spec: a local token cache (seekable) or a per-host stream.

`corpus_for(spec, vocabulary, cache)` decides how a corpus is read:
- "default": the stdlib docstring corpus, tokenized once into the local cache (`default_corpus.py`);
- a source spec with `cache=True`: tokenized once, whole, into the local cache (`corpus/token_cache.py`) -
  seekable tasks, exact resume by position, but every host tokenizes the whole source before step 1;
- `cache=False`: streamed (`corpus/document_stream.py`) - host h reads only its own files, tokenizes
  documents as the run consumes them, in parallel batches; the tasks are plain seqio Tasks read through the
  loader's streaming path, which resumes exactly by a counted skip (`loader.py`);
- `cache="auto"`: cache when the source's files total at most `CACHE_LIMIT_BYTES`, else stream.
`register_corpus_mixture` / `register_corpus_lm` then register the same task names either way.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import seqio

from flan_ul2r.data.core.seekable import TotalLengthTask, register_seekable_mixture, register_seekable_task
from flan_ul2r.data.corpus.document_stream import (
    STREAM_EXAMPLE_SHUFFLE_BUFFER,
    DocumentSource,
    tokenize_documents,
)
from flan_ul2r.data.corpus.sources import SourceSpec, parse_source_spec, resolve_files
from flan_ul2r.data.ul2.cached_tasks import LazyCorpus, register_lm_task, register_ul2r_mixture
from flan_ul2r.data.ul2.denoisers import UL2R, Denoiser
from flan_ul2r.data.ul2.preprocessors import causal_lm_chunks, ul2_denoise

# "auto": a source of up to 1 GiB of files is tokenized into the local cache (a few minutes at the
# ~6 MB/s a 2-core machine tokenizes with a 32k BPE vocabulary); larger ones are streamed.
CACHE_LIMIT_BYTES = 1 << 30
_CORPORA: dict[tuple[str, str, str], Any] = {}


class StreamCorpus:
    """A source spec read as a stream (no cache): what the streamed tasks are built over."""

    def __init__(self, spec: SourceSpec):
        self.spec = spec

    def source(self) -> DocumentSource:
        return DocumentSource(self.spec)


def _wants_cache(spec: SourceSpec, cache: Any) -> bool:
    if cache in (True, False):
        return cache
    if str(cache).lower() in ("true", "false"):
        return str(cache).lower() == "true"
    if cache != "auto":
        raise ValueError(f"ul2r_corpus.cache={cache!r}: expected True, False or 'auto'")
    if spec.kind == "tfds":
        return False
    return sum(os.path.getsize(f) for f in resolve_files(spec)) <= CACHE_LIMIT_BYTES


def corpus_for(spec: str, vocabulary: Any, cache: Any = "auto") -> LazyCorpus | StreamCorpus:
    """The corpus handle for `spec` (shared by the registrations that read it; module docstring)."""
    key = (str(spec), str(vocabulary), str(cache))
    if key in _CORPORA:
        return _CORPORA[key]
    if spec == "default":
        from flan_ul2r.data.corpus.default_corpus import load_default_corpus

        corpus: Any = LazyCorpus(lambda: load_default_corpus(vocabulary), "default")
    else:
        parsed = parse_source_spec(spec)
        if _wants_cache(parsed, cache):
            from flan_ul2r.data.corpus.token_cache import build_corpus

            corpus = LazyCorpus(lambda: build_corpus(parsed, vocabulary), str(parsed))
        else:
            corpus = StreamCorpus(parsed)
    _CORPORA[key] = corpus
    return corpus


def stream_task(name: str, corpus: StreamCorpus, vocabulary: Any, denoiser: Denoiser | None,
                **options: Any) -> TotalLengthTask:
    """A plain seqio Task: corpus documents -> tokenize_documents -> ul2_denoise([denoiser]) (or the
    causal-LM chunks), examples sized for inputs + targets."""
    if denoiser is None:
        chunks = functools.partial(causal_lm_chunks, **options)
    else:
        chunks = functools.partial(ul2_denoise, denoisers=[denoiser], **options)
    feature = lambda: seqio.Feature(vocabulary, add_eos=False)
    return TotalLengthTask(name, source=corpus.source(), preprocessors=[tokenize_documents, chunks],
                           output_features={"inputs": feature(), "targets": feature()},
                           shuffle_buffer_size=STREAM_EXAMPLE_SHUFFLE_BUFFER)


def register_corpus_mixture(name: str, corpus: LazyCorpus | StreamCorpus, vocabulary: Any,
                            denoisers: Sequence[Denoiser] = UL2R, **options: Any) -> list[str]:
    """Task `{name}_{denoiser}` per denoiser and Mixture `name` (rates = weights), cached or streamed."""
    if isinstance(corpus, LazyCorpus):
        return register_ul2r_mixture(name, corpus, vocabulary, denoisers, **options)
    tasks = [register_seekable_task(stream_task(f"{name}_{d.name}", corpus, vocabulary, d, **options))
             for d in denoisers]
    register_seekable_mixture(name, [(t.name, d.weight) for t, d in zip(tasks, denoisers)])
    return [t.name for t in tasks]


def register_corpus_lm(name: str, corpus: LazyCorpus | StreamCorpus, vocabulary: Any,
                       **options: Any) -> str:
    """Plain causal-LM task `name` over the corpus, cached or streamed."""
    if isinstance(corpus, LazyCorpus):
        return register_lm_task(name, corpus, vocabulary, **options)
    return register_seekable_task(stream_task(name, corpus, vocabulary, None, **options)).name
