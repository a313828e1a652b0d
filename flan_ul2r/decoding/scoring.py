"""Log-likelihood of continuations given contexts, batched: rank classification and lm-eval's
`loglikelihood`.

One forward pass per batch over `context + continuation[:-1]` (right-padded: nothing is generated, so all
rows start at slot 0 and positions are plain). The prediction of continuation token j is read at the
position before it. `prefix_lm=True` attends bidirectionally over the context (the inputs region of
training, BOS + inputs; docs/ARCHITECTURE.md section 1) and causally over the continuation, so the
context's last position - the one that predicts the first continuation token - sees the whole context, as
in training. Logits are computed only at continuation positions, chunk by chunk, never [batch, length,
vocab] at once.

Result per pair: (sum of log p(continuation | context), whether every continuation token is the argmax;
exact ties count as argmax, as the training accuracy does).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from flan_ul2r.decoding.batching import bucket, round_up
from flan_ul2r.decoding.generate import ONE_DEVICE, Placement
from flan_ul2r.models.attention import soft_cap
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.decoder import Decoder

CHUNK_POSITIONS = 128  # continuation positions whose logits are computed at once (B x 128 x vocab floats)


def _score(params: Any, tokens: jax.Array, segment: jax.Array, prefix: jax.Array, at: jax.Array,
           targets: jax.Array, weights: jax.Array, *, cfg: ModelConfig, prefix_lm: bool, vocab_limit: int):
    hidden, kernel = Decoder(cfg).apply({"params": params}, tokens, segment_ids=segment, return_hidden=True,
                                        causal_attention=prefix if prefix_lm else None)
    return continuation_logprobs(hidden, kernel, at, targets, weights, vocab_limit, cfg.final_logit_softcap)


def continuation_logprobs(hidden: jax.Array, kernel: jax.Array, at: jax.Array, targets: jax.Array,
                          weights: jax.Array, vocab_limit: int, softcap: float | None = None
                          ) -> tuple[jax.Array, jax.Array]:
    """(sum of log p(target), every target is the argmax) per row, reading the logits of `targets` [b, c]
    from the hidden states at positions `at` [b, c] (where `weights`), `CHUNK_POSITIONS` at a time."""
    b, c = at.shape
    chunk = min(c, CHUNK_POSITIONS)

    def per_chunk(xs):
        at_c, y_c = xs  # [b, chunk]
        h = jnp.take_along_axis(hidden, at_c[..., None], axis=1)
        logits = jnp.einsum("bce,ev->bcv", h, kernel, preferred_element_type=jnp.float32)
        logits = soft_cap(logits, softcap)  # Gemma 2's final logit cap
        if vocab_limit < logits.shape[-1]:
            logits = jnp.where(jnp.arange(logits.shape[-1]) < vocab_limit, logits, -jnp.inf)
        target = jnp.take_along_axis(logits, y_c[..., None], axis=-1)[..., 0]
        return target - jax.nn.logsumexp(logits, axis=-1), target >= logits.max(-1)

    def chunked(x: jax.Array) -> jax.Array:
        return x.reshape(b, c // chunk, chunk).swapaxes(0, 1)

    logprob, best = jax.lax.map(per_chunk, (chunked(at), chunked(targets)))
    logprob, best = logprob.swapaxes(0, 1).reshape(b, c), best.swapaxes(0, 1).reshape(b, c)
    return jnp.sum(jnp.where(weights, logprob, 0.0), axis=1), jnp.all(best | ~weights, axis=1)


@functools.lru_cache(maxsize=16)
def _compiled(cfg: ModelConfig, prefix_lm: bool, vocab_limit: int, placement: Placement):
    del placement  # one jit object per placement (logical constraints resolve at trace time)
    return jax.jit(functools.partial(_score, cfg=cfg, prefix_lm=prefix_lm, vocab_limit=vocab_limit))


def check_pairs(contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], max_length: int,
                vocab_size: int) -> list[tuple[list[int], list[int]]]:
    """ValueError naming the index for mismatched counts, an empty context, too long a pair, bad ids."""
    if len(contexts) != len(continuations):
        raise ValueError(f"score: {len(contexts)} contexts but {len(continuations)} continuations")
    pairs = []
    for i, (ctx, cont) in enumerate(zip(contexts, continuations)):
        ctx, cont = [int(t) for t in ctx], [int(t) for t in cont]
        if not ctx:
            raise ValueError(f"score: context {i} is empty; start it with the BOS id (vocab.bos_id)")
        if len(ctx) + len(cont) > max_length:
            raise ValueError(f"score: pair {i}: context {len(ctx)} + continuation {len(cont)} tokens = "
                             f"{len(ctx) + len(cont)} > the model's max_length {max_length}")
        bad = [t for t in ctx + cont if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"score: pair {i}: token id {bad[0]} is outside the vocabulary "
                             f"[0, {vocab_size})")
        pairs.append((ctx, cont))
    return pairs


def _batch_arrays(pairs: list[tuple[list[int], list[int]]], rows: int) -> list[np.ndarray]:
    length = bucket(max(len(c) + len(x) - 1 for c, x in pairs))
    width = bucket(max(max(len(x) for _, x in pairs), 1))
    tokens, segment, prefix = (np.zeros((rows, length), np.int32) for _ in range(3))
    at, targets = np.zeros((rows, width), np.int32), np.zeros((rows, width), np.int32)
    weights = np.zeros((rows, width), bool)
    for i, (ctx, cont) in enumerate(pairs):
        seq = (ctx + cont)[:-1] if cont else ctx
        tokens[i, :len(seq)], segment[i, :len(seq)], prefix[i, :len(ctx)] = seq, 1, 1
        at[i, :len(cont)] = len(ctx) - 1 + np.arange(len(cont))
        targets[i, :len(cont)], weights[i, :len(cont)] = cont, True
    return [tokens, segment, prefix, at, targets, weights]


def score_pairs(cfg: ModelConfig, params: Any, pairs: list[tuple[list[int], list[int]]], *, prefix_lm: bool,
                vocab_limit: int, batch_size: int = 8, placement: Placement = ONE_DEVICE,
                progress: bool = False, forward: Callable[..., Any] | None = None
                ) -> list[tuple[float, bool]]:
    """[(log p(continuation | context), continuation is greedy)] for checked pairs (`check_pairs`), longest
    first. `forward(tokens, segment, prefix, at, targets, weights)` replaces the full forward pass per batch
    (decoding/prefix_cache.py passes the contexts' suffixes behind a shared prefix)."""
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    per_batch = round_up(max(1, int(batch_size)), placement.batch_shards)
    out: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
    starts = range(0, len(order), per_batch)
    fn = forward or functools.partial(_compiled(cfg, bool(prefix_lm), int(vocab_limit), placement), params)
    for b0 in tqdm(starts, desc="score", unit="batch", disable=not progress or len(starts) < 2):
        idx = order[b0:b0 + per_batch]
        rows = min(per_batch, round_up(bucket(len(idx), 1), placement.batch_shards))
        arrays = [placement.put_batch(a) for a in _batch_arrays([pairs[i] for i in idx], rows)]
        with placement.context():
            logprob, greedy = fn(*arrays)
        logprob, greedy = np.asarray(logprob), np.asarray(greedy)
        for j, i in enumerate(idx):
            out[i] = (float(logprob[j]), bool(greedy[j]))
    return out
