"""Generators of the embedded suite's small tasks: each draws one example from a `random.Random`.

An example is a dict of template fields plus `answer`, a programmatic `rationale` that reaches the
answer, and `options` for classification tasks. Item spaces are large (thousands of distinct items or
more) so that train and validation can be disjoint and held-out tasks have >= 200 validation items.
"""

from __future__ import annotations

import datetime
import random
from typing import Any

from flan_ul2r.data.flan.suite.words import ITEMS, NAMES, WEEKDAYS, WORDS


def example(answer: Any, rationale: str, options: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    out = {**fields, "answer": str(answer), "rationale": rationale}
    if options:
        out["options"] = list(options)
    return out


def _pair(r: random.Random) -> str:
    return " ".join(r.sample(WORDS, 2))


def add_two(r: random.Random) -> dict[str, Any]:
    a, b = r.randint(10, 99), r.randint(10, 99)
    return example(a + b, f"{a} plus {b}: {a} + {b} = {a + b}.", a=a, b=b)


def add_three(r: random.Random) -> dict[str, Any]:
    a, b, c = (r.randint(2, 50) for _ in range(3))
    return example(a + b + c, f"First {a} + {b} = {a + b}, then {a + b} + {c} = {a + b + c}.", a=a, b=b, c=c)


def subtract(r: random.Random) -> dict[str, Any]:
    a, b = r.randint(50, 150), r.randint(1, 49)
    return example(a - b, f"Taking {b} from {a} leaves {a} - {b} = {a - b}.", a=a, b=b)


def multiply(r: random.Random) -> dict[str, Any]:
    a, b = r.randint(2, 499), r.randint(2, 12)
    return example(a * b, f"{a} groups of {b} make {a} * {b} = {a * b}.", a=a, b=b)


def count_letter(r: random.Random) -> dict[str, Any]:
    w, ch = r.choice(WORDS), r.choice("aeiorstnl")
    n = w.count(ch)
    return example(n, f"The letters of {w} are {', '.join(w)}; '{ch}' appears {n} times.", word=w, letter=ch)


def count_words(r: random.Random) -> dict[str, Any]:
    ws = r.sample(WORDS, r.randint(2, 9))
    return example(len(ws), f"Counting the words one by one gives {len(ws)}.", text=" ".join(ws))


def sort_numbers(r: random.Random) -> dict[str, Any]:
    xs = r.sample(range(1, 100), r.randint(3, 6))
    s = sorted(xs)
    return example(
        " ".join(map(str, s)),
        f"The smallest is {s[0]}, then {', '.join(map(str, s[1:]))}.",
        numbers=" ".join(map(str, xs)),
    )


def sort_words(r: random.Random) -> dict[str, Any]:
    ws = r.sample(WORDS, r.randint(3, 5))
    s = sorted(ws)
    return example(" ".join(s), f"In alphabetical order: {', '.join(s)}.", words=" ".join(ws))


def reverse_word(r: random.Random) -> dict[str, Any]:
    w = _pair(r)
    return example(w[::-1], f"Reading '{w}' from its last letter to its first gives {w[::-1]}.", word=w)


def uppercase(r: random.Random) -> dict[str, Any]:
    ws = _pair(r)
    return example(ws.upper(), f"Each letter of '{ws}' in capitals is {ws.upper()}.", text=ws)


def last_letters(r: random.Random) -> dict[str, Any]:
    ws = r.sample(WORDS, 3)
    out = "".join(w[-1] for w in ws)
    return example(
        out,
        "The last letters are " + ", ".join(f"{w[-1]} ({w})" for w in ws) + f", together {out}.",
        words=" ".join(ws),
    )


def boolean_expression(r: random.Random) -> dict[str, Any]:
    """(((A op B) op C) op D) [op E] with optional `not` on each literal, evaluated left to right."""
    size = r.choice([4, 5])
    literals = [(r.random() < 0.3, r.choice([True, False])) for _ in range(size)]
    ops = [r.choice(["and", "or"]) for _ in range(size - 1)]
    values = [v != neg for neg, v in literals]
    text = [("not " if neg else "") + str(v) for neg, v in literals]
    value, steps = values[0], []
    for op, term, v in zip(ops, text[1:], values[1:]):
        new = (value and v) if op == "and" else (value or v)
        steps.append(f"{value} {op} {term} is {new}")
        value = new
    expression = f"{text[0]} {ops[0]} {text[1]}"
    for op, term in zip(ops[1:], text[2:]):
        expression = f"({expression}) {op} {term}"
    return example(value, "; ".join(steps) + ".", ["True", "False"], expression=expression)


def max_of_list(r: random.Random) -> dict[str, Any]:
    xs = r.sample(range(1, 200), r.randint(3, 7))
    return example(
        max(xs), f"Comparing the numbers, the largest is {max(xs)}.", numbers=", ".join(map(str, xs))
    )


def min_of_list(r: random.Random) -> dict[str, Any]:
    xs = r.sample(range(1, 200), r.randint(3, 7))
    return example(
        min(xs), f"Comparing the numbers, the smallest is {min(xs)}.", numbers=", ".join(map(str, xs))
    )


def sum_of_list(r: random.Random) -> dict[str, Any]:
    xs = [r.randint(1, 20) for _ in range(r.randint(3, 5))]
    return example(
        sum(xs), f"Adding them up: {' + '.join(map(str, xs))} = {sum(xs)}.", numbers=", ".join(map(str, xs))
    )


def list_lookup(r: random.Random) -> dict[str, Any]:
    ws = r.sample(WORDS, 5)
    i = r.randint(1, 5)
    return example(
        ws[i - 1], f"Counting from the left, item {i} is {ws[i - 1]}.", words=", ".join(ws), position=i
    )


def date_add(r: random.Random) -> dict[str, Any]:
    start = datetime.date(2020, 1, 1) + datetime.timedelta(days=r.randint(0, 1500))
    n = r.randint(1, 40)
    end = start + datetime.timedelta(days=n)
    return example(
        end.isoformat(),
        f"{n} days after {start.isoformat()} is {end.isoformat()}.",
        date=start.isoformat(),
        days=n,
    )


def weekday_after(r: random.Random) -> dict[str, Any]:
    d, n = r.randrange(7), r.randint(1, 400)
    out = WEEKDAYS[(d + n) % 7]
    return example(
        out,
        f"{n} days is {n // 7} weeks and {n % 7} days; {WEEKDAYS[d]} + {n % 7} days is {out}.",
        list(WEEKDAYS),
        day=WEEKDAYS[d],
        days=n,
    )


def compare_numbers(r: random.Random) -> dict[str, Any]:
    a, b = r.sample(range(1, 1000), 2)
    ans = "greater" if a > b else "smaller"
    return example(
        ans,
        f"{a} is {'more' if a > b else 'less'} than {b}, so it is {ans}.",
        ["greater", "smaller"],
        a=a,
        b=b,
    )


def parity(r: random.Random) -> dict[str, Any]:
    n = r.randint(1, 9999)
    ans = "even" if n % 2 == 0 else "odd"
    return example(ans, f"The last digit of {n} is {n % 10}, so {n} is {ans}.", ["even", "odd"], number=n)


def word_problem(r: random.Random) -> dict[str, Any]:
    name, item, a, b = r.choice(NAMES), r.choice(ITEMS), r.randint(2, 40), r.randint(2, 40)
    return example(
        a + b,
        f"{name} starts with {a} {item} and gets {b} more: {a} + {b} = {a + b}.",
        question=f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?",
    )


def word_problem_cost(r: random.Random) -> dict[str, Any]:
    name, item, n, p = r.choice(NAMES), r.choice(ITEMS), r.randint(2, 9), r.randint(2, 15)
    return example(
        n * p,
        f"{n} {item} at {p} dollars each cost {n} * {p} = {n * p} dollars.",
        question=f"{name} buys {n} {item} for {p} dollars each. How many dollars does {name} spend?",
    )


def string_length(r: random.Random) -> dict[str, Any]:
    w = "".join(r.sample(WORDS, 2))
    return example(len(w), f"Spelling {w}: {', '.join(w)} - that is {len(w)} letters.", word=w)


def count_vowels(r: random.Random) -> dict[str, Any]:
    w = _pair(r)
    vowels = [c for c in w if c in "aeiou"]
    return example(len(vowels), f"The vowels of '{w}' are {', '.join(vowels)}: {len(vowels)} in all.", word=w)


def remove_vowels(r: random.Random) -> dict[str, Any]:
    w = _pair(r)
    out = "".join(c for c in w if c not in "aeiou")
    return example(out, f"Dropping a, e, i, o and u from '{w}' leaves {out}.", word=w)
