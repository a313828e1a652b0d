"""The embedded instruction suite: disjoint splits, enough held-out items, answers checked by independent
computation from the question text."""

import datetime
import functools
import re

import pytest

from flan_ul2r.data.flan.suite.tasks import SUITE, SUITE_SIZES, generate, item_key
from flan_ul2r.data.flan.suite.words import OBJECT_KINDS, WEEKDAYS
from flan_ul2r.data.flan.templates import render

TASKS = {t.name: t for t in SUITE}


@functools.cache
def splits(name: str) -> tuple[list, list]:
    """The task's train and validation splits, generated once, when a test first asks (not at collection:
    all of them take seconds, and every pytest-xdist worker collects this file)."""
    task = TASKS[name]
    return generate(task, SUITE_SIZES["train"]), generate(task, SUITE_SIZES["validation"], "validation")


def test_size_families_and_templates():
    held_out = [t for t in SUITE if t.held_out]
    assert 10 <= len(held_out) < len(SUITE) - 10
    assert {t.family for t in SUITE if not t.held_out} == {"muffin", "t0sf", "niv2", "cot"}
    assert all(len(t.templates) >= 3 for t in SUITE if not t.held_out)
    assert all(len(t.templates) >= 2 for t in held_out)


@pytest.mark.parametrize("task", SUITE, ids=lambda t: t.name)
def test_train_and_validation_are_disjoint_and_full(task):
    train, validation = splits(task.name)
    train_keys, validation_keys = {item_key(e) for e in train}, {item_key(e) for e in validation}
    assert not train_keys & validation_keys
    # the texts a model sees are disjoint too (template 0, options listed in their order)
    text = lambda e: render(e, task.templates[0], "zs_opt")[0]  # noqa: E731
    assert not {text(e) for e in train} & {text(e) for e in validation}
    # every item distinct within a split; the mixture weights assume the full train size
    assert len(train_keys) == len(train) == SUITE_SIZES["train"]
    assert len(validation_keys) == len(validation) == SUITE_SIZES["validation"] >= 200


def test_same_data_every_time():
    for t in SUITE[:5]:
        assert generate(t, 30) == splits(t.name)[0][:30]


def _nums(s):
    return [int(x) for x in re.findall(r"\d+", s)]


def _bool(expr: str) -> bool:
    """Left-to-right evaluation of '(((a op b) op c) op d)' with optional 'not', parsed from the text."""
    tokens = expr.replace("(", " ").replace(")", " ").split()
    values, ops, negate = [], [], False
    for tok in tokens:
        if tok == "not":
            negate = True
        elif tok in ("and", "or"):
            ops.append(tok)
        else:
            values.append((tok == "True") != negate)
            negate = False
    value = values[0]
    for op, v in zip(ops, values[1:]):
        value = (value and v) if op == "and" else (value or v)
    return value


def _multiple_choice(e) -> str:
    opts, q = e["options"], e["question"]
    if "prime" in q:
        right = [o for o in opts if all(int(o) % d for d in range(2, int(o)))]
    elif "multiplied" in q:
        a, b = _nums(q)
        right = [o for o in opts if int(o) == a * b]
    elif "alphabetical" in q:
        right = [sorted(opts)[0]]
    else:
        right = [max(opts, key=int)]
    assert len(right) == 1, e
    return right[0]


def _arithmetic(e) -> int:
    n = _nums(e["question"])
    return {
        "packs": lambda: n[0] * n[1] - n[2] - n[3],
        "change": lambda: n[2] - n[0] * n[1],
        "pages": lambda: n[0] + 2 * n[0] + 2 * n[0] - n[1],
        "rooms": lambda: (n[0] - n[1]) // n[2],
    }[e["kind"]]()


def _count_objects(e) -> int:
    words = {w: i for i, w in enumerate(["a", "two", "three", "four"], 1)}
    total = 0
    for part in re.split(r", and |, ", e["objects"]):
        count, name = part.split(" ", 1)
        singular = name[:-1] if count != "a" else name
        total += words[count] * (singular in OBJECT_KINDS[e["kind"]])
    return total


def _track(e) -> str:
    q = e["question"]
    holds = dict(re.findall(r"(\w+) has an? (\w+) ball", q))
    for a, b in re.findall(r"(\w+) and (\w+) swap balls", q):
        holds[a], holds[b] = holds[b], holds[a]
    return holds[re.search(r"which ball does (\w+) have", q).group(1)] + " ball"


def _navigate(e) -> str:
    position, facing = 0, 1
    for move in e["instructions"].split(". "):
        if move.startswith("Turn around"):
            facing = -facing
        else:
            position += facing * _nums(move)[0]
    return "Yes" if position == 0 else "No"


CHECKS = {
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
    "date_add": lambda e: (
        e["answer"]
        == (datetime.date.fromisoformat(e["date"]) + datetime.timedelta(days=e["days"])).isoformat()
    ),
    "weekday_after": lambda e: e["answer"] == WEEKDAYS[(WEEKDAYS.index(e["day"]) + e["days"]) % 7],
    "compare_numbers": lambda e: e["answer"] == ("greater" if e["a"] > e["b"] else "smaller"),
    "parity": lambda e: e["answer"] == ("odd" if e["number"] & 1 else "even"),
    "word_problem": lambda e: int(e["answer"]) == sum(_nums(e["question"])),
    "word_problem_cost": lambda e: int(e["answer"]) == _nums(e["question"])[0] * _nums(e["question"])[1],
    "string_length": lambda e: int(e["answer"]) == len(e["word"]),
    "count_vowels": lambda e: int(e["answer"]) == len(re.findall("[aeiou]", e["word"])),
    "remove_vowels": lambda e: e["answer"] == re.sub("[aeiou]", "", e["word"]),
    "boolean_expression": lambda e: e["answer"] == str(_bool(e["expression"])),
    "multiple_choice": lambda e: e["answer"] == _multiple_choice(e) and len(set(e["options"])) == 4,
    "multi_step_arithmetic": lambda e: int(e["answer"]) == _arithmetic(e) > 0,
    "object_counting": lambda e: int(e["answer"]) == _count_objects(e),
    "tracking_swaps": lambda e: e["answer"] == _track(e),
    "navigate": lambda e: e["answer"] == _navigate(e),
}


@pytest.mark.parametrize("task", SUITE, ids=lambda t: t.name)
def test_answers_are_correct(task):
    assert task.name in CHECKS
    for e in splits(task.name)[0][:300] + splits(task.name)[1]:
        assert CHECKS[task.name](e), (task.name, e)
        assert all(p in e["rationale"] for p in e["answer"].split()), (task.name, e)  # it reaches the answer
        if "options" in e:
            assert e["answer"] in e["options"]


def test_benchmark_shaped_tasks_vary():
    mc = splits("multiple_choice")[1]
    assert {e["kind"] for e in mc} == {"prime", "product", "alphabetical", "largest"}
    assert {e["options"].index(e["answer"]) for e in mc} == {0, 1, 2, 3}  # the right letter moves
    steps = [e["rationale"].count("=") for e in splits("multi_step_arithmetic")[1]]
    assert min(steps) >= 2  # GSM8K's shape: at least two computation steps
    assert {e["answer"] for e in splits("navigate")[1]} == {"Yes", "No"}
