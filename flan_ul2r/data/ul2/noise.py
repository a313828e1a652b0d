"""Noise masks for UL2 denoisers, as stateless TensorFlow ops (run inside tf.data maps).

`random_spans_noise_mask` reproduces T5's `random_spans_noise_mask` exactly (Raffel et al. 2020,
section 3.1.4; the public T5 code, `t5/data/preprocessors.py`): number of noise tokens = round(L * r)
clamped to [1, L - 1]; number of spans = max(1, round(noise / mu)); the noise and the non-noise tokens
are each split uniformly at random into that many non-empty segments; segments alternate, non-noise first;
no roll. (Same distribution as T5, not the same bits for a given seed: T5 shuffles with seqio's
stateless_shuffle, we draw the cut points with a stateless top-k.)

Span count rounding (`rounding`): "t5" is T5's `round(noise / mu)` (half to even). UL2 (section 3.1.2)
defines mu as the *mean span length*, and T5's rounding misses it when noise / mu is small: a 512-token
chunk at r = 0.15 has ~75 noise tokens, so mu = 32 gives round(2.3) = 2 spans of ~37 tokens (+17%) and
mu = 64 gives 1 span of 75 (+17%). "unbiased" rounds stochastically instead: floor(noise / mu) spans plus
one more with probability frac(noise / mu), so E[spans] = noise / mu and E[noise] / E[spans] = mu exactly
(whenever noise >= mu; below that one span is the minimum). The draw uses its own stateless seed.

`random_prefix_pivot` reproduces T5's `random_prefix_noise_mask` (the public T5 code,
`t5/data/preprocessors.py`, used by its `prefix_lm` objective): prefix length
~ U[max(1, round((1 - 2d)(L - 1))), L - 1], so d = 0.5 gives U[1, L - 1].

Randomness is stateless: every op takes an explicit shape-[2] seed (`tf.random.stateless_*`), so the same
seed always gives the same mask.
"""
from __future__ import annotations

import tensorflow as tf


def split_seed(seed: tf.Tensor, salt: int) -> tf.Tensor:
    """A new shape-[2] int64 stateless seed derived from `seed` and a constant `salt`."""
    seed = tf.cast(seed, tf.int64)
    return tf.random.experimental.stateless_fold_in(seed, tf.constant(salt, tf.int64))


ROUNDINGS = ("unbiased", "t5")


def check_rounding(rounding: str) -> None:
    if rounding not in ROUNDINGS:
        raise ValueError(f"span rounding={rounding!r} must be one of {ROUNDINGS}")


def span_counts(length: tf.Tensor, noise_density: float, mean_noise_span_length: float,
                rounding: str = "t5", seed: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """(num_noise_tokens, num_noise_spans) for a sequence of `length` tokens.

    Noise tokens: T5's round(L * r) clamped to [1, L - 1], `length` first raised to 2 as in T5. Spans:
    `rounding` "t5" = round(noise / mu), "unbiased" = stochastic rounding with `seed` (module docstring);
    at least 1, and capped at the number of non-noise tokens so every segment is non-empty (T5 does not
    guard; the cap never binds for the presets' (mu, r), since it needs mu < r / (1 - r)).
    """
    check_rounding(rounding)
    length = tf.maximum(tf.cast(length, tf.int32), 2)
    num_noise = tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32)
    num_noise = tf.minimum(tf.maximum(num_noise, 1), length - 1)
    ratio = tf.cast(num_noise, tf.float32) / mean_noise_span_length
    if rounding == "t5":
        num_spans = tf.cast(tf.round(ratio), tf.int32)
    else:
        if seed is None:
            raise ValueError("span_counts(rounding='unbiased') needs a seed")
        u = tf.random.stateless_uniform([], seed=seed)
        num_spans = tf.cast(tf.floor(ratio) + tf.cast(u < ratio - tf.floor(ratio), tf.float32), tf.int32)
    num_spans = tf.maximum(num_spans, 1)
    num_spans = tf.minimum(num_spans, tf.minimum(num_noise, length - num_noise))
    return num_noise, num_spans


def _random_segmentation(num_items: tf.Tensor, num_segments: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Lengths of `num_segments` non-empty segments partitioning `num_items`, uniformly at random.

    T5 shuffles (num_segments - 1) "segment starts here" flags among the (num_items - 1) slots after the
    first item; here the same uniformly random (num_segments - 1)-subset of slots is the top-k of
    stateless uniforms (same distribution, fewer ops than a full shuffle), and lengths are the gaps.
    """
    u = tf.random.stateless_uniform([num_items - 1], seed=seed)
    cuts = tf.sort(tf.math.top_k(u, num_segments - 1, sorted=False).indices + 1)
    bounds = tf.concat([[0], cuts, [num_items]], axis=0)
    return bounds[1:] - bounds[:-1]


def random_spans_noise_mask(length: tf.Tensor | int, noise_density: float, mean_noise_span_length: float,
                            seed: tf.Tensor, rounding: str = "t5") -> tf.Tensor:
    """bool[length] mask, True on noise tokens: T5's `random_spans_noise_mask` with random_roll=False
    (with `rounding="unbiased"`, the span count is rounded stochastically; module docstring)."""
    orig_length = tf.cast(length, tf.int32)
    length = tf.maximum(orig_length, 2)
    num_noise, num_spans = span_counts(length, noise_density, mean_noise_span_length, rounding,
                                       split_seed(seed, 2))
    noise_lengths = _random_segmentation(num_noise, num_spans, split_seed(seed, 0))
    nonnoise_lengths = _random_segmentation(length - num_noise, num_spans, split_seed(seed, 1))
    interleaved = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1), [num_spans * 2])
    # T5 marks span starts and takes cumsum parity; repeating [False, True] by the span lengths is the
    # same mask in one op.
    is_noise = tf.repeat(tf.tile(tf.constant([False, True]), [num_spans]), interleaved)
    return is_noise[:orig_length]


def random_prefix_pivot(length: tf.Tensor | int, noise_density: float, seed: tf.Tensor) -> tf.Tensor:
    """Prefix length for the S-denoiser: U[max(1, round((1 - 2d)(L - 1))), L - 1], T5's prefix_lm.

    Tokens [0, pivot) are the prefix (inputs), [pivot, L) the suffix (targets). For L < 2 returns L
    (nothing left to predict but EOS). Raises ValueError for d outside (0, 0.5], as T5 does for d > 0.5.
    """
    if not 0.0 < noise_density <= 0.5:
        raise ValueError(f"prefix denoiser: noise_density={noise_density} must be in (0, 0.5] "
                         "(T5 random_prefix_noise_mask)")
    length = tf.cast(length, tf.int32)
    max_inputs = length - 1
    min_inputs = tf.cast(tf.round((1.0 - 2.0 * noise_density) * tf.cast(max_inputs, tf.float32)), tf.int32)
    min_inputs = tf.minimum(max_inputs, tf.maximum(1, min_inputs))
    pivot = tf.random.stateless_uniform([], seed=seed, minval=tf.maximum(min_inputs, 0),
                                        maxval=tf.maximum(max_inputs, 0) + 1, dtype=tf.int32)
    return tf.where(length < 2, length, pivot)
