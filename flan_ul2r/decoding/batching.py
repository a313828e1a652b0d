"""Many prompts -> fixed-shape batches for the compiled generation (generate.py), and back.

Each (prompt, sample) pair is one row. Rows are sorted by prompt length (longest first) so a batch holds
similar lengths, cut into batches of `batch_size` rows, left-padded to a power-of-two length (at least 8)
and filled with inactive rows up to a power-of-two row count: few distinct shapes, so few compilations,
at most 2x padding. Sampling keys depend on the (prompt, sample) indices only (sampling.py), so results
do not depend on this grouping.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from flan_ul2r.decoding.generate import ONE_DEVICE, DecodeSpec, Generated, Placement, generate_padded
from flan_ul2r.decoding.sampling import row_keys
from flan_ul2r.models.config import ModelConfig

MIN_BUCKET = 8


def bucket(n: int, minimum: int = MIN_BUCKET) -> int:
    """The smallest power of two >= max(n, minimum)."""
    return 1 << (max(n, minimum) - 1).bit_length()


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def check_prompts(prompts: Sequence[Sequence[int]], max_new_tokens: int, max_length: int, vocab_size: int,
                  what: str = "prompt") -> list[list[int]]:
    """Lists of ints; ValueError naming the index and the lengths for an empty, too long or bad prompt."""
    if int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be an integer >= 1")
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, (str, bytes)):
            raise ValueError(f"{what} {i} is a string; pass token ids (or use complete() for text)")
        ids = [int(t) for t in p]
        if not ids:
            raise ValueError(f"{what} {i} is empty; start it with the BOS id (vocab.bos_id)")
        if len(ids) + max_new_tokens > max_length:
            raise ValueError(f"{what} {i}: {len(ids)} tokens + max_new_tokens {max_new_tokens} = "
                             f"{len(ids) + max_new_tokens} > the model's max_length {max_length}; shorten it "
                             "(prompts are never truncated)")
        bad = [t for t in ids if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"{what} {i}: token id {bad[0]} is outside the model's vocabulary "
                             f"[0, {vocab_size})")
        out.append(ids)
    return out


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    num_samples: int = 1
    seed: int = 0


def generate_rows(cfg: ModelConfig, params: Any, prompts: list[list[int]], spec: DecodeSpec,
                  sampling: SamplingSettings, *, eos_id: int, stop_ids: np.ndarray, batch_size: int = 8,
                  placement: Placement = ONE_DEVICE, progress: bool = False,
                  forward: Callable[..., Generated] | None = None) -> list[list[list[int]]]:
    """[prompt][sample] -> the generated ids, including the EOS / stop tokens that ended the row.
    `forward(tokens, lengths, active, keys)` replaces `generate_padded` for each batch (the prompts are then
    whatever it continues: decoding/prefix_cache.py passes suffixes behind a shared prefix)."""
    n = sampling.num_samples
    rows = sorted(((p, s) for p in range(len(prompts)) for s in range(n)), key=lambda r: -len(prompts[r[0]]))
    per_batch = round_up(max(1, int(batch_size)), placement.batch_shards)
    out: list[list[list[int]]] = [[[] for _ in range(n)] for _ in prompts]
    starts = range(0, len(rows), per_batch)
    for b0 in tqdm(starts, desc="generate", unit="batch", disable=not progress or len(starts) < 2):
        chunk = rows[b0:b0 + per_batch]
        num_rows = min(per_batch, round_up(bucket(len(chunk), 1), placement.batch_shards))
        length = bucket(max(len(prompts[p]) for p, _ in chunk))
        tokens = np.zeros((num_rows, length), np.int32)
        lengths = np.ones((num_rows,), np.int32)
        active = np.zeros((num_rows,), bool)
        for i, (p, _) in enumerate(chunk):
            tokens[i, length - len(prompts[p]):] = prompts[p]
            lengths[i], active[i] = len(prompts[p]), True
        indices = np.asarray(chunk + [(0, 0)] * (num_rows - len(chunk)))
        keys = row_keys(sampling.seed, indices[:, 0], indices[:, 1])
        if forward is not None:
            gen = forward(tokens, lengths, active, keys)
        else:
            gen = generate_padded(cfg, params, tokens, lengths, active, keys, spec, eos_id=eos_id,
                                  stop_ids=stop_ids, temperature=sampling.temperature, top_p=sampling.top_p,
                                  placement=placement)
        for i, (p, s) in enumerate(chunk):
            out[p][s] = gen.tokens[i, :gen.num_tokens[i]].tolist()
    return out
