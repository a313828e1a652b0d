"""T5 random_spans_noise_mask / random_prefix_noise_mask semantics (public T5 code)."""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from flan_ul2r.data.ul2.noise import random_prefix_pivot, random_spans_noise_mask


def runs(mask: np.ndarray) -> list[tuple[bool, int]]:
    return [(bool(k), len(list(g))) for k, g in itertools.groupby(mask)]


def t5_counts(length: int, r: float, mu: float) -> tuple[int, int]:
    """Independent python arithmetic of T5: round half to even on float32 products."""
    noise = min(max(int(np.round(np.float32(length) * np.float32(r))), 1), length - 1)
    return noise, max(int(np.round(np.float32(noise) / np.float32(mu))), 1)


def mask(length, r, mu, seed) -> np.ndarray:
    return random_spans_noise_mask(length, r, mu, tf.constant(seed, tf.int64)).numpy()


@pytest.mark.parametrize("length,r,mu", [(512, 0.15, 3), (377, 0.5, 3), (1000, 0.15, 32), (64, 0.5, 8),
                                         (9, 0.15, 3), (2, 0.5, 3)])
def test_mask_structure_matches_t5(length, r, mu):
    noise, spans = t5_counts(length, r, mu)
    for s in range(5):
        m = mask(length, r, mu, [s, 7])
        assert m.shape == (length,) and m.sum() == noise
        rs = runs(m)
        assert rs[0][0] is False, "non-noise comes first (no roll)"
        assert sum(1 for k, _ in rs if k) == spans
        assert rs[-1][0] is True  # T5 interleaving ends with a noise span


def many(fn, n: int) -> np.ndarray:
    """fn(seed) for seeds [s, 1], s < n, in one tf.data pass (fast)."""
    ds = tf.data.Dataset.range(n).map(lambda s: fn(tf.stack([s, tf.constant(1, tf.int64)])))
    return np.stack(list(ds.batch(n).as_numpy_iterator())[0])


def test_segmentation_is_uniform_over_all_masks():
    # L=10, r=0.3, mu=1.5: 3 noise tokens in 2 spans (2 ways), 7 non-noise in 2 segments (6 ways):
    # T5's segmentation makes the 12 masks equally likely.
    counts = Counter(map(tuple, many(lambda sd: random_spans_noise_mask(10, 0.3, 1.5, sd), 2400)))
    assert len(counts) == 12
    for c in counts.values():
        assert abs(c - 200) < 4 * np.sqrt(200), counts


def test_same_seed_same_mask_other_seed_differs():
    a, b, c = mask(512, 0.15, 3, [1, 2]), mask(512, 0.15, 3, [1, 2]), mask(512, 0.15, 3, [1, 3])
    assert (a == b).all() and (a != c).any()


@pytest.mark.parametrize("d,length", [(0.5, 20), (0.25, 21)])
def test_prefix_pivot_range_and_uniformity(d, length):
    lo = max(1, int(round((1 - 2 * d) * (length - 1))))
    pivots = Counter(many(lambda sd: random_prefix_pivot(length, d, sd), 2000).tolist())
    assert set(pivots) == set(range(lo, length)), "U[max(1, round((1-2d)(L-1))), L-1]"
    expected = 2000 / (length - lo)
    assert all(abs(c - expected) < 5 * np.sqrt(expected) for c in pivots.values())


def test_prefix_rejects_density_above_half():
    with pytest.raises(ValueError, match="noise_density=0.6"):
        random_prefix_pivot(10, 0.6, tf.constant([0, 0], tf.int64))
