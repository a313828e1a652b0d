"""Self-consistency: sample N chains of thought, take the majority answer (Wang et al. 2022,
"Self-Consistency Improves Chain of Thought Reasoning in Language Models", section 2: marginalise over
reasoning paths by a majority vote over the final answers; they sampled 40 paths).

The Flan paper (Chung et al. 2022, section 4.1, "CoT + SC") does not state its N; ours is a gin setting.

Votes are counted on normalised answers (`metrics.normalize_answer`: "18", "18.0" and "$18" are one vote).
Samples with no extractable answer do not vote. Ties go to the tied answer whose first vote came earliest
(sample order is seeded, so the result is deterministic); no votes at all gives None.
"""
from __future__ import annotations

from collections.abc import Sequence

from flan_ul2r.evaluation.metrics import normalize_answer


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most frequent answer (as first written); ties -> the earliest first occurrence."""
    counts: dict[str, int] = {}
    first: dict[str, tuple[int, str]] = {}
    for i, a in enumerate(answers):
        if a is None:
            continue
        key = normalize_answer(a)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, (i, a))
    if not counts:
        return None
    best = max(counts, key=lambda k: (counts[k], -first[k][0]))
    return first[best][1]
