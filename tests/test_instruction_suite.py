"""The embedded instruction suite: enough tasks, answers checked by independent computation."""
import datetime
import re

from flan_ul2r.data.instruction_suite import SUITE, WEEKDAYS, generate


def test_size_and_split():
    assert len(SUITE) >= 20
    held_out = [t for t in SUITE if t.held_out]
    assert 5 <= len(held_out) < len(SUITE) - 10
    assert all(len(t.templates) >= 1 for t in SUITE) and sum(len(t.templates) >= 2 for t in SUITE) >= 15


def test_same_data_every_time_and_train_differs_from_validation():
    for t in SUITE:
        assert generate(t, 20) == generate(t, 20)
        assert generate(t, 20, "train") != generate(t, 20, "validation")


def _nums(s):
    return [int(x) for x in re.findall(r"\d+", s)]


def test_answers_are_correct():
    checks = {
        "add_two": lambda e: int(e["answer"]) == e["a"] + e["b"],
        "add_three": lambda e: int(e["answer"]) == e["a"] + e["b"] + e["c"],
        "subtract": lambda e: int(e["answer"]) == e["a"] - e["b"],
        "multiply": lambda e: int(e["answer"]) == e["a"] * e["b"],
        "count_letter": lambda e: int(e["answer"]) == sum(c == e["letter"] for c in e["word"]),
        "count_words": lambda e: int(e["answer"]) == len(e["text"].split()),
        "sort_numbers": lambda e: _nums(e["answer"]) == sorted(_nums(e["numbers"])),
        "sort_words": lambda e: e["answer"].split() == sorted(e["words"].split()),
        "reverse_word": lambda e: e["answer"] == "".join(reversed(e["word"])),
        "uppercase": lambda e: e["answer"] == e["text"].upper(),
        "last_letters": lambda e: e["answer"] == "".join(w[-1] for w in e["words"].split()),
        "max_of_list": lambda e: int(e["answer"]) == max(_nums(e["numbers"])),
        "min_of_list": lambda e: int(e["answer"]) == min(_nums(e["numbers"])),
        "sum_of_list": lambda e: int(e["answer"]) == sum(_nums(e["numbers"])),
        "list_lookup": lambda e: e["answer"] == e["words"].split(", ")[e["position"] - 1],
        "date_add": lambda e: e["answer"] == (datetime.date.fromisoformat(e["date"])
                                              + datetime.timedelta(days=e["days"])).isoformat(),
        "weekday_after": lambda e: e["answer"] == WEEKDAYS[(WEEKDAYS.index(e["day"]) + e["days"]) % 7],
        "compare_numbers": lambda e: e["answer"] == ("greater" if e["a"] > e["b"] else "smaller"),
        "parity": lambda e: e["answer"] == ("odd" if e["number"] & 1 else "even"),
        "word_problem": lambda e: int(e["answer"]) == sum(_nums(e["question"])),
        "word_problem_cost": lambda e: int(e["answer"]) == _nums(e["question"])[0] * _nums(e["question"])[1],
        "string_length": lambda e: int(e["answer"]) == len(e["word"]),
        "count_vowels": lambda e: int(e["answer"]) == len(re.findall("[aeiou]", e["word"])),
        "remove_vowels": lambda e: e["answer"] == re.sub("[aeiou]", "", e["word"]),
        "boolean_expression": lambda e: e["answer"] == str(_bool(e["expression"])),
    }
    assert {t.name for t in SUITE} == set(checks)
    for t in SUITE:
        for e in generate(t, 200):
            assert checks[t.name](e), (t.name, e)
            assert all(p in e["rationale"] for p in e["answer"].split()), (t.name, e)  # it reaches the answer
            if "options" in e:
                assert e["answer"] in e["options"]


def _bool(expr: str) -> bool:
    m = re.fullmatch(r"\((True|False) (and|or) (True|False)\) (and|or) (True|False)", expr)
    a, op1, b, op2, c = m.groups()
    f = {"and": lambda x, y: x and y, "or": lambda x, y: x or y}
    return f[op2](f[op1](a == "True", b == "True"), c == "True")
