"""Metrics (exact match, SQuAD F1), the Flan normalized average against a hand computation, and the
self-consistency vote with its ties."""
import math

import pytest

from flan_ul2r.evaluation.metrics import (
    exact_match,
    normalize_score,
    normalized_average,
    squad_f1,
    squad_scores,
)
from flan_ul2r.evaluation.vote import majority_vote


def test_normalized_average_by_hand():
    scores = {"MMLU-Direct": 55.0, "MMLU-CoT": 40.0, "BBH-Direct": 45.0, "BBH-CoT": 51.0,
              "TyDiQA-Direct": 20.0, "MGSM-CoT": 10.0}
    randoms = {"MMLU-Direct": 25.0, "MMLU-CoT": 25.0, "BBH-Direct": 30.0, "BBH-CoT": 30.0,
               "TyDiQA-Direct": 0.0, "MGSM-CoT": 0.0}
    # (55-25)/75 = 40%, (40-25)/75 = 20%, (45-30)/70 = 150/7 %, (51-30)/70 = 30%, 20/100 = 20%, 10/100 = 10%
    # mean = (40 + 20 + 150/7 + 30 + 20 + 10) / 6 = (120 + 150/7) / 6 = (990/7) / 6 = 165/7
    out = normalized_average(scores, randoms)
    assert out["missing"] == []
    assert out["normalized"]["BBH-Direct"] == pytest.approx(150 / 7)
    assert out["value"] == pytest.approx(165 / 7)


def test_normalized_average_needs_all_six():
    out = normalized_average({"MMLU-Direct": 60.0}, {"MMLU-Direct": 25.0})
    assert out["value"] is None and len(out["missing"]) == 5
    assert out["normalized"]["MMLU-Direct"] == pytest.approx(100 * 35 / 75)


def test_normalize_score_rejects_bad_random():
    with pytest.raises(ValueError, match="random baseline 100"):
        normalize_score(50, 100)


def test_exact_match_normalisation():
    assert exact_match("$18.00", ["18"])
    assert exact_match("Costume Counterpart Oven.", ["costume counterpart oven"])
    assert not exact_match(None, ["18"]) and not exact_match("19", ["18"])


def test_squad_f1_by_hand():
    # prediction tokens after normalisation: [eiffel, tower, in, paris]; reference: [eiffel, tower]
    # overlap 2: precision 2/4, recall 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert squad_f1("The Eiffel Tower, in Paris", "Eiffel Tower") == pytest.approx(2 / 3)
    em, f1 = squad_scores("the Eiffel tower!", ["Paris", "Eiffel Tower"])
    assert em and f1 == 1.0
    assert squad_scores(None, ["x"]) == (False, 0.0)


def test_vote_majority_and_normalised_counting():
    assert majority_vote(["18", "17", "18.0", "$18", "17"]) == "18"      # 18 counted three times


def test_vote_ties_go_to_the_earliest_answer():
    assert majority_vote(["5", "7", "7", "5"]) == "5"
    assert majority_vote(["7", "5", "5", "7"]) == "7"
    assert majority_vote([None, "B", None, "C"]) == "B"


def test_vote_ignores_missing_answers():
    assert majority_vote([None, None, "C"]) == "C"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_nan_mean_for_empty():
    from flan_ul2r.evaluation.metrics import mean_percent

    assert math.isnan(mean_percent([]))
