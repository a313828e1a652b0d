"""Batched, jitted generation with the KV cache (models/kv_cache.py).

One jitted function per (model config, static settings, mesh): a prefill forward over the left-padded
prompts gives every layer's keys/values (the cache) and the first token's logits; then a
`lax.while_loop` decodes one token per row per iteration (`kv_cache.decode_step`, a one-token forward
over the cache) and stops as soon as every row is done (EOS, a stop sequence, or `max_new_tokens`). No
Python runs per token. On CPU the layer weights are split out of their stacked arrays once, before the
loop (models/kv_cache.py says why); elsewhere each step slices them, holding no second copy.

Why left padding (see also models/kv_cache.py): all rows end their prompt at the same slot, so each step
writes one slot for the whole batch with a `dynamic_update_slice` and reads the next logits from one
position; right padding would need a per-row scatter into the cache and per-row gathers of the last
prompt position. Positions stay the unpadded ones (slot - left padding), so RoPE sees what it would see
for the prompt alone, and padded slots are masked out as keys.

Prompt encoding: `prefix_lm=True` prefills with bidirectional attention over each whole prompt (its real
slots), as UL2R and Flan models were trained (U-PaLM section 2.2; docs/ARCHITECTURE.md section 1: the
bidirectional region is BOS + inputs, and the first target is predicted from the last input position);
generated tokens attend causally. `prefix_lm=False` prefills causally.

LongRoPE (Phi-3): when the sequence first grows past the original length, the cache is rebuilt by a full
forward with the long factors (`kv_cache.recompute_cache`), as transformers' Phi-3 does; otherwise each new
token is rotated with the factors its own length selects.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flan_ul2r.decoding.sampling import next_tokens
from flan_ul2r.decoding.stops import ANY, stop_id_array
from flan_ul2r.models.attention import soft_cap
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.decoder import Decoder
from flan_ul2r.models.kv_cache import KVCache, decode_step, prefill_cache, recompute_cache, split_layers

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where decoding runs: a mesh and logical-axis rules (flan_ul2r/partitioning.py), the same
    as training's; `mesh=None` = the default device, unsharded."""

    mesh: Mesh | None = None
    rules: tuple = ()

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        if self.mesh is None:
            yield
            return
        with self.mesh, nn.logical_axis_rules(self.rules):
            yield

    @property
    def batch_shards(self) -> int:
        """Rows of a batch must be a multiple of this (the batch is split over data x fsdp)."""
        if self.mesh is None:
            return 1
        return int(self.mesh.shape["data"] * self.mesh.shape["fsdp"])

    def put_batch(self, x: np.ndarray) -> Any:
        if self.mesh is None:
            return jnp.asarray(x)
        return jax.device_put(x, NamedSharding(self.mesh, PartitionSpec(("data", "fsdp"))))


ONE_DEVICE = Placement()


@dataclasses.dataclass(frozen=True)
class DecodeSpec:
    """The static settings one compiled generation function is specialized to."""

    max_new_tokens: int
    greedy: bool
    top_k: int
    prefix_lm: bool
    vocab_limit: int  # ids >= this are never produced (embedding rows beyond the tokenizer)
    stop_at_eos: bool
    return_logits: bool = False


class Generated(NamedTuple):
    """tokens [b, n] (0 after a row ended), num_tokens [b] (tokens produced, including the EOS or the stop
    sequence that ended the row), logprobs [b, n] (log p of each token under the model itself: temperature
    1, no top-k/top-p), logits [b, n, vocab] float32 when `return_logits` (else None)."""

    tokens: Array
    num_tokens: Array
    logprobs: Array
    logits: Array | None


class _Loop(NamedTuple):
    step: Array  # index of the token chosen last
    token: Array  # [b]
    done: Array  # [b] bool
    out: Generated
    recent: Array  # [b, W]: the last W tokens of each row, for stop-sequence matching
    cache: KVCache


def _project(hidden: Array, kernel: Array, vocab_limit: int, softcap: float | None = None) -> Array:
    logits = soft_cap(jnp.einsum("be,ev->bv", hidden, kernel, preferred_element_type=jnp.float32), softcap)
    if vocab_limit < logits.shape[-1]:
        logits = jnp.where(jnp.arange(logits.shape[-1]) < vocab_limit, logits, -jnp.inf)
    return logits


def _stopped(recent: Array, stop_ids: Array) -> Array:
    """bool [b]: the row's last tokens equal one of the stop sequences (stops.stop_id_array layout)."""
    same = (recent[:, None, :] == stop_ids[None]) | (stop_ids[None] == ANY)
    return jnp.any(jnp.all(same, axis=-1), axis=-1)


def _record(state: _Loop, logits: Array, token: Array, eos_id: Array, stop_ids: Array, spec: DecodeSpec
            ) -> _Loop:
    active, step, out = ~state.done, state.step, state.out
    logprob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), token[:, None], axis=-1)[:, 0]
    tokens = out.tokens.at[:, step].set(jnp.where(active, token, 0))
    logprobs = out.logprobs.at[:, step].set(jnp.where(active, logprob, 0.0))
    all_logits = out.logits.at[:, step].set(logits) if spec.return_logits else None
    recent = jnp.concatenate([state.recent[:, 1:], token[:, None]], axis=1)
    finished = _stopped(recent, stop_ids)
    if spec.stop_at_eos:
        finished |= token == eos_id
    out = Generated(tokens, out.num_tokens + active.astype(jnp.int32), logprobs, all_logits)
    return state._replace(token=token, done=state.done | (active & finished), out=out, recent=recent)


