"""The embedded instruction suite: generated tasks with verifiable answers and programmatic rationales,
split into held-in tasks (trained on, in the `flan` mixture) and held-out tasks (`flan_heldout`, only
evaluated), so a default run can show instruction tuning generalising to tasks it never saw (the Flan
paper's held-out evaluation, section 2.3, in miniature). Five held-out tasks are shaped like the paper's
benchmarks (MMLU, GSM8K, BIG-Bench Hard; `suite_benchmarks`).

Everything is generated from a fixed seed with Python's `random`, so every machine makes the same data.
Train and validation are disjoint by construction: an item (its fields other than answer and rationale,
options as a set) belongs to validation when its hash falls in the task's validation share; each split
draws distinct items of its own share only.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from flan_ul2r.data.flan.suite import benchmarks as sb
from flan_ul2r.data.flan.suite import generators as sg
from flan_ul2r.data.flan.suite.words import WEEKDAYS  # noqa: F401 - re-exported for evaluation code
from flan_ul2r.data.flan.templates import Template

SUITE_SEED = 20221020  # fixed: the same suite on every machine
VALIDATION_PERCENT = 10  # share of each task's item space that is validation
MAX_DRAWS_PER_ITEM = 50  # generation gives up (returns fewer items) after this many draws per item
SUITE_SIZES = {"train": 2000, "validation": 200}  # items per split of every suite task (tests check both)


@dataclasses.dataclass(frozen=True)
class SuiteTask:
    name: str
    make: Callable[[random.Random], dict[str, Any]]
    templates: tuple[Template, ...]
    family: str = "muffin"
    held_out: bool = False
    inversions: tuple[Template, ...] = ()  # input-inverted templates (FLAN's "-II" tasks)
    lettered: bool = False  # options always shown with letters, the target the letter (MMLU's shape)


def item_key(example: Mapping[str, Any]) -> str:
    """What makes two items the same question: every field but answer and rationale, options as a set."""
    return repr(
        sorted(
            (k, tuple(sorted(map(str, v))) if k == "options" else v)
            for k, v in example.items()
            if k not in ("answer", "rationale")
        )
    )


def split_of(task_name: str, example: Mapping[str, Any]) -> str:
    h = zlib.crc32(f"{task_name}\0{item_key(example)}".encode())
    return "validation" if h % 100 < VALIDATION_PERCENT else "train"


def generate(task: SuiteTask, n: int, split: str = "train") -> list[dict[str, Any]]:
    """Up to `n` distinct examples of `split`, deterministic per (task, split); never an item of the
    other split. Fewer when the task's item space runs out (MAX_DRAWS_PER_ITEM draws per item)."""
    if split not in ("train", "validation"):
        raise ValueError(f"suite task {task.name!r}: split {split!r} is not 'train' or 'validation'")
    rng = random.Random(f"{SUITE_SEED}/{task.name}/{split}")
    out, seen = [], set()
    for _ in range(n * MAX_DRAWS_PER_ITEM):
        ex = task.make(rng)
        key = item_key(ex)
        if key not in seen and split_of(task.name, ex) == split:
            seen.add(key)
            out.append(ex)
            if len(out) == n:
                break
    return out


T = Template
_OPT_TF = (
    T("Evaluate: {expression}{options_}"),
    T("Is this true or false? {expression}{options_}"),
    T("What is the value of the boolean expression {expression}?{options_}"),
    T("{expression}\nTrue or False?{options_}"),
)
_MC = (
    T("The following is a multiple choice question.\n\n{question}{options_}\nAnswer:"),
    T("{question}{options_}"),
    T("Question: {question}{options_}\nPick the correct option."),
    T("Answer the multiple choice question.\n{question}{options_}"),
)
_GSM = (
    T("{question}"),
    T("Solve this math word problem: {question}"),
    T("Q: {question}\nA:"),
    T("Answer the question.\n\n{question}"),
)
# The held-in word problems' own templates: never the held-out multi_step_arithmetic's (_GSM), so no
# held-out template reaches training (flan_ul2r/data/flan/heldout_leakage.py checks it).
_WORD_PROBLEM = (
    T("Word problem: {question}"),
    T("{question}\nWork out the answer."),
    T("Here is a story with numbers. {question}"),
    T("Math question: {question}\nGive the number."),
)
_WORD_PROBLEM_INVERSIONS = (
    T("Write a math word problem whose worked solution is: {rationale}", "{question}"),
    T("Here is a solution: {rationale} The answer is {answer}. What was the question?", "{question}"),
)

