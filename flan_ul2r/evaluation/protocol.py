"""What an evaluation task is: examples (prompt, references, choices) and the protocol that scores them.

A `Protocol` says how a task is run and scored: `generate` (decode, extract the answer, compare) or `rank`
(score each choice's log-likelihood, the highest wins: rank classification, U-PaLM section 11.2), which
answer shape to extract (`extract.SHAPES`), the metric, and which benchmark row it feeds. It is also the
seqio `postprocess_fn` of the registered task (`__call__` extracts the answer), so the seqio registry
carries the whole protocol. Token budgets (`max_new_tokens`, in subword tokens) and stop sequences are ours,
sized for each benchmark's answer form (a letter, a line, a chain of thought); the papers do not state them.
The runner scales a budget for byte-level vocabularies and raises it to cover the task's longest exemplar
answer (evaluation/prompt_plan.py).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flan_ul2r.evaluation.extract import SHAPES, extract

MODES = ("generate", "rank")
METRICS = ("exact_match", "accuracy", "squad")
AGGREGATES = ("micro", "macro")


@dataclasses.dataclass(frozen=True)
class EvalExample:
    """One query: the full prompt (exemplars included), its reference answers (the first is the one shown),
    answer `choices` for rank classification / option extraction, and the per-example chance of a random
    guess in percent (BBH: 100 / number of options) when it varies.

    Few-shot structure, where the benchmark knows it: `parts` = (head, exemplar 1, ..., exemplar k, query),
    joined they are the prompt (too_long="truncate_left" drops exemplars oldest first); `exemplar_targets`
    = what each exemplar's answer says (the new-token budget covers the longest: runner.new_token_budget).
    """

    id: str
    prompt: str
    references: tuple[str, ...]
    choices: tuple[str, ...] = ()
    chance: float | None = None
    parts: tuple[str, ...] = ()
    exemplar_targets: tuple[str, ...] = ()

    def __post_init__(self):
        if self.parts and (len(self.parts) < 2 or "".join(self.parts) != self.prompt):
            raise ValueError(f"example {self.id}: `parts` must be (head, exemplars..., query) joining to the "
                             "prompt")

    @property
    def num_shots(self) -> int:
        return max(len(self.parts) - 2, 0)

    def without_oldest_shots(self, k: int) -> EvalExample:
        """The example with its first `k` exemplars left out (the head and the query kept)."""
        if not self.parts or k <= 0:
            return self
        parts = (self.parts[0],) + self.parts[1 + k:]
        return dataclasses.replace(self, prompt="".join(parts), parts=parts,
                                   exemplar_targets=self.exemplar_targets[k:])

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EvalExample:
        return cls(str(d["id"]), str(d["prompt"]), tuple(d["references"]), tuple(d.get("choices") or ()),
                   None if d.get("chance") is None else float(d["chance"]), tuple(d.get("parts") or ()),
                   tuple(d.get("exemplar_targets") or ()))


def few_shot(example_id: str, head: str, shots: Sequence[tuple[str, str]], query: str,
             references: tuple[str, ...], **fields: Any) -> EvalExample:
    """An example whose prompt is `head`, each exemplar's text, then `query`; `shots` = (exemplar text as it
    appears in the prompt, the exemplar's answer as written)."""
    parts = (head, *(text for text, _ in shots), query)
    return EvalExample(example_id, "".join(parts), references, parts=parts,
                       exemplar_targets=tuple(target for _, target in shots), **fields)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How one task is run and scored (see the module docstring)."""

    benchmark: str  # the results row, e.g. "MMLU-Direct" (normalized-average names: metrics.py)
    mode: str = "generate"
    shape: str = "text"
    cot: bool = False
    metric: str = "exact_match"
    max_new_tokens: int = 32
    stop_sequences: tuple[str, ...] = ()
    random: float = 0.0  # chance score in percent, unless examples carry their own `chance`
    aggregate: str = "macro"  # how task scores form the benchmark score: mean of tasks, or over examples
    letters: str = "ABCD"
    decimal_comma: bool = False  # numbers written "70.000" / "70 000" / "2,5" (MGSM de, es, fr, ru)

    def __post_init__(self):
        for field, value, allowed in (("mode", self.mode, MODES), ("shape", self.shape, SHAPES),
                                      ("metric", self.metric, METRICS), ("aggregate", self.aggregate,
                                                                         AGGREGATES)):
            if value not in allowed:
                raise ValueError(f"protocol for {self.benchmark}: {field}={value!r} not in {allowed}")

    def extract(self, output: str, example: EvalExample) -> str | None:
        return extract(output, self.shape, cot=self.cot, target=example.references[0],
                       options=example.choices, letters=self.letters, decimal_comma=self.decimal_comma)

    def __call__(self, output: Any, example: Mapping[str, Any] | None = None, is_target: bool = False
                 ) -> Any:
        """seqio postprocess_fn: targets pass through, a model output becomes its extracted answer."""
        if is_target:
            return output
        example = example or {}
        choices = json.loads(_text(example.get("choices", "[]")) or "[]")
        ex = EvalExample("?", "", (_text(example.get("targets", "")),), tuple(choices))
        return self.extract(_text(output), ex) or ""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """A named task: its protocol and a loader that reads its examples (only when evaluated)."""

    name: str
    protocol: Protocol
    load: Callable[[], Sequence[EvalExample]]
