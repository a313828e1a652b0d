"""Text prompts -> token ids as UL2R/Flan models read them, and U-PaLM's modes (section 4).

A training example is read as `BOS, [mode], inputs..., targets...` (the feature converter shifts the
sequence right behind BOS; the bidirectional prefix-LM region is BOS + inputs, docs/ARCHITECTURE.md
section 1), so a prompt is `[BOS] + [mode token] + text ids` and generation continues where the targets
began.

Modes (U-PaLM section 4: "[S2S]", "[NLU]", "[NLG]" switch the model between its S, R and X denoisers):
- "s2s", "nlu", "nlg": prepend that mode token; the prompt is encoded bidirectionally (prefix-LM);
- "causal": no mode token, causal encoding;
- None: no mode token, the model's default encoding (`prefix_lm` of the checkpoint, or the caller's).

Special names in the text - `<extra_id_N>` (sentinel N) and `[NLU]` `[NLG]` `[S2S]` - become their ids
whatever the tokenizer (the byte vocabulary and reserved-token HF vocabularies have no such strings); the
text between them is encoded normally.
"""
from __future__ import annotations

import re
from typing import Any

MODES = ("s2s", "nlu", "nlg", "causal")
MODE_TOKENS = {"s2s": "[S2S]", "nlu": "[NLU]", "nlg": "[NLG]"}
_SPECIAL = re.compile(r"<extra_id_(\d+)>|(\[NLU\]|\[NLG\]|\[S2S\])")


def check_mode(mode: str | None) -> None:
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode={mode!r}: use one of {', '.join(MODES)} or None (no mode token)")


def prompt_is_prefix_lm(mode: str | None, prefix_lm: bool | None, default: bool) -> bool:
    """The encoding a call uses: the mode's (s2s/nlu/nlg bidirectional, causal causal), else the explicit
    `prefix_lm`, else the checkpoint's `default`. A mode and an explicit `prefix_lm` that disagree raise."""
    check_mode(mode)
    if mode is None:
        return default if prefix_lm is None else bool(prefix_lm)
    wanted = mode != "causal"
    if prefix_lm is not None and bool(prefix_lm) != wanted:
        raise ValueError(f"mode={mode!r} encodes the prompt {'bidirectionally' if wanted else 'causally'}, "
                         f"but prefix_lm={prefix_lm!r} was passed too; drop one of them")
    return wanted


def encode_text(vocab: Any, text: str) -> list[int]:
    """Token ids of `text`, with `<extra_id_N>` and mode-token names mapped to their ids."""
    ids: list[int] = []
    pos = 0
    for match in _SPECIAL.finditer(text):
        if match.start() > pos:
            ids += [int(i) for i in vocab.encode(text[pos:match.start()])]
        if match.group(1) is not None:
            n = int(match.group(1))
            if n >= len(vocab.sentinel_ids):
                raise ValueError(f"prompt names {match.group(0)} but the vocabulary has "
                                 f"{len(vocab.sentinel_ids)} sentinels (<extra_id_0>..<extra_id_"
                                 f"{len(vocab.sentinel_ids) - 1}>)")
            ids.append(int(vocab.sentinel_ids[n]))
        else:
            ids.append(int(vocab.mode_token_ids[match.group(2)]))
        pos = match.end()
    if pos < len(text):
        ids += [int(i) for i in vocab.encode(text[pos:])]
    return ids


def encode_prompt(vocab: Any, text: str, mode: str | None = None) -> list[int]:
    """`[BOS] + [mode token] + text ids` (module docstring)."""
    check_mode(mode)
    ids = [int(vocab.bos_id)]
    if mode in MODE_TOKENS:
        ids.append(int(vocab.mode_token_ids[MODE_TOKENS[mode]]))
    return ids + encode_text(vocab, text)
