"""Answer extraction on realistic outputs written in each benchmark's answer style
(tests/fixtures/eval/model_outputs.jsonl: MMLU letters, BBH target forms, GSM8K/MGSM numbers, TyDiQA
spans)."""
import json
from pathlib import Path

import pytest

from flan_ul2r.evaluation.extract import (
    answer_span,
    bbh_shape,
    extract,
    last_number,
    option_letter,
    option_text,
)

CASES = [json.loads(line) for line in
         (Path(__file__).parent / "fixtures" / "eval" / "model_outputs.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['bench']}-{i}" for i, c in enumerate(CASES)])
def test_extract_realistic_outputs(case):
    got = extract(case["output"], case["shape"], cot=case["cot"], target=case.get("target", ""),
                  letters="ABCD" if case["shape"] == "letter" else "ABCDEFGHIJKLMNOPQR")
    assert got == case["expected"]


def test_answer_span_takes_the_last_statement():
    out = "Maybe the answer is 3? Checking again: 4 + 1 = 5. So the answer is 5.\n\nQ: another question"
    assert answer_span(out) == "5"
    assert answer_span("no conclusion here") is None


def test_last_number_forms():
    assert last_number("It costs $1,234.50 in total") == "1234.5"
    assert last_number("from -3 to 7.0") == "7"
    assert last_number("no digits") is None


def test_option_letter_preferences():
    assert option_letter("(A) is wrong because ...; the answer is (C)") == "C"   # explicit beats first paren
    assert option_letter("(B) Paris") == "B"
    assert option_letter("E", "ABCD") is None                                    # not one of the letters


def test_option_text_whole_words_and_order():
    opts = ["Monday", "Tuesday", "Sunday"]
    assert option_text("It will be Sunday, not Monday", opts) == "Sunday"
    assert option_text("It will be Sunday, not Monday", opts, last=True) == "Monday"
    assert option_text("Sundays are nice", opts) is None


def test_bbh_shapes():
    assert [bbh_shape(t) for t in ("(A)", "True", "invalid", "No", "-27", "] ) }")] == [
        "paren", "bool", "validity", "yesno", "number", "words"]


def test_unknown_shape_is_an_error():
    with pytest.raises(ValueError, match="unknown answer shape 'nope'"):
        extract("x", "nope", cot=False)
