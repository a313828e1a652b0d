"""Metrics: exact match, accuracy, SQuAD/TyDiQA F1, and the Flan paper's normalized average.

Scores are percentages (0-100), as the papers print them.
"""
from __future__ import annotations

import collections
import re
import string
from collections.abc import Iterable, Mapping, Sequence

from flan_ul2r.evaluation.extract import normalize_number

# Chung et al. 2022 ("Scaling Instruction-Finetuned Language Models"), section 2.3 and its footnote on the
# normalized average: the macro-average of these six scores, each scaled as (x - random) / (100 - random).
NORMALIZED_AVERAGE_COMPONENTS = ("MMLU-Direct", "MMLU-CoT", "BBH-Direct", "BBH-CoT", "TyDiQA-Direct",
                                 "MGSM-CoT")
MMLU_RANDOM = 25.0  # four options (Hendrycks et al. 2021)
GENERATIVE_RANDOM = 0.0  # TyDiQA and MGSM have no fixed answer set: random = 0 (Chung et al. 2022, 2.3)


def normalize_answer(text: str | None) -> str:
    """Exact-match normalisation: numbers to canonical form, else lower-case, collapsed whitespace, no
    trailing period."""
    if text is None:
        return ""
    num = normalize_number(text)
    if num is not None:
        return num
    t = " ".join(text.lower().split())
    return t[:-1].rstrip() if t.endswith(".") else t


def exact_match(prediction: str | None, references: Sequence[str]) -> bool:
    got = normalize_answer(prediction)
    return prediction is not None and any(got == normalize_answer(r) for r in references)


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 `normalize_answer` (used by TyDiQA GoldP's evaluation): lower case, no punctuation, no
    English articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(prediction: str, reference: str) -> float:
    """SQuAD v1.1 token F1 (0-1)."""
    pred, ref = squad_normalize(prediction).split(), squad_normalize(reference).split()
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_scores(prediction: str | None, references: Sequence[str]) -> tuple[bool, float]:
    """(exact match, F1) against the best of several gold answers, SQuAD style."""
    if prediction is None or not references:
        return False, 0.0
    em = any(squad_normalize(prediction) == squad_normalize(r) for r in references)
    return em, max(squad_f1(prediction, r) for r in references)


def mean_percent(values: Iterable[float]) -> float:
    values = [float(v) for v in values]
    return 100.0 * sum(values) / len(values) if values else float("nan")


def normalize_score(score: float, random: float) -> float:
    """(x - random) / (100 - random) * 100 (Chung et al. 2022, section 2.3 footnote)."""
    if not 0 <= random < 100:
        raise ValueError(f"random baseline {random} must be in [0, 100)")
    return (score - random) / (100.0 - random) * 100.0


def normalized_average(scores: Mapping[str, float], randoms: Mapping[str, float]
                       ) -> dict[str, object]:
    """The Flan paper's normalized average over the six components; `value` is None (and `missing` lists
    them) unless all six scores are present."""
    missing = [c for c in NORMALIZED_AVERAGE_COMPONENTS if c not in scores]
    parts = {c: normalize_score(scores[c], randoms[c]) for c in NORMALIZED_AVERAGE_COMPONENTS if c in scores}
    value = None if missing else sum(parts.values()) / len(parts)
    return {"value": value, "normalized": parts, "random": {c: randoms[c] for c in parts},
            "missing": missing}
