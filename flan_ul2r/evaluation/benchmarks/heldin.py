"""The held-in suite: the embedded instruction suite's held-in tasks (the ones the `flan` mixture trains
on), evaluated on their validation split in the held-out suite's styles (zero-shot, few-shot, CoT, rank;
`heldout.py`). Validation items never reach training: the suite splits every task's item space by hash
(`flan_ul2r.data.flan.suite.tasks.split_of`). Rows are `Heldin-ZS`, `Heldin-FS`, `Heldin-CoT` and
`Heldin-Rank`: how well instruction tuning taught the tasks it trained on, beside how far it transfers to
tasks it never saw (the Flan paper's held-out evaluation, Chung et al. 2022 section 2.3)."""
from __future__ import annotations

from typing import Any

from flan_ul2r.data.flan.suite.tasks import SUITE
from flan_ul2r.evaluation.benchmarks import heldout
from flan_ul2r.evaluation.protocol import EvalTask

GROUP = "Heldin"


def held_in_tasks() -> list[Any]:
    """The suite's held-in tasks, discovered (not a fixed list)."""
    return [t for t in SUITE if not t.held_out]


def tasks(num_examples, num_shots=heldout.NUM_SHOTS) -> list[EvalTask]:
    """`heldin_<style>.<task>` for each held-in task (values or callables, as `heldout.tasks`)."""
    return heldout.tasks(num_examples, num_shots, suite_tasks=held_in_tasks(), group=GROUP)
