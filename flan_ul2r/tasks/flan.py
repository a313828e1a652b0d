"""Flan registrations (installed as `flan_ul2r.tasks.flan`): the embedded suite and the mixtures.

Registered on import (cheap; examples are generated and rendered tables built on first use):
- one task per embedded-suite task, `flan_<name>` (flan_ul2r.data.flan.suite.tasks), train and
  validation splits;
- mixture `flan`: the held-in tasks (plus any user task registered with
  `flan_ul2r.data.flan.instruction_tasks.register_instruction_task`), mixed by family rates and, inside a
  family, examples-proportionally with a per-task cap (flan_ul2r.data.flan.mixing); with
  `flan_mixture.collection` bound, the Flan Collection export's tasks replace the suite's;
- mixture `flan_heldout`: the held-out tasks (never in `flan`; evaluation only).
The library code (templates, rendering, mixing, readers) lives in `flan_ul2r/data/`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gin

from flan_ul2r.data.flan import instruction_tasks
from flan_ul2r.data.flan import mixing as flan_mixing
from flan_ul2r.data.flan.collection import register_flan_collection
from flan_ul2r.data.flan.suite.tasks import SUITE, SUITE_SIZES, generate
from flan_ul2r.data.vocab.default_vocabulary import default_vocabulary


@gin.configurable
def flan_mixture(
    rates: Mapping[str, float] | None = None,
    caps: Mapping[str, int] | None = None,
    style_mixes: Mapping[str, Mapping[str, float]] | None = None,
    inversion_rate: float = 0.0,
    collection: str | Sequence[str] | None = None,
    num_shots: int | None = None,
) -> dict:
    """gin edge of the `flan` mixture.

    rates: family rates (default: the paper's Table 23 Proportion B; FLAN v2's flan2022_submix is
      flan_ul2r.data.flan.mixing.FAMILY_RATES_FLAN2022). caps: per-task caps per family.
    style_mixes: per-family style mixes replacing flan_mixing.FAMILY_STYLE_MIXES (e.g. allow CoT styles
      in Muffin: {"muffin": {"zs_noopt": 1, "cot": 1}}).
    inversion_rate: share of input-inverted examples for suite tasks that have inversion templates
      (FLAN v2 uses 0.3 for its CoT and Dialog "-II" tasks; off by default).
    collection: Flan Collection export files (JSONL / Parquet, globs allowed); when set, `flan` trains on
      them instead of the embedded suite.
    num_shots: exemplars in the embedded suite's few-shot examples (None: FLAN's 0-to-10 draw; a small
      model's miniature can use 1, as its few-shot evaluation does).
    """
    return {
        "rates": dict(rates or flan_mixing.FAMILY_RATES_PAPER),
        "caps": dict(caps or flan_mixing.FAMILY_CAPS),
        "styles": dict(style_mixes or {}),
        "inversion_rate": float(inversion_rate),
        "collection": collection,
        "num_shots": num_shots,
    }


def register_suite() -> None:
    config = flan_mixture()
    instruction_tasks.drop_members("collection")
    with instruction_tasks.mixtures_deferred():
        for task in SUITE:
            instruction_tasks.register_instruction_task(
                f"flan_{task.name}",
                lambda split, t=task: generate(t, SUITE_SIZES[split], split),
                task.templates,
                family=task.family,
                style_mix=flan_mixing.style_mix_for(task.family, config["styles"]),
                held_out=task.held_out,
                inversions=task.inversions,
                inversion_rate=config["inversion_rate"] if task.inversions else 0.0,
                lettered=task.lettered,
                num_shots=config["num_shots"],
                num_examples=SUITE_SIZES["train"],
                origin="suite",
            )
        if config["collection"]:
            register_flan_collection(config["collection"], default_vocabulary(), config["caps"])
    instruction_tasks.register_flan_mixtures(config["rates"], config["caps"], config["styles"])


def register_after_gin() -> None:
    register_suite()


register_suite()
