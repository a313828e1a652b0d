"""Flan instruction tasks and mixtures (Chung et al. 2022; FLAN v2 `mixtures.py`).

Registered on import (cheap; examples are generated on first use):
- one task per embedded-suite task, `flan_<name>` (flan_ul2r.data.instruction_suite), train and
  validation splits;
- mixture `flan`: the held-in tasks (plus any user task registered with `register_instruction_task`),
  mixed by family rates and, inside a family, examples-proportionally with a per-task cap;
- mixture `flan_heldout`: the held-out tasks (never in `flan`; evaluation only).

Each example is rendered in a style drawn from the task's style mix (zs_noopt / zs_opt / fs_noopt /
fs_opt / cot / fs_cot; the Flan Collection mixes zero- and few-shot, section 3 of Longpre et al.), with
few-shot exemplars drawn from the task's own train split (never the example itself) and pruned, whole
exemplars first, until the inputs fit `inputs` of the sequence length (FLAN prunes few-shot prompts to
1920 of 2048 tokens). EOS ends both inputs and targets (Flan section 2.2: EOS between inputs and
targets); loss is on targets only (the prefix-LM feature converter). Truncation: an example whose
inputs alone exceed the length keeps the *last* input tokens (indexed.trim_to_total).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

import gin
from flan_ul2r.data.indexed import IndexedTask, register_indexed_mixture, register_indexed_task
from flan_ul2r.data.instruction_suite import SUITE, generate
from flan_ul2r.data.templates import Template, check_templates, render, styles_for

# Mixture rates across families. Paper (Chung et al. 2022, Table 23, "Proportion B"): Muffin 46.0%,
# T0-SF 27.9%, NIV2 24.2%, CoT 1.8%. FLAN v2 repo `flan2022_submix`: 0.40 / 0.32 / 0.20 / 0.05 / dialog 0.03.
FAMILY_RATES_PAPER = {"muffin": 46.0, "t0sf": 27.9, "niv2": 24.2, "cot": 1.8}
FAMILY_RATES_FLAN2022 = {"muffin": 0.40, "t0sf": 0.32, "niv2": 0.20, "cot": 0.05, "dialog": 0.03}
# Per-task example caps inside a family (FLAN v2 mixtures.py; paper Table 23): 30k / 20k / 5k / 100k / 200k.
FAMILY_CAPS = {"muffin": 30_000, "t0sf": 20_000, "niv2": 5_000, "cot": 100_000, "dialog": 200_000}
# Style mix: zero-/few-shot and options variants equally, plus CoT where a rationale exists.
DEFAULT_STYLE_MIX = {"zs_noopt": 1.0, "zs_opt": 1.0, "fs_noopt": 1.0, "fs_opt": 1.0, "cot": 0.5,
                     "fs_cot": 0.5}
NUM_SHOTS = 3
SUITE_SIZES = {"train": 2000, "validation": 200}

_FAMILY_OF: dict[str, str] = {}
_SIZES: dict[str, int] = {}
_HELD_OUT: set[str] = set()
_REGISTERED_SUITE: list[bool] = []  # non-empty once the suite is in: later tasks rebuild the mixtures


class _Rendered:
    """Examples of one task, rendered deterministically from (seed, position): a pure function."""

    def __init__(self, name: str, examples: Callable[[str], list[dict]], templates: Sequence[Template],
                 style_mix: Mapping[str, float], vocabulary: Any, num_shots: int):
        self.name, self._examples, self.templates = name, examples, tuple(templates)
        self.style_mix, self.vocabulary, self.num_shots = dict(style_mix), vocabulary, num_shots
        self._cache: dict[str, list[dict]] = {}

    def examples(self, split: str) -> list[dict]:
        if split not in self._cache:
            rows = self._examples(split)
            if not rows:
                raise ValueError(f"task {self.name!r}: split {split!r} has no examples")
            check_templates(self.name, self.templates, rows[0])
            self._cache[split] = rows
        return self._cache[split]

    def text(self, index: int, seed: tuple[int, int], split: str, max_inputs: int) -> tuple[str, str, str]:
        rows = self.examples(split)
        ex = rows[index]
        rng = np.random.default_rng([seed[0] & (2**63 - 1), seed[1] & (2**63 - 1), index])
        mix = styles_for(ex, self.style_mix)
        style = str(rng.choice(list(mix), p=list(mix.values())))
        t = int(rng.integers(len(self.templates)))
        shots: list[dict] = []
        if style.startswith("fs_"):
            pool = self.examples("train")
            picks = rng.choice(len(pool), size=min(self.num_shots + 1, len(pool)), replace=False)
            same = pool is rows
            shots = [pool[int(i)] for i in picks if not (same and int(i) == index)][: self.num_shots]
        while True:
            x, y = render(ex, self.templates[t], style, shots, task=self.name, template_index=t)
            if not shots or len(self.vocabulary.encode(x)) + 1 <= max_inputs:
                return x, y, style
            shots = shots[:-1]

    def tokens(self, index, seed, split: str, max_inputs: int):
        x, y, style = self.text(int(index), (int(seed[0]), int(seed[1])), split, max_inputs)
        eos = int(self.vocabulary.eos_id)
        return (np.asarray(list(self.vocabulary.encode(x)) + [eos], np.int32),
                np.asarray(list(self.vocabulary.encode(y)) + [eos], np.int32), style.encode())


def register_instruction_task(name: str, examples: Callable[[str], list[dict]] | Sequence[dict],
                              templates: Sequence[Template], *, family: str = "muffin",
                              style_mix: Mapping[str, float] | None = None, vocabulary: Any = None,
                              num_shots: int = NUM_SHOTS, held_out: bool = False,
                              splits: Sequence[str] = ("train", "validation")) -> str:
    """Registers an instruction task; it joins mixture `flan` (or `flan_heldout` if held_out) via its family.

    `examples`: a list of dicts (used for every split) or `split -> list of dicts`; each dict holds the
    templates' fields plus `answer` (and optionally `rationale`, `options`).
    """
    if family not in FAMILY_CAPS:
        raise ValueError(f"task {name!r}: unknown family {family!r}; families {sorted(FAMILY_CAPS)}")
    if vocabulary is None:
        from flan_ul2r.tasks.ul2r import _default_vocabulary

        vocabulary = _default_vocabulary()
    fn = examples if callable(examples) else (lambda split, rows=list(examples): rows)
    rendered = _Rendered(name, fn, templates, style_mix or DEFAULT_STYLE_MIX, vocabulary, num_shots)

    def num_records(split: str, seqlen: Mapping[str, int]) -> int:
        return len(rendered.examples(split))

    def fetch(index: tf.Tensor, split: str, seqlen: Mapping[str, int]) -> dict[str, Any]:
        return {"index": index, "_split": split}

    def preprocess(features: dict[str, Any], seed: tf.Tensor, seqlen: Mapping[str, int]) -> dict[str, Any]:
        split, max_inputs = features["_split"], int(seqlen["inputs"])
        x, y, style = tf.numpy_function(lambda i, s: rendered.tokens(i, s, split, max_inputs),
                                        [features["index"], seed], [tf.int32, tf.int32, tf.string],
                                        stateful=False)
        return {"inputs": tf.reshape(x, [-1]), "targets": tf.reshape(y, [-1]),
                "task": tf.constant(name), "style": tf.reshape(style, [])}

    register_indexed_task(IndexedTask(name, vocabulary, num_records, fetch, preprocess,
                                      splits=tuple(splits), string_features=("task", "style")))
    _FAMILY_OF[name] = family
    _SIZES[name] = len(rendered.examples("train"))  # also checks the templates against the fields
    (_HELD_OUT.add if held_out else _HELD_OUT.discard)(name)
    if _REGISTERED_SUITE:
        register_mixtures()
    return name


def family_weights(tasks: Sequence[str], rates: Mapping[str, float], caps: Mapping[str, int]
                   ) -> list[tuple[str, float]]:
    """Task rates: family rate x the task's share of its family, examples-proportional with a cap."""
    for fam, rate in rates.items():
        if not rate > 0:
            raise ValueError(f"flan mixture: family {fam!r} has rate {rate!r}; rates must be > 0 "
                             "(drop the family instead)")
    by_family: dict[str, list[str]] = {}
    for t in tasks:
        by_family.setdefault(_FAMILY_OF[t], []).append(t)
    missing = sorted(set(by_family) - set(rates))
    if missing:
        raise ValueError(f"flan mixture: no rate for families {missing}; rates given for {sorted(rates)}")
    present = {f: rates[f] for f in by_family}
    total = sum(present.values())
    out = []
    for fam, names in sorted(by_family.items()):
        sizes = {t: min(_SIZES[t], caps.get(fam, _SIZES[t])) for t in names}
        denom = sum(sizes.values())
        out += [(t, present[fam] / total * sizes[t] / denom) for t in names]
    return out


@gin.configurable
def flan_mixture(rates: Mapping[str, float] | None = None, caps: Mapping[str, int] | None = None
                 ) -> tuple[dict, dict]:
    """gin edge: family rates (default: the paper's Proportion B) and per-task caps."""
    return dict(rates or FAMILY_RATES_PAPER), dict(caps or FAMILY_CAPS)


def register_mixtures() -> None:
    rates, caps = flan_mixture()
    held_in = [t for t in _FAMILY_OF if t not in _HELD_OUT]
    register_indexed_mixture("flan", family_weights(held_in, rates, caps))
    held_out = [t for t in _FAMILY_OF if t in _HELD_OUT]
    register_indexed_mixture("flan_heldout", [(t, 1.0) for t in held_out])


def register_suite() -> None:
    for task in SUITE:
        register_instruction_task(f"flan_{task.name}", lambda split, t=task: generate(t, SUITE_SIZES[split]),
                                  task.templates, family=task.family, held_out=task.held_out)
    register_mixtures()
    _REGISTERED_SUITE.append(True)


def register_after_gin() -> None:
    register_mixtures()


register_suite()
