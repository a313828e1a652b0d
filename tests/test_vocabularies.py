"""Vocabularies: byte (against seqio's own ByteVocabulary), a SentencePiece model and HF tokenizer.json files
trained here at test time; sentinel / mode-token policies; tf.data encode == python encode."""
from __future__ import annotations

import json

import numpy as np
import pytest
import seqio
import tensorflow as tf

from flan_ul2r.data.vocab.vocabularies import (
    MODE_TOKENS,
    ByteVocabulary,
    SentencePieceVocabulary,
    get_vocabulary,
    vocabulary_from_description,
)

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello, world! Ünïcödé ✓ text.",
         "Denoising objectives mix span corruption with prefix language modeling."]
_RNG = np.random.default_rng(0)
_SYLLABLES = ["ka", "to", "ri", "mon", "sel", "ev", "an", "dur", "pli", "qu", "ox", "zen", "the", "fox",
              "ing"]
CORPUS = TEXTS + [" ".join("".join(_RNG.choice(_SYLLABLES, _RNG.integers(1, 4))) for _ in range(12)) + "."
                  for _ in range(400)]


def test_byte_vocabulary_layout_matches_seqio_and_t5_convention():
    v = get_vocabulary("byte")
    ref = seqio.ByteVocabulary()
    assert (v.pad_id, v.eos_id, v.unk_id, v.bos_id) == (0, 1, 2, 0)
    for t in TEXTS:
        assert v.encode(t) == ref.encode(t) == [b + 3 for b in t.encode("utf-8")]
        assert v.decode(v.encode(t)) == t
    assert v.vocab_size == 259 + 100 + 3
    assert v.sentinel_ids[0] == 358 and v.sentinel_ids[99] == 259  # <extra_id_0> highest, counting down
    assert list(v.sentinel_ids) == sorted(v.sentinel_ids, reverse=True)
    assert v.mode_token_ids == {"[NLU]": 359, "[NLG]": 360, "[S2S]": 361}
    d = v.describe()
    json.dumps(d)
    assert d["appended_ids"] == list(range(259, 362)) and d["sentinels"]["first"] == 358


def test_byte_decode_renders_special_ids_by_name_and_drops_padding():
    v = ByteVocabulary()
    ids = [v.mode_token_ids["[NLU]"]] + v.encode("ab") + [v.sentinel_ids[0]] + v.encode("c") + [
        v.sentinel_ids[1], v.eos_id, 0, 0]
    assert v.decode(ids) == "[NLU]ab<extra_id_0>c<extra_id_1></s>"
    assert v.decode(np.array(v.encode("é"))) == "é"


def test_byte_encode_tf_in_tf_data_equals_python():
    v = ByteVocabulary()
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).map(v.encode_tf)
    for t, ids in zip(TEXTS, ds.as_numpy_iterator()):
        assert ids.tolist() == v.encode(t)
    assert v.decode_tf(tf.constant(v.encode(TEXTS[1]))).numpy().decode() == TEXTS[1]


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    import sentencepiece as spm
    d = tmp_path_factory.mktemp("sp")
    (d / "corpus.txt").write_text("\n".join(CORPUS), encoding="utf-8")
    prefix = str(d / "tiny")
    spm.SentencePieceTrainer.train(input=str(d / "corpus.txt"), model_prefix=prefix, vocab_size=200,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   character_coverage=1.0, minloglevel=2)
    return prefix + ".model"


def test_sentencepiece_sentinels_and_appended_mode_tokens(sp_model):
    v = get_vocabulary(f"sentencepiece:{sp_model}")
    assert isinstance(v, SentencePieceVocabulary)
    assert v.describe()["base_vocab_size"] == 200 and v.vocab_size == 303
    # seqio's own sentinels: <extra_id_0> is base + 99 (reverse order), identical to seqio's vocabulary.
    ref = seqio.SentencePieceVocabulary(sp_model, extra_ids=100)
    assert v.sentinel_ids[0] == ref.tokenizer.piece_to_id("▁<extra_id_0>") == 299
    assert v.sentinel_ids[99] == 200
    assert list(v.mode_token_ids.values()) == [300, 301, 302]
    assert v.bos_id == 0 and v.eos_id == 1
    for t in TEXTS:
        assert v.encode(t) == ref.encode(t)
        assert v.decode(v.encode(t)) == ref.tokenizer.DecodeIds(ref.encode(t))
    # mode tokens are real pieces: the text "[NLU]" encodes to the mode id
    assert v.mode_token_ids["[NLU]"] in v.encode("[NLU] the fox")
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).map(v.encode_tf)
    assert [x.tolist() for x in ds.as_numpy_iterator()] == [v.encode(t) for t in TEXTS]
    text = v.decode([v.mode_token_ids["[S2S]"]] + v.encode("the fox") + [v.sentinel_ids[3], v.eos_id])
    assert text == "[S2S] the fox<extra_id_3></s>"  # "▁the" starts a word


def test_sentencepiece_last_n_policy_adds_no_ids(sp_model):
    v = get_vocabulary(f"sentencepiece:{sp_model}?sentinel_policy=last_n")
    assert v.vocab_size == 200 and v.describe()["appended_ids"] == []
    assert v.sentinel_ids == tuple(range(199, 99, -1))
    assert sorted(v.mode_token_ids.values()) == [97, 98, 99]


