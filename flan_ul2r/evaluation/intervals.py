"""95% intervals for evaluation scores, and paired intervals for the difference between two models.

- A proportion (accuracy, exact match) of n examples: the Wilson score interval (Wilson 1927; Brown, Cai and
  DasGupta 2001 recommend it over the normal approximation for small n or scores near 0 or 1).
- Anything else - a mean F1, a macro average over tasks, a loss per token: the percentile bootstrap
  (Efron and Tibshirani 1993, chapter 13), resampling examples inside each stratum (task) so every
  task keeps its size, as the score itself is computed.
- The difference between two models on the same examples: the paired bootstrap (Koehn 2004, "Statistical
  Significance Tests for Machine Translation Evaluation"): one resample of example indices is applied to
  both models, so what the two share (the examples' difficulty) cancels. The difference is significant
  when its interval excludes 0.

Scores are on the scale they are given (percent for accuracies); resampling is seeded, so a report is
reproducible. Data are strata: a list of per-task arrays, [n] values or [n, 2] (numerator, denominator)
rows for a ratio such as a loss per token.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
NUM_RESAMPLES = 2000  # percentile intervals need ~1000-2000 resamples (Efron and Tibshirani 1993, 13.3)
SEED = 0
KINDS = ("micro", "macro", "ratio")


def z_value(confidence: float = CONFIDENCE) -> float:
    """The two-sided standard normal quantile (1.959964 for 95%)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion, as fractions in [0, 1]; (nan, nan) for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= successes <= n:
        raise ValueError(f"wilson: {successes} successes out of {n}")
    z, p = z_value(confidence), successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def wilson_percent(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    low, high = wilson(successes, n, confidence)
    return 100.0 * low, 100.0 * high


def _strata(strata: Sequence[Sequence[float]] | Sequence[np.ndarray], kind: str) -> list[np.ndarray]:
    if kind not in KINDS:
        raise ValueError(f"bootstrap: kind {kind!r} is not one of {KINDS}")
    out = [np.asarray(s, np.float64) for s in strata]
    out = [s for s in out if len(s)]
    if kind == "ratio" and any(s.ndim != 2 or s.shape[1] != 2 for s in out):
        raise ValueError("bootstrap: a ratio needs [n, 2] (numerator, denominator) rows per stratum")
    return out


def statistic(strata: Sequence[np.ndarray], kind: str) -> float:
    """The score the data give: `micro` = mean over all values, `macro` = mean of the strata's means,
    `ratio` = sum of numerators / sum of denominators."""
    s = _strata(strata, kind)
    if not s:
        return math.nan
    if kind == "micro":
        return float(np.concatenate(s).mean())
    if kind == "macro":
        return float(np.mean([x.mean() for x in s]))
    total = np.sum([x.sum(axis=0) for x in s], axis=0)
    return float(total[0] / total[1])


def _resampled_sums(strata: list[np.ndarray], draws: list[np.ndarray]) -> list[np.ndarray]:
    """Per stratum, the sums of each resample: [R] (or [R, 2] for ratio rows)."""
    return [x[idx].sum(axis=1) for x, idx in zip(strata, draws)]


def _combine(sums: list[np.ndarray], sizes: list[int], kind: str) -> np.ndarray:
    if kind == "micro":
        return np.sum(sums, axis=0) / sum(sizes)
    if kind == "macro":
        return np.mean([s / n for s, n in zip(sums, sizes)], axis=0)
    total = np.sum(sums, axis=0)
    return total[:, 0] / total[:, 1]


def _draws(sizes: Sequence[int], num_resamples: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=(num_resamples, n)) for n in sizes]


def bootstrap_samples(strata: Sequence[Sequence[float]] | Sequence[np.ndarray], kind: str = "micro", *,
                      num_resamples: int = NUM_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """[num_resamples] values of the statistic, each on examples resampled with replacement inside every
    stratum."""
    s = _strata(strata, kind)
    if not s:
        return np.full(num_resamples, math.nan)
    sizes = [len(x) for x in s]
    return _combine(_resampled_sums(s, _draws(sizes, num_resamples, seed)), sizes, kind)


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    samples = np.asarray(samples, np.float64)
    if samples.size == 0 or np.isnan(samples).all():
        return math.nan, math.nan
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(strata: Sequence[Sequence[float]] | Sequence[np.ndarray], kind: str = "micro", *,
              num_resamples: int = NUM_RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE
              ) -> tuple[float, float]:
    """The percentile bootstrap interval of `statistic(strata, kind)`."""
    return percentile_interval(bootstrap_samples(strata, kind, num_resamples=num_resamples, seed=seed),
                               confidence)


def paired_bootstrap(a: Sequence[np.ndarray], b: Sequence[np.ndarray], kind: str = "micro", *,
                     num_resamples: int = NUM_RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE
                     ) -> tuple[float, float, float]:
    """(statistic(a) - statistic(b), interval low, high): `a` and `b` hold the two models' values on the
    same examples in the same order (stratum by stratum), and every resample uses one draw for both."""
    sa, sb = _strata(a, kind), _strata(b, kind)
    if [len(x) for x in sa] != [len(x) for x in sb]:
        raise ValueError("paired bootstrap: the two models' strata must hold the same examples "
                         f"({[len(x) for x in sa]} vs {[len(x) for x in sb]})")
    if not sa:
        return math.nan, math.nan, math.nan
    sizes = [len(x) for x in sa]
    draws = _draws(sizes, num_resamples, seed)
    diffs = (_combine(_resampled_sums(sa, draws), sizes, kind)
             - _combine(_resampled_sums(sb, draws), sizes, kind))
    low, high = percentile_interval(diffs, confidence)
    return statistic(sa, kind) - statistic(sb, kind), low, high


def significant(low: float, high: float) -> bool:
    """The interval excludes 0 (and is defined)."""
    return not (math.isnan(low) or math.isnan(high)) and (low > 0 or high < 0)
