"""Cross-entropy on loss weights with PaLM's z-loss, normalized per target token."""
from __future__ import annotations

import jax
import jax.numpy as jnp

# PaLM (Chowdhery et al. 2022, section 5): auxiliary loss z_loss * log(Z)^2 with z_loss = 1e-4 keeps the
# softmax normalizer close to 0 for stability.
DEFAULT_Z_LOSS = 1e-4


def token_losses(logits: jax.Array, targets: jax.Array, z_loss: float = DEFAULT_Z_LOSS):
    """Per-token (cross-entropy, z-loss term, correct) in float32."""
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    ce = log_z - target_logit
    # The target is (one of) the argmax: its logit reaches the max (exact ties count as hits).
    correct = (target_logit >= jnp.max(logits, axis=-1)).astype(jnp.float32)
    return ce, z_loss * jnp.square(log_z), correct


def cross_entropy_sums(logits, targets, weights, z_loss: float = DEFAULT_Z_LOSS) -> dict[str, jax.Array]:
    """Unnormalized sums (what gradient accumulation adds up across microbatches)."""
    ce, z, correct = token_losses(logits, targets, z_loss)
    w = weights.astype(jnp.float32)
    return {"ce": jnp.sum(ce * w), "z_loss": jnp.sum(z * w), "correct": jnp.sum(correct * w),
            "num_tokens": jnp.sum(w)}


def cross_entropy_loss(logits, targets, weights, z_loss: float = DEFAULT_Z_LOSS):
    """(loss, aux): loss = sum(w * (ce + z)) / sum(w); aux has ce-only loss, z_loss, accuracy, num_tokens."""
    s = cross_entropy_sums(logits, targets, weights, z_loss)
    n = jnp.maximum(s["num_tokens"], 1.0)
    loss = (s["ce"] + s["z_loss"]) / n
    return loss, {"cross_entropy": s["ce"] / n, "z_loss": s["z_loss"] / n, "accuracy": s["correct"] / n,
                  "num_tokens": s["num_tokens"]}


def per_example_loss(logits, targets, weights, segment_ids, max_segments: int) -> jax.Array:
    """Mean cross-entropy of each packed segment: [batch, max_segments] (segment ids 1..max_segments)."""
    ce, _, _ = token_losses(logits, targets, 0.0)
    onehot = jax.nn.one_hot(segment_ids - 1, max_segments) * weights[..., None].astype(jnp.float32)
    return jnp.einsum("bl,bls->bs", ce, onehot) / jnp.maximum(onehot.sum(axis=1), 1.0)
