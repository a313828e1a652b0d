"""Denoisers: exact reconstruction, (mu, r) statistics, raw_length by brute force, presets, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from _denoise_toy import EOS, MODES, SENTINELS, reconstruct

from flan_ul2r.data.denoisers import UL2, UL2R, Denoiser, denoise, raw_length

ALL = {d.name: d for d in UL2R + UL2}.values()


def denoise_many(d: Denoiser, chunks: list[np.ndarray], seed: int = 0) -> list[dict]:
    """Runs `denoise` inside tf.data (as the loader does) over ragged chunks."""
    ragged = tf.ragged.constant([c.tolist() for c in chunks], dtype=tf.int32)
    ds = tf.data.Dataset.from_tensor_slices(ragged).enumerate().map(
        lambda i, t: denoise(t, tf.stack([tf.constant(seed, tf.int64), i]), d, SENTINELS,
                             MODES[d.mode_token], EOS), num_parallel_calls=2, deterministic=True)
    return list(ds.as_numpy_iterator())


@pytest.mark.parametrize("d", ALL, ids=lambda d: d.name)
def test_reconstruction_exact(d):
    rng = np.random.default_rng(1)
    lengths = [1, 2, 3, 5, 17, 100, raw_length(d, 512)] + list(rng.integers(1, 700, 13))
    chunks = [rng.integers(3, 200, n).astype(np.int32) for n in lengths]
    for chunk, ex in zip(chunks, denoise_many(d, chunks)):
        assert ex["inputs"][0] == MODES[d.mode_token]
        assert ex["denoiser"] == d.name.encode()
        assert reconstruct(ex["inputs"], ex["targets"]) == chunk.tolist()


def measure(examples: list[dict]) -> tuple[float, float]:
    """(noise density, mean span length) measured on the produced examples."""
    sentinels = set(SENTINELS)
    spans = sum(sum(int(t) in sentinels for t in ex["targets"]) for ex in examples)
    noise = sum(len(ex["targets"]) - 1 for ex in examples) - spans
    kept = sum(len(ex["inputs"]) - 1 - sum(int(t) in sentinels for t in ex["inputs"]) for ex in examples)
    raw = kept + noise
    return noise / raw, noise / spans


def t5_expected(d: Denoiser, length: int) -> tuple[float, float]:
    noise = min(max(int(np.round(np.float32(length) * np.float32(d.noise_density))), 1), length - 1)
    return noise / length, noise / max(int(np.round(np.float32(noise) / np.float32(d.mean_span))), 1)


SPAN = [d for d in ALL if d.kind == "span"]


@pytest.mark.parametrize("d", SPAN, ids=lambda d: d.name)
def test_density_and_span_length_at_512(d):
    length = raw_length(d, 512)
    rng = np.random.default_rng(2)
    examples = denoise_many(d, [rng.integers(3, 200, length).astype(np.int32) for _ in range(1000)])
    density, span = measure(examples)
    exp_density, exp_span = t5_expected(d, length)
    assert abs(density - exp_density) <= 1e-9 and abs(span - exp_span) <= 1e-9  # T5's arithmetic exactly
    assert abs(density / d.noise_density - 1) < 0.02
    if d.mean_span <= 8:
        assert abs(span / d.mean_span - 1) < 0.05
    else:
        # mu=32/64 with r=0.15 at L=512 gives 2 or 1 spans: T5's round(noise / mu) is coarse there.
        # At 8192 tokens the same arithmetic is within 5% of mu (tested below).
        assert d.name in ("x_32_15", "x_64_15", "x_64_50")


@pytest.mark.parametrize("d", [d for d in SPAN if d.mean_span > 8], ids=lambda d: d.name)
def test_long_span_denoisers_match_mu_at_8192(d):
    length = raw_length(d, 8192)
    rng = np.random.default_rng(3)
    chunks = [rng.integers(3, 200, length).astype(np.int32) for _ in range(20)]
    density, span = measure(denoise_many(d, chunks))
    assert abs(density / d.noise_density - 1) < 0.02 and abs(span / d.mean_span - 1) < 0.05


def test_prefix_denoiser_suffix_share():
    d = UL2R[0]
    assert d.kind == "prefix"
    rng = np.random.default_rng(4)
    examples = denoise_many(d, [rng.integers(3, 200, 510).astype(np.int32) for _ in range(1000)])
    suffix = np.mean([(len(ex["targets"]) - 1) / 510 for ex in examples])
    assert abs(suffix - 0.5) < 0.02  # pivot ~ U[1, L-1]: mean suffix share 1/2


@pytest.mark.parametrize("d", ALL, ids=lambda d: d.name)
@pytest.mark.parametrize("total", [16, 97, 512, 2048])
def test_raw_length_is_largest_that_fits(d, total):
    raw = raw_length(d, total)
    rng = np.random.default_rng(total)
    chunks = [rng.integers(3, 200, raw).astype(np.int32)] * 3
    chunks.append(rng.integers(3, 200, raw + 1).astype(np.int32))
    out = denoise_many(d, chunks)
    sizes = [len(ex["inputs"]) + len(ex["targets"]) for ex in out]
    assert max(sizes[:3]) <= total < sizes[3]


def test_presets_match_papers():
    shares = {d.name: d.weight for d in UL2R}
    assert shares == {"s": 0.5, "r_3_15": 0.25, "x_32_15": 0.125, "x_3_50": 0.125}  # U-PaLM 2.3
    assert {(d.mean_span, d.noise_density) for d in UL2 if d.kind == "span"} == {
        (3, 0.15), (8, 0.15), (3, 0.5), (8, 0.5), (64, 0.15), (64, 0.5)}  # UL2 7-denoiser mix
    modes = {d.kind: d.mode_token for d in UL2R}
    assert modes["prefix"] == "[S2S]" and UL2R[1].mode_token == "[NLU]" and UL2R[2].mode_token == "[NLG]"


@pytest.mark.parametrize("kwargs,match", [
    ({"noise_density": 0.0}, r"noise_density \(r\)=0.0"),
    ({"noise_density": 1.0}, r"noise_density \(r\)=1.0"),
    ({"noise_density": -0.2}, r"noise_density \(r\)=-0.2"),
    ({"noise_density": 0.15, "mean_span": 0}, r"mean_span \(mu\)=0"),
    ({"noise_density": 0.15, "mean_span": -3.0}, r"mean_span \(mu\)=-3.0"),
    ({"noise_density": 0.15, "kind": "spam"}, r"kind='spam'"),
    ({"noise_density": 0.15, "weight": -1}, r"weight=-1"),
])
def test_bad_parameters_name_field_and_value(kwargs, match):
    kwargs = {"kind": "span", **kwargs}
    with pytest.raises(ValueError, match=match):
        Denoiser("bad", **kwargs)
