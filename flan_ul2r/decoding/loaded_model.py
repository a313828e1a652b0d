"""`LoadedModel`: a model ready for inference (config, params, vocabulary, where it runs) with token-id
methods (`logits`, `generate`, `generate_batch`, `score`) and text methods (`tokenize`, `complete`,
`infill`, ...), a thin wrapper over the rest of flan_ul2r/decoding/. `flan_ul2r.load_model` (api.py) makes
one from a checkpoint or an HF directory; periodic eval during training wraps the live params in one.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flan_ul2r import partitioning
from flan_ul2r.decoding import batching, infill, prefix_cache, scoring, stops
from flan_ul2r.decoding.generate import DecodeSpec, Placement
from flan_ul2r.decoding.prompts import encode_prompt, encode_text, prompt_is_prefix_lm
from flan_ul2r.decoding.sampling import check_sampling
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.decoder import Decoder

# Used when neither train_info.json nor an HF config gives a length: UL2R's 1024 + 1024 tokens
# (U-PaLM section 2.2).
DEFAULT_MAX_LENGTH = 2048


class Completion(NamedTuple):
    text: str
    token_ids: list[int]  # the generated ids, cut like the text (before EOS / a stop sequence)


class Infilled(NamedTuple):
    spans: list[str]  # the text written for each of the prompt's sentinels, in order
    token_ids: list[int]  # everything generated (sentinels included), cut before EOS


@functools.lru_cache(maxsize=16)
def _forward(config: ModelConfig) -> Any:
    """The jitted forward of `LoadedModel.logits`, one per model config: models of one shape (the four
    models a pipeline evaluates) compile it once, as decoding/scoring.py and generate.py do."""
    model = Decoder(config)
    return jax.jit(lambda p, t, c: model.apply({"params": p}, t, causal_attention=c))


@dataclasses.dataclass
class LoadedModel:
    """A model ready for inference. Token-id methods: `logits`, `generate`, `generate_batch`, `score`;
    text methods (need a vocabulary): `tokenize`, `detokenize`, `encode_prompt`, `complete`, `infill`."""

    config: ModelConfig
    params: Any
    vocab: Any
    max_length: int = DEFAULT_MAX_LENGTH  # longest prompt + generation
    prefix_lm: bool = False  # default prompt encoding: bidirectional (UL2R / Flan runs) or causal
    path: str | None = None
    vocab_problem: str | None = None  # why `vocab` is None
    placement: Placement = Placement()

    # --- vocabulary ---------------------------------------------------------------------------------------
    def _text_vocab(self) -> Any:
        if self.vocab is None:
            raise FileNotFoundError(f"{self.vocab_problem or f'{self.path}: no vocabulary'}. Text methods "
                                    "(tokenize, complete, infill, stop_sequences) need the tokenizer; "
                                    "token-id methods (generate_batch, score, logits) work without it")
        return self.vocab

    @property
    def _vocab_limit(self) -> int:
        size = getattr(self.vocab, "vocab_size", None)
        return min(self.config.vocab_size, int(size)) if size else self.config.vocab_size

    @property
    def _eos_id(self) -> int:
        return int(self.vocab.eos_id) if self.vocab is not None else -1

    def tokenize(self, text: str) -> list[int]:
        """The tokenizer's ids of `text` (no BOS, no special-name mapping; see `encode_prompt`)."""
        return [int(i) for i in self._text_vocab().encode(text)]

    def detokenize(self, ids) -> str:
        return self._text_vocab().decode([int(i) for i in np.asarray(ids).reshape(-1)])

    def encode_prompt(self, text: str, mode: str | None = None) -> list[int]:
        """`[BOS] + [mode token] + ids` with `<extra_id_N>` / `[NLU]`-style names mapped to their ids: a
        prompt as the model read its training examples (flan_ul2r/decoding/prompts.py)."""
        return encode_prompt(self._text_vocab(), text, mode)

    # --- placement ----------------------------------------------------------------------------------------
    def with_mesh(self, mesh, rules: Any = "data_parallel") -> LoadedModel:
        """The same model with params sharded on `mesh` by the training rules (`partitioning.rules_for`)."""
        rules = partitioning.rules_for(rules)
        boxed = jax.eval_shape(lambda: Decoder(self.config).init(jax.random.PRNGKey(0),
                                                                  jnp.ones((1, 1), jnp.int32)))
        shardings = partitioning.logical_shardings(boxed["params"], mesh, rules)
        params = jax.device_put(self.params, shardings)
        return dataclasses.replace(self, params=params, placement=Placement(mesh, rules))

    # --- forward ------------------------------------------------------------------------------------------
    def logits(self, token_ids, prefix_length: int | None = None) -> np.ndarray:
        """[batch, length] ids -> [batch, length, vocab] float32 logits. `prefix_length`: attend
        bidirectionally over the first `prefix_length` positions (prefix-LM, as UL2R trained)."""
        tokens = jnp.asarray(np.asarray(token_ids, np.int32))
        if tokens.ndim != 2:
            raise ValueError(f"token_ids must be [batch, length], got shape {tokens.shape}")
        flag = None
        if prefix_length:
            flag = (jnp.arange(tokens.shape[1])[None, :] < prefix_length).astype(jnp.int32)
            flag = jnp.broadcast_to(flag, tokens.shape)
        return np.asarray(_forward(self.config)(self.params, tokens, flag))

    # --- generation ---------------------------------------------------------------------------------------
    def _generate(self, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float,
                  top_k: int, top_p: float, num_samples: int, seed: int, stop_ids: Sequence[Sequence[int]],
                  stop_at_eos: bool, prefix_lm: bool, batch_size: int, progress: bool,
                  share_prefix: bool = True) -> list[list[list[int]]]:
        check_sampling(temperature, top_k, top_p, num_samples)
        checked = batching.check_prompts(prompt_ids, max_new_tokens, self.max_length, self.config.vocab_size)
        spec = DecodeSpec(int(max_new_tokens), temperature == 0, int(top_k), bool(prefix_lm),
                          self._vocab_limit, bool(stop_at_eos))
        sampling = batching.SamplingSettings(float(temperature), int(top_k), float(top_p), int(num_samples),
                                             int(seed))
        shared = prefix_cache.shared_length(checked, self.config, prefix_lm, self.placement) if share_prefix \
            else 0
        if shared:
            return prefix_cache.generate_rows(self.config, self.params, checked, shared, spec, sampling,
                                              eos_id=self._eos_id, stop_ids=stops.stop_id_array(stop_ids),
                                              batch_size=batch_size, progress=progress)
        return batching.generate_rows(self.config, self.params, checked, spec, sampling, eos_id=self._eos_id,
                                      stop_ids=stops.stop_id_array(stop_ids), batch_size=batch_size,
                                      placement=self.placement, progress=progress)

    def _finish(self, ids: list[int], stop_sequences: Sequence[str], stop_token_ids: Sequence[Sequence[int]],
                stop_at_eos: bool, text: bool) -> tuple[list[int], str | None]:
        """Generated ids cut before EOS / a stop sequence; the text too when `text` (or stop strings)."""
        if stop_at_eos:
            ids = stops.cut_before_eos(ids, self._eos_id)
        ids = stops.cut_before_id_sequences(ids, stop_token_ids)
        if stop_sequences:
            return stops.cut_at_stop_strings(ids, stop_sequences, self._text_vocab().decode)
        return ids, (self._text_vocab().decode(ids) if text else None)

    def generate_batch(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int = 32,
                       temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, num_samples: int = 1,
                       seed: int = 0, stop_sequences: Sequence[str] = (), stop_at_eos: bool = True,
                       prefix_lm: bool | None = None, batch_size: int = 8,
                       stop_token_ids: Sequence[Sequence[int]] = (), progress: bool = False,
                       share_prefix: bool = True) -> list[list[list[int]]]:
        """[prompt][sample] -> new ids, cut before EOS or a stop sequence (strings matched on the
        decoded text, `stop_token_ids` on ids). Prompts are ids as the model reads them (start them with BOS
        as training did: `encode_prompt`); `prefix_lm` None = `self.prefix_lm`. `temperature` 0 = greedy;
        `top_k` 0 and `top_p` 1 = off; samples are reproducible from `seed` (decoding/sampling.py).
        `batch_size` = rows decoded together (each sample is a row). Prompts are sorted by length; with
        `share_prefix`, a common prefix of causal prompts (few-shot exemplars) is computed once
        (decoding/prefix_cache.py)."""
        vocab_stops = self._stop_ids(stop_sequences) + [list(s) for s in stop_token_ids]
        rows = self._generate(prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                              top_p=top_p, num_samples=num_samples, seed=seed, stop_ids=vocab_stops,
                              stop_at_eos=stop_at_eos, batch_size=batch_size, progress=progress,
                              prefix_lm=self.prefix_lm if prefix_lm is None else bool(prefix_lm),
                              share_prefix=share_prefix)
        return [[self._finish(ids, stop_sequences, stop_token_ids, stop_at_eos, False)[0] for ids in per]
                for per in rows]

    def _stop_ids(self, stop_sequences: Sequence[str]) -> list[list[int]]:
        if isinstance(stop_sequences, str):
            raise ValueError(f"stop_sequences={stop_sequences!r} must be a list of strings, not one string")
        return [encode_text(self._text_vocab(), s) for s in stop_sequences if s]

    def generate(self, prompt_ids, max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0,
                 stop_at_eos: bool = True) -> list[int]:
        """Continues one prompt (KV cache, default encoding); returns only the new ids, cut before EOS."""
        return self.generate_batch([list(prompt_ids)], max_new_tokens=max_new_tokens, temperature=temperature,
                                   seed=seed, stop_at_eos=stop_at_eos, batch_size=1)[0][0]

    def complete(self, prompts: Sequence[str], *, mode: str | None = None, **kwargs: Any) -> list[list[str]]:
        """Text in, [prompt][sample] text out. Each prompt is `encode_prompt(text, mode)`; `mode` "s2s" /
        "nlu" / "nlg" prepends that token and encodes bidirectionally, "causal" encodes causally, None keeps
        the default. No sentinel is appended (U-PaLM's "[NLU] ... <extra_id_0>" prompting is `infill`): the
        text is the continuation as decoded, sentinels shown by name. `kwargs`: those of `generate_batch`."""
        return [[c.text for c in per] for per in self.complete_detailed(prompts, mode=mode, **kwargs)]

    def complete_detailed(self, prompts: Sequence[str], *, mode: str | None = None, max_new_tokens: int = 32,
                          temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, num_samples: int = 1,
                          seed: int = 0, stop_sequences: Sequence[str] = (), stop_at_eos: bool = True,
                          prefix_lm: bool | None = None, batch_size: int = 8, progress: bool = False
                          ) -> list[list[Completion]]:
        """`complete`, with the generated token ids of each text."""
        vocab = self._text_vocab()
        encoding = prompt_is_prefix_lm(mode, prefix_lm, self.prefix_lm)
        if isinstance(prompts, str):
            raise ValueError("complete() takes a list of prompts; got one string")
        ids = [encode_prompt(vocab, p, mode) for p in prompts]
        rows = self._generate(ids, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                              top_p=top_p, num_samples=num_samples, seed=seed,
                              stop_ids=self._stop_ids(stop_sequences), stop_at_eos=stop_at_eos,
                              prefix_lm=encoding, batch_size=batch_size, progress=progress)
        return [[Completion(*reversed(self._finish(r, stop_sequences, (), stop_at_eos, True))) for r in per]
                for per in rows]

    # --- scoring and infilling ----------------------------------------------------------------------------
    def score(self, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *,
              prefix_lm: bool | None = None, batch_size: int = 8, progress: bool = False,
              share_prefix: bool = True) -> list[tuple[float, bool]]:
        """[(sum of log p(continuation | context), every continuation token is the argmax)] per pair;
        `prefix_lm` (None = `self.prefix_lm`): the context is the bidirectional prefix
        (flan_ul2r/decoding/scoring.py). An empty continuation scores (0.0, True). With `share_prefix`, a
        common prefix of causal contexts is computed once (decoding/prefix_cache.py)."""
        pairs = scoring.check_pairs(contexts, continuations, self.max_length, self.config.vocab_size)
        if not pairs:
            return []
        prefix_lm = self.prefix_lm if prefix_lm is None else bool(prefix_lm)
        shared = prefix_cache.shared_length([c for c, _ in pairs], self.config, prefix_lm, self.placement) \
            if share_prefix else 0
        if shared:
            return prefix_cache.score_pairs(self.config, self.params, pairs, shared, batch_size=batch_size,
                                            vocab_limit=self._vocab_limit, progress=progress)
        return scoring.score_pairs(self.config, self.params, pairs, batch_size=batch_size,
                                   prefix_lm=prefix_lm, vocab_limit=self._vocab_limit,
                                   placement=self.placement, progress=progress)

    def infill_batch(self, texts: Sequence[str], *, mode: str | None = "nlu", **kwargs: Any
                     ) -> list[list[list[str]]]:
        """[text][sample][blank] -> the span the model wrote for each sentinel of the text, in order
        (flan_ul2r/decoding/infill.py). Mode "nlu"/"nlg" appends `<extra_id_0>` to a text without one.
        `kwargs`: max_new_tokens (default 64), temperature, top_k, top_p, num_samples, seed, batch_size."""
        return [[x.spans for x in per] for per in self.infill_detailed(texts, mode=mode, **kwargs)]

    def infill_detailed(self, texts: Sequence[str], *, mode: str | None = "nlu", max_new_tokens: int = 64,
                        temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, num_samples: int = 1,
                        seed: int = 0, batch_size: int = 8, progress: bool = False) -> list[list[Infilled]]:
        """`infill_batch`, with the generated token ids (sentinels included, cut before EOS)."""
        vocab = self._text_vocab()
        if isinstance(texts, str):
            raise ValueError("infill_batch() takes a list of texts; got one string")
        built = [infill.infill_prompt(vocab, t, mode) for t in texts]
        encoding = prompt_is_prefix_lm(mode, None, self.prefix_lm)
        groups: dict[tuple, list[int]] = {}  # texts that stop at the same sentinel decode together
        for i, (_, _, stop_ids) in enumerate(built):
            groups.setdefault(tuple(map(tuple, stop_ids)), []).append(i)
        out: list[list[Infilled]] = [[] for _ in texts]
        for stop_ids, members in groups.items():
            rows = self._generate([built[i][0] for i in members], max_new_tokens=max_new_tokens,
                                  temperature=temperature, top_k=top_k, top_p=top_p, num_samples=num_samples,
                                  seed=seed, stop_ids=stop_ids, stop_at_eos=True, prefix_lm=encoding,
                                  batch_size=batch_size, progress=progress)
            for i, per in zip(members, rows):
                for r in per:
                    spans = infill.split_spans(r, built[i][1], vocab.sentinel_ids, vocab.eos_id)
                    ids = stops.cut_before_eos(r, vocab.eos_id)
                    out[i].append(Infilled([vocab.decode(s) for s in spans], ids))
        return out

    def infill(self, text: str, *, mode: str | None = "nlu", max_new_tokens: int = 64, **sampling: Any
               ) -> list[str]:
        """The filled spans, in order, for each `<extra_id_N>` in `text` (one sample; `infill_batch` for
        more). `sampling`: temperature, top_k, top_p, seed."""
        if sampling.get("num_samples", 1) != 1:
            raise ValueError("infill returns one sample; use infill_batch(..., num_samples=N) for several")
        return self.infill_batch([text], mode=mode, max_new_tokens=max_new_tokens, **sampling)[0][0]
