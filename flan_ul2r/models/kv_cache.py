"""The key/value cache of incremental decoding, model side: the cache record, its mask, and the attention
of one new token over it. `Decoder(cfg).apply(..., cache=cache)` uses these; the decoding loop that drives
them lives in flan_ul2r/decoding/.

Layout. Rows are **left-padded**: every row's prompt ends at the same slot, so all rows write their next
token into the same slot `index` (one `dynamic_update_slice`, no per-row scatter) and the first new
token's logits are one slice at the last prompt slot. Row b's real tokens start at slot `start[b]`; its
RoPE position at slot s is `s - start[b]` (the unpadded position), and slots before `start[b]` are never
attended to. Keys and values are stored `[layers, batch, kv_heads, length, head_dim]`, so the attention of
a new token is a batched matmul over (batch, kv_heads) with no transpose of the cache.

Attention a new token at slot `index` gets: every written real slot of its row (`start <= s < index`,
within `sliding_window` positions for Mistral-style models) plus itself - exactly the causal rule of
`decoder.attention_mask`. Prompt (prefill) tokens are attended to by the mask they were prefilled with:
bidirectionally inside a prefix-LM prompt; a new token is outside the prompt, so it sees them causally,
as the first target token does in training (docs/ARCHITECTURE.md section 1).
"""
from __future__ import annotations

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from flan_ul2r.models.config import ModelConfig

Array = jax.Array
# Logical axes of the stacked cache; the rules of flan_ul2r/training/partitioning.py place them (the batch
# like activations, the kv heads like the k/v kernels' `kv_heads` under tensor parallelism).
CACHE_AXES = ("layers", "act_batch", "act_kv_heads", "act_length", None)
_MASKED = -1e30  # finite: exp(_MASKED - m) is 0 for any real maximum m, and never NaN


@flax.struct.dataclass
class KVCache:
    """Keys and values of every layer for a left-padded batch.

    k, v: [layers, batch, kv_heads, length, head_dim]; start: int32 [batch], the first real slot of each
    row; index: int32 scalar, the slot the next token is written to (slots below it are written).
    """

    k: Array
    v: Array
    start: Array
    index: Array

    @property
    def length(self) -> int:
        return self.k.shape[3]

    def key_mask(self, sliding_window: int | None) -> Array:
        """bool [batch, length]: the slots a new token at `index` attends to besides itself."""
        slots = jnp.arange(self.length)[None, :]
        mask = (slots >= self.start[:, None]) & (slots < self.index)
        if sliding_window is not None:
            mask &= self.index - slots < sliding_window
        return mask

    def positions(self, num_tokens: int) -> Array:
        """int32 [batch, num_tokens]: unpadded positions of the next `num_tokens` slots."""
        slots = self.index + jnp.arange(num_tokens)[None, :]
        return jnp.maximum(slots - self.start[:, None], 0).astype(jnp.int32)

    def write(self, k: Array, v: Array) -> KVCache:
        """Stores stacked new keys/values [layers, batch, tokens, kv_heads, head_dim] at `index`."""
        at = (0, 0, 0, self.index, 0)
        k_new = jax.lax.dynamic_update_slice(self.k, k.swapaxes(2, 3).astype(self.k.dtype), at)
        v_new = jax.lax.dynamic_update_slice(self.v, v.swapaxes(2, 3).astype(self.v.dtype), at)
        k_new = nn.with_logical_constraint(k_new, CACHE_AXES)
        v_new = nn.with_logical_constraint(v_new, CACHE_AXES)
        return self.replace(k=k_new, v=v_new, index=self.index + k.shape[2])


def init_cache(cfg: ModelConfig, batch: int, length: int, start: Array) -> KVCache:
    """An empty cache of `length` slots; `start` [batch] = left-padding of each row."""
    shape = (cfg.num_layers, batch, cfg.num_kv_heads, length, cfg.head_dim)
    zeros = nn.with_logical_constraint(jnp.zeros(shape, jnp.dtype(cfg.dtype)), CACHE_AXES)
    return KVCache(k=zeros, v=zeros, start=jnp.asarray(start, jnp.int32), index=jnp.zeros((), jnp.int32))


def attend_to_cache(q: Array, k: Array, v: Array, k_cache: Array, v_cache: Array, key_mask: Array) -> Array:
    """Attention of one new token per row over its cache slots and itself.

    q [b, 1, heads, d] (rotated), k/v [b, 1, kv_heads, d] (the token's own), k_cache/v_cache
    [b, kv_heads, length, d] (one layer), key_mask bool [b, length]. Returns [b, 1, heads, d]. Query head i
    reads kv head i // (heads / kv_heads), as in `attention.blocked_attention` and HF's `repeat_kv`.
    """
    b, _, h, d = q.shape
    kv = k.shape[2]
    qg = (q[:, 0] * jnp.asarray(d ** -0.5, q.dtype)).reshape(b, kv, h // kv, d)
    s_cache = jnp.einsum("bkgd,bksd->bkgs", qg, k_cache, preferred_element_type=jnp.float32)
    s_cache = jnp.where(key_mask[:, None, None, :], s_cache, _MASKED)
    s_self = jnp.einsum("bkgd,bkd->bkg", qg, k[:, 0], preferred_element_type=jnp.float32)
    m = jnp.maximum(s_cache.max(-1), s_self)
    p_cache, p_self = jnp.exp(s_cache - m[..., None]), jnp.exp(s_self - m)
    denom = p_cache.sum(-1) + p_self
    out = jnp.einsum("bkgs,bksd->bkgd", p_cache.astype(v_cache.dtype), v_cache,
                     preferred_element_type=jnp.float32)
    out = (out + p_self[..., None] * v[:, 0, :, None, :].astype(jnp.float32)) / denom[..., None]
    return out.reshape(b, 1, h, d).astype(q.dtype)
