"""Vocabularies that know their sentinels and UL2 mode tokens (docs/ARCHITECTURE.md section 2).

Every vocabulary here is a `seqio.Vocabulary` (usable inside tf.data) with, in addition:
`sentinel_ids` (`sentinel_ids[0]` is `<extra_id_0>`; T5 numbers sentinels down from the top of the
sentinel block), `mode_token_ids` (`[NLU]`, `[NLG]`, `[S2S]`: UL2's paradigm tokens as released with the
UL2 checkpoints; U-PaLM section 2.3), `bos_id`, `eos_id`, `pad_id` and `describe()`.
"""
from __future__ import annotations

from collections.abc import Iterable

import seqio

NUM_SENTINELS = 100  # T5 / U-PaLM section 11.3: 100 sentinel ids (`<extra_id_0>` ... `<extra_id_99>`).
MODE_TOKENS = ("[NLU]", "[NLG]", "[S2S]")  # R, X, S denoisers (UL2 card; U-PaLM section 2.3)


class ByteVocabulary(seqio.ByteVocabulary):
    """seqio's byte vocabulary (pad 0, eos 1, unk 2, bytes 3..258) + 100 sentinels + 3 mode tokens.

    Ids 259..358 are the sentinels (`<extra_id_0>` = 358, counting down as T5 does), 359..361 are
    `[NLU]`, `[NLG]`, `[S2S]` (appended after the sentinels). The decoder's start token is pad (0), the
    T5 convention.
    """

    def __init__(self, num_sentinels: int = NUM_SENTINELS):
        super().__init__(extra_ids=num_sentinels + len(MODE_TOKENS))
        base = self._base_vocab_size
        top = base + num_sentinels - 1
        self.sentinel_ids: tuple[int, ...] = tuple(top - j for j in range(num_sentinels))
        self.mode_token_ids: dict[str, int] = {m: top + 1 + j for j, m in enumerate(MODE_TOKENS)}
        self._names = {s: f"<extra_id_{j}>" for j, s in enumerate(self.sentinel_ids)}
        self._names.update({i: m for m, i in self.mode_token_ids.items()})
        self._names[self.eos_id] = "</s>"

    @property
    def bos_id(self) -> int:
        return 0

    def decode(self, ids: Iterable[int]) -> str:
        """Bytes as UTF-8 text; sentinels, mode tokens and EOS by name; padding dropped."""
        out: list[str] = []
        run: list[int] = []
        for i in (int(t) for t in ids):
            if 3 <= i < self._base_vocab_size:
                run.append(i - 3)
                continue
            if run:
                out.append(bytes(run).decode("utf-8", errors="replace"))
                run = []
            if i in self._names:
                out.append(self._names[i])
        if run:
            out.append(bytes(run).decode("utf-8", errors="replace"))
        return "".join(out)

    def describe(self) -> dict:
        return {
            "kind": "byte", "vocab_size": self.vocab_size, "base_vocab_size": self._base_vocab_size,
            "bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id,
            "sentinels": {"first": self.sentinel_ids[0], "last": self.sentinel_ids[-1],
                          "count": len(self.sentinel_ids), "source": "appended"},
            "mode_tokens": {m: {"id": i, "source": "appended"} for m, i in self.mode_token_ids.items()},
            "appended_ids": list(range(self._base_vocab_size, self.vocab_size)),
        }


def get_vocabulary(spec: str) -> seqio.Vocabulary:
    """Builds a vocabulary from a spec: "byte", "sentencepiece:PATH", "hf:PATH"."""
    kind, _, path = spec.partition(":")
    if kind == "byte":
        return ByteVocabulary()
    raise ValueError(f"vocabulary spec {spec!r}: unknown kind {kind!r}; expected 'byte', "
                     "'sentencepiece:PATH' or 'hf:PATH'")
