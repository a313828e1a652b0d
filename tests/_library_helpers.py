"""Helpers only tests use, kept out of the library: look up one seekable task, take a user task out of
the Flan mixtures again, and the normalized losses the trainer computes from `losses.cross_entropy_sums`."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flan_ul2r.data.core.registry import leaf_tasks
from flan_ul2r.data.core.seekable import is_seekable
from flan_ul2r.data.flan import instruction_tasks
from flan_ul2r.models.losses import DEFAULT_Z_LOSS, cross_entropy_sums, token_losses


def get_seekable_task(name: str) -> Any:
    """The registered seekable task `name` (ValueError if unknown or not seekable)."""
    (task, _), *rest = leaf_tasks(name)
    if rest or task.name != name or not is_seekable(task):
        raise ValueError(f"{name!r} is not a seekable task")
    return task


def remove_member(name: str) -> None:
    """Takes a task registered by a test out of the Flan mixtures again."""
    instruction_tasks._MEMBERS.pop(name, None)
    instruction_tasks._RENDERERS.pop(name, None)
    instruction_tasks._rebuild()


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
