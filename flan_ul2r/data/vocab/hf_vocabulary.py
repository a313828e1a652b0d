"""A HF `tokenizer.json` as a seqio Vocabulary with sentinels and UL2 mode tokens (`"hf:PATH"` specs).

Runs through the `tokenizers` library (no `transformers`, no network). Inside tf.data the tokenizer is called
through `tf.numpy_function` with static ranks set, so `encode_tf`/`decode_tf` compose with any seqio
preprocessor. Special ids (see `vocabularies` module docstring for the policy):

- sentinels: the vocabulary's own `<extra_id_0..99>` if present ("existing"), else 100 reserved tokens
  (Llama-3 `<|reserved_special_token_N|>`, Gemma `<unusedN>`, in increasing N: `<extra_id_j>` = j-th)
  ("reserved"), else 100 new ids appended after the vocabulary, `<extra_id_0>` the highest (T5 order)
  ("appended"); `sentinel_policy="last_n"`: the last 100 ids, `<extra_id_0>` = last (U-PaLM section 11.3);
  `"append"`: always new ids.
- mode tokens `[NLU]`, `[NLG]`, `[S2S]`: the vocabulary's own if present, else the next 3 reserved tokens,
  else appended after the sentinels (`last_n`: the 3 ids just below the sentinels).

Appended ids are added to the in-memory tokenizer as special tokens, so `encode("<extra_id_0>")` gives the
sentinel; the model side grows its embedding for `describe()["appended_ids"]`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from flan_ul2r.data.vocab.special_tokens import (
    MODE_TOKENS,
    NUM_SENTINELS,
    POLICIES,
    RESERVED_TOKEN_PATTERNS,
    SpecialTokensMixin,
    find_tokenizer_json,
)

# Names used for BOS / EOS / PAD / UNK when tokenizer_config.json does not say (Llama, Llama-3, Gemma,
# GPT-2/Qwen, T5 conventions), in order of preference.
_BOS_NAMES = ("<|begin_of_text|>", "<bos>", "<s>", "<|endoftext|>")
_EOS_NAMES = ("<|end_of_text|>", "<eos>", "</s>", "<|endoftext|>")
_PAD_NAMES = ("<pad>", "[PAD]", "<|finetune_right_pad_id|>")
_UNK_NAMES = ("<unk>", "[UNK]")


def _token_name(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class HfTokenizerVocabulary(SpecialTokensMixin, seqio.Vocabulary):
    """A `tokenizers.Tokenizer` (tokenizer.json) with sentinels and mode tokens; see module docstring."""

    _kind = "hf"

    def __init__(self, path: str, sentinel_policy: str = "auto", num_sentinels: int = NUM_SENTINELS):
        from tokenizers import AddedToken, Tokenizer

        if sentinel_policy not in POLICIES:
            raise ValueError(f"hf:{path}: sentinel_policy={sentinel_policy!r}; expected one of {POLICIES}")
        self._path, self._policy = str(path), sentinel_policy
        self._json = find_tokenizer_json(path)
        try:
            self._tok = Tokenizer.from_str(self._json.read_text(encoding="utf-8"))
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"hf vocabulary: cannot read {self._json}: {e}") from e
        vocab = self._tok.get_vocab(with_added_tokens=True)
        n = max(vocab.values()) + 1 if vocab else 0
        self._original_size = n
        self._special = self._find_special(vocab)
        if sentinel_policy == "last_n" and n < num_sentinels + len(MODE_TOKENS) + 3:
            raise ValueError(f"hf:{path}: {n} ids are too few for last_n sentinels")

        pool = sorted((int(m.group(1)), i) for t, i in vocab.items() for r in RESERVED_TOKEN_PATTERNS
                      if (m := r.match(t)) and i not in self._special.values())
        reserved = [i for _, i in pool]
        to_append: list[str] = []
        if sentinel_policy == "last_n":
            sentinels, s_source = [n - 1 - j for j in range(num_sentinels)], "last_n"
        elif sentinel_policy == "auto" and all(f"<extra_id_{j}>" in vocab for j in range(num_sentinels)):
            sentinels, s_source = [vocab[f"<extra_id_{j}>"] for j in range(num_sentinels)], "existing"
        elif sentinel_policy == "auto" and len(reserved) >= num_sentinels:
            sentinels, reserved, s_source = reserved[:num_sentinels], reserved[num_sentinels:], "reserved"
        else:
            to_append += [f"<extra_id_{j}>" for j in reversed(range(num_sentinels))]
            sentinels = [n + num_sentinels - 1 - j for j in range(num_sentinels)]
            s_source = "appended"
        modes: dict[str, int] = {}
        m_sources: dict[str, str] = {}
        for j, m in enumerate(MODE_TOKENS):
            if m in vocab:
                modes[m], m_sources[m] = vocab[m], "existing"
            elif sentinel_policy == "last_n":
                modes[m], m_sources[m] = n - num_sentinels - 1 - j, "last_n"
            elif sentinel_policy == "auto" and reserved:
                modes[m], m_sources[m] = reserved.pop(0), "reserved"
            else:
                modes[m], m_sources[m] = n + len(to_append), "appended"
                to_append.append(m)
        if to_append:
            self._tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in to_append])
            got = [self._tok.token_to_id(t) for t in to_append]
            if got != list(range(n, n + len(to_append))):
                raise ValueError(f"hf vocabulary {self._json}: appended tokens got ids {got[:5]}..., "
                                 f"expected {n}..{n + len(to_append) - 1}")
        self._size = n + len(to_append)
        self._set_specials(sentinels, s_source, modes, m_sources, range(n, self._size))
        self._id_to_token = {i: t for t, i in self._tok.get_vocab(with_added_tokens=True).items()}
        super().__init__(extra_ids=0)

    def _find_special(self, vocab: dict[str, int]) -> dict[str, int]:
        """bos/eos/pad/unk ids from tokenizer_config.json next to tokenizer.json, else by common names."""
        config: dict[str, Any] = {}
        cfg = self._json.parent / "tokenizer_config.json"
        if cfg.is_file():
            try:
                config = json.loads(cfg.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"{cfg}:{e.lineno}: not valid JSON ({e.msg})") from e
        found: dict[str, int] = {}
        for role, names in (("bos", _BOS_NAMES), ("eos", _EOS_NAMES), ("pad", _PAD_NAMES),
                            ("unk", _UNK_NAMES)):
            name = _token_name(config.get(f"{role}_token"))
            if name is not None:
                if name not in vocab:
                    raise ValueError(f"{cfg}: {role}_token {name!r} is not in the vocabulary of {self._json}")
                found[role] = vocab[name]
                continue
            for candidate in names:
                if candidate in vocab:
                    found[role] = vocab[candidate]
                    break
        if "eos" not in found:
            raise ValueError(f"hf vocabulary {self._json}: no EOS token found (looked for eos_token in "
                             f"{cfg.name} and for {list(_EOS_NAMES)}); UL2R targets end with EOS")
        return found

    # --- seqio.Vocabulary --------------------------------------------------------------------------
    @property
    def bos_id(self) -> int:
        return self._special.get("bos", self.pad_id)

    @property
    def eos_id(self) -> int:
        return self._special["eos"]

    @property
    def pad_id(self) -> int:
        return self._special.get("pad", 0)

    @property
    def unk_id(self) -> int | None:
        return self._special.get("unk")

    @property
    def _base_vocab_size(self) -> int:
        return self._size

    def _eos_name(self) -> str:
        return self._id_to_token.get(self.eos_id, "</s>")

    def _encode(self, s: str) -> list[int]:
        return self._tok.encode(s, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The `tokenizers` batch API (parallel in Rust); what the corpus cache uses."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def _decode(self, ids: Sequence[int]) -> str:
        return self.decode(ids)

    def _decode_run(self, run: list[int]) -> str:
        return self._tok.decode(run, skip_special_tokens=False)

    def _starts_word(self, token_id: int) -> bool:
        return self._id_to_token.get(token_id, "").startswith(("▁", "Ġ"))

    def _np_encode(self, s: bytes) -> np.ndarray:
        return np.asarray(self._encode(s.decode("utf-8")), np.int32)

    def _np_encode_batch(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = self.encode_batch([x.decode("utf-8") for x in s.reshape([-1])])
        flat = np.asarray([i for row in ids for i in row], np.int32)
        return flat, np.asarray([len(r) for r in ids], np.int64)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
        """Scalar string -> int32[None]; a vector of strings -> int32 RaggedTensor [n, None]."""
        s = tf.convert_to_tensor(s, tf.string)
        if s.shape.rank == 0:
            ids = tf.numpy_function(self._np_encode, [s], tf.int32, stateful=False)
            ids.set_shape([None])
            return ids
        if s.shape.rank == 1:
            flat, lengths = tf.numpy_function(self._np_encode_batch, [s], [tf.int32, tf.int64],
                                              stateful=False)
            flat.set_shape([None])
            lengths.set_shape(s.shape)
            return tf.RaggedTensor.from_row_lengths(flat, lengths)
        raise ValueError(f"hf vocabulary encode_tf: expected a scalar or vector of strings, got {s.shape}")

    def _np_decode(self, ids: np.ndarray) -> np.ndarray:
        if ids.ndim == 1:
            return np.asarray(self.decode(ids.tolist()).encode("utf-8"), object)
        return np.asarray([self.decode(r.tolist()).encode("utf-8") for r in ids], object)

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        """int ids [n] -> scalar string, [b, n] -> [b] strings (names for special ids, as `decode`)."""
        ids = tf.convert_to_tensor(ids)
        if ids.shape.rank not in (1, 2):
            raise ValueError(f"hf vocabulary decode_tf: expected rank 1 or 2 ids, got shape {ids.shape}")
        out = tf.numpy_function(self._np_decode, [ids], tf.string, stateful=False)
        out.set_shape(ids.shape[:-1])
        return out

    def _location(self) -> dict[str, str]:
        return {"path": self._path}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HfTokenizerVocabulary) and self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash((self._path, self._policy))
