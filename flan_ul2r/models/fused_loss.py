"""The output projection and the cross-entropy + z-loss in one pass over chunks of positions.

The [batch, length, vocab] logits are never materialized: for each chunk of positions the logits, the
loss terms and their gradient are computed and only the gradients w.r.t. the hidden states and the output
kernel are kept. Because the loss is the last op of the model, its gradient is known in the forward pass
(as in Levanter's blockwise cross-entropy and Liger's fused linear cross-entropy), so the backward pass
only scales the saved gradients: no logits recomputation, and 3 matmuls per chunk as with autodiff.

Memory: B x C x V floats per chunk instead of B x L x V (2 GiB less for 4k tokens of a 128k vocabulary in
float32). Speed on CPU: the weight gradient needs the chunk's logit gradient transposed, and a cache-sized
chunk transposes far faster than the whole [tokens, vocab] array (benchmarks/train_step.py).

Loss terms per token t with weight w_t (PaLM's z-loss, Chowdhery et al. 2022 section 5):
    ce_t = logsumexp(logits_t) - logits_t[y_t],   z_t = z_loss * logsumexp(logits_t)^2
and d(w_t (ce_t + z_t)) / d logits_t = w_t ((1 + 2 z_loss lse_t) softmax(logits_t) - onehot(y_t)).
With a final logit soft-cap c (Gemma 2), logits_t = c tanh(raw_t / c) and the gradient w.r.t. the raw
logits is the one above times 1 - tanh^2(raw_t / c).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from flan_ul2r.models.attention import soft_cap
from flan_ul2r.models.losses import token_losses

Array = jax.Array
CHUNK_TOKENS = 512  # batch x positions per chunk: a 512 x 8192 float32 logit chunk is 16 MiB (fits L3)
_LOGITS_AXES = ("act_batch", "act_length", "act_vocab")
_HIDDEN_AXES = ("act_batch", "act_length", "act_embed")


def _chunk_terms(x_c: Array, kernel: Array, y_c: Array, w_c: Array, z_loss: float, with_grad: bool,
                 softcap: float | None = None):
    """Loss sums of one chunk [b, c, e]; with the gradient w.r.t. the raw logits [b, c, v] when `with_grad`.
    The logits are pinned batch-sharded (no-op without logical-axis rules), as in models/decoder.py."""
    raw = jnp.einsum("bce,ev->bcv", x_c, kernel, preferred_element_type=jnp.float32)
    raw = nn.with_logical_constraint(raw, _LOGITS_AXES)
    logits = soft_cap(raw, softcap)
    ce, z, correct = token_losses(logits, y_c, z_loss)
    sums = (jnp.sum(w_c * ce), jnp.sum(w_c * z), jnp.sum(w_c * correct))
    if not with_grad:
        return sums, None
    lse = jax.nn.logsumexp(logits, axis=-1)  # the same reduction as in token_losses; XLA computes it once
    probs = jnp.exp(logits - lse[..., None])
    onehot = jax.nn.one_hot(y_c, logits.shape[-1], dtype=jnp.float32)
    dlogits = w_c[..., None] * ((1.0 + 2.0 * z_loss * lse)[..., None] * probs - onehot)
    if softcap is not None:
        dlogits = dlogits * (1.0 - jnp.square(logits / softcap))
    return sums, dlogits


def _chunked(x: Array, y: Array, w: Array, chunk: int) -> tuple[Array, Array, Array]:
    """[b, l, ...] -> [n, b, chunk, ...], padding the length with zero-weight positions."""
    pad = -x.shape[1] % chunk
    if pad:
        x = jnp.pad(x, ((0, 0), (0, pad), (0, 0)))
        y, w = jnp.pad(y, ((0, 0), (0, pad))), jnp.pad(w, ((0, 0), (0, pad)))
    b, n = x.shape[0], x.shape[1] // chunk
    x = x.reshape(b, n, chunk, x.shape[-1]).swapaxes(0, 1)
    return x, y.reshape(b, n, chunk).swapaxes(0, 1), w.reshape(b, n, chunk).swapaxes(0, 1)


def _positions_per_chunk(batch: int, length: int, batch_shards: int = 1) -> int:
    """Positions per chunk so that each batch shard (device) computes about CHUNK_TOKENS tokens' logits."""
    rows = max(batch // max(batch_shards, 1), 1)
    return max(1, min(length, CHUNK_TOKENS // rows))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def linear_cross_entropy_sums(x: Array, kernel: Array, targets: Array, weights: Array, z_loss: float,
                              batch_shards: int = 1, softcap: float | None = None
                              ) -> tuple[Array, Array, Array, Array]:
    """(ce + z sum, ce sum, z sum, correct sum) of hidden states x [b, l, e] through kernel [e, v], the
    logits soft-capped at `softcap` when set (`ModelConfig.final_logit_softcap`).

    `batch_shards`: how many devices split the batch (the chunk is sized per device). Only the first
    output is differentiable (the others are metrics; their cotangents are ignored)."""
    return _forward(x, kernel, targets, weights, z_loss, batch_shards, softcap, with_grad=False)[0]


def _forward(x, kernel, targets, weights, z_loss, batch_shards, softcap, with_grad):
    length = x.shape[1]
    chunk = _positions_per_chunk(x.shape[0], length, batch_shards)
    xs, ys, ws = _chunked(x, targets, weights.astype(jnp.float32), chunk)

    def body(dkernel, inputs):
        x_c, y_c, w_c = inputs
        (ce, z, correct), dlogits = _chunk_terms(x_c, kernel, y_c, w_c, z_loss, with_grad, softcap)
        if not with_grad:
            return dkernel, ((ce, z, correct), None)
        dlogits = dlogits.astype(x.dtype)
        dx_c = jnp.einsum("bcv,ev->bce", dlogits, kernel, preferred_element_type=jnp.float32)
        dx_c = nn.with_logical_constraint(dx_c, _HIDDEN_AXES)
        dkernel = dkernel + jnp.einsum("bce,bcv->ev", x_c, dlogits, preferred_element_type=jnp.float32)
        return dkernel, ((ce, z, correct), dx_c)

    init = jnp.zeros(kernel.shape, jnp.float32) if with_grad else None
    dkernel, ((ce, z, correct), dx) = jax.lax.scan(body, init, (xs, ys, ws))
    sums = (jnp.sum(ce) + jnp.sum(z), jnp.sum(ce), jnp.sum(z), jnp.sum(correct))
    if not with_grad:
        return sums, None
    dx = dx.swapaxes(0, 1).reshape(x.shape[0], -1, x.shape[-1])[:, :length]
    return sums, (dx.astype(x.dtype), dkernel.astype(kernel.dtype))


def _fwd(x, kernel, targets, weights, z_loss, batch_shards, softcap):
    sums, (dx, dkernel) = _forward(x, kernel, targets, weights, z_loss, batch_shards, softcap, with_grad=True)
    return sums, (dx, dkernel, targets, weights)


def _bwd(z_loss, batch_shards, softcap, res, cotangents):
    dx, dkernel, targets, weights = res
    g = cotangents[0]
    zero_t = jnp.zeros(targets.shape, jax.dtypes.float0) if jnp.issubdtype(targets.dtype, jnp.integer) else (
        jnp.zeros_like(targets))
    return (g * dx).astype(dx.dtype), (g * dkernel).astype(dkernel.dtype), zero_t, jnp.zeros_like(weights)


linear_cross_entropy_sums.defvjp(_fwd, _bwd)
