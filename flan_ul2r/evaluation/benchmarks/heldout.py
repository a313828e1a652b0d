"""The default suite, needing no files: the embedded instruction suite's held-out tasks (never trained on;
the `flan_heldout` mixture), evaluated zero-shot, few-shot and with chain-of-thought - the Flan paper's
held-out evaluation (Chung et al. 2022, section 2.3) in miniature.

Prompts are the data side's evaluation prompts (`flan_ul2r.data.flan.eval_prompts`, the one renderer:
queries from each task's validation split, template `i mod n` for query `i`, the first `num_shots` train
examples as exemplars). Styles: `zs`, `fs` (3 shots), `cot` and `rank` (only tasks with options; `cot`
only tasks with rationales).
The answer shape follows the example: options -> the option named; a numeric answer -> the last number;
else normalised exact match.
"""
from __future__ import annotations

from typing import Any

from flan_ul2r.data.flan.eval_prompts import NUM_SHOTS, STYLES, eval_prompts
from flan_ul2r.data.flan.suite.tasks import SUITE, generate
from flan_ul2r.evaluation.extract import normalize_number
from flan_ul2r.evaluation.protocol import EvalExample, EvalTask, Protocol

STOP = ("\n\n",)  # FLAN v2 few-shot layout: "\n\n" between input and target, "\n\n\n" between exemplars
# Budgets sized on the suite's own targets: answers are at most 37 bytes and chains of thought ("... So the
# answer is X.") at most about 330 bytes, so 12 and 96 subword tokens (4x in bytes for a byte-level
# vocabulary, evaluation/prompt_plan.py) hold them (tests/test_eval_robust.py checks every target fits).
ANSWER_TOKENS = 12
COT_TOKENS = 96


def held_out_tasks() -> list[Any]:
    """The suite's held-out tasks, discovered (not a fixed list)."""
    return [t for t in SUITE if t.held_out]


def answer_shape(example: dict[str, Any]) -> str:
    if example.get("options"):
        return "option"
    return "number" if normalize_number(str(example["answer"])) is not None else "text"


def protocol(style: str, example: dict[str, Any], group: str = "Heldout") -> Protocol:
    """The protocol of `style`; its benchmark row is `<group>-ZS`, `-FS`, `-CoT` or `-Rank`."""
    shape = answer_shape(example)
    if style == "rank":
        return Protocol(f"{group}-Rank", mode="rank", shape="option", metric="accuracy")
    cot = style == "cot"
    return Protocol(f"{group}-{style.upper() if style != 'cot' else 'CoT'}", shape=shape, cot=cot,
                    max_new_tokens=COT_TOKENS if cot else ANSWER_TOKENS, stop_sequences=STOP)


def load(task: Any, style: str, num_examples: int, num_shots: int = NUM_SHOTS) -> list[EvalExample]:
    """The first `num_examples` validation examples of `task` as scored: the evaluation prompts in `style`."""
    out = []
    for p in eval_prompts(task, style, num_shots=num_shots, limit=num_examples):
        options = p["options"]
        chance = 100.0 / len(options) if options else None
        out.append(EvalExample(f"{task.name}/{p['index']}", p["inputs"], (p["answer"],), options, chance))
    return out


def tasks(num_examples, num_shots=NUM_SHOTS, suite_tasks=None, group: str = "Heldout") -> list[EvalTask]:
    """`heldout_<style>.<task>` for each held-out task; `num_examples` and `num_shots` are values or
    callables (read when the task is evaluated: gin). `suite_tasks` / `group` evaluate other suite tasks
    the same way (the held-in suite, `heldin.py`): tasks `<group lower>_<style>.<task>`, rows
    `<group>-<style>`."""
    get = num_examples if callable(num_examples) else (lambda: num_examples)
    shots = num_shots if callable(num_shots) else (lambda: num_shots)
    out = []
    for task in held_out_tasks() if suite_tasks is None else suite_tasks:
        probe = generate(task, 1, "validation")[0]
        for style in STYLES:
            if style == "rank" and not probe.get("options"):
                continue
            if style == "cot" and not probe.get("rationale"):
                continue
            out.append(EvalTask(f"{group.lower()}_{style}.{task.name}", protocol(style, probe, group),
                                lambda task=task, style=style: load(task, style, int(get()), int(shots()))))
    return out
