"""Choosing the next token: greedy, temperature, top-k, top-p (nucleus), seeded per prompt and sample.

The filters apply in the order HF transformers' logits warpers do (temperature, then top-k, then top-p):
- top-k keeps the k largest logits (ties with the k-th are kept);
- top-p keeps the smallest set of most likely tokens whose probability reaches p (Holtzman et al. 2020,
  "The Curious Case of Neural Text Degeneration", section 3.1): a token stays when the probability of the
  tokens ranked above it is < p, so the most likely token always stays.

Randomness: each row has its own key (`row_keys`: seed, prompt index, sample index), folded with the step
number, so a prompt's samples depend only on the seed and its own indices - not on the batch size, the
other prompts, or how prompts were grouped into batches.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
NEG_INF = -jnp.inf


def filter_logits(logits: Array, temperature: Array | float, top_k: int, top_p: Array | float) -> Array:
    """[b, v] float32 logits -> logits / temperature with -inf outside the top-k / top-p support.

    `top_k` (static) 0 = off; `top_p` 1.0 = off (traced; applied when < 1)."""
    logits = logits.astype(jnp.float32) / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][:, -1:]
        logits = jnp.where(logits < kth, NEG_INF, logits)
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # probability of the tokens ranked above each one
    keep_sorted = (before < top_p) | (top_p >= 1.0)
    keep = jnp.zeros_like(keep_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
    return jnp.where(keep, logits, NEG_INF)


def next_tokens(logits: Array, keys: Array, step: Array, *, greedy: bool, temperature: Array | float,
                top_k: int, top_p: Array | float) -> Array:
    """int32 [b]: argmax when `greedy` (static), else a draw from the filtered distribution with each row's
    key folded with `step`."""
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    filtered = filter_logits(logits, temperature, top_k, top_p)
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)
    return jax.vmap(jax.random.categorical)(step_keys, filtered).astype(jnp.int32)


def row_keys(seed: int, prompt_indices: np.ndarray, sample_indices: np.ndarray) -> np.ndarray:
    """uint32 [n, 2]: the PRNG key of each (prompt, sample) row, `fold_in(fold_in(key(seed), p), s)`."""
    base = jax.random.PRNGKey(seed)
    fold = jax.vmap(jax.random.fold_in, in_axes=(0, 0))
    per_prompt = fold(jnp.broadcast_to(base, (len(prompt_indices), 2)),
                      jnp.asarray(prompt_indices, jnp.int32))
    return np.asarray(fold(per_prompt, jnp.asarray(sample_indices, jnp.int32)))


def check_sampling(temperature: float, top_k: int, top_p: float, num_samples: int) -> None:
    """ValueError naming the bad argument."""
    if not temperature >= 0:
        raise ValueError(f"temperature={temperature!r} must be >= 0 (0 = greedy)")
    if int(top_k) != top_k or top_k < 0:
        raise ValueError(f"top_k={top_k!r} must be an integer >= 0 (0 = off)")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p!r} must be in (0, 1] (1 = off)")
    if int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} must be an integer >= 1")
    if temperature == 0 and num_samples > 1:
        raise ValueError(f"num_samples={num_samples} with temperature=0: greedy samples are all the same; "
                         "set temperature > 0")
