"""The held-out rule, checked on the data a training stage really reads: no held-out task of the embedded
instruction suite - its name, its templates or its items - reaches the `flan` mixture (the Flan paper's
held-out evaluation only means something if nothing of the held-out tasks was trained on; Chung et al.
2022, section 2.3).

Two checks:
- structural: no task of the mixture is a held-out task, and no held-in task uses a held-out template;
- on the rendered data: the first `num_examples` training examples, drawn exactly as the trainer draws
  them (`loader.make_train_iterator`, same seed), are decoded and searched for every held-out fingerprint:
  each held-out template with `MIN_LITERAL` characters of text of its own, as a pattern matching it with
  any field values, and each long text field (`MIN_FIELD` characters) of a held-out item, from its
  validation split (the queries) and its train split (the few-shot exemplars of the held-out evaluation).
A template made only of fields (`{question}`) has no text of its own to find; the structural check covers it.
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flan_ul2r.data.flan.suite.tasks import SUITE, SUITE_SIZES, SuiteTask, generate
from flan_ul2r.data.flan.templates import Template

MIN_LITERAL = 12  # less text ("Q: ...\nA:") is FLAN's shared few-shot glue, not a task's own template
MIN_FIELD = 20  # shorter field values (a number, a word) recur across tasks by chance
FIELD_CHARS = 400  # longest field value a template pattern spans
SEPARATOR = "\0"  # between examples in the searched text


class LeakageError(ValueError):
    """Held-out material found in a training mixture; the message lists every finding."""


def _field_gap(values: Sequence[str]) -> str:
    """A regex for one field from the values the task gives it: a number, a line, or any text (options)."""
    if values and all(re.fullmatch(r"-?\d+", v) for v in values):
        return r"-?\d{1,12}"
    if values and not any("\n" in v for v in values):
        return f"[^\n{SEPARATOR}]{{0,{FIELD_CHARS}}}?"
    return f"[^{SEPARATOR}]{{0,{FIELD_CHARS}}}?"


def template_pattern(template: Template, items: Sequence[Mapping[str, Any]]) -> re.Pattern | None:
    """A regex that matches the template rendered with any values like the task's own (`items`): numbers
    stay numbers and one-line fields stay on one line, so a held-in exemplar next to a query never
    passes for a held-out template. None when the template has fewer than MIN_LITERAL characters of text
    of its own. Fields before the first and after the last piece of text are left out of the pattern."""
    parts = list(string.Formatter().parse(template.inputs))
    if sum(len(literal.strip()) for literal, _, _, _ in parts) < MIN_LITERAL:
        return None
    pieces = []
    for literal, field, _, _ in parts:
        pieces.append(re.escape(literal))
        if field:
            values = [] if field == "options_" else [str(x[field]) for x in items if field in x]
            pieces.append(("field", _field_gap(values)))
    for end in (-1, 0):  # no field (or empty text) at either end
        while pieces and (isinstance(pieces[end], tuple) or not pieces[end]):
            pieces.pop(end)
    return re.compile("".join(p[1] if isinstance(p, tuple) else p for p in pieces))


def item_fields(task: SuiteTask, num: int) -> list[str]:
    """The long text fields of the task's items, both splits."""
    out = []
    for split in ("validation", "train"):
        for ex in generate(task, num, split):
            out += [str(v) for k, v in ex.items()
                    if k not in ("answer", "rationale", "options") and len(str(v)) >= MIN_FIELD]
    return out


def fingerprints(tasks: Sequence[SuiteTask], items_per_split: int = 200
                 ) -> dict[str | re.Pattern, tuple[str, str]]:
    """{text or pattern: (task, what)} for every held-out template with text of its own and every long
    item field."""
    out: dict[str | re.Pattern, tuple[str, str]] = {}
    for task in tasks:
        items = generate(task, items_per_split, "validation")
        for i, t in enumerate(task.templates + task.inversions):
            pattern = template_pattern(t, items)
            if pattern is not None:
                out.setdefault(pattern, (task.name, f"template {i}"))
        for value in item_fields(task, items_per_split):
            out.setdefault(value, (task.name, "item"))
    return out


def structural_findings(mixture_tasks: Iterable[str], suite: Sequence[SuiteTask] = SUITE) -> list[str]:
    """Held-out tasks in the mixture, and held-in suite tasks that share a template with a held-out task."""
    held_out = [t for t in suite if t.held_out]
    names = {f"flan_{t.name}" for t in held_out}
    found = [f"held-out task {n!r} is in the mixture" for n in sorted(set(mixture_tasks) & names)]
    for h in held_out:
        for t in suite:
            shared = set(h.templates) & set(t.templates + t.inversions)
            if not t.held_out and shared:
                found.append(f"held-in task {t.name!r} uses held-out task {h.name!r}'s template "
                             f"{sorted(x.inputs for x in shared)[0]!r}")
    return found


def rendered_examples(mixture: str, num_examples: int, lengths: dict[str, int], seed: int = 0
                      ) -> list[tuple[str, str]]:
    """(task, inputs + targets text) of the first `num_examples` training examples, as the trainer draws."""
    import itertools

    from flan_ul2r.data.core import loader, registry

    vocab = registry.task_vocabulary(mixture, "train")
    it = loader.make_train_iterator(mixture, lengths, 1, seed=seed, with_strings=True)
    out = []
    for ex in itertools.islice(it.examples(), num_examples):
        task = ex.get("task", b"")
        text = "\n".join(vocab.decode([int(i) for i in ex[k]]) for k in ("inputs", "targets"))
        out.append((task.decode() if isinstance(task, bytes) else str(task), text))
    return out


def text_findings(mixture: str, examples: Sequence[tuple[str, str]],
                  prints: dict[str | re.Pattern, tuple[str, str]]) -> list[str]:
    """Every fingerprint found in the examples' text (one search per fingerprint over all the text)."""
    import bisect

    joined = SEPARATOR.join(text for _, text in examples)
    starts, at = [], 0
    for _, text in examples:
        starts.append(at)
        at += len(text) + 1
    found = []
    for key, (owner, what) in prints.items():
        if isinstance(key, str):
            hit, shown = joined.find(key), key
        else:
            match = key.search(joined)
            hit, shown = (match.start(), match.group(0)) if match else (-1, "")
        if hit >= 0:
            task = examples[bisect.bisect_right(starts, hit) - 1][0]
            found.append(f"{mixture} example of {task!r} holds held-out task {owner!r}'s {what}: {shown!r}")
    return found


def check_heldout_leakage(mixture: str = "flan", num_examples: int = 3000,
                          lengths: dict[str, int] | None = None, suite: Sequence[SuiteTask] = SUITE,
                          seed: int = 0) -> dict[str, Any]:
    """Raises LeakageError listing every finding; returns what was checked when clean."""
    examples = rendered_examples(mixture, num_examples, lengths or {"inputs": 1024, "targets": 256}, seed)
    held_out = [t for t in suite if t.held_out]
    prints = fingerprints(held_out, min(200, SUITE_SIZES["validation"]))
    found = structural_findings({task for task, _ in examples}, suite)
    found += text_findings(mixture, examples, prints)
    if found:
        shown = found[:20] + ([f"... and {len(found) - 20} more"] if len(found) > 20 else [])
        raise LeakageError(f"held-out material in mixture {mixture!r}:\n  " + "\n  ".join(shown))
    return {"mixture": mixture, "examples": len(examples), "fingerprints": len(prints),
            "held_out_tasks": [t.name for t in held_out]}