def _generate(params: Any, tokens: Array, lengths: Array, active: Array, keys: Array, temperature: Array,
              top_p: Array, eos_id: Array, stop_ids: Array, *, cfg: ModelConfig, spec: DecodeSpec
              ) -> Generated:
    model, p, n = Decoder(cfg), tokens.shape[1], spec.max_new_tokens
    start = p - lengths
    segment = (jnp.arange(p)[None, :] >= start[:, None]).astype(jnp.int32)
    positions = jnp.maximum(jnp.arange(p)[None, :] - start[:, None], 0)
    (hidden, kernel), (k, v) = model.apply({"params": params}, tokens, positions, segment,
                                           causal_attention=segment if spec.prefix_lm else None,
                                           return_hidden=True, return_kv=True)
    cache = prefill_cache(k, v, start, p + n, [cfg.layer_window(i) for i in range(cfg.num_layers)])
    logits = _project(hidden[:, -1], kernel, spec.vocab_limit, cfg.final_logit_softcap)
    return continue_decoding(params, cache, logits, active, keys, temperature, top_p, eos_id, stop_ids,
                             cfg=cfg, spec=spec, prompts=(tokens, start))


def continue_decoding(params: Any, cache: KVCache, logits: Array, active: Array, keys: Array,
                      temperature: Array, top_p: Array, eos_id: Array, stop_ids: Array, *, cfg: ModelConfig,
                      spec: DecodeSpec, prompts: tuple[Array, Array] | None = None) -> Generated:
    """The decoding loop after a prefill: `logits` [b, vocab] predict each row's first new token, `cache`
    holds the prompts (any KVCache; decoding/prefix_cache.py passes one with a shared prefix). `prompts`:
    the left-padded prompt tokens and their start slots, which a longrope model's recompute needs."""
    b, n = logits.shape[0], spec.max_new_tokens
    sample = functools.partial(next_tokens, greedy=spec.greedy, temperature=temperature, top_k=spec.top_k,
                               top_p=top_p)
    layers = split_layers(params, cfg.num_layers) if jax.default_backend() == "cpu" else None
    step0 = jnp.zeros((), jnp.int32)
    all_logits = jnp.zeros((b, n, logits.shape[-1]), jnp.float32) if spec.return_logits else None
    empty = Generated(jnp.zeros((b, n), jnp.int32), jnp.zeros((b,), jnp.int32),
                      jnp.zeros((b, n), jnp.float32), all_logits)
    recent = jnp.full((b, stop_ids.shape[1]), -2, jnp.int32)  # no token, no stop entry: never matches
    state = _Loop(step0, jnp.zeros((b,), jnp.int32), ~active, empty, recent, cache)
    state = _record(state, logits, sample(logits, keys, step0), eos_id, stop_ids, spec)

    def cond(s: _Loop) -> Array:
        return (s.step + 1 < n) & ~jnp.all(s.done)

    def step(s: _Loop) -> tuple[Array, Array, KVCache]:
        per_layer = layers if layers is not None else split_layers(params, cfg.num_layers)
        return decode_step(cfg, params, per_layer, s.token[:, None], s.cache)

    def body(s: _Loop) -> _Loop:
        if prompts is not None and cfg.rope_scaling is not None and cfg.rope_scaling[0] == "longrope":
            tokens, start = prompts  # as transformers' Phi-3: recompute every key past the original length
            seen = jnp.concatenate([tokens, s.out.tokens], axis=1)
            prefix = tokens.shape[1] if spec.prefix_lm else None
            h, out_kernel, new_cache = jax.lax.cond(
                s.cache.index == int(cfg.rope_scaling[1]),
                lambda: recompute_cache(cfg, params, seen, s.cache.index + 1, start, prefix), lambda: step(s))
        else:
            h, out_kernel, new_cache = step(s)
        step_logits = _project(h, out_kernel, spec.vocab_limit, cfg.final_logit_softcap)
        s = s._replace(step=s.step + 1, cache=new_cache)
        return _record(s, step_logits, sample(step_logits, keys, s.step), eos_id, stop_ids, spec)

    return jax.lax.while_loop(cond, body, state).out


@functools.lru_cache(maxsize=64)
def _compiled(cfg: ModelConfig, spec: DecodeSpec, placement: Placement):
    # One jit object per placement: logical constraints resolve against the mesh at trace time.
    del placement
    return jax.jit(functools.partial(_generate, cfg=cfg, spec=spec))


def generate_padded(cfg: ModelConfig, params: Any, tokens: np.ndarray, lengths: np.ndarray,
                    active: np.ndarray, keys: np.ndarray, spec: DecodeSpec, *, temperature: float = 1.0,
                    top_p: float = 1.0, eos_id: int = -1, stop_ids: np.ndarray | None = None,
                    placement: Placement = ONE_DEVICE) -> Generated:
    """Generates for a left-padded batch: tokens int32 [b, p] (row r's prompt in its last lengths[r]
    slots), active bool [b] (False: a filler row, done from the start), keys uint32 [b, 2]
    (sampling.row_keys), stop_ids int32 [n, w] (`stops.stop_id_array`). Returns numpy arrays."""
    if stop_ids is None:
        stop_ids = stop_id_array([])
    put = placement.put_batch
    args = (put(np.asarray(tokens, np.int32)), put(np.asarray(lengths, np.int32)),
            put(np.asarray(active, bool)), put(np.asarray(keys, np.uint32)),
            np.float32(temperature if temperature > 0 else 1.0),
            np.float32(top_p), np.int32(eos_id), np.asarray(stop_ids, np.int32))
    with placement.context():
        out = _compiled(cfg, spec, placement)(params, *args)
    return Generated(*(None if x is None else np.asarray(x) for x in out))
