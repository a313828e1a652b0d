"""Registrations: UL2R / UL2 denoising mixtures and the plain causal-LM baseline (seqio's registry).

Registered on import (cheap: the corpus is built or opened on first read):
- `ul2r_s`, `ul2r_r_3_15`, `ul2r_x_32_15`, `ul2r_x_3_50` and mixture `ul2r` (U-PaLM section 2.3 rates
  50/25/12.5/12.5; the X pairs are an interpretation, see `flan_ul2r.data.ul2.denoisers.UL2R`);
- `ul2_r_3_15`, ..., `ul2_s_25` and mixture `ul2` (UL2's 7 denoisers, uniform rates - UNCONFIRMED);
- `lm`: plain causal LM (inputs empty, targets = chunk + EOS), the benchmark baseline.
Every task has `train` and `validation` splits. The library code is `flan_ul2r.data.ul2.cached_tasks`.

gin edges: `ul2r_corpus.spec = %UL2R_CORPUS` ("default" = the stdlib docstring corpus, or a source spec
such as "jsonl:/data/*.jsonl"), `ul2r_corpus.vocabulary`, `ul2r_corpus.cache` (how a source spec is read,
`flan_ul2r.data.ul2.corpus_tasks`), `ul2r_denoisers.denoisers`, `ul2r_options.*`, and unscoped
`Denoiser.*` bindings (e.g. `Denoiser.span_rounding = "t5"`), which the preset denoisers take in every
field they leave at its default. Entry points call `register_after_gin()` after parsing gin so bindings
take effect: the denoisers are built then, not at import.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gin

from flan_ul2r.data.ul2.corpus_tasks import corpus_for, register_corpus_lm, register_corpus_mixture
from flan_ul2r.data.ul2.denoisers import UL2, UL2R, Denoiser
from flan_ul2r.data.vocab import default_vocabulary as default_vocab


@gin.configurable
def ul2r_corpus(spec: str = "default", vocabulary: str = "byte", cache: Any = "auto") -> tuple[str, str, Any]:
    """gin edge: the corpus and vocabulary of the default `ul2r` / `ul2` / `lm` registrations, and whether
    a source spec is tokenized into a local cache (True), streamed per host (False) or chosen by size
    ("auto"). Bind `ul2r_corpus.spec = %UL2R_CORPUS` in gin."""
    return spec, vocabulary, cache


gin.external_configurable(Denoiser, module="flan_ul2r")


def with_gin_defaults(denoisers: Sequence[Denoiser]) -> tuple[Denoiser, ...]:
    """The denoisers with the unscoped `Denoiser.*` gin bindings in the fields each leaves at its default
    (read now, after gin parsed: `Denoiser.span_rounding = "t5"` reaches the preset `ul2r` / `ul2`)."""
    bound = gin.get_bindings("flan_ul2r.Denoiser")
    defaults = {f.name: f.default for f in dataclasses.fields(Denoiser)}
    return tuple(dataclasses.replace(d, **{k: v for k, v in bound.items() if getattr(d, k) == defaults[k]})
                 for d in denoisers)


@gin.configurable
def ul2r_denoisers(denoisers: Sequence[Denoiser] | None = None) -> tuple[Denoiser, ...]:
    """gin edge: the denoisers of the default `ul2r` mixture (default: the UL2R preset). E.g.

        x/flan_ul2r.Denoiser.name = "x_32_50"
        x/flan_ul2r.Denoiser.kind = "span"
        ...
        ul2r_denoisers.denoisers = [@s/flan_ul2r.Denoiser(), @x/flan_ul2r.Denoiser()]
    """
    return with_gin_defaults(UL2R if denoisers is None else denoisers)


@gin.configurable
def ul2r_options(concatenate: bool = True, separator: bool = True, eos_after_inputs: bool = False
                 ) -> dict[str, bool]:
    """gin edge: chunking and layout of the built-in tasks (`flan_ul2r.data.ul2.preprocessors.ul2_denoise`):
    T5's concatenate-then-split (False: per document), EOS between documents, EOS after the inputs."""
    return {"concatenate": concatenate, "separator": separator, "eos_after_inputs": eos_after_inputs}


def register_defaults() -> None:
    """The project's default registrations (see module docstring); cheap, nothing is built yet."""
    spec, vocabulary, cache = ul2r_corpus()
    default_vocab.configure(vocabulary)
    vocab, options = default_vocab.default_vocabulary(), ul2r_options()
    corpus = corpus_for(spec, vocab, cache)
    register_corpus_mixture("ul2r", corpus, vocab, ul2r_denoisers(), **options)
    register_corpus_mixture("ul2", corpus, vocab, with_gin_defaults(UL2), **options)
    lm_options = {k: v for k, v in options.items() if k != "eos_after_inputs"}
    register_corpus_lm("lm", corpus, vocab, **lm_options)


register_defaults()


def register_after_gin() -> None:
    register_defaults()
