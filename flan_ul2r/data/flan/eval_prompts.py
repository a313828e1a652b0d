"""Evaluation prompts: the one renderer of the held-out (and held-in) evaluation. `flan-ul2r eval`, the
pipeline and periodic eval score exactly these prompts (`flan_ul2r.evaluation.benchmarks.heldout` calls
`eval_prompts`), and users read them here.

Queries are a task's `split` examples 0, 1, ... in order; query `i` uses template `i mod n` of the task's
n templates; few-shot exemplars are the first `num_shots` train examples (or the task's own exemplar pool,
NIV2 "Positive Examples"), in the query's template. The text is `templates.render` with FLAN's default
format (FLAN v2 FewShotPattern: "\n\n" between inputs and target, "\n\n\n" between exemplars; options as
"OPTIONS:" and "-" bullets). Styles, as the Flan paper's held-out evaluation (Chung et al. 2022,
section 2.3):
- `zs`: zero-shot (`zs_opt` when the example has options, else `zs_noopt`);
- `fs`: few-shot (`fs_opt` / `fs_noopt`);
- `cot`: few-shot chain-of-thought (`fs_cot`: exemplars with rationales ending "So the answer is X.",
  the query ending with the zero-shot evaluation trigger "Let's think step by step.", which training
  never uses);
- `rank`: zero-shot with the options shown (`zs_opt`), scored by rank classification over the options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flan_ul2r.data.flan.suite.tasks import SUITE, SUITE_SIZES, generate
from flan_ul2r.data.flan.templates import Template, render

STYLES = ("zs", "fs", "cot", "rank")
NUM_SHOTS = 3  # a few exemplars, as BBH's 3-shot prompts (Chung et al. 2022, section 2.3)


@dataclass(frozen=True)
class EvalSource:
    """A task as evaluation reads it: its templates, `examples(split, n)` (the first n of a split, in
    order) and `exemplars(n)` (the few-shot pool's first n)."""

    name: str
    templates: tuple[Template, ...]
    examples: Callable[[str, int | None], list[Mapping[str, Any]]]
    exemplars: Callable[[int], list[Mapping[str, Any]]]


def _suite_source(task: Any) -> EvalSource:
    def examples(split: str, n: int | None) -> list[Mapping[str, Any]]:
        return generate(task, SUITE_SIZES[split] if n is None else n, split)  # a prefix for any n

    return EvalSource(task.name, tuple(task.templates), examples,
                      lambda n: generate(task, n, "train")[:n])


def _registered_source(name: str) -> EvalSource:
    from flan_ul2r.data.flan.instruction_tasks import get_renderer  # TensorFlow: only for registered tasks

    renderer = get_renderer(name)
    pool = renderer.task.exemplars
    return EvalSource(
        name,
        renderer.task.templates,
        lambda split, n: list(renderer.rows(split)[:n]),
        lambda n: list((pool("train") if pool is not None else renderer.rows("train"))[:n]),
    )


def source(task: Any) -> EvalSource:
    """An embedded-suite task (the task object, or its name with or without `flan_`), else an instruction
    task registered under `task` (`register_instruction_task`)."""
    if not isinstance(task, str):
        return _suite_source(task)
    bare = task.removeprefix("flan_")
    for suite_task in SUITE:
        if suite_task.name == bare:
            return _suite_source(suite_task)
    try:
        return _registered_source(task)
    except ValueError as e:
        raise ValueError(f"eval_prompts: unknown task {task!r}: neither an embedded-suite task "
                         f"{[t.name for t in SUITE]} nor a registered instruction task ({e})") from None


def template_style(style: str, example: Mapping[str, Any]) -> str:
    """The `templates.STYLES` name an evaluation style renders `example` in."""
    if style not in STYLES:
        raise ValueError(f"eval_prompts: unknown style {style!r}; styles are {STYLES}")
    opts = bool(example.get("options"))
    return {"zs": "zs_opt" if opts else "zs_noopt", "fs": "fs_opt" if opts else "fs_noopt",
            "cot": "fs_cot", "rank": "zs_opt"}[style]


def render_prompt(task: EvalSource, example: Mapping[str, Any], index: int, style: str,
                  shots: Sequence[Mapping[str, Any]]) -> tuple[str, str, int]:
    """(inputs, targets, template index) of query `index` in `style`, `shots` its exemplars."""
    name = template_style(style, example)
    t = index % len(task.templates)
    x, y = render(example, task.templates[t], name, shots if name.startswith("fs") else (),
                  task=task.name, template_index=t)
    return x, y, t


def eval_prompts(task: Any, style: str, *, split: str = "validation", num_shots: int = NUM_SHOTS,
                 limit: int | None = None) -> list[dict[str, Any]]:
    """Prompts for examples 0.. of `split` (at most `limit`) of `task` (see `source`) in `style`. Each
    dict: `inputs` (the prompt evaluation scores), `targets` (the target text a template makes: for
    `cot` the rationale and "So the answer is X."), `answer` (the reference answer), `options` (the
    candidate answers, () when none), `task`, `style`, `index`, `template` (its index), `num_shots`
    (exemplars shown)."""
    src = source(task)
    shots = src.exemplars(num_shots) if num_shots > 0 else []
    out = []
    for i, example in enumerate(src.examples(split, limit)):
        x, y, t = render_prompt(src, example, i, style, shots)
        shown = len(shots) if template_style(style, example).startswith("fs") else 0
        out.append({"inputs": x, "targets": y, "answer": str(example["answer"]),
                    "options": tuple(str(o) for o in example.get("options") or ()), "task": src.name,
                    "style": style, "index": i, "template": t, "num_shots": shown})
    return out
