"""Vocabularies that know their sentinels and UL2 mode tokens (docs/ARCHITECTURE.md section 2).

Every vocabulary here is a `seqio.Vocabulary` (usable inside tf.data through `encode_tf`/`decode_tf`) with,
in addition: `sentinel_ids` (`sentinel_ids[0]` is `<extra_id_0>`), `mode_token_ids` (`[NLU]`, `[NLG]`,
`[S2S]`: UL2's paradigm tokens, prepended to the inputs of R, X and S denoisers; U-PaLM section 2.3),
`bos_id`, `eos_id`, `pad_id`, `vocab_size` and `describe()`, a JSON-able, printable account of where every
special id came from. Checkpoints store that description; `vocabulary_from_description` rebuilds the same
mapping and refuses a tokenizer that would give a different one.

Kinds (`get_vocabulary(spec)`):
- `"byte"`: seqio's ByteVocabulary (pad 0, eos 1, unk 2, bytes 3..258) + 100 appended sentinels + 3 mode
  tokens; `bos_id` = pad 0 (T5: the decoder starts with 0).
- `"sentencepiece:PATH"`: seqio's SentencePieceVocabulary with 100 extra ids (T5's sentinels, counted down
  from the top) + mode tokens (the model's own `[NLU]`... pieces when present, else appended).
- `"bpe:SIZE"`: a SIZE-token BPE trained here on the default corpus (`default_bpe.py`), then as `"hf:PATH"`.
- `"hf:PATH"`: a HF `tokenizer.json` (or a directory with one) through the `tokenizers` library. Sentinels
  and mode tokens reuse tokens the vocabulary reserves (`<extra_id_N>`, Llama-3
  `<|reserved_special_token_N|>`, Gemma `<unusedN>`) when it has enough, else are appended (the model side
  grows its embedding; `describe()["appended_ids"]`). Option `sentinel_policy="last_n"` (spec
  `hf:PATH?sentinel_policy=last_n`) uses the last 100 ids as sentinels and the 3 below them as mode tokens
  with no new embeddings - how PaLM was adapted (U-PaLM section 11.3).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import seqio

from flan_ul2r import fs
from flan_ul2r.data.vocab.special_tokens import (
    MODE_TOKENS,
    NUM_SENTINELS,
    POLICIES,
    SpecialTokensMixin,
)


class ByteVocabulary(SpecialTokensMixin, seqio.ByteVocabulary):
    """seqio's byte vocabulary (pad 0, eos 1, unk 2, bytes 3..258) + 100 sentinels + 3 mode tokens.

    Ids 259..358 are the sentinels (`<extra_id_0>` = 358, counting down as T5 does), 359..361 are
    `[NLU]`, `[NLG]`, `[S2S]` (appended after the sentinels). The decoder's start token is pad (0), the
    T5 convention.
    """

    _kind = "byte"

    def __init__(self, num_sentinels: int = NUM_SENTINELS):
        super().__init__(extra_ids=num_sentinels + len(MODE_TOKENS))
        base = self._base_vocab_size
        self._original_size = base
        top = base + num_sentinels - 1
        self._set_specials([top - j for j in range(num_sentinels)], "appended",
                           {m: top + 1 + j for j, m in enumerate(MODE_TOKENS)},
                           dict.fromkeys(MODE_TOKENS, "appended"), range(base, base + self.extra_ids))

    @property
    def bos_id(self) -> int:
        return 0

    def _decode_run(self, run: list[int]) -> str:
        return bytes(i - 3 for i in run if 3 <= i < self._base_vocab_size).decode("utf-8", errors="replace")

    def _dropped_ids(self) -> set[int]:
        return {self.pad_id}

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Fast path for corpus building: UTF-8 bytes + 3."""
        return [np.frombuffer(t.encode("utf-8"), np.uint8).astype(np.int32) + 3 for t in texts]


