"""Infilling (U-PaLM section 4): a prompt with sentinels where the blanks are; the model writes the spans.

The model learned span corruption's targets (flan_ul2r/data/ul2/denoisers.py, T5's
`noise_span_to_unique_sentinel`): inputs `[NLU] a <extra_id_0> c <extra_id_1>`, targets
`<extra_id_0> b <extra_id_1> d EOS`. T5's noise mask (`random_spans_noise_mask`, no roll) always ends with a
noise span, so every input the model trained on in `[NLU]`/`[NLG]` mode ends with a sentinel, and U-PaLM
section 4 prompts the same way ("with these modes, an extra-id token goes at the end of the input"). So an
infill prompt is `BOS [mode] text`, and in `[NLU]`/`[NLG]` mode the next sentinel is appended when the text
does not already end with one: `<extra_id_0>` for a text without blanks (the model writes what follows), or
`<extra_id_k+1>` after a text whose blanks are `<extra_id_0..k>` (a passage is cut from longer text).
Without it a U model trained on T5's masks does not start its answer with `<extra_id_0>`: on the smoke
pipeline's U model, p(<extra_id_0>) is about 1e-5 after held-out passages without it, 0.996 after training
rows. Decoding stops at EOS or at that next sentinel, and the output is split on sentinel ids: span j is
what follows the prompt's j-th sentinel; the appended blank's own span is not written.
A sentinel the model never wrote gives "". Tokens before the first sentinel (a model that skipped
`<extra_id_0>`) count for the prompt's first sentinel.

Blanks written between spaces ("the <extra_id_0> is"). Span corruption runs on token ids, so with a
vocabulary whose word tokens carry their leading space (GPT-2-style byte-level BPE `Ġtree`, SentencePiece
`▁tree`, as Llama, Gemma and PaLM use) the sentinel replaces the missing words together with that space:
the model saw `the <extra_id_0>` as tokens `the`, `<extra_id_0>`, never `the`, `Ġ`, `<extra_id_0>`. So
for such a vocabulary the space before a sentinel is folded into the blank before encoding
(`fold_blank_spaces`); a byte vocabulary, whose spans start on any byte, keeps the text as written.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from flan_ul2r.decoding.prompts import check_mode, encode_prompt

APPEND_SENTINEL_MODES = ("nlu", "nlg")
_SPACED_SENTINEL = re.compile(r" (?=<extra_id_\d+>)")


def fold_blank_spaces(vocab: Any, text: str) -> str:
    """`text` with the space before each sentinel dropped when the vocabulary's word tokens carry their
    leading space (one token for " the"); unchanged otherwise (module docstring)."""
    if len(vocab.encode(" the")) != 1:
        return text
    return _SPACED_SENTINEL.sub("", text)


def infill_prompt(vocab: Any, text: str, mode: str | None) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, the prompt's sentinel ids in order, token-id stop sequences)."""
    check_mode(mode)
    ids = encode_prompt(vocab, fold_blank_spaces(vocab, text), mode)
    sentinels = list(vocab.sentinel_ids)
    order = {s: j for j, s in enumerate(sentinels)}
    found = [i for i in ids if i in order]
    if not found and mode in APPEND_SENTINEL_MODES:
        ids.append(sentinels[0])
        found = [sentinels[0]]
    if not found:
        raise ValueError(f"infill: the prompt {text[:80]!r} has no sentinel (<extra_id_0>, ...) where a span "
                         f"should go (only modes {APPEND_SENTINEL_MODES} append one)")
    if len(set(found)) != len(found):
        raise ValueError(f"infill: the prompt {text[:80]!r} uses a sentinel twice; number blanks "
                         "<extra_id_0>, <extra_id_1>, ... in order")
    after_last = max(order[s] for s in found) + 1
    stops = [[sentinels[after_last]]] if after_last < len(sentinels) else []
    if mode in APPEND_SENTINEL_MODES and ids[-1] not in order and stops:
        ids.append(sentinels[after_last])  # the text goes on after the passage: one more blank
    return ids, found, stops


def split_spans(generated: Sequence[int], prompt_sentinels: Sequence[int], all_sentinels: Sequence[int],
                eos_id: int) -> list[list[int]]:
    """The ids written after each of the prompt's sentinels, in the prompt's order (module docstring)."""
    marks = set(int(s) for s in all_sentinels)
    spans: dict[int, list[int]] = {}
    lead: list[int] = []  # written before any sentinel
    current: int | None = None
    for t in (int(t) for t in generated):
        if t == eos_id:
            break
        if t in marks:
            current = t if t not in spans else None  # a repeated sentinel: what follows it is dropped
            if current is not None:
                spans[current] = []
        elif current is not None:
            spans[current].append(t)
        elif not spans:
            lead.append(t)
    return [spans.get(int(s), lead if j == 0 else []) for j, s in enumerate(prompt_sentinels)]
