"""The key/value cache of incremental decoding, model side: the cache record, its prefill from
`Decoder(..., return_kv=True)`, and the one-token decode step. The loop that drives them lives in
flan_ul2r/decoding/generate.py.

Layout. Rows are **left-padded**: every row's prompt ends at the same slot, so all rows write their next
token into the same slot `index` (one `dynamic_update_slice`, no per-row scatter). Row b's real tokens
start at slot `start[b]`; its RoPE position at slot s is `s - start[b]` (the unpadded position), and slots
before `start[b]` are never attended to. Each layer's keys and values are their own array
`[batch, kv_heads, length, head_dim]`: the attention of a new token is then a batched matmul over
(batch, kv_heads) without transposing the cache, and writing one layer's slot updates that array in place.

The decode step runs the same `Block` modules as training, one layer at a time on per-layer parameters
(`split_layers`): XLA on CPU copies a layer's weights out of the stacked [layers, ...] arrays on every use,
which would double the weight traffic of every step (memory-bound at small batch); splitting once per
`generate` call copies them once.

A new token, written at slot `index` first, attends to every real slot of its row up to itself
(`start <= s <= index`, within `sliding_window` positions for Mistral-style models): the causal rule of
`decoder.attention_mask`. Prompt tokens attended to each other by the mask they were prefilled with
(bidirectionally in a prefix-LM prompt); a new token is outside the prompt, so it sees them causally, as
the first target token does in training (docs/ARCHITECTURE.md section 1).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.decoder import Block, RMSNorm, embed

Array = jax.Array
# Logical axes of one layer's cache; the rules of flan_ul2r/training/partitioning.py place them (the batch
# like activations, the kv heads like the k/v kernels' `kv_heads` under tensor parallelism).
CACHE_AXES = ("act_batch", "act_kv_heads", None, None)


@flax.struct.dataclass
class KVCache:
    """k, v: one [batch, kv_heads, length, head_dim] array per layer; start: int32 [batch], the first real
    slot of each row; index: int32 scalar, the slot the next token is written to (slots below it are
    written)."""

    k: tuple[Array, ...]
    v: tuple[Array, ...]
    start: Array
    index: Array

    @property
    def length(self) -> int:
        return self.k[0].shape[2]

    def key_mask(self, sliding_window: int | None) -> Array:
        """bool [batch, length]: the slots a new token at `index` attends to (itself included)."""
        slots = jnp.arange(self.length)[None, :]
        mask = (slots >= self.start[:, None]) & (slots <= self.index)
        if sliding_window is not None:
            mask &= self.index - slots < sliding_window
        return mask

    def positions(self) -> Array:
        """int32 [batch, 1]: the unpadded position of slot `index`."""
        return (self.index - self.start)[:, None].astype(jnp.int32)


def _constrain(x: Array) -> Array:
    return nn.with_logical_constraint(x, CACHE_AXES)


def prefill_cache(k: Array, v: Array, start: Array, length: int) -> KVCache:
    """The cache after a prefill: k, v [layers, batch, prompt, kv_heads, head_dim] from
    `Decoder(..., return_kv=True)` over left-padded prompts, room for `length` slots in all."""
    pad = ((0, 0), (0, 0), (0, length - k.shape[2]), (0, 0))
    ks = tuple(_constrain(jnp.pad(k[i].swapaxes(1, 2), pad)) for i in range(k.shape[0]))
    vs = tuple(_constrain(jnp.pad(v[i].swapaxes(1, 2), pad)) for i in range(v.shape[0]))
    return KVCache(k=ks, v=vs, start=jnp.asarray(start, jnp.int32), index=jnp.asarray(k.shape[2], jnp.int32))


def split_layers(params: Any, num_layers: int) -> list[Any]:
    """The stacked `layers` subtree as one parameter tree per layer (copies; see the module docstring)."""
    return [jax.tree.map(lambda a, i=i: a[i], params["layers"]) for i in range(num_layers)]


def decode_step(cfg: ModelConfig, params: Any, layers: list[Any], tokens: Array, cache: KVCache,
                all_positions: bool = False) -> tuple[Array, Array, KVCache]:
    """One token per row [batch, 1] -> (final normed hidden [batch, d_model], output kernel, new cache).
    Several tokens per row [batch, t] (a subclass of KVCache giving [batch, t, length] key masks and
    [batch, t] positions, decoding/prefix_cache.py) -> the last token's hidden, or every token's
    [batch, t, d_model] with `all_positions`."""
    mask, positions = cache.key_mask(cfg.sliding_window), cache.positions()
    x = embed(cfg, params["embedding"], tokens)
    block = Block(cfg, decode=True)
    ks, vs = [], []
    for i, layer in enumerate(layers):
        x, (k, v) = block.apply({"params": layer}, x, positions, mask, (cache.k[i], cache.v[i], cache.index))
        ks.append(_constrain(k))
        vs.append(_constrain(v))
    x = RMSNorm(cfg.norm_eps, cfg.norm_scale_offset, cfg.dtype, cfg.param_dtype).apply(
        {"params": params["final_norm"]}, x)
    kernel = params["embedding"].T if cfg.tie_embeddings else params["lm_head"]["kernel"]
    cache = cache.replace(k=tuple(ks), v=tuple(vs), index=cache.index + tokens.shape[1])
    return (x if all_positions else x[:, -1]), kernel.astype(x.dtype), cache
