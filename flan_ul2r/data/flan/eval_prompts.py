"""Evaluation prompts for instruction tasks, rendered by the same planner as training (`flan_plan`):
same templates, FLAN formatting draws, options markers and few-shot layout, with the style and shot
count fixed and, for CoT styles, the zero-shot evaluation trigger "Let's think step by step." (Chung et
al. 2022 section 2.3), which training never uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flan_ul2r.data.flan import patterns as fp
from flan_ul2r.data.flan.instruction_tasks import (
    InstructionRenderer,
    InstructionTask,
    get_renderer,
)
from flan_ul2r.data.flan.plan import plan
from flan_ul2r.data.flan.suite.tasks import SUITE, SUITE_SIZES, generate
from flan_ul2r.data.flan.templates import STYLES, is_cot, is_few_shot, shows_options
from flan_ul2r.data.vocab.default_vocabulary import default_vocabulary


def _renderer(task_name: str) -> InstructionRenderer:
    """A registered instruction task (`flan_<name>` or the name itself), else the embedded suite's."""
    for name in (task_name, f"flan_{task_name}"):
        try:
            return get_renderer(name)
        except ValueError:
            pass
    bare = task_name.removeprefix("flan_")
    for task in SUITE:
        if task.name == bare:
            definition = InstructionTask(
                f"flan_{bare}",
                lambda split, t=task: generate(t, SUITE_SIZES[split], split),
                task.templates,
                task.family,
                {"zs_noopt": 1.0},
                lettered=task.lettered,
            )
            return InstructionRenderer(definition, default_vocabulary())
    raise ValueError(f"eval_prompts: unknown task {task_name!r}; suite tasks {[t.name for t in SUITE]}")


def eval_prompts(
    task_name: str,
    style: str,
    *,
    split: str = "validation",
    num_shots: int = 3,
    limit: int | None = None,
    seed: int = 0,
    vocabulary: Any = None,
    inputs_length: int | None = None,
) -> list[dict[str, Any]]:
    """Prompts for examples 0.. of `split` (at most `limit`), in `style` with `num_shots` exemplars from
    the train split for few-shot styles. Each dict: `inputs` (prompt text), `targets` (the target text
    training would use), `answer` (the final answer as the target shows it: an option's letter when
    lettered options are shown), `options` (the candidate answers as shown, [] when none), `task`,
    `style`, `index`, `template`, `num_shots` (exemplars shown). With `vocabulary` and `inputs_length`,
    exemplars are pruned to FLAN's 1920/2048 budget as in training. Deterministic in `seed`.
    """
    if style not in STYLES:
        raise ValueError(f"eval_prompts: unknown style {style!r}; styles are {STYLES}")
    renderer = _renderer(task_name)
    layout, rows = renderer.layout(split), renderer.rows(split)
    n = len(rows) if limit is None else min(limit, len(rows))
    indices = np.arange(n)
    seeds = np.stack([np.full(n, seed, np.int64), indices], axis=1)
    budget = None
    if vocabulary is not None and inputs_length is not None:
        budget = (layout.pieces.tokenize(vocabulary).context_lengths, int(inputs_length))
    p = plan(
        layout,
        split,
        indices,
        seeds,
        budget,
        style=style,
        num_shots=num_shots if is_few_shot(style) else 0,
        eval_trigger=is_cot(style),
    )
    out = []
    for i in range(n):
        example = rows[i]
        options = [str(o) for o in example.get("options") or ()]
        shown = bool(options) and shows_options(style) and bool(layout.options_slot[p.template[i]])
        marker = fp.OPTION_MARKERS[p.marker[i]]
        candidates = [marker.target(j) or o for j, o in enumerate(options)] if shown else []
        answer = candidates[options.index(str(example["answer"]))] if shown else str(example["answer"])
        out.append(
            {
                "inputs": layout.pieces.text(p.inputs[i]),
                "targets": layout.pieces.text(p.targets[i]),
                "answer": answer,
                "options": candidates,
                "task": renderer.task.name,
                "style": STYLES[p.style[i]],
                "index": i,
                "template": int(p.template[i]),
                "num_shots": int((p.shots[i] >= 0).sum()),
            }
        )
    return out
