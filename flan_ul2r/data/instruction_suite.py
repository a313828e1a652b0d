"""The embedded instruction suite: 25 generated tasks with verifiable answers and programmatic
chain-of-thought rationales, split into held-in tasks (trained on, in the `flan` mixture) and held-out
tasks (`flan_heldout`, only evaluated), so a default run can show instruction tuning generalising to tasks
it never saw (the Flan paper's held-out evaluation, section 2.3, in miniature).

Everything is generated from a fixed seed with Python's `random`, so every machine makes the same data.
Each example is a dict of template fields plus `answer`, `rationale` and, for classification tasks,
`options`.
"""
from __future__ import annotations

import dataclasses
import datetime
import random
from collections.abc import Callable
from typing import Any

from flan_ul2r.data.templates import Template

SUITE_SEED = 20221020  # fixed: the same suite on every machine
WORDS = ("apple", "river", "stone", "cloud", "tiger", "maple", "piano", "orbit", "lemon", "candle", "forest",
         "planet", "silver", "garden", "rocket", "window", "butter", "violet", "bridge", "summer")
NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goro", "Hana")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclasses.dataclass(frozen=True)
class SuiteTask:
    name: str
    make: Callable[[random.Random], dict[str, Any]]
    templates: tuple[Template, ...]
    family: str = "muffin"
    held_out: bool = False


