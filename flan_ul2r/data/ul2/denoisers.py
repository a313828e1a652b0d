"""UL2 denoisers as data, their length arithmetic, and the TF ops that apply them.

A denoiser is a `Denoiser` record (name, kind, mean_span mu, noise_density r, mode_token, weight);
a mixture is a tuple of them. `denoise` turns a raw token chunk into a decoder-only example:

- span (R/X, SPANCORRUPT(mu, r), UL2 paper section 3.1.2): noise mask = T5's
  `random_spans_noise_mask`; each noise span becomes one sentinel in the inputs and `sentinel + span` in
  the targets, sentinels numbered in order of the span (`sentinel_ids[0]` = `<extra_id_0>`, T5's
  `noise_span_to_unique_sentinel` / `nonnoise_span_to_unique_sentinel`). When a sequence has more spans
  than the vocabulary has sentinels (e.g. mu=3, r=0.5 at L=2048 gives ~340 spans, PaLM has 100 sentinels,
  U-PaLM 11.3), sentinel ids cycle: span j uses `sentinel_ids[j % len(sentinel_ids)]`; T5 would count down
  into ordinary vocabulary ids instead. Order still identifies the span, so reconstruction stays exact.
- prefix (S, prefix LM, UL2 paper section 3.1.2): a random pivot (T5 `random_prefix_noise_mask`); the
  prefix goes to the inputs, the rest to the targets.

Decoder-only layout (U-PaLM 2.2): inputs = [mode] + corrupted, targets = sentinel/span pairs (or the
suffix) + EOS; inputs and targets are later concatenated into one sequence before packing.
`eos_after_inputs=True` also ends the inputs with EOS, as T5's span corruption does (its inputs feature
has add_eos) and as our Flan stage does (Flan section 2.2). Default off for UL2R: the S-denoiser's prefix
and suffix are one continuous text, and an EOS between them would teach the decoder-only model that a
document ends wherever a prefix ends.

Span count: `Denoiser.span_rounding` "unbiased" (default) or "t5"; see `noise.py`. With "unbiased" the
number of spans varies by one between examples, so `raw_length` sizes chunks for the larger count.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from flan_ul2r.data.ul2.noise import ROUNDINGS, random_prefix_pivot, random_spans_noise_mask

KINDS = ("span", "prefix")


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """One UL2 denoiser (UL2 paper, SPANCORRUPT(mu, r, n); section 3.1.2).

    name: identifier (used in task names, e.g. `ul2r_r_3_15`); kind: "span" or "prefix";
    mean_span: mu (span kind; ignored for prefix); noise_density: r, the corrupted share (prefix kind:
    the mean suffix share d in (0, 0.5], T5 `prefix_lm`); mode_token: e.g. "[NLU]", or "" for none;
    weight: mixture rate (any non-negative scale; normalized by the mixture);
    span_rounding: "unbiased" (mean span length = mu, UL2 section 3.1.2) or "t5" (T5's round(noise / mu)).
    """

    name: str
    kind: str
    noise_density: float
    mean_span: float = 3.0
    mode_token: str = ""
    weight: float = 1.0
    span_rounding: str = "unbiased"

    def __post_init__(self) -> None:
        where = f"Denoiser(name={self.name!r})"
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"{where}: name must be a non-empty identifier, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind={self.kind!r} must be one of {KINDS}")
        r = self.noise_density
        if not isinstance(r, (int, float)) or not 0.0 < r < 1.0 or math.isnan(r):
            raise ValueError(f"{where}: noise_density (r)={r!r} must be in (0, 1)")
        if self.kind == "prefix" and r > 0.5:
            raise ValueError(f"{where}: noise_density (r)={r!r} must be <= 0.5 for a prefix denoiser "
                             "(T5 random_prefix_noise_mask)")
        mu = self.mean_span
        if self.kind == "span" and (not isinstance(mu, (int, float)) or not mu > 0 or math.isinf(mu)):
            raise ValueError(f"{where}: mean_span (mu)={mu!r} must be > 0")
        if not isinstance(self.weight, (int, float)) or not self.weight >= 0 or math.isinf(self.weight):
            raise ValueError(f"{where}: weight={self.weight!r} must be >= 0")
        if self.span_rounding not in ROUNDINGS:
            raise ValueError(f"{where}: span_rounding={self.span_rounding!r} must be one of {ROUNDINGS}")


# UL2R as used for U-PaLM (Tay et al. 2022, "Transcending Scaling Laws with 0.1% Extra Compute", 2.3):
# 50% S ([S2S]); 25% R, mu=3 r=0.15 ([NLU]); 25% X ([NLG]), "mean length of 32 OR a corruption rate of up
# to 50%". The X pairs (mu=32, r=0.15) and (mu=3, r=0.5), split evenly, are an INTERPRETATION (Levanter
# PR #1158), not confirmed by the paper; rebind via gin to change it. S uses d=0.5: pivot ~ U[1, L-1].
UL2R: tuple[Denoiser, ...] = (
    Denoiser("s", "prefix", noise_density=0.5, mode_token="[S2S]", weight=0.5),
    Denoiser("r_3_15", "span", noise_density=0.15, mean_span=3, mode_token="[NLU]", weight=0.25),
    Denoiser("x_32_15", "span", noise_density=0.15, mean_span=32, mode_token="[NLG]", weight=0.125),
    Denoiser("x_3_50", "span", noise_density=0.5, mean_span=3, mode_token="[NLG]", weight=0.125),
)

# UL2 20B's 7 denoisers (UL2 paper section 3.1.2 and the released UL2 20B model card): R (3, .15),
# (8, .15); X (3, .5), (8, .5), (64, .15), (64, .5); S (L/4, .25, 1) = one suffix of mean share 0.25.
# Mixing rates are not stated; the appendix code's `rates=None` means uniform, so uniform here. Mode
# tokens as in the released checkpoints: [NLU] = R, [NLG] = X, [S2S] = S.
UL2: tuple[Denoiser, ...] = (
    Denoiser("r_3_15", "span", noise_density=0.15, mean_span=3, mode_token="[NLU]"),
    Denoiser("r_8_15", "span", noise_density=0.15, mean_span=8, mode_token="[NLU]"),
    Denoiser("x_3_50", "span", noise_density=0.5, mean_span=3, mode_token="[NLG]"),
    Denoiser("x_8_50", "span", noise_density=0.5, mean_span=8, mode_token="[NLG]"),
    Denoiser("x_64_15", "span", noise_density=0.15, mean_span=64, mode_token="[NLG]"),
    Denoiser("x_64_50", "span", noise_density=0.5, mean_span=64, mode_token="[NLG]"),
    Denoiser("s_25", "prefix", noise_density=0.25, mode_token="[S2S]"),
)

PRESETS: dict[str, tuple[Denoiser, ...]] = {"UL2R": UL2R, "UL2": UL2}


def num_spans(length: int, denoiser: Denoiser) -> int:
    """Largest number of noise spans `denoise` makes from `length` raw tokens (float32 + half-to-even, as
    TF computes; with "unbiased" rounding the count is floor or ceil of noise / mu, this is the ceil)."""
    length = max(int(length), 2)
    noise = int(np.round(np.float32(length) * np.float32(denoiser.noise_density)))
    noise = min(max(noise, 1), length - 1)
    ratio = np.float32(noise) / np.float32(denoiser.mean_span)
    spans = int(np.ceil(ratio)) if denoiser.span_rounding == "unbiased" else int(np.round(ratio))
    return min(max(spans, 1), noise, length - noise)


def example_length(length: int, denoiser: Denoiser, eos_after_inputs: bool = False) -> int:
    """Largest len(inputs) + len(targets) that `denoise` produces from `length` raw tokens (any seed).

    span: [mode] + non-noise + one sentinel per span, then one sentinel per span + noise + EOS
          = mode + length + 2 * spans + 1;  prefix: mode + length + 1 (EOS); +1 with eos_after_inputs.
    """
    mode = 1 if denoiser.mode_token else 0
    extra = mode + 1 + int(eos_after_inputs)
    if denoiser.kind == "prefix":
        return length + extra
    return length + 2 * num_spans(length, denoiser) + extra


def raw_length(denoiser: Denoiser, total_length: int, eos_after_inputs: bool = False) -> int:
    """Largest raw chunk length whose denoised example fits `total_length` (inputs + targets) untrimmed.

    T5's `random_spans_helper` arithmetic, adapted to the decoder-only layout where prefix and targets
    are concatenated (U-PaLM 2.2): computed exactly (for the largest span count the rounding can give),
    so no example ever needs trimming. Raises ValueError if not even 2 raw tokens fit.
    """
    best = 0
    # example_length grows by >= 1 per raw token, so the answer is within total_length of the top.
    for length in range(total_length, 1, -1):
        if example_length(length, denoiser, eos_after_inputs) <= total_length:
            best = length
            break
    if best < 2:
        raise ValueError(f"raw_length: total_length={total_length} too short for denoiser {denoiser.name!r}")
    return best


def denoise(tokens: tf.Tensor, seed: tf.Tensor, denoiser: Denoiser, sentinel_ids: Sequence[int],
            mode_id: int | None, eos_id: int, eos_after_inputs: bool = False) -> dict[str, tf.Tensor]:
    """TF ops: raw int32[L] tokens -> {"inputs", "targets", "denoiser"} (see module docstring).

    `seed` is a shape-[2] stateless seed; the same (tokens, seed) always gives the same example.
    `mode_id` None (or a denoiser without mode token) prepends nothing.
    """
    tokens = tf.cast(tokens, tf.int32)
    length = tf.size(tokens)
    if denoiser.kind == "prefix":
        pivot = random_prefix_pivot(length, denoiser.noise_density, seed)
        inputs, targets = tokens[:pivot], tokens[pivot:]
    else:
        inputs, targets = _span_corrupt(tokens, seed, denoiser, sentinel_ids)
    if denoiser.mode_token and mode_id is not None:
        inputs = tf.concat([tf.constant([mode_id], tf.int32), inputs], axis=0)
    eos = tf.constant([eos_id], tf.int32)
    if eos_after_inputs:
        inputs = tf.concat([inputs, eos], axis=0)
    targets = tf.concat([targets, eos], axis=0)
    return {"inputs": inputs, "targets": targets, "denoiser": tf.constant(denoiser.name)}


def _span_corrupt(tokens: tf.Tensor, seed: tf.Tensor, denoiser: Denoiser,
                  sentinel_ids: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """(corrupted inputs, sentinel/span targets) without mode token or EOS."""
    if not sentinel_ids:
        raise ValueError(f"denoiser {denoiser.name!r}: the vocabulary has no sentinel ids")
    mask = random_spans_noise_mask(tf.size(tokens), denoiser.noise_density, denoiser.mean_span, seed,
                                   denoiser.span_rounding)
    prev = tf.pad(mask[:-1], [[1, 0]])
    first = tf.logical_and(mask, tf.logical_not(prev))
    span_index = tf.cumsum(tf.cast(first, tf.int32)) - 1
    table = tf.constant(list(sentinel_ids), tf.int32)
    sentinel = tf.gather(table, tf.math.floormod(span_index, len(sentinel_ids)))  # -1 only off-span
    inputs = tf.boolean_mask(tf.where(first, sentinel, tokens), tf.logical_or(tf.logical_not(mask), first))
    pairs = tf.reshape(tf.stack([sentinel, tokens], axis=1), [-1])
    keep = tf.reshape(tf.stack([first, mask], axis=1), [-1])
    return inputs, tf.boolean_mask(pairs, keep)


def causal_lm(tokens: tf.Tensor, eos_id: int) -> dict[str, tf.Tensor]:
    """Plain causal-LM example: no inputs, targets = tokens + EOS (the baseline `lm` task)."""
    tokens = tf.cast(tokens, tf.int32)
    return {"inputs": tf.zeros([0], tf.int32), "targets": tf.concat([tokens, [eos_id]], axis=0),
            "denoiser": tf.constant("lm")}