class SentencePieceVocabulary(SpecialTokensMixin, seqio.SentencePieceVocabulary):
    """seqio's SentencePiece vocabulary + sentinels + mode tokens.

    `sentinel_policy="auto"`/`"append"`: seqio's 100 extra ids (`▁<extra_id_N>` pieces appended, T5 order:
    `<extra_id_0>` highest); mode tokens are the model's own `[NLU]`/`[NLG]`/`[S2S]` pieces when it has them,
    else appended as user-defined pieces after the extra ids. `"last_n"`: the last 100 pieces are the
    sentinels (`<extra_id_0>` = last id) and the 3 below them the mode tokens, no new ids (U-PaLM 11.3).
    """

    _kind = "sentencepiece"

    def __init__(self, path: str, sentinel_policy: str = "auto", num_sentinels: int = NUM_SENTINELS):
        import sentencepiece as spm

        if not fs.path(path).is_file():
            raise FileNotFoundError(f"sentencepiece vocabulary: model file {path!r} does not exist")
        if sentinel_policy not in POLICIES:
            raise ValueError(f"sentencepiece:{path}: sentinel_policy={sentinel_policy!r}; expected one of "
                             f"{POLICIES}")
        self._policy, self._path = sentinel_policy, path
        original = spm.SentencePieceProcessor(model_proto=fs.read_bytes(path))  # local or gs://
        n = original.GetPieceSize()
        self._original_size = n
        self._existing_modes = {m: original.piece_to_id(m) for m in MODE_TOKENS
                                if original.id_to_piece(original.piece_to_id(m)) == m}
        super().__init__(path, extra_ids=0 if sentinel_policy == "last_n" else num_sentinels)
        if sentinel_policy == "last_n":
            if n < num_sentinels + len(MODE_TOKENS) + 3:
                raise ValueError(f"sentencepiece:{path}: {n} pieces are too few for last_n sentinels")
            sentinels, source = [n - 1 - j for j in range(num_sentinels)], "last_n"
            fallback = {m: n - num_sentinels - 1 - j for j, m in enumerate(MODE_TOKENS)}
        else:
            sentinels = [self.tokenizer.piece_to_id(f"▁<extra_id_{j}>") for j in range(num_sentinels)]
            source = "appended"
            fallback = {m: self.tokenizer.piece_to_id(m) for m in MODE_TOKENS}
        modes = {m: self._existing_modes.get(m, fallback[m]) for m in MODE_TOKENS}
        sources = {m: "existing" if m in self._existing_modes else
                   ("last_n" if sentinel_policy == "last_n" else "appended") for m in MODE_TOKENS}
        self._set_specials(sentinels, source, modes, sources, range(n, self.tokenizer.GetPieceSize()))

    def _model_context(self):  # seqio's loader + the missing mode tokens as user-defined pieces
        if self._model:
            return self._model
        from sentencepiece import sentencepiece_model_pb2 as pb

        ctx = seqio.vocabularies._load_model(self._sentencepiece_model_file, self._extra_ids, None, True)
        missing = [m for m in MODE_TOKENS if m not in self._existing_modes]
        if self._policy != "last_n" and missing:
            proto = pb.ModelProto.FromString(ctx.sp_model)
            for m in missing:
                proto.pieces.add(piece=m, score=0.0, type=pb.ModelProto.SentencePiece.USER_DEFINED)
            import sentencepiece as spm

            model = proto.SerializeToString()
            ctx = seqio.vocabularies._ModelContext(spm.SentencePieceProcessor(model_proto=model), model)
        self._model = ctx
        return ctx

    @property
    def bos_id(self) -> int:
        bos = self.tokenizer.bos_id()
        return int(bos) if bos >= 0 else self.pad_id  # T5 models have no BOS: the decoder starts with pad

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_id()
        return int(pad) if pad >= 0 else 0

    def _decode_run(self, run: list[int]) -> str:
        return self.tokenizer.DecodeIds(run)

    def _starts_word(self, token_id: int) -> bool:
        return self.tokenizer.id_to_piece(token_id).startswith("▁")

    def _dropped_ids(self) -> set[int]:
        return {i for i in range(min(3, self.vocab_size)) if self.tokenizer.IsControl(i)}

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode(list(texts))

    def _location(self) -> dict[str, str]:
        return {"path": str(self._path)}


def get_vocabulary(spec: str) -> seqio.Vocabulary:
    """Builds a vocabulary from a spec: "byte", "sentencepiece:PATH", "hf:PATH" (tokenizer.json or a
    directory holding one), "bpe:SIZE" (trained on the default corpus); options after `?`, e.g.
    "hf:/tok?sentinel_policy=last_n"."""
    kind, _, rest = spec.partition(":")
    path, _, query = rest.partition("?")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq or key != "sentinel_policy":
            raise ValueError(f"vocabulary spec {spec!r}: bad option {item!r}; the only option is "
                             f"sentinel_policy={'|'.join(POLICIES)}")
        options[key] = value
    if kind == "byte" and not rest:
        return ByteVocabulary()
    if kind in ("sentencepiece", "spm") and path:
        return SentencePieceVocabulary(os.path.expanduser(path), **options)
    if kind == "hf" and path:
        from flan_ul2r.data.vocab.hf_vocabulary import HfTokenizerVocabulary

        return HfTokenizerVocabulary(os.path.expanduser(path), **options)
    if kind == "bpe" and path.isdigit():
        from flan_ul2r.data.vocab.default_bpe import bpe_path
        from flan_ul2r.data.vocab.hf_vocabulary import HfTokenizerVocabulary

        return HfTokenizerVocabulary(str(bpe_path(int(path))), **options)
    raise ValueError(f"vocabulary spec {spec!r}: expected 'byte', 'sentencepiece:PATH', 'hf:PATH' "
                     "(PATH = tokenizer.json or a directory holding one) or 'bpe:SIZE' (a BPE trained on "
                     "the default corpus)")


def vocabulary_from_description(description: dict[str, Any], tokenizer_path: str | None = None
                                ) -> seqio.Vocabulary:
    """Rebuilds the vocabulary a `describe()` dict was made from (e.g. stored with a checkpoint).

    `tokenizer_path` overrides the stored path (a checkpoint moved to another machine). Raises ValueError
    naming the first field that differs when the tokenizer found there gives another mapping.
    """
    kind = description.get("kind")
    policy = description.get("sentinel_policy", "auto")
    if kind == "byte":
        vocab: seqio.Vocabulary = ByteVocabulary()
    elif kind in ("sentencepiece", "hf"):
        path = tokenizer_path or description.get("path")
        if not path:
            raise ValueError(f"vocabulary description of kind {kind!r} has no 'path'; pass tokenizer_path")
        vocab = get_vocabulary(f"{kind}:{path}?sentinel_policy={policy}")
    else:
        raise ValueError(f"vocabulary description: unknown kind {kind!r}; expected byte, sentencepiece, hf")
    got = vocab.describe()  # type: ignore[attr-defined]
    for key, want in description.items():
        if key != "path" and got.get(key) != want:
            raise ValueError(f"vocabulary at {got.get('path', 'byte')!r} does not match the stored "
                             f"description: field {key!r} is {_short(got.get(key))}, stored {_short(want)}")
    return vocab


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 200 else text[:200] + "..."


