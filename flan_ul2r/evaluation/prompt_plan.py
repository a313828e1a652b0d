"""Each task's prompts as the model will read them, planned for the whole suite before anything is decoded:
the encoded prompts, the new-token budget, and what happens to a prompt that does not fit the model.

Budgets. A protocol's `max_new_tokens` is counted in subword tokens. A byte-level vocabulary spends about
four bytes per subword token of English text (ByT5, Xue et al. 2022, section 3: byte sequences about 4x as
long as SentencePiece ones), so a byte-level model gets `BYTES_PER_TOKEN` times the budget. Either way the
budget is raised to cover `EXEMPLAR_MARGIN` times the longest exemplar answer of the task in the model's own
tokens: a chain of thought as long as the published ones must fit (BBH's geometric_shapes rationales run to
hundreds of tokens). `EvalSettings.max_new_tokens` replaces all of this when set.

Too long (`EvalSettings.too_long`): a prompt plus its budget (or its longest answer choice) must fit the
model's `max_length`. "error" stops the run before anything is decoded, naming every task and its count;
"skip" leaves such examples out and lists them; "truncate_left" drops the oldest exemplars first, then the
left of the prompt (the BOS token kept), as lm-evaluation-harness truncates its contexts from the left, and
leaves out (listed as skipped) an example whose budget alone exceeds the model.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from flan_ul2r.evaluation.protocol import EvalExample, EvalTask

TOO_LONG = ("error", "skip", "truncate_left")
BYTES_PER_TOKEN = 4  # ByT5 (Xue et al. 2022) section 3: byte sequences ~4x as long as subword sequences
EXEMPLAR_MARGIN = 1.5  # room beyond the longest exemplar answer: queries can need longer chains than they
_PROBE = "Natalia sold 48 clips in April, and half as many in May."


def encode(model: Any, text: str) -> list[int]:
    """A prompt's ids as the model read its training examples: `model.encode_prompt` (BOS first, special
    names such as <extra_id_0> mapped) where the model has it, else its tokenizer's ids."""
    encoder = getattr(model, "encode_prompt", None)
    return [int(i) for i in (encoder(text) if encoder is not None else model.tokenize(text))]


def appends_eos(model: Any, append_eos: bool | None) -> bool:
    """Prompts end with EOS for prefix-LM models, as Flan trained its inputs (Chung et al. 2022, 2.2)."""
    return bool(getattr(model, "prefix_lm", False)) if append_eos is None else append_eos


def prompt_ids(model: Any, prompt: str, append_eos: bool) -> list[int]:
    ids = encode(model, prompt)
    return ids + [int(model.vocab.eos_id)] if append_eos else ids


def is_byte_level(model: Any) -> bool:
    """Whether the model's vocabulary spends a token per byte (or more) on plain text."""
    return len(model.tokenize(_PROBE)) >= len(_PROBE.encode("utf-8"))


def new_token_budget(model: Any, task: EvalTask, examples: Sequence[EvalExample],
                     override: int | None = None) -> int:
    """New tokens a generated answer may take (module docstring)."""
    if override is not None:
        return int(override)
    base = task.protocol.max_new_tokens * (BYTES_PER_TOKEN if is_byte_level(model) else 1)
    targets = {t for ex in examples for t in ex.exemplar_targets}
    longest = max((len(model.tokenize(t)) for t in targets), default=0)
    return max(base, math.ceil(EXEMPLAR_MARGIN * longest))


@dataclasses.dataclass
class TaskPlan:
    """A task ready to run: its examples and their prompt ids (after `too_long`), the new-token budget, the
    ids left out ("skip"), how each truncated prompt was cut, and what does not fit ("error")."""

    task: EvalTask
    examples: list[EvalExample]
    prompts: list[np.ndarray]  # int32 ids
    choices: list[list[list[int]]]  # rank tasks: each example's choices as ids
    budget: int
    skipped: list[str] = dataclasses.field(default_factory=list)
    truncated: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    too_long: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)  # (id, prompt, extra)