def _train_bpe(tmp_path, extra_special: list[str], config: dict | None = None, name: str = "tok"):
    import tokenizers
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"] + extra_special,
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    d = tmp_path / name
    d.mkdir()
    tok.save(str(d / "tokenizer.json"))
    if config is not None:
        (d / "tokenizer_config.json").write_text(json.dumps(config))
    return d, tok


def test_hf_without_reserved_tokens_appends_sentinels_and_modes(tmp_path):
    d, tok = _train_bpe(tmp_path, [])
    n = tok.get_vocab_size()
    v = get_vocabulary(f"hf:{d}")
    desc = v.describe()
    assert desc["sentinels"]["source"] == "appended" and desc["base_vocab_size"] == n
    assert v.vocab_size == n + 103 and desc["appended_ids"] == list(range(n, n + 103))
    assert v.sentinel_ids[0] == n + 99 and v.sentinel_ids[99] == n  # T5 order in the appended block
    assert v.mode_token_ids == {"[NLU]": n + 100, "[NLG]": n + 101, "[S2S]": n + 102}
    assert (v.bos_id, v.eos_id, v.unk_id) == (tok.token_to_id("<s>"), tok.token_to_id("</s>"), 0)
    for t in TEXTS[::2]:
        assert v.encode(t) == tok.encode(t).ids  # plain text tokenizes exactly as the tokenizer does
        assert v.decode(v.encode(t)) == tok.decode(tok.encode(t).ids)
    assert v.encode("<extra_id_0>") == [v.sentinel_ids[0]]  # appended ids are real tokens
    text = v.decode([v.mode_token_ids["[NLG]"], v.sentinel_ids[1], v.eos_id])
    assert text == "[NLG]<extra_id_1></s>"


def test_hf_llama3_style_reserved_tokens_are_reused(tmp_path):
    reserved = [f"<|reserved_special_token_{i}|>" for i in range(110)]
    cfg = {"bos_token": "<s>", "eos_token": {"content": "</s>"}}
    d, tok = _train_bpe(tmp_path, reserved, cfg)
    n = tok.get_vocab_size()
    v = get_vocabulary(f"hf:{d / 'tokenizer.json'}")
    desc = v.describe()
    assert v.vocab_size == n and desc["appended_ids"] == []
    assert desc["sentinels"]["source"] == "reserved"
    assert v.sentinel_ids == tuple(tok.token_to_id(f"<|reserved_special_token_{j}|>") for j in range(100))
    assert v.mode_token_ids == {m: tok.token_to_id(f"<|reserved_special_token_{100 + j}|>")
                                for j, m in enumerate(MODE_TOKENS)}
    assert {x["source"] for x in desc["mode_tokens"].values()} == {"reserved"}
    # decode names a reused reserved token by its sentinel name
    assert v.decode([v.sentinel_ids[5]]) == "<extra_id_5>"


def test_hf_existing_mode_tokens_and_last_n(tmp_path):
    d, tok = _train_bpe(tmp_path, list(MODE_TOKENS))
    n = tok.get_vocab_size()
    v = get_vocabulary(f"hf:{d}?sentinel_policy=last_n")
    assert v.vocab_size == n and v.describe()["appended_ids"] == []
    assert v.sentinel_ids == tuple(range(n - 1, n - 101, -1))
    assert v.mode_token_ids == {m: tok.token_to_id(m) for m in MODE_TOKENS}
    assert {x["source"] for x in v.describe()["mode_tokens"].values()} == {"existing"}


def test_hf_encode_tf_inside_tf_data_and_decode_tf(tmp_path):
    d, _ = _train_bpe(tmp_path, [])
    v = get_vocabulary(f"hf:{d}")
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).map(lambda s: {"ids": v.encode_tf(s)})
    assert ds.element_spec["ids"].shape.as_list() == [None]
    assert [x["ids"].tolist() for x in ds.as_numpy_iterator()] == [v.encode(t) for t in TEXTS]
    ragged = v.encode_tf(tf.constant(TEXTS))
    assert ragged.to_list() == [v.encode(t) for t in TEXTS]
    ids = tf.constant(v.encode(TEXTS[0]) + [v.sentinel_ids[0]])
    assert v.decode_tf(ids).numpy().decode() == v.decode(ids.numpy())


def test_description_round_trip_and_mismatch(tmp_path, sp_model):
    d, _ = _train_bpe(tmp_path, [], name="a")
    v = get_vocabulary(f"hf:{d}")
    again = vocabulary_from_description(json.loads(json.dumps(v.describe())))
    assert again.describe() == v.describe()
    sp = get_vocabulary(f"sentencepiece:{sp_model}")
    assert vocabulary_from_description(sp.describe()).sentinel_ids == sp.sentinel_ids
    other, _ = _train_bpe(tmp_path, [f"<|reserved_special_token_{i}|>" for i in range(103)], name="b")
    with pytest.raises(ValueError, match="does not match the stored description: field"):
        vocabulary_from_description(v.describe(), tokenizer_path=str(other))


def test_bad_specs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="'bogus:x'"):
        get_vocabulary("bogus:x")
    with pytest.raises(FileNotFoundError, match="nope.model"):
        get_vocabulary(f"sentencepiece:{tmp_path}/nope.model")
    with pytest.raises(FileNotFoundError, match="holds no tokenizer.json"):
        get_vocabulary(f"hf:{tmp_path}")
    with pytest.raises(ValueError, match="sentinel_policy"):
        get_vocabulary(f"hf:{tmp_path}?sentinel_policy=random")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        get_vocabulary(f"hf:{bad}")
