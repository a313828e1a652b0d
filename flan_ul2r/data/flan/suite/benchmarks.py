"""Held-out suite tasks shaped like the Flan paper's evaluation benchmarks (Chung et al. 2022 section 2.3),
so the miniature pipeline's held-out numbers are read the way the real ones are:

- `multiple_choice` - MMLU's shape: a question and four options, the answer one option (shown with
  letters, the target the letter, as in U-PaLM section 11.4's "Answer: (C)");
- `multi_step_arithmetic` - GSM8K's shape: a word problem of two to four steps with a worked rationale
  and an integer answer;
- `object_counting`, `tracking_swaps`, `navigate` - BIG-Bench Hard's shape: short-answer reasoning with
  a rationale (BBH tasks of the same names).
Every answer can be recomputed from the question text; the tests do that.
"""

from __future__ import annotations

import random
from typing import Any

from flan_ul2r.data.flan.suite.generators import example
from flan_ul2r.data.flan.suite.words import COLORS, ITEMS, NAMES, NUMBER_WORDS, OBJECT_KINDS, PEOPLE, WORDS


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


# the "prime" question's right answers and its wrong ones (odd, not prime), listed once
_PRIMES = [n for n in range(11, 200) if _is_prime(n)]
_ODD_NON_PRIMES = [n for n in range(10, 200) if not _is_prime(n) and n % 2]


def _mc(
    r: random.Random, question: str, right: str, wrong: list[str], rationale: str, kind: str
) -> dict[str, Any]:
    options = [right] + wrong[:3]
    r.shuffle(options)
    return example(right, rationale, options, question=question, kind=kind)


def multiple_choice(r: random.Random) -> dict[str, Any]:
    """MMLU-shaped: one of four question kinds, four distinct options."""
    kind = r.choice(["prime", "product", "alphabetical", "largest"])
    if kind == "prime":
        right = r.choice(_PRIMES)
        wrong = r.sample(_ODD_NON_PRIMES, 3)
        return _mc(
            r,
            "Which of the following numbers is prime?",
            str(right),
            [str(w) for w in wrong],
            f"{right} has no divisor other than 1 and itself; each other option has one.",
            kind,
        )
    if kind == "product":
        a, b = r.randint(3, 25), r.randint(3, 25)
        near = sorted({a * b + d for d in (-b, b, -a, a, 1, -1, 10, -10)} - {a * b})
        wrong = random.Random(a * 1000 + b).sample(near, 3)  # the same question always has the same options
        return _mc(
            r,
            f"What is {a} multiplied by {b}?",
            str(a * b),
            [str(w) for w in wrong],
            f"{a} * {b} = {a * b}.",
            kind,
        )
    if kind == "alphabetical":
        words = r.sample(WORDS, 4)
        first = min(words)
        return _mc(
            r,
            "Which word comes first in alphabetical order?",
            first,
            [w for w in words if w != first],
            f"Sorted: {', '.join(sorted(words))}; the first is {first}.",
            kind,
        )
    values = r.sample(range(10, 999), 4)
    largest = max(values)
    return _mc(
        r,
        "Which of these numbers is the largest?",
        str(largest),
        [str(v) for v in values if v != largest],
        f"The largest of {', '.join(map(str, values))} is {largest}.",
        kind,
    )


