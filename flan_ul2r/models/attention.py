"""Dot-product attention with an arbitrary boolean mask, two implementations:

- `xla`: `jax.nn.dot_product_attention`, which picks cuDNN flash attention on GPU and XLA's fused
  attention on TPU. The default everywhere except CPU.
- `blocked`: flash attention (Dao et al. 2022, "FlashAttention", Algorithm 1 forward / Algorithm 2
  backward) written with `lax` loops for CPU. Queries and keys are cut into blocks of `BLOCK` positions;
  the softmax runs online over key blocks, so scores never leave the cache as a [length, length] array.
  Each query block visits only the key blocks from the first to the last one its mask rows can see, so
  the upper triangle of a causal mask, padding-only blocks and (mostly) other examples of a packed row are
  never computed. The backward pass recomputes scores from the saved log-sum-exp instead of storing
  probabilities. At length 512 this is ~2x faster than the dense XLA attention on CPU and on par with
  torch's SDPA (benchmarks/attention.py).

Both take q [b, l, h, d], k and v [b, l, kv, d] (GQA/MQA: h a multiple of kv) and mask bool [b, 1, l, l]
(True = may attend), and return [b, l, h, d]. A query row whose mask is all False gets zeros.
`attend_to_cache` is the decode step's attention: one new token over the KV cache (models/kv_cache.py).

Optional, static arguments (the same meaning in every implementation):
- `scale`: multiplier of q.k (default head_dim^-1/2; Gemma 2/3 use query_pre_attn_scalar^-1/2);
- `window`: local attention - a query attends only to keys less than `window` slots away (both ways inside
  a bidirectional prefix), on top of `mask` (`window_band`); a kernel with native local attention can take
  it instead of the band;
- `logit_softcap`: scores become cap * tanh(scores / cap) before masking and softmax (Gemma 2: 50.0).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Array = jax.Array
BLOCK = 256  # positions per block: measured fastest on CPU at 512..2048 (benchmarks/attention.py)
_MASKED = -1e30  # finite: exp(_MASKED - m) is 0 for any real maximum m, and never NaN


def window_band(length: int, window: int) -> Array:
    """bool [1, 1, length, length]: slots i, j with |i - j| < window (HF's sliding-window rule, both ways)."""
    idx = jnp.arange(length)
    return (jnp.abs(idx[:, None] - idx[None, :]) < window)[None, None]


def dot_product_attention(q: Array, k: Array, v: Array, mask: Array, implementation: str = "auto", *,
                          scale: float | None = None, window: int | None = None,
                          logit_softcap: float | None = None) -> Array:
    """Attention of q over k/v where `mask` allows; `implementation` is "auto", "xla" or "blocked"."""
    if implementation == "auto":
        implementation = "blocked" if jax.default_backend() == "cpu" else "xla"
    if window is not None:
        mask = mask & window_band(q.shape[1], window)
    if implementation == "xla":
        if logit_softcap is None:
            return jax.nn.dot_product_attention(q, k, v, mask=mask, scale=scale)
        return _dense_attention(q, k, v, mask, scale, logit_softcap)
    if implementation != "blocked":
        raise ValueError(f"attention implementation {implementation!r}: use 'auto', 'xla' or 'blocked'")
    return blocked_attention(q, k, v, mask, scale=scale, logit_softcap=logit_softcap)


def soft_cap(x: Array, cap: float | None) -> Array:
    """cap * tanh(x / cap) (Gemma 2's logit soft-capping, Gemma Team 2024 section 2); x when cap is None."""
    return x if cap is None else cap * jnp.tanh(x / cap)


def _dense_attention(q: Array, k: Array, v: Array, mask: Array, scale: float | None, cap: float | None
                     ) -> Array:
    """Plain XLA attention with [b, h, l, l] float32 scores (the `xla` path when scores are soft-capped)."""
    b, length, h, d = q.shape
    kv = k.shape[2]
    qg = q.reshape(b, length, kv, h // kv, d) * jnp.asarray(scale or d ** -0.5, q.dtype)
    s = soft_cap(jnp.einsum("bqkgd,bskd->bkgqs", qg, k, preferred_element_type=jnp.float32), cap)
    s = jnp.where(mask[:, :, None], s, _MASKED)
    p = jnp.exp(s - s.max(-1, keepdims=True))
    p = jnp.where(mask[:, :, None], p, 0.0)
    denom = jnp.maximum(p.sum(-1, keepdims=True), jnp.finfo(jnp.float32).tiny)
    out = jnp.einsum("bkgqs,bskd->bqkgd", (p / denom).astype(v.dtype), v, preferred_element_type=jnp.float32)
    return out.reshape(b, length, h, d).astype(q.dtype)


def blocked_attention(q: Array, k: Array, v: Array, mask: Array, block: int = BLOCK, *,
                      scale: float | None = None, logit_softcap: float | None = None) -> Array:
    """Flash attention on CPU; pads the length to a multiple of `block` (padded keys are masked)."""
    b, length, h, d = q.shape
    kv = k.shape[2]
    block = min(block, length)
    pad = -length % block
    if pad:
        widths = ((0, 0), (0, pad), (0, 0), (0, 0))
        q, k, v = jnp.pad(q, widths), jnp.pad(k, widths), jnp.pad(v, widths)
        mask = jnp.pad(mask, ((0, 0), (0, 0), (0, pad), (0, pad)))
    n = (length + pad) // block
    # Block-major layouts: q [b, n, kv, g, B, d], k/v [b, n, kv, B, d], mask [b, n, n, B, B].
    qb = q.reshape(b, n, block, kv, h // kv, d).transpose(0, 1, 3, 4, 2, 5)
    kb = k.reshape(b, n, block, kv, d).transpose(0, 1, 3, 2, 4)
    vb = v.reshape(b, n, block, kv, d).transpose(0, 1, 3, 2, 4)
    mb = mask[:, 0].reshape(b, n, block, n, block).transpose(0, 1, 3, 2, 4)
    out = _flash(qb, kb, vb, mb, float(scale or d ** -0.5), logit_softcap)
    out = out.transpose(0, 1, 4, 2, 3, 5).reshape(b, n * block, h, d)
    return out[:, :length].astype(q.dtype)


def _live_range(live: Array) -> tuple[Array, Array]:
    """First and one-past-last True along the last axis (0, 0 where none)."""
    n = live.shape[-1]
    idx = jnp.arange(n)
    lo = jnp.min(jnp.where(live, idx, n), axis=-1)
    hi = jnp.max(jnp.where(live, idx + 1, 0), axis=-1)
    return jnp.minimum(lo, hi), hi


def _scores(qi: Array, kj: Array, mij: Array, cap: float | None) -> tuple[Array, Array | None]:
    """[kv, g, Bq, Bk] float32 scores of pre-scaled queries (soft-capped when `cap`), masked entries set to
    _MASKED; and d(capped)/d(raw) = 1 - tanh^2 for the backward pass (None without a cap)."""
    s = jnp.einsum("kgqd,ksd->kgqs", qi, kj, preferred_element_type=jnp.float32)
    slope = None
    if cap is not None:
        t = jnp.tanh(s / cap)
        s, slope = cap * t, 1.0 - t * t
    return jnp.where(mij[None, None], s, _MASKED), slope


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _flash(qb: Array, kb: Array, vb: Array, mb: Array, scale: float, cap: float | None) -> Array:
    return _flash_fwd(qb, kb, vb, mb, scale, cap)[0]


def _flash_fwd(qb, kb, vb, mb, scale, cap):
    b, n, kv, g, bq, d = qb.shape
    qs = qb * jnp.asarray(scale, qb.dtype)  # softmax scale folded into the queries once
    lo, hi = _live_range(jnp.any(mb, axis=(3, 4)))  # [b, n(q)]: the key blocks each query block visits

    def row(r):  # one query block of one batch row: online softmax over its live key blocks
        bi, i = r // n, r % n
        qi = qs[bi, i]

        def step(j, carry):
            # Masked scores are _MASKED, so exp() gives them 0 once the row has a real maximum; what a row
            # accumulated before (all-masked blocks, m = _MASKED) is wiped by corr = exp(_MASKED - m) = 0.
            m, denom, acc = carry
            s, _ = _scores(qi, kb[bi, j], mb[bi, i, j], cap)
            m_new = jnp.maximum(m, s.max(-1))
            p = jnp.exp(s - m_new[..., None])
            corr = jnp.exp(m - m_new)
            acc = acc * corr[..., None] + jnp.einsum("kgqs,ksd->kgqd", p.astype(vb.dtype), vb[bi, j],
                                                     preferred_element_type=jnp.float32)
            return m_new, denom * corr + p.sum(-1), acc

        init = (jnp.full((kv, g, bq), _MASKED, jnp.float32), jnp.zeros((kv, g, bq), jnp.float32),
                jnp.zeros((kv, g, bq, d), jnp.float32))
        m, denom, acc = jax.lax.fori_loop(lo[bi, i], hi[bi, i], step, init)
        seen = m > _MASKED / 2  # the row saw at least one key it may attend to
        safe = jnp.where(seen, denom, 1.0)
        out = jnp.where(seen[..., None], acc / safe[..., None], 0.0)
        return out.astype(qb.dtype), jnp.where(seen, m + jnp.log(safe), 0.0)

    out, lse = jax.lax.map(row, jnp.arange(b * n))
    out = out.reshape(qb.shape)
    lse = lse.reshape(b, n, kv, g, bq)
    return out, (qs, kb, vb, mb, out, lse)


def _flash_bwd(scale, cap, res, dout):
    qs, kb, vb, mb, out, lse = res
    b, n, kv, g, bq, d = qs.shape
    delta = jnp.sum(dout.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)  # [b, n, kv, g, B]
    lo, hi = _live_range(jnp.any(mb, axis=(3, 4)).transpose(0, 2, 1))  # [b, n(k)]: query blocks per key block

    def col(dq, r):  # one key block of one batch row: its dk, dv over live query blocks; adds into dq
        bi, j = r // n, r % n
        kj, vj = kb[bi, j], vb[bi, j]

        def step(i, carry):
            dq, dk, dv = carry
            qi, doi = qs[bi, i], dout[bi, i]
            s, slope = _scores(qi, kj, mb[bi, i, j], cap)
            p = jnp.exp(s - lse[bi, i][..., None])  # masked: exp(-1e30) = 0
            dv = dv + jnp.einsum("kgqs,kgqd->ksd", p, doi, preferred_element_type=jnp.float32)
            dp = jnp.einsum("kgqd,ksd->kgqs", doi, vj, preferred_element_type=jnp.float32)
            ds = p * (dp - delta[bi, i][..., None])
            ds = ds if slope is None else ds * slope
            dk = dk + jnp.einsum("kgqs,kgqd->ksd", ds, qi, preferred_element_type=jnp.float32)
            dqi = dq[bi, i] + jnp.einsum("kgqs,ksd->kgqd", ds, kj, preferred_element_type=jnp.float32)
            return dq.at[bi, i].set(dqi), dk, dv

        zeros = jnp.zeros((kv, bq, d), jnp.float32)
        dq, dk, dv = jax.lax.fori_loop(lo[bi, j], hi[bi, j], step, (dq, zeros, zeros))
        return dq, (dk, dv)

    dq, (dk, dv) = jax.lax.scan(col, jnp.zeros(qs.shape, jnp.float32), jnp.arange(b * n))
    dk = dk.reshape(kb.shape).astype(kb.dtype)
    dv = dv.reshape(vb.shape).astype(vb.dtype)
    return (dq * scale).astype(qs.dtype), dk, dv, None


_flash.defvjp(_flash_fwd, _flash_bwd)



def attend_to_cache(q: Array, k: Array, v: Array, k_cache: Array, v_cache: Array, index: Array,
                    key_mask: Array, *, scale: float | None = None, logit_softcap: float | None = None
                    ) -> tuple[Array, Array, Array]:
    """The decode step's attention (models/kv_cache.py): writes the new tokens' k/v into their layer's cache
    at slots `index`, `index + 1`, ..., then attends over the cache. Returns (out [b, t, heads, d], k_cache,
    v_cache). One new token per row when decoding; t > 1 when a batch of prompt suffixes runs behind a
    shared prefix (flan_ul2r/decoding/prefix_cache.py).

    q [b, t, heads, d] (rotated), k/v [b, t, kv_heads, d], k_cache/v_cache [b, kv_heads, length, d],
    key_mask bool [b, length] (t = 1) or [b, t, length]: the slots each token may see, its own included (a
    windowed layer's ring cache and its mask come from models/kv_cache.py; t > 1 never meets a ring, since
    prefix sharing is off for windowed models). `scale` replaces d**-0.5 (Gemma's query_pre_attn_scalar),
    `logit_softcap` caps the scores (Gemma 2).
    Writing first, then reading lets XLA update the cache in place (reading the old cache and writing the
    new one forces a copy). Query head i reads kv head i // (heads / kv_heads), as in `blocked_attention`
    and HF's `repeat_kv`; the cache layout makes both matmuls batched over (batch, kv_heads).
    """
    b, t, h, d = q.shape
    kv = k.shape[2]
    at = (0, 0, index, 0)
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.swapaxes(1, 2).astype(k_cache.dtype), at)
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.swapaxes(1, 2).astype(v_cache.dtype), at)
    g = h // kv
    # (group, token) as one query axis: 3-d batched matmuls, which XLA's CPU backend also runs in bfloat16
    qg = (q * jnp.asarray(scale or d ** -0.5, q.dtype)).reshape(b, t, kv, g, d).transpose(0, 2, 3, 1, 4)
    qg = qg.reshape(b, kv, g * t, d)
    s = jnp.einsum("bkqd,bksd->bkqs", qg, k_cache, preferred_element_type=jnp.float32)
    s = soft_cap(s, logit_softcap)
    mask = key_mask[:, None, None, None, :] if key_mask.ndim == 2 else key_mask[:, None, None, :, :]
    s = jnp.where(mask, s.reshape(b, kv, g, t, -1), _MASKED)
    p = jnp.exp(s - s.max(-1, keepdims=True))
    out = jnp.einsum("bkqs,bksd->bkqd", p.reshape(b, kv, g * t, -1).astype(v_cache.dtype), v_cache,
                     preferred_element_type=jnp.float32)
    out = out.reshape(b, kv, g, t, d) / p.sum(-1)[..., None]
    return out.transpose(0, 3, 1, 2, 4).reshape(b, t, h, d).astype(q.dtype), k_cache, v_cache
