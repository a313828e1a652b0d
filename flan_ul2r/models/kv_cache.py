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
(`start <= s <= index`): the causal rule of `decoder.attention_mask`. Prompt tokens attended to each other
by the mask they were prefilled with (bidirectionally in a prefix-LM prompt); a new token is outside the
prompt, so it sees them causally, as the first target token does in training (docs/ARCHITECTURE.md
section 1).

Windowed layers (`ModelConfig.layer_window`: Mistral and Phi-3 everywhere, Gemma 2/3 on their local layers)
keep only what they can attend to: a ring of R = min(window, total length) slots, slot s stored at s % R.
A key at slot s is then visible from `index` exactly when `index - s < window` (R <= window keeps no older
key, and R = total length never overwrites). Slot j of the ring holds slot `index - ((index - j) % R)`; the
mask also drops slots before the row's `start`. Gemma 3 4B (5 of 6 layers local, window 1024) generating 32k
tokens then holds (1 + 5 x 1024 / 32768) / 6 = 0.19 of a full cache.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.decoder import Block, Decoder, RMSNorm, embed
from flan_ul2r.models.rope import layer_inputs

Array = jax.Array
# Logical axes of one layer's cache; the rules of flan_ul2r/partitioning.py place them (the batch
# like activations, the kv heads like the k/v kernels' `kv_heads` under tensor parallelism).
CACHE_AXES = ("act_batch", "act_kv_heads", None, None)


@flax.struct.dataclass
class KVCache:
    """k, v: one [batch, kv_heads, slots, head_dim] array per layer (slots: the total length, or a windowed
    layer's ring); start: int32 [batch], the first real slot of each row; index: int32 scalar, the slot the
    next token is written to (slots below it are written)."""

    k: tuple[Array, ...]
    v: tuple[Array, ...]
    start: Array
    index: Array

    @property
    def length(self) -> int:
        """Slots of the full-length layers (a windowed layer may hold fewer: `ring`)."""
        return max(k.shape[2] for k in self.k)

    def ring(self, window: int | None, layer: int = 0) -> int | None:
        """The ring size of a windowed layer's cache (None: a plain cache of every slot)."""
        return None if window is None else self.k[layer].shape[2]

    def key_mask(self, window: int | None, layer: int = 0) -> Array:
        """bool [batch, the layer's slots]: the slots a new token at `index` attends to (itself included);
        `window`: the layer's `ModelConfig.layer_window`."""
        ring = self.ring(window, layer)
        slots = jnp.arange(self.k[layer].shape[2])[None, :]
        if ring is None:
            return (slots >= self.start[:, None]) & (slots <= self.index)
        held = self.index - (self.index - slots) % ring  # the slot whose key ring position j holds
        return held >= self.start[:, None]

    def write_slot(self, window: int | None, layer: int = 0) -> Array:
        ring = self.ring(window, layer)
        return self.index if ring is None else self.index % ring

    def positions(self) -> Array:
        """int32 [batch, 1]: the unpadded position of slot `index`."""
        return (self.index - self.start)[:, None].astype(jnp.int32)


def _constrain(x: Array) -> Array:
    return nn.with_logical_constraint(x, CACHE_AXES)


def _layer_prefill(x: Array, length: int, window: int | None, written: Array | int | None = None) -> Array:
    """One layer's keys (or values) [batch, slots, kv_heads, head_dim] of which the first `written` slots are
    filled (default: all) as its cache [batch, kv_heads, ...]: every slot padded to `length`, or the ring of
    a windowed layer."""
    x = x.swapaxes(1, 2)
    slots = x.shape[2]
    if window is None or min(window, length) == length:
        return _constrain(jnp.pad(x, ((0, 0), (0, 0), (0, length - slots), (0, 0))))
    ring = min(window, length)
    last = (slots if written is None else written) - 1
    held = last - (last - jnp.arange(ring)) % ring  # the slot each ring position holds
    taken = jnp.take(x, jnp.maximum(held, 0), axis=2)
    return _constrain(jnp.where((held >= 0)[None, None, :, None], taken, jnp.zeros_like(taken)))


