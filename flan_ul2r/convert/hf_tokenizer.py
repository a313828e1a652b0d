"""The exported model's tokenizer: files `transformers.AutoTokenizer` loads, for every vocabulary we train
with, encoding text to the ids the model was trained on.

- An imported HF model: its tokenizer files, copied.
- `hf:PATH` (a `tokenizer.json`): that file (and the `tokenizer_config.json` beside it).
- `sentencepiece:PATH`: a `tokenizer.json` built from the SentencePiece model (`sentencepiece_json`): the same
  Unigram or BPE pieces, normalizer and whitespace handling, so encodings equal the SentencePiece
  processor's (checked on text in tests/test_hf_tokenizer.py).
- `byte`: a `tokenizer.json` of 256 byte tokens at ids 3..258 (seqio's ByteVocabulary: pad 0, eos 1, unk 2).

Sentinels and mode tokens that the vocabulary appended (`vocab.json`'s `appended_ids`) become special added
tokens `<extra_id_N>` / `[NLU]` `[NLG]` `[S2S]` with their ids; tokens the vocabulary reused (reserved or
existing ones) keep their own names. A `tokenizer_config.json` naming bos/eos/pad/unk is written when none
was copied. Written with the `tokenizers` library only (transformers is not needed to export).
"""
from __future__ import annotations

import json
from typing import Any

from etils import epath

from flan_ul2r import fs

SPACE = "\u2581"  # SentencePiece's visible space
BYTE_OFFSET = 3  # seqio ByteVocabulary: ids 0, 1, 2 are pad, eos, unk


def appended_token_names(vocab: dict[str, Any]) -> dict[int, str]:
    """id -> name (`<extra_id_N>`, `[NLU]`...) of the ids the vocabulary appended (describe() dict)."""
    names = {int(i): f"<extra_id_{j}>" for j, i in enumerate(vocab.get("sentinels", {}).get("ids", []))}
    names.update({int(m["id"]): name for name, m in vocab.get("mode_tokens", {}).items()})
    appended = [int(i) for i in vocab.get("appended_ids", [])]
    missing = [i for i in appended if i not in names]
    if missing:
        raise ValueError(f"vocab.json: appended_ids {missing[:5]} are neither sentinels nor mode tokens")
    return {i: names[i] for i in sorted(appended)}


def _added(token_id: int, content: str, special: bool = True) -> dict[str, Any]:
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": not special, "special": special}


def add_appended_tokens(tokenizer_json: fs.PathLike, vocab: dict[str, Any]) -> bool:
    """Adds the appended sentinel/mode ids to tokenizer.json as special added tokens, so the exported
    tokenizer encodes `<extra_id_0>` / `[NLU]` to the ids the model was trained with. False if no file."""
    tokenizer_json = fs.path(tokenizer_json)
    if not tokenizer_json.is_file():
        return False
    from tokenizers import Tokenizer

    data = fs.read_json(tokenizer_json)
    have = {t["content"] for t in data.get("added_tokens", [])}
    for i, name in appended_token_names(vocab).items():
        if name not in have:
            data.setdefault("added_tokens", []).append(_added(i, name))
    text = json.dumps(data, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_str(text)
    wrong = {n: tok.token_to_id(n) for i, n in appended_token_names(vocab).items() if tok.token_to_id(n) != i}
    if wrong:
        raise ValueError(f"{tokenizer_json}: appended tokens would get other ids than in vocab.json: "
                         f"{dict(list(wrong.items())[:5])}")
    fs.write_text(tokenizer_json, text)
    return True


def byte_tokenizer_json() -> str:
    """seqio's ByteVocabulary as a tokenizer.json: byte b <-> id b + 3, no merges, pad/eos/unk specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    chars = _bytes_to_unicode()
    tok = Tokenizer(models.BPE({c: b + BYTE_OFFSET for b, c in enumerate(chars)}, [], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    data = json.loads(tok.to_str())
    data["model"]["vocab"].update({"<pad>": 0, "</s>": 1, "<unk>": 2})
    data["added_tokens"] = [_added(0, "<pad>"), _added(1, "</s>"), _added(2, "<unk>")]
    return json.dumps(data, ensure_ascii=False)


def _bytes_to_unicode() -> list[str]:
    """The ByteLevel pre-tokenizer's character for each byte value (GPT-2's table: printable bytes stand
    for themselves, the others map to 256, 257, ... in order)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(ord("\u00a1"), ord("\u00ac") + 1)) | \
        set(range(ord("\u00ae"), ord("\u00ff") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tokenizer_config(vocab: dict[str, Any], tokenizer_json: str) -> dict[str, Any]:
    """tokenizer_config.json for a tokenizer.json we built: the names of the vocabulary's bos/eos/pad ids and
    of the tokenizer model's unknown token."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    names = {i: t for t, i in tok.get_vocab(with_added_tokens=True).items()}
    cfg: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast",
                           "clean_up_tokenization_spaces": False}
    for role in ("bos", "eos", "pad"):
        token_id = vocab.get(f"{role}_id")
        if token_id is not None and int(token_id) in names:
            cfg[f"{role}_token"] = names[int(token_id)]
    model = json.loads(tokenizer_json)["model"]
    unk = model.get("unk_token") or (names.get(model["unk_id"]) if model.get("unk_id") is not None else None)
    if unk:
        cfg["unk_token"] = unk
    return cfg


def write_tokenizer(out: epath.Path, tokenizer_dir: epath.Path | None, vocab: dict[str, Any] | None
                    ) -> list[str]:
    """Writes the tokenizer files into `out`; returns notes for the user."""
    if tokenizer_dir is not None:
        for f in tokenizer_dir.iterdir():
            fs.copy_file(f, out / f.name)
    elif vocab is not None and vocab.get("kind") == "hf":
        src = fs.path(vocab["path"])
        src = src if src.is_file() else src / "tokenizer.json"
        fs.copy_file(src, out / "tokenizer.json")
        if (src.parent / "tokenizer_config.json").is_file():
            fs.copy_file(src.parent / "tokenizer_config.json", out / "tokenizer_config.json")
    if vocab is None:
        return [] if tokenizer_dir is not None else ["no vocabulary stored with the checkpoint: no tokenizer "
                                                     "written"]
    if not (out / "tokenizer.json").is_file():
        _build_tokenizer_json(out, vocab, tokenizer_dir)
    notes = []
    if vocab.get("appended_ids"):
        add_appended_tokens(out / "tokenizer.json", vocab)
        notes.append(f"{len(vocab['appended_ids'])} sentinel/mode-token ids were appended to the vocabulary; "
                     "they are special tokens of tokenizer.json (mapping also in flan_ul2r_vocab.json)")
    if not (out / "tokenizer_config.json").is_file():
        config = tokenizer_config(vocab, fs.read_text(out / "tokenizer.json"))
        fs.write_json(out / "tokenizer_config.json", config)
    return notes


def _build_tokenizer_json(out: epath.Path, vocab: dict[str, Any], tokenizer_dir: epath.Path | None) -> None:
    kind = vocab.get("kind")
    if kind == "byte":
        fs.write_text(out / "tokenizer.json", byte_tokenizer_json())
    elif kind == "sentencepiece":
        model = (tokenizer_dir / "tokenizer.model") if tokenizer_dir is not None else fs.path(vocab["path"])
        from flan_ul2r.convert.sentencepiece_json import sentencepiece_json

        fs.write_text(out / "tokenizer.json", sentencepiece_json(fs.read_bytes(model)))
    else:
        raise ValueError(f"vocab.json: kind {kind!r} with no tokenizer.json to export")
