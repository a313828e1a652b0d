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


