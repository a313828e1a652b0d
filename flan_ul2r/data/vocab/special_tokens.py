"""What every vocabulary kind shares (flan_ul2r/data/vocab/vocabularies.py, hf_vocabulary.py import it): the
special-token constants, the reserved-token patterns, `SpecialTokensMixin` (readable `decode`,
`describe`, special-id bookkeeping) and `find_tokenizer_json`."""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

NUM_SENTINELS = 100  # T5 / U-PaLM section 11.3: 100 sentinel ids (`<extra_id_0>` ... `<extra_id_99>`).
MODE_TOKENS = ("[NLU]", "[NLG]", "[S2S]")  # R, X, S denoisers (UL2 section 3.1.2; U-PaLM section 2.3)
POLICIES = ("auto", "append", "last_n")
# Tokens a vocabulary reserves for later use, reused as sentinels / mode tokens: Llama-3, Gemma.
RESERVED_TOKEN_PATTERNS = (re.compile(r"^<\|reserved_special_token_(\d+)\|>$"),
                           re.compile(r"^<unused(\d+)>$"))


class SpecialTokensMixin:
    """Shared by all kinds: readable `decode`, `describe`, the special-id bookkeeping."""

    sentinel_ids: tuple[int, ...]
    mode_token_ids: dict[str, int]
    _names: dict[int, str]
    _info: dict[str, Any]

    def _set_specials(self, sentinels: Sequence[int], sentinel_source: str, modes: dict[str, int],
                      mode_sources: dict[str, str], appended: Sequence[int]) -> None:
        self.sentinel_ids = tuple(int(s) for s in sentinels)
        self.mode_token_ids = {m: int(modes[m]) for m in MODE_TOKENS}
        self._names = {s: f"<extra_id_{j}>" for j, s in enumerate(self.sentinel_ids)}
        self._names.update({i: m for m, i in self.mode_token_ids.items()})
        self._info = {"sentinel_source": sentinel_source, "mode_sources": dict(mode_sources),
                      "appended_ids": [int(i) for i in appended]}

    # Subclasses: the text of a run of ordinary ids, and whether a run starts with a word boundary.
    def _decode_run(self, run: list[int]) -> str:
        raise NotImplementedError

    def _starts_word(self, token_id: int) -> bool:
        return False

    def _dropped_ids(self) -> set[int]:
        return set()

    def decode(self, ids: Iterable[int]) -> str:  # type: ignore[override]
        """Text of `ids` with sentinels, mode tokens and EOS rendered by name (`<extra_id_0>`, `[NLU]`,
        EOS as the tokenizer names it); unlike seqio it does not stop at EOS. Padding is dropped."""
        if isinstance(ids, (tf.Tensor, np.ndarray)):
            ids = np.asarray(ids).tolist()
        names = dict(self._names)
        names.setdefault(self.eos_id, self._eos_name())
        dropped = self._dropped_ids()
        out: list[str] = []
        run: list[int] = []

        def flush() -> None:
            if run:
                text = self._decode_run(run)
                if out and self._starts_word(run[0]) and not text.startswith(" "):
                    text = " " + text
                out.append(text)
                run.clear()

        for i in (int(t) for t in ids):
            if i in names:
                flush()
                out.append(names[i])
            elif i not in dropped:
                run.append(i)
        flush()
        return "".join(out)

    def _eos_name(self) -> str:
        return "</s>"

    def describe(self) -> dict[str, Any]:
        """JSON-able mapping: kind, sizes, bos/eos/pad, where sentinels and mode tokens come from."""
        return {
            "kind": self._kind, **self._location(),
            "vocab_size": int(self.vocab_size), "base_vocab_size": int(self._original_size),
            "bos_id": int(self.bos_id), "eos_id": int(self.eos_id), "pad_id": int(self.pad_id),
            "sentinel_policy": getattr(self, "_policy", "append"),
            "sentinels": {"first": self.sentinel_ids[0], "last": self.sentinel_ids[-1],
                          "count": len(self.sentinel_ids), "source": self._info["sentinel_source"],
                          "ids": list(self.sentinel_ids)},
            "mode_tokens": {m: {"id": i, "source": self._info["mode_sources"][m]}
                            for m, i in self.mode_token_ids.items()},
            "appended_ids": list(self._info["appended_ids"]),
        }

    def _location(self) -> dict[str, str]:
        return {}


def find_tokenizer_json(path: str | os.PathLike) -> Any:
    """`path` itself if it is a file, else `path/tokenizer.json` (an epath.Path: local or gs://); clear
    error otherwise."""
    from flan_ul2r import fs

    p = fs.path(path)
    if p.is_file():
        return p
    if p.is_dir() and (p / "tokenizer.json").is_file():
        return p / "tokenizer.json"
    if p.is_dir():
        raise FileNotFoundError(f"hf vocabulary: directory {str(p)!r} holds no tokenizer.json "
                                f"(found: {sorted(x.name for x in p.iterdir())[:10]})")
    raise FileNotFoundError(f"hf vocabulary: {str(p)!r} does not exist")