def _ex(answer: Any, rationale: str, options: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    out = {**fields, "answer": str(answer), "rationale": rationale}
    if options:
        out["options"] = list(options)
    return out


def add_two(r):
    a, b = r.randint(10, 99), r.randint(10, 99)
    return _ex(a + b, f"{a} plus {b}: {a} + {b} = {a + b}.", a=a, b=b)


def add_three(r):
    a, b, c = (r.randint(2, 50) for _ in range(3))
    return _ex(a + b + c, f"First {a} + {b} = {a + b}, then {a + b} + {c} = {a + b + c}.", a=a, b=b, c=c)


def subtract(r):
    a, b = r.randint(20, 99), r.randint(1, 19)
    return _ex(a - b, f"Taking {b} from {a} leaves {a} - {b} = {a - b}.", a=a, b=b)


def multiply(r):
    a, b = r.randint(2, 12), r.randint(2, 12)
    return _ex(a * b, f"{a} groups of {b} make {a} * {b} = {a * b}.", a=a, b=b)


def count_letter(r):
    w, ch = r.choice(WORDS), r.choice("aeiorst")
    n = w.count(ch)
    return _ex(n, f"The letters of {w} are {', '.join(w)}; '{ch}' appears {n} times.", word=w, letter=ch)


def count_words(r):
    ws = r.sample(WORDS, r.randint(2, 7))
    return _ex(len(ws), f"Counting the words one by one gives {len(ws)}.", text=" ".join(ws))


def sort_numbers(r):
    xs = r.sample(range(1, 100), r.randint(3, 6))
    s = sorted(xs)
    return _ex(" ".join(map(str, s)), f"The smallest is {s[0]}, then {', '.join(map(str, s[1:]))}.",
               numbers=" ".join(map(str, xs)))


def sort_words(r):
    ws = r.sample(WORDS, r.randint(3, 5))
    s = sorted(ws)
    return _ex(" ".join(s), f"By first letters in alphabetical order: {', '.join(s)}.", words=" ".join(ws))


def reverse_word(r):
    w = r.choice(WORDS)
    return _ex(w[::-1], f"Reading {w} from its last letter to its first gives {w[::-1]}.", word=w)


def uppercase(r):
    ws = " ".join(r.sample(WORDS, 2))
    return _ex(ws.upper(), f"Each letter of '{ws}' in capitals is {ws.upper()}.", text=ws)


def last_letters(r):
    ws = r.sample(WORDS, 3)
    out = "".join(w[-1] for w in ws)
    return _ex(out, "The last letters are " + ", ".join(f"{w[-1]} ({w})" for w in ws) + f", together {out}.",
               words=" ".join(ws))


def boolean_expression(r):
    a, b, c = (r.choice([True, False]) for _ in range(3))
    op1, op2 = r.choice(["and", "or"]), r.choice(["and", "or"])
    inner = eval(f"{a} {op1} {b}")  # noqa: S307 - our own generated expression over literals
    value = eval(f"{inner} {op2} {c}")  # noqa: S307
    return _ex(value, f"({a} {op1} {b}) is {inner}; {inner} {op2} {c} is {value}.", ["True", "False"],
               expression=f"({a} {op1} {b}) {op2} {c}")


def max_of_list(r):
    xs = r.sample(range(1, 200), r.randint(3, 7))
    return _ex(max(xs), f"Comparing the numbers, the largest is {max(xs)}.", numbers=", ".join(map(str, xs)))


def min_of_list(r):
    xs = r.sample(range(1, 200), r.randint(3, 7))
    return _ex(min(xs), f"Comparing the numbers, the smallest is {min(xs)}.", numbers=", ".join(map(str, xs)))


def sum_of_list(r):
    xs = [r.randint(1, 20) for _ in range(r.randint(3, 5))]
    return _ex(sum(xs), f"Adding them up: {' + '.join(map(str, xs))} = {sum(xs)}.",
               numbers=", ".join(map(str, xs)))


def list_lookup(r):
    ws = r.sample(WORDS, 5)
    i = r.randint(1, 5)
    return _ex(ws[i - 1], f"Counting from the left, item {i} is {ws[i - 1]}.", words=", ".join(ws),
               position=i)


def date_add(r):
    start = datetime.date(2020, 1, 1) + datetime.timedelta(days=r.randint(0, 1500))
    n = r.randint(1, 40)
    end = start + datetime.timedelta(days=n)
    return _ex(end.isoformat(), f"{n} days after {start.isoformat()} is {end.isoformat()}.",
               date=start.isoformat(), days=n)


def weekday_after(r):
    d, n = r.randrange(7), r.randint(1, 20)
    out = WEEKDAYS[(d + n) % 7]
    return _ex(out, f"{n} days is {n // 7} weeks and {n % 7} days; {WEEKDAYS[d]} + {n % 7} days is {out}.",
               list(WEEKDAYS), day=WEEKDAYS[d], days=n)


def compare_numbers(r):
    a, b = r.sample(range(1, 1000), 2)
    ans = "greater" if a > b else "smaller"
    return _ex(ans, f"{a} is {'more' if a > b else 'less'} than {b}, so it is {ans}.", ["greater", "smaller"],
               a=a, b=b)


def parity(r):
    n = r.randint(1, 999)
    ans = "even" if n % 2 == 0 else "odd"
    return _ex(ans, f"The last digit of {n} is {n % 10}, so {n} is {ans}.", ["even", "odd"], number=n)


def word_problem(r):
    name, a, b = r.choice(NAMES), r.randint(2, 20), r.randint(2, 20)
    return _ex(a + b, f"{name} starts with {a} apples and gets {b} more: {a} + {b} = {a + b}.",
               question=f"{name} has {a} apples and buys {b} more. How many apples does {name} have now?")


def word_problem_cost(r):
    name, n, p = r.choice(NAMES), r.randint(2, 9), r.randint(2, 15)
    return _ex(n * p, f"{n} pens at {p} dollars each cost {n} * {p} = {n * p} dollars.",
               question=f"{name} buys {n} pens for {p} dollars each. How many dollars does {name} spend?")


def string_length(r):
    w = r.choice(WORDS)
    return _ex(len(w), f"Spelling {w}: {', '.join(w)} - that is {len(w)} letters.", word=w)


def count_vowels(r):
    w = r.choice(WORDS)
    n = sum(c in "aeiou" for c in w)
    return _ex(n, f"The vowels of {w} are {', '.join(c for c in w if c in 'aeiou')}: {n} in all.", word=w)


def remove_vowels(r):
    w = r.choice(WORDS)
    out = "".join(c for c in w if c not in "aeiou")
    return _ex(out, f"Dropping a, e, i, o and u from {w} leaves {out}.", word=w)


T = Template
SUITE: tuple[SuiteTask, ...] = (
    SuiteTask("add_two", add_two, (T("What is {a} plus {b}?"), T("Add {a} and {b}."), T("{a} + {b} ="))),
    SuiteTask("subtract", subtract, (T("What is {a} minus {b}?"), T("Subtract {b} from {a}."))),
    SuiteTask("multiply", multiply, (T("What is {a} times {b}?"), T("Multiply {a} by {b}."))),
    SuiteTask("count_letter", count_letter, (T("How many times does '{letter}' appear in '{word}'?"),
                                             T("Count the '{letter}' in {word}."))),
    SuiteTask("count_words", count_words, (T("How many words are in: {text}"), T("Count the words: {text}"))),
    SuiteTask("sort_numbers", sort_numbers, (T("Sort these numbers from smallest to largest: {numbers}"),
                                             T("Put in ascending order: {numbers}")), "t0sf"),
    SuiteTask("reverse_word", reverse_word, (T("Spell '{word}' backwards."), T("Reverse the word {word}.")),
              "t0sf"),
    SuiteTask("uppercase", uppercase, (T("Write in capital letters: {text}"), T("Uppercase this: {text}")),
              "niv2"),
    SuiteTask("last_letters", last_letters, (T("Concatenate the last letters of: {words}"),
                                             T("Take the last letter of each word and join them: {words}")),
              "cot"),
    SuiteTask("boolean_expression", boolean_expression, (T("Evaluate: {expression}{options_}"),
                                                         T("Is this true or false? {expression}{options_}"))),
    SuiteTask("max_of_list", max_of_list, (T("What is the largest number in {numbers}?"),
                                           T("Find the maximum of: {numbers}")), "t0sf"),
    SuiteTask("list_lookup", list_lookup, (T("In the list {words}, what is item number {position}?"),
                                           T("List: {words}. Give item {position}.")), "niv2"),
    SuiteTask("date_add", date_add, (T("What date is {days} days after {date}? Answer as YYYY-MM-DD."),
                                     T("Add {days} days to {date}.")), "niv2"),
    SuiteTask("compare_numbers", compare_numbers, (T("Is {a} greater or smaller than {b}?{options_}"),
                                                   T("Compare {a} with {b}.{options_}"))),
    SuiteTask("parity", parity, (T("Is {number} even or odd?{options_}"),
                                 T("Parity of {number}?{options_}"))),
    SuiteTask("word_problem", word_problem, (T("{question}"), T("Solve: {question}")), "cot"),
    SuiteTask("string_length", string_length, (T("How many letters are in '{word}'?"),
                                               T("Length of the word {word}?"))),
    SuiteTask("word_problem_cost", word_problem_cost, (T("{question}"), T("Answer the question. {question}")),
              "cot"),
    # held out: never trained on, only evaluated (flan_heldout)
    SuiteTask("add_three", add_three, (T("What is {a} plus {b} plus {c}?"), T("Add {a}, {b} and {c}.")),
              held_out=True),
    SuiteTask("sort_words", sort_words, (T("Sort these words alphabetically: {words}"),), held_out=True),
    SuiteTask("min_of_list", min_of_list, (T("What is the smallest number in {numbers}?"),), held_out=True),
    SuiteTask("sum_of_list", sum_of_list, (T("What is the sum of {numbers}?"),), held_out=True),
    SuiteTask("weekday_after", weekday_after, (T("Today is {day}. What day is it in {days} days?{options_}"),
                                               ),
              held_out=True),
    SuiteTask("count_vowels", count_vowels, (T("How many vowels are in '{word}'?"),), held_out=True),
    SuiteTask("remove_vowels", remove_vowels, (T("Remove the vowels from '{word}'."),), held_out=True),
)


def generate(task: SuiteTask, n: int, split: str = "train") -> list[dict[str, Any]]:
    """`n` examples of a task, deterministic per (task, split); train and validation never share a seed."""
    rng = random.Random(f"{SUITE_SEED}/{task.name}/{split}")
    return [task.make(rng) for _ in range(n)]