def _packs(r: random.Random) -> tuple[str, str, int]:
    name, friend = r.sample(NAMES, 2)
    item = r.choice(ITEMS)
    packs, per = r.randint(2, 9), r.randint(3, 12)
    have = packs * per
    given, used = r.randint(1, min(9, have // 3)), r.randint(1, min(9, have // 3))
    question = (
        f"{name} buys {packs} packs of {item} with {per} {item} in each pack. {name} gives {given} "
        f"{item} to {friend} and loses {used}. How many {item} does {name} have left?"
    )
    rationale = (
        f"{name} buys {packs} * {per} = {have} {item}. After giving away {given}, {have} - {given} = "
        f"{have - given} remain. After losing {used}, {have - given} - {used} = {have - given - used}."
    )
    return question, rationale, have - given - used


def _change(r: random.Random) -> tuple[str, str, int]:
    name, item = r.choice(NAMES), r.choice(ITEMS)
    count, price, extra = r.randint(2, 8), r.randint(2, 9), r.randint(1, 20)
    cost, bill = count * price, count * price + extra
    question = (
        f"A shop sells {item} for {price} dollars each. {name} buys {count} {item} and pays with "
        f"{bill} dollars. How many dollars of change does {name} get?"
    )
    rationale = (
        f"The {item} cost {count} * {price} = {cost} dollars. The change is {bill} - {cost} = {extra}."
    )
    return question, rationale, extra


def _pages(r: random.Random) -> tuple[str, str, int]:
    name, first, fewer = r.choice(NAMES), r.randint(5, 40), r.randint(1, 5)
    second, third = 2 * first, 2 * first - fewer
    question = (
        f"{name} reads {first} pages on Monday and twice as many on Tuesday. On Wednesday {name} "
        f"reads {fewer} fewer pages than on Tuesday. How many pages does {name} read in the three days?"
    )
    rationale = (
        f"Tuesday: 2 * {first} = {second} pages. Wednesday: {second} - {fewer} = {third} pages. "
        f"Total: {first} + {second} + {third} = {first + second + third}."
    )
    return question, rationale, first + second + third


def _rooms(r: random.Random) -> tuple[str, str, int]:
    rooms, each, removed = r.randint(2, 6), r.randint(2, 9), r.randint(1, 9)
    chairs = rooms * each + removed
    question = (
        f"A hall has {chairs} chairs. {removed} chairs are taken away and the rest are shared "
        f"equally among {rooms} rooms. How many chairs does each room get?"
    )
    rationale = (
        f"{chairs} - {removed} = {chairs - removed} chairs are left. Shared among {rooms} rooms: "
        f"{chairs - removed} / {rooms} = {each}."
    )
    return question, rationale, each


_PROBLEMS = {"packs": _packs, "change": _change, "pages": _pages, "rooms": _rooms}


def multi_step_arithmetic(r: random.Random) -> dict[str, Any]:
    """GSM8K-shaped: a multi-step word problem, its worked rationale and an integer answer."""
    kind = r.choice(sorted(_PROBLEMS))
    question, rationale, answer = _PROBLEMS[kind](r)
    return example(answer, rationale, question=question, kind=kind)


def object_counting(r: random.Random) -> dict[str, Any]:
    """BBH object_counting: a list of objects with counts; how many of one kind."""
    kinds = r.sample(sorted(OBJECT_KINDS), 2)
    chosen = [(k, o) for k in kinds for o in r.sample(OBJECT_KINDS[k], r.randint(2, 3))]
    r.shuffle(chosen)
    counts = [r.randint(1, 4) for _ in chosen]
    phrases = [
        ("a " if n == 1 else NUMBER_WORDS[n] + " ") + o + ("" if n == 1 else "s")
        for (_, o), n in zip(chosen, counts)
    ]
    target = kinds[0]
    mine = [(n, o) for (k, o), n in zip(chosen, counts) if k == target]
    total = sum(n for n, _ in mine)
    listing = ", ".join(phrases[:-1]) + ", and " + phrases[-1]
    rationale = f"The {target} are " + ", ".join(f"{o} ({n})" for n, o in mine) + f"; {total} in all."
    return example(total, rationale, objects=listing, kind=target)


def tracking_swaps(r: random.Random) -> dict[str, Any]:
    """BBH tracking_shuffled_objects: three people swap balls; who holds what at the end."""
    people = list(PEOPLE[:3])
    colors = r.sample(COLORS, 3)
    holds = dict(zip(people, colors))
    setup = ", ".join(f"{p} has {'an' if c[0] in 'aeiou' else 'a'} {c} ball" for p, c in holds.items())
    swaps, steps = [], []
    for _ in range(r.randint(2, 4)):
        a, b = r.sample(people, 2)
        holds[a], holds[b] = holds[b], holds[a]
        swaps.append(f"{a} and {b} swap balls")
        steps.append(f"after {a} and {b} swap, {a} has {holds[a]} and {b} has {holds[b]}")
    who = r.choice(people)
    question = (
        f"Alice, Bob and Claire each hold a ball: {setup}. Then, in order: {'; '.join(swaps)}. "
        f"At the end, which ball does {who} have?"
    )
    answer = f"{holds[who]} ball"
    return example(
        answer,
        "A" + "; ".join(steps)[1:] + f". So {who} has the {answer}.",
        [f"{c} ball" for c in colors],
        question=question,
    )


def navigate(r: random.Random) -> dict[str, Any]:
    """BBH navigate: steps forward and turns; do you end where you started?"""
    position, facing, moves, steps = 0, 1, [], []
    for _ in range(r.randint(2, 6)):
        if moves and r.random() < 0.3:
            facing = -facing
            moves.append("Turn around.")
        else:
            n = r.randint(1, 9)
            position += facing * n
            moves.append(f"Take {n} step{'s' if n > 1 else ''}.")
            steps.append(f"{'+' if facing > 0 else '-'}{n}")
    if r.random() < 0.5 and position:  # half the items come back to the start
        facing_word = "Turn around." if position * facing > 0 else ""
        moves += [m for m in [facing_word] if m] + [
            f"Take {abs(position)} step{'s' if abs(position) > 1 else ''}."
        ]
        steps.append(f"{'-' if position > 0 else '+'}{abs(position)}")
        position = 0
    answer = "Yes" if position == 0 else "No"
    where = "the start" if position == 0 else "not the start"
    rationale = (
        f"Moves along the line: {' '.join(steps)}; the final position is {position}, {where}: {answer}."
    )
    return example(answer, rationale, ["Yes", "No"], instructions=" ".join(moves))
