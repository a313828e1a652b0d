"""A SentencePiece model (Kudo & Richardson 2018) as a `tokenizers` tokenizer.json that encodes text to the
same ids: what an export writes for a `sentencepiece:` vocabulary, so `AutoTokenizer` loads it.

The pieces, scores and model type (Unigram or BPE; BPE merges recovered from the piece scores, the higher
score merging first, as SentencePiece's BPE applies them) are copied; the normalizer replays the model's
NormalizerSpec: its precompiled character map (e.g. nmt_nfkc), `remove_extra_whitespaces` (strip, collapse
runs of spaces), `add_dummy_prefix` (a leading space) and `escape_whitespaces` (space -> U+2581);
whitespace splitting follows `split_by_whitespace`. Control pieces (<s>, </s>, <pad>) and user-defined
pieces become added tokens. Byte-fallback models map unknown characters to their <0xNN> pieces.
"""
from __future__ import annotations

import json
from typing import Any

SPACE = "\u2581"
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6  # SentencePiece piece types
_UNIGRAM, _BPE = 1, 2


def _merges(pieces: list[tuple[str, float]]) -> list[tuple[str, str]]:
    """BPE merges (left, right) in application order: merged pieces by descending score, ties by id."""
    ids = {p: i for i, (p, _) in enumerate(pieces)}
    found = []
    for piece, score in pieces:
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                found.append((-score, ids[piece], ids[left], ids[right], left, right))
    return [(left, right) for *_, left, right in sorted(found)]


def _normalizer(spec: Any):
    from tokenizers import Regex, normalizers

    steps = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.add_dummy_prefix:
        steps.append(normalizers.Prepend(" "))
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", SPACE))
    return normalizers.Sequence(steps)


def sentencepiece_json(model: bytes) -> str:
    """tokenizer.json text for the serialized SentencePiece ModelProto `model`."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    proto = pb.ModelProto.FromString(model)
    pieces = [(p.piece, float(p.score)) for p in proto.pieces]
    trainer = proto.trainer_spec
    unk = next((i for i, p in enumerate(proto.pieces) if p.type == _UNKNOWN), None)
    fallback = bool(trainer.byte_fallback)
    if trainer.model_type == _UNIGRAM:
        core = models.Unigram(pieces, unk_id=unk, byte_fallback=fallback)
    elif trainer.model_type == _BPE:
        vocab = {p: i for i, (p, _) in enumerate(pieces)}
        core = models.BPE(vocab, _merges(pieces), unk_token=pieces[unk][0] if unk is not None else None,
                          fuse_unk=True, byte_fallback=fallback)
    else:
        raise ValueError(f"sentencepiece model: model_type {trainer.model_type} is neither unigram (1) nor "
                         "bpe (2); only those convert to tokenizer.json")
    tok = Tokenizer(core)
    tok.normalizer = _normalizer(proto.normalizer_spec)
    if trainer.split_by_whitespace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never")
    steps = [decoders.Replace(SPACE, " "), *([decoders.ByteFallback()] if fallback else []), decoders.Fuse()]
    if proto.normalizer_spec.add_dummy_prefix:
        steps.append(decoders.Strip(" ", 1, 0))  # the dummy prefix, once for the whole text
    tok.decoder = decoders.Sequence(steps)
    data = json.loads(tok.to_str())
    data["added_tokens"] = [
        {"id": i, "content": p.piece, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": p.type == _USER_DEFINED, "special": p.type != _USER_DEFINED}
        for i, p in enumerate(proto.pieces) if p.type in (_CONTROL, _USER_DEFINED)]
    return json.dumps(data, ensure_ascii=False)