SUITE: tuple[SuiteTask, ...] = (
    SuiteTask(
        "add_two",
        sg.add_two,
        (
            T("What is {a} plus {b}?"),
            T("Add {a} and {b}."),
            T("{a} + {b} ="),
            T("Compute the sum of {a} and {b}."),
        ),
    ),
    SuiteTask(
        "subtract",
        sg.subtract,
        (
            T("What is {a} minus {b}?"),
            T("Subtract {b} from {a}."),
            T("{a} - {b} ="),
            T("Take {b} away from {a}. What is left?"),
        ),
    ),
    SuiteTask(
        "multiply",
        sg.multiply,
        (
            T("What is {a} times {b}?"),
            T("Multiply {a} by {b}."),
            T("{a} * {b} ="),
            T("What is the product of {a} and {b}?"),
        ),
    ),
    SuiteTask(
        "count_letter",
        sg.count_letter,
        (
            T("How many times does '{letter}' appear in '{word}'?"),
            T("Count the '{letter}' in {word}."),
            T("Word: {word}\nHow often does the letter {letter} occur?"),
        ),
    ),
    SuiteTask(
        "count_words",
        sg.count_words,
        (
            T("How many words are in: {text}"),
            T("Count the words: {text}"),
            T("{text}\n\nHow many words does the line above have?"),
        ),
    ),
    SuiteTask(
        "sort_numbers",
        sg.sort_numbers,
        (
            T("Sort these numbers from smallest to largest: {numbers}"),
            T("Put in ascending order: {numbers}"),
            T("Numbers: {numbers}\nWrite them in increasing order."),
        ),
        "t0sf",
    ),
    SuiteTask(
        "reverse_word",
        sg.reverse_word,
        (
            T("Spell '{word}' backwards."),
            T("Reverse the text {word}."),
            T("Write '{word}' with its letters in reverse order."),
        ),
        "t0sf",
    ),
    SuiteTask(
        "uppercase",
        sg.uppercase,
        (
            T("Write in capital letters: {text}"),
            T("Uppercase this: {text}"),
            T("Convert to upper case.\n\n{text}"),
        ),
        "niv2",
    ),
    SuiteTask(
        "last_letters",
        sg.last_letters,
        (
            T("Concatenate the last letters of: {words}"),
            T("Take the last letter of each word and join them: {words}"),
            T("Words: {words}\nWhat do their final letters spell?"),
        ),
        "cot",
    ),
    SuiteTask("boolean_expression", sg.boolean_expression, _OPT_TF),
    SuiteTask(
        "max_of_list",
        sg.max_of_list,
        (
            T("What is the largest number in {numbers}?"),
            T("Find the maximum of: {numbers}"),
            T("Which is biggest: {numbers}?"),
        ),
        "t0sf",
    ),
    SuiteTask(
        "list_lookup",
        sg.list_lookup,
        (
            T("In the list {words}, what is item number {position}?"),
            T("List: {words}. Give item {position}."),
            T("Return entry {position} (counting from 1) of: {words}"),
        ),
        "niv2",
    ),
    SuiteTask(
        "date_add",
        sg.date_add,
        (
            T("What date is {days} days after {date}? Answer as YYYY-MM-DD."),
            T("Add {days} days to {date}."),
            T("Start date: {date}\nDays to add: {days}\nEnd date:"),
        ),
        "niv2",
    ),
    SuiteTask(
        "compare_numbers",
        sg.compare_numbers,
        (
            T("Is {a} greater or smaller than {b}?{options_}"),
            T("Compare {a} with {b}.{options_}"),
            T("{a} versus {b}: is the first one greater or smaller?{options_}"),
        ),
    ),
    SuiteTask(
        "parity",
        sg.parity,
        (
            T("Is {number} even or odd?{options_}"),
            T("Parity of {number}?{options_}"),
            T("Tell whether {number} is an even or an odd number.{options_}"),
        ),
    ),
    SuiteTask("word_problem", sg.word_problem, _WORD_PROBLEM[:3], "cot", inversions=_WORD_PROBLEM_INVERSIONS),
    SuiteTask(
        "string_length",
        sg.string_length,
        (
            T("How many letters are in '{word}'?"),
            T("Length of the word {word}?"),
            T("Count the letters: {word}"),
        ),
    ),
    SuiteTask(
        "word_problem_cost", sg.word_problem_cost, _WORD_PROBLEM[1:], "cot",
        inversions=_WORD_PROBLEM_INVERSIONS,
    ),
    # held out: never trained on, only evaluated (flan_heldout)
    SuiteTask(
        "add_three",
        sg.add_three,
        (T("What is {a} plus {b} plus {c}?"), T("Add {a}, {b} and {c}.")),
        held_out=True,
    ),
    SuiteTask(
        "sort_words",
        sg.sort_words,
        (T("Sort these words alphabetically: {words}"), T("Put in dictionary order: {words}")),
        held_out=True,
    ),
    SuiteTask(
        "min_of_list",
        sg.min_of_list,
        (T("What is the smallest number in {numbers}?"), T("Find the minimum of: {numbers}")),
        held_out=True,
    ),
    SuiteTask(
        "sum_of_list",
        sg.sum_of_list,
        (T("What is the sum of {numbers}?"), T("Add up: {numbers}")),
        held_out=True,
    ),
    SuiteTask(
        "weekday_after",
        sg.weekday_after,
        (
            T("Today is {day}. What day is it in {days} days?{options_}"),
            T("{days} days after a {day} is which weekday?{options_}"),
        ),
        held_out=True,
    ),
    SuiteTask(
        "count_vowels",
        sg.count_vowels,
        (T("How many vowels are in '{word}'?"), T("Count the vowels (a, e, i, o, u) in: {word}")),
        held_out=True,
    ),
    SuiteTask(
        "remove_vowels",
        sg.remove_vowels,
        (T("Remove the vowels from '{word}'."), T("Delete every a, e, i, o and u: {word}")),
        held_out=True,
    ),
    SuiteTask("multiple_choice", sb.multiple_choice, _MC, held_out=True, lettered=True),
    SuiteTask("multi_step_arithmetic", sb.multi_step_arithmetic, _GSM, held_out=True),
    SuiteTask(
        "object_counting",
        sb.object_counting,
        (
            T("I have {objects}. How many {kind} do I have?"),
            T("Q: I have {objects}. How many {kind} do I have?\nA:"),
        ),
        held_out=True,
    ),
    SuiteTask(
        "tracking_swaps",
        sb.tracking_swaps,
        (T("{question}{options_}"), T("Q: {question}{options_}\nA:")),
        held_out=True,
        lettered=True,
    ),
    SuiteTask(
        "navigate",
        sb.navigate,
        (
            T(
                "If you follow these instructions, do you return to the starting "
                "point? {instructions}{options_}"
            ),
            T("Instructions: {instructions}\nDo you end where you started?{options_}"),
        ),
        held_out=True,
    ),
)
