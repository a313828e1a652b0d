"""Few-shot prompts of one task share their exemplars (MMLU 5-shot: one 5-exemplar prefix per subject; BBH
3-shot: one per task). The shared prefix's keys and values are computed once; every prompt then runs only
its own suffix behind that cache, batched and sorted by length, for scoring and for generation.

The shared prefix is the longest common prefix of the prompts' token ids (so the tokens behind the cache are
exactly those of the full prompts), kept at least one token short of the shortest prompt. It applies to
causal prompt encoding on one device without a sliding window or longrope (whose generation recomputes
the cache past its original length): a prefix-LM prompt attends bidirectionally
over all of itself, so its exemplars' keys depend on its query and cannot be shared. Elsewhere the plain
path (decoding/scoring.py, decoding/batching.py) runs; `shared_length` says which.

Cache layout, per row: slots [0, Lb) hold the prefix (its `prefix_length` real tokens, then padding up to a
bucketed Lb, never attended to); the row's own tokens follow from slot `start` (left-padded suffixes for
generation: `start` = Lb + width of the suffix block - the suffix length; right-padded rows for scoring:
`start` = Lb), then the new tokens. A token at slot q attends to the real prefix and to its row's slots
[start, q]; its RoPE position is prefix_length + q - start, the position it has in the full prompt.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from flan_ul2r.decoding import batching, scoring
from flan_ul2r.decoding.generate import DecodeSpec, Generated, Placement, _project, continue_decoding
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.decoder import Decoder
from flan_ul2r.models.kv_cache import KVCache, decode_step, prefill_cache, split_layers

Array = jax.Array
MIN_SHARED_TOKENS = 32  # a shorter common prefix is not worth its own pass


@flax.struct.dataclass
class PrefixKVCache(KVCache):
    """KVCache with a shared prefix in slots [0, prefix_length) and `width` tokens written per step (the
    whole suffix block in the first pass, then one); see the module docstring."""

    prefix_length: Array
    width: int = flax.struct.field(pytree_node=False, default=1)

    def key_mask(self, window: int | None, layer: int = 0) -> Array:
        """bool [batch, width, length]: the prefix's real slots and the row's own slots up to each query."""
        if window is not None:
            raise ValueError("a shared prefix cache does not support sliding-window attention")
        slots = jnp.arange(self.length)[None, None, :]
        queries = (self.index + jnp.arange(self.width))[None, :, None]
        own = (slots >= self.start[:, None, None]) & (slots <= queries)
        return own | (slots < self.prefix_length)

    def positions(self) -> Array:
        """int32 [batch, width]: positions in the full prompt (padding slots get 0)."""
        q = self.index + jnp.arange(self.width)[None, :]
        return jnp.maximum(self.prefix_length + q - self.start[:, None], 0).astype(jnp.int32)


def shared_length(seqs: Sequence[Sequence[int]], cfg: ModelConfig, prefix_lm: bool, placement: Placement
                  ) -> int:
    """Tokens of the common prefix to cache once (0: use the plain path; module docstring)."""
    longrope = cfg.rope_scaling is not None and cfg.rope_scaling[0] == "longrope"  # recomputes its cache
    if prefix_lm or cfg.sliding_window is not None or longrope or placement.mesh is not None or len(seqs) < 2:
        return 0
    n = min(len(s) for s in seqs) - 1
    first = np.asarray(seqs[0][:n])
    for s in seqs[1:]:
        same = np.asarray(s[:n]) == first[:n]
        n = n if same.all() else int(np.argmin(same))
        if n < MIN_SHARED_TOKENS:
            return 0
    return n if n >= MIN_SHARED_TOKENS else 0


def prefix_bucket(n: int) -> int:
    """Slots for an n-token prefix: n rounded up to an eighth of its power of two (few compilations, at
    most 1/8 padding)."""
    step = max(8, 1 << max((n - 1).bit_length() - 3, 0))
    return -(-n // step) * step


@functools.lru_cache(maxsize=8)
def _prefix_fn(cfg: ModelConfig):
    def kv(params: Any, tokens: Array) -> tuple[Array, Array]:
        _, (k, v) = Decoder(cfg).apply({"params": params}, tokens, return_hidden=True, return_kv=True)
        return k, v  # [layers, 1, Lb, kv_heads, head_dim]
    return jax.jit(kv)


def prefix_kv(cfg: ModelConfig, params: Any, prefix: Sequence[int]) -> tuple[Array, Array, int]:
    """The prefix's keys and values (causal; the padding up to the bucket comes after the real tokens, so
    they never see it) and its real length."""
    tokens = np.zeros((1, prefix_bucket(len(prefix))), np.int32)
    tokens[0, :len(prefix)] = prefix
    k, v = _prefix_fn(cfg)(params, tokens)
    return k, v, len(prefix)


def _cache(k: Array, v: Array, prefix_length: Array, start: Array, width: int, length: int) -> PrefixKVCache:
    rows = start.shape[0]
    k, v = (jnp.broadcast_to(x, (x.shape[0], rows) + x.shape[2:]) for x in (k, v))
    plain = prefill_cache(k, v, start, length)
    return PrefixKVCache(k=plain.k, v=plain.v, start=start, index=plain.index,
                         prefix_length=jnp.asarray(prefix_length, jnp.int32), width=width)


def _score(params: Any, k: Array, v: Array, prefix_length: Array, tokens: Array, segment: Array,
           prefix: Array, at: Array, targets: Array, weights: Array, *, cfg: ModelConfig, vocab_limit: int):
    """Scoring rows (suffix + continuation[:-1], right-padded: scoring._batch_arrays) behind the prefix."""
    del segment, prefix  # right-padded rows start at slot Lb; the mask needs nothing more
    rows, width = tokens.shape
    start = jnp.full((rows,), k.shape[2], jnp.int32)
    cache = _cache(k, v, prefix_length, start, width, k.shape[2] + width)
    layers = split_layers(params, cfg.num_layers)
    hidden, kernel, _ = decode_step(cfg, params, layers, tokens, cache, all_positions=True)
    return scoring.continuation_logprobs(hidden, kernel, at, targets, weights, vocab_limit,
                                         cfg.final_logit_softcap)


def _generate(params: Any, k: Array, v: Array, prefix_length: Array, tokens: Array, lengths: Array,
              active: Array, keys: Array, temperature: Array, top_p: Array, eos_id: Array, stop_ids: Array, *,
              cfg: ModelConfig, spec: DecodeSpec) -> Generated:
    """Left-padded suffixes behind the prefix: one pass over the suffix block, then the decoding loop."""
    width = tokens.shape[1]
    start = k.shape[2] + width - lengths
    cache = _cache(k, v, prefix_length, start, width, k.shape[2] + width + spec.max_new_tokens)
    hidden, kernel, cache = decode_step(cfg, params, split_layers(params, cfg.num_layers), tokens, cache)
    logits = _project(hidden, kernel, spec.vocab_limit)
    return continue_decoding(params, cache.replace(width=1), logits, active, keys, temperature, top_p, eos_id,
                             stop_ids, cfg=cfg, spec=spec)


@functools.lru_cache(maxsize=16)
def _compiled_score(cfg: ModelConfig, vocab_limit: int):
    return jax.jit(functools.partial(_score, cfg=cfg, vocab_limit=vocab_limit))


@functools.lru_cache(maxsize=64)
def _compiled_generate(cfg: ModelConfig, spec: DecodeSpec):
    return jax.jit(functools.partial(_generate, cfg=cfg, spec=spec))


def score_pairs(cfg: ModelConfig, params: Any, pairs: list[tuple[list[int], list[int]]], shared: int, *,
                vocab_limit: int, batch_size: int = 8, progress: bool = False) -> list[tuple[float, bool]]:
    """`scoring.score_pairs` for pairs whose contexts share their first `shared` tokens (`shared_length`)."""
    k, v, n = prefix_kv(cfg, params, pairs[0][0][:shared])
    fn = functools.partial(_compiled_score(cfg, int(vocab_limit)), params, k, v, np.int32(n))
    suffixes = [(ctx[shared:], cont) for ctx, cont in pairs]
    return scoring.score_pairs(cfg, params, suffixes, prefix_lm=False, vocab_limit=vocab_limit,
                               batch_size=batch_size, progress=progress, forward=fn)


def generate_rows(cfg: ModelConfig, params: Any, prompts: list[list[int]], shared: int, spec: DecodeSpec,
                  sampling: batching.SamplingSettings, *, eos_id: int, stop_ids: np.ndarray,
                  batch_size: int = 8, progress: bool = False) -> list[list[list[int]]]:
    """`batching.generate_rows` for prompts sharing their first `shared` tokens (`shared_length`)."""
    k, v, n = prefix_kv(cfg, params, prompts[0][:shared])
    temperature = np.float32(sampling.temperature if sampling.temperature > 0 else 1.0)
    fn = _compiled_generate(cfg, spec)

    def forward(tokens: np.ndarray, lengths: np.ndarray, active: np.ndarray, keys: np.ndarray) -> Generated:
        out = fn(params, k, v, np.int32(n), tokens, lengths, active, np.asarray(keys, np.uint32), temperature,
                 np.float32(sampling.top_p), np.int32(eos_id), np.asarray(stop_ids, np.int32))
        return Generated(*(None if x is None else np.asarray(x) for x in out))

    suffixes = [p[shared:] for p in prompts]
    return batching.generate_rows(cfg, params, suffixes, spec, sampling, eos_id=eos_id, stop_ids=stop_ids,
                                  batch_size=batch_size, progress=progress, forward=forward)
