"""The compute ledger: FLOPs, tokens and time of each pipeline stage, and UL2R's and Flan's compute as a
share of the base model's pretraining compute.

FLOPs are counted as training counts them (training/compute.py: PaLM appendix B, 6N + 12·L·H·Dh·T per
token) over every position of every batch the stage stepped through: tokens = steps x batch x (inputs +
targets). U-PaLM section 2.4 states UL2R's cost the same way, as a share of the base's pretraining
tokens at equal model size (1.3B of PaLM's 780B tokens = 0.16%). For a base model we pretrained, its FLOPs
are measured here; for an imported model they are `flops_per_token x pretraining_tokens`, the token count
the user states (e.g. 15e12 for Llama 3, Meta's model card).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training.compute import train_flops_per_token


@dataclasses.dataclass(frozen=True)
class StageCost:
    """What one training stage spent: `tokens` = steps x batch x sequence length (padding included, as
    the accelerator computes it), `flops` = tokens x flops_per_token, `train_seconds` = the sum of step
    times (every attempt, one time per step), `wall_seconds` = the stage's wall time in the attempt that
    ended it."""

    stage: str
    steps: int
    batch_size: int
    sequence_length: int
    flops_per_token: float
    train_seconds: float
    wall_seconds: float

    @property
    def tokens(self) -> int:
        return self.steps * self.batch_size * self.sequence_length

    @property
    def flops(self) -> float:
        return self.tokens * self.flops_per_token

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "tokens": self.tokens, "flops": self.flops}


def stage_cost(stage: str, cfg: ModelConfig, steps: int, batch_size: int, sequence_length: int,
               train_seconds: float, wall_seconds: float) -> StageCost:
    return StageCost(stage, int(steps), int(batch_size), int(sequence_length),
                     train_flops_per_token(cfg, sequence_length), float(train_seconds), float(wall_seconds))


def imported_base_cost(cfg: ModelConfig, pretraining_tokens: float, sequence_length: int) -> dict[str, Any]:
    """An imported model's pretraining compute from the token count the user states in gin."""
    per_token = train_flops_per_token(cfg, sequence_length)
    return {"stage": "base (pretraining, stated)", "tokens": float(pretraining_tokens),
            "flops_per_token": per_token, "flops": per_token * float(pretraining_tokens),
            "source": "pipeline.base_pretraining_tokens"}


def ledger(costs: Sequence[StageCost], base_flops: float, base_source: str,
           groups: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """{"stages": [...], "base_pretraining_flops", "shares": {group: % of base}}. `groups` names what to
    total, e.g. {"UL2R": ["ul2r"], "Flan (on U)": ["flan_ul2r"], "UL2R + Flan": ["ul2r", "flan_ul2r"]}."""
    by_stage = {c.stage: c for c in costs}
    shares = {}
    for name, stages in groups.items():
        present = [by_stage[s].flops for s in stages if s in by_stage]
        if present and base_flops > 0:
            shares[name] = 100.0 * sum(present) / base_flops
    return {"stages": [c.to_dict() for c in costs], "base_pretraining_flops": base_flops,
            "base_pretraining_source": base_source, "percent_of_base_pretraining": shares}