def _truncate(model: Any, ex: EvalExample, ids: list[int], limit: int, append_eos: bool
              ) -> tuple[EvalExample, list[int], dict[str, int]] | None:
    """The example with its oldest exemplars dropped until it fits `limit` tokens, then cut from the left
    (BOS kept); None if not even one token of it would fit."""
    shots = 0
    while len(ids) > limit and shots < ex.num_shots:
        shots += 1
        ids = prompt_ids(model, ex.without_oldest_shots(shots).prompt, append_eos)
    bos = getattr(model.vocab, "bos_id", None)
    keep = 1 if ids and bos is not None and ids[0] == int(bos) else 0
    cut = max(len(ids) - limit, 0)
    if limit <= keep:
        return None
    ids = ids[:keep] + ids[keep + cut:]
    return ex.without_oldest_shots(shots), ids, {"shots_dropped": shots, "tokens_cut": cut}


def plan_task(model: Any, task: EvalTask, examples: Sequence[EvalExample], *, too_long: str = "error",
              append_eos: bool | None = None, max_new_tokens: int | None = None) -> TaskPlan:
    """Encodes every prompt, sets the budget, and applies `too_long` (module docstring)."""
    if too_long not in TOO_LONG:
        raise ValueError(f"too_long={too_long!r}: use one of {TOO_LONG}")
    eos, rank = appends_eos(model, append_eos), task.protocol.mode == "rank"
    budget = 0 if rank else new_token_budget(model, task, examples, max_new_tokens)
    plan = TaskPlan(task, [], [], [], budget)
    limit = int(model.max_length)
    for ex in examples:
        if rank and not ex.choices:
            raise ValueError(f"task {task.name}, example {ex.id}: rank classification needs choices")
        choices = [[int(i) for i in model.tokenize(c)] for c in ex.choices] if rank else []
        extra = max((len(c) for c in choices), default=0) if rank else budget
        ids = prompt_ids(model, ex.prompt, eos)
        if len(ids) + extra > limit:
            fixed = _truncate(model, ex, ids, limit - extra, eos) if too_long == "truncate_left" else None
            if fixed is None:
                (plan.too_long if too_long == "error" else plan.skipped).append(
                    (ex.id, len(ids), extra) if too_long == "error" else ex.id)
                continue
            ex, ids, plan.truncated[ex.id] = fixed
        plan.examples.append(ex)
        plan.prompts.append(np.asarray(ids, np.int32))  # a suite's prompts stay in memory until they run
        plan.choices.append(choices)
    return plan


class PromptsTooLong(ValueError):
    """Prompts that do not fit the model, in every task of a suite (found before anything is decoded)."""

    def __init__(self, plans: Sequence[TaskPlan], max_length: int):
        lines = []
        for p in plans:
            worst = max(p.too_long, key=lambda t: t[1] + t[2])
            what = "continuation tokens" if p.task.protocol.mode == "rank" else "new tokens"
            count = f"{len(p.too_long)} of {len(p.too_long) + len(p.examples)} examples"
            lines.append(f"  {p.task.name}: {count} (longest: example {worst[0]}, prompt of {worst[1]} "
                         f"tokens + {worst[2]} {what} = {worst[1] + worst[2]})")
        total = sum(len(p.too_long) for p in plans)
        super().__init__(
            f"{total} prompt(s) in {len(plans)} task(s) do not fit the model's max_length {max_length}; "
            f"nothing was decoded:\n" + "\n".join(lines) + "\nSet too_long to 'skip' (leave them out, listed "
            "in results.json) or 'truncate_left' (drop the oldest exemplars, then the left of the prompt) - "
            "--gin.TOO_LONG=\"'skip'\" for flan-ul2r eval -, lower the new-token budget (MAX_NEW_TOKENS), or "
            "use a longer-context model")


def check_plans(plans: Sequence[TaskPlan], max_length: int) -> None:
    bad = [p for p in plans if p.too_long]
    if bad:
        raise PromptsTooLong(bad, max_length)