def prefill_cache(k: Array, v: Array, start: Array, length: int,
                  windows: Sequence[int | None] | None = None, written: Array | None = None) -> KVCache:
    """The cache after a prefill: k, v [layers, batch, slots, kv_heads, head_dim] from
    `Decoder(..., return_kv=True)` over left-padded prompts, room for `length` slots in all; `windows`: each
    layer's `ModelConfig.layer_window` (a windowed layer keeps a ring of min(window, length) slots);
    `written`: how many slots hold tokens (default: all of k's)."""
    windows = list(windows) if windows is not None else [None] * k.shape[0]
    ks = tuple(_layer_prefill(k[i], length, windows[i], written) for i in range(k.shape[0]))
    vs = tuple(_layer_prefill(v[i], length, windows[i], written) for i in range(v.shape[0]))
    index = jnp.asarray(k.shape[2] if written is None else written, jnp.int32)
    return KVCache(k=ks, v=vs, start=jnp.asarray(start, jnp.int32), index=index)


def recompute_cache(cfg: ModelConfig, params: Any, tokens: Array, written: Array, start: Array,
                    prefix_slots: int | None) -> tuple[Array, Array, KVCache]:
    """A fresh prefill over the first `written` slots of tokens [batch, length] (rows start at `start`; the
    first `prefix_slots` slots bidirectional when given): (last hidden [batch, d_model], output kernel,
    cache). What transformers' Phi-3 does when generation crosses longrope's original length: every key is
    recomputed with the long factors (Phi3ForCausalLM.prepare_inputs_for_generation drops the cache)."""
    length = tokens.shape[1]
    slots = jnp.arange(length)[None, :]
    segment = ((slots >= start[:, None]) & (slots < written)).astype(jnp.int32)
    positions = jnp.where(segment > 0, slots - start[:, None], 0)
    prefix = None if prefix_slots is None else segment * (slots < prefix_slots)
    (hidden, kernel), (k, v) = Decoder(cfg).apply({"params": params}, tokens, positions, segment,
                                                  causal_attention=prefix, return_hidden=True, return_kv=True)
    cache = prefill_cache(k, v, start, length, [cfg.layer_window(i) for i in range(cfg.num_layers)], written)
    return jnp.take(hidden, written - 1, axis=1), kernel, cache


def split_layers(params: Any, num_layers: int) -> list[Any]:
    """The stacked `layers` subtree as one parameter tree per layer (copies; see the module docstring)."""
    return [jax.tree.map(lambda a, i=i: a[i], params["layers"]) for i in range(num_layers)]


def decode_step(cfg: ModelConfig, params: Any, layers: list[Any], tokens: Array, cache: KVCache,
                all_positions: bool = False) -> tuple[Array, Array, KVCache]:
    """One token per row [batch, 1] -> (final normed hidden [batch, d_model], output kernel, new cache).
    Several tokens per row [batch, t] (a subclass of KVCache giving [batch, t, length] key masks and
    [batch, t] positions, decoding/prefix_cache.py) -> the last token's hidden, or every token's
    [batch, t, d_model] with `all_positions`. The output kernel's logits still need `final_logit_softcap`
    (decoding/generate.py applies it)."""
    positions = cache.positions()
    inputs = layer_inputs(cfg, positions)
    x = embed(cfg, params["embedding"], tokens)
    block = Block(cfg, decode=True)
    ks, vs = [], []
    for i, layer in enumerate(layers):
        window = cfg.layer_window(i)
        per_layer = jax.tree.map(lambda a, i=i: a[i], inputs)
        layer_cache = (cache.k[i], cache.v[i], cache.write_slot(window, i))
        x, (k, v) = block.apply({"params": layer}, x, positions, cache.key_mask(window, i), per_layer,
                                layer_cache)
        ks.append(_constrain(k))
        vs.append(_constrain(v))
    x = RMSNorm(cfg.norm_eps, cfg.norm_scale_offset, cfg.dtype, cfg.param_dtype).apply(
        {"params": params["final_norm"]}, x)
    kernel = params["embedding"].T if cfg.tie_embeddings else params["lm_head"]["kernel"]
    cache = cache.replace(k=tuple(ks), v=tuple(vs), index=cache.index + tokens.shape[1])
    return (x if all_positions else x[:, -1]), kernel.astype(x.dtype), cache
