"""95% intervals (flan_ul2r/evaluation/intervals.py) against hand computations and published values."""
import math

import numpy as np
import pytest

from flan_ul2r.evaluation import intervals


@pytest.mark.parametrize("successes, n, low, high", [
    # Newcombe 1998, "Two-sided confidence intervals for the single proportion", Table I, method 3 (Wilson)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0)])
def test_wilson_matches_published_values(successes, n, low, high):
    got = intervals.wilson(successes, n)
    assert got == pytest.approx((low, high), abs=6e-5)


def test_wilson_by_hand():
    """8 of 10, z = 1.959964: centre (p + z^2/2n) / (1 + z^2/n), half-width z/(1 + z^2/n) sqrt(p(1-p)/n +
    z^2/4n^2) = 0.99207 / 1.38415 -/+ (1.95996 / 1.38415) x 0.16001 = 0.716740 -/+ 0.226578."""
    assert intervals.z_value() == pytest.approx(1.959964, abs=1e-6)
    assert intervals.wilson(8, 10) == pytest.approx((0.716740 - 0.226578, 0.716740 + 0.226578), abs=3e-6)
    assert intervals.wilson_percent(8, 10) == pytest.approx((49.0162, 94.3318), abs=3e-4)
    assert all(math.isnan(x) for x in intervals.wilson(0, 0))
    with pytest.raises(ValueError, match="11 successes out of 10"):
        intervals.wilson(11, 10)


def test_bootstrap_of_two_values_by_hand():
    """Resampling [0, 100] twice gives means 0, 50, 100 with chances 1/4, 1/2, 1/4: the 2.5th and 97.5th
    percentiles are 0 and 100."""
    assert intervals.bootstrap([[0.0, 100.0]]) == (0.0, 100.0)
    samples = intervals.bootstrap_samples([[0.0, 100.0]], num_resamples=20_000)
    shares = [np.mean(samples == v) for v in (0.0, 50.0, 100.0)]
    assert shares == pytest.approx([0.25, 0.5, 0.25], abs=4 * math.sqrt(0.25 / 20_000))


def test_bootstrap_of_a_mean_matches_the_normal_interval():
    """n = 400 values: the percentile interval is mean +/- 1.96 sd / sqrt(n) (normal theory, by hand) to
    within a few percent of its width (the bootstrap's own Monte Carlo error at 2000 resamples)."""
    values = np.random.default_rng(1).normal(50.0, 20.0, size=400)
    half = 1.959964 * values.std(ddof=0) / math.sqrt(400)
    low, high = intervals.bootstrap([values])
    assert low == pytest.approx(values.mean() - half, abs=0.08 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.08 * half)


def test_macro_bootstrap_resamples_inside_each_task_and_ratio_is_a_ratio():
    always, never = [100.0] * 10, [0.0] * 10
    assert intervals.statistic([always, never], "macro") == 50.0
    assert intervals.bootstrap([always, never], "macro") == (50.0, 50.0)  # each task keeps its score
    pooled = intervals.bootstrap([always + never], "micro")
    assert pooled[0] < 40 and pooled[1] > 60  # one pooled task varies
    rows = [[[2.0, 1.0], [6.0, 3.0]]]  # nll 8 over 4 tokens
    assert intervals.statistic(rows, "ratio") == 2.0 and intervals.bootstrap(rows, "ratio") == (2.0, 2.0)
    assert intervals.statistic([[1.0, 2.0, 3.0], [10.0]], "micro") == 4.0
    assert intervals.statistic([[1.0, 2.0, 3.0], [10.0]], "macro") == 6.0
    with pytest.raises(ValueError, match="kind 'mean'"):
        intervals.bootstrap([always], "mean")


def test_paired_bootstrap_is_seeded_and_covers_zero_for_identical_predictions():
    rng = np.random.default_rng(0)
    a = [100.0 * (rng.random(60) < 0.6), 100.0 * (rng.random(40) < 0.3)]
    b = [100.0 * (rng.random(60) < 0.4), 100.0 * (rng.random(40) < 0.3)]
    first = intervals.paired_bootstrap(a, b, "macro", seed=7)
    assert intervals.paired_bootstrap(a, b, "macro", seed=7) == first
    assert intervals.paired_bootstrap(a, b, "macro", seed=8) != first
    assert first[0] == pytest.approx(intervals.statistic(a, "macro") - intervals.statistic(b, "macro"))
    same = intervals.paired_bootstrap(a, [x.copy() for x in a], "macro")
    assert same == (0.0, 0.0, 0.0) and not intervals.significant(same[1], same[2])
    with pytest.raises(ValueError, match="same examples"):
        intervals.paired_bootstrap(a, [b[0]], "macro")


def test_pairing_removes_what_both_models_share():
    """b = a with every 10th example flipped to wrong: the paired interval is narrow and excludes 0, while
    the two unpaired intervals overlap."""
    a = 100.0 * (np.random.default_rng(3).random(300) < 0.5)
    b = a.copy()
    b[::10] = 0.0
    diff, low, high = intervals.paired_bootstrap([a], [b])
    assert diff > 0 and intervals.significant(low, high)
    a_low, a_high = intervals.wilson_percent(a.sum() / 100, 300)
    b_low, b_high = intervals.wilson_percent(b.sum() / 100, 300)
    assert a_low < b_high and high - low < (a_high - a_low) / 2
