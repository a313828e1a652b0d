"""Every export's tokenizer loads with `transformers.AutoTokenizer` and encodes text to the ids the model
was trained with, for each vocabulary kind (byte, SentencePiece BPE and Unigram, HF BPE), with UL2's
sentinels and mode tokens as special tokens that round-trip (text -> id -> text)."""
import inspect
import io
import json

import numpy as np
import pytest

from flan_ul2r.convert.hf_tokenizer import write_tokenizer
from flan_ul2r.data.vocab.vocabularies import get_vocabulary

pytestmark = pytest.mark.parity  # every test loads the export with transformers

PROSE = [line.strip() for line in inspect.getsource(json).splitlines() if line.strip()]
TEXTS = PROSE[:60] + ["  two  spaces", "Ünïcödé ✓ text", "tabs\tand\nnewlines", " leading", "trailing ", ""]
SPECIAL = "[NLU] The cat sat <extra_id_0> mat.<extra_id_1> [S2S]"


def _check(out, vocab):
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(out)
    for text in TEXTS:
        assert tok.encode(text, add_special_tokens=False) == list(vocab.encode(text)), text
    names = {"<extra_id_0>": vocab.sentinel_ids[0], "<extra_id_99>": vocab.sentinel_ids[99],
             **vocab.mode_token_ids}
    for name, token_id in names.items():
        assert tok.encode(name, add_special_tokens=False) == [token_id]
        assert tok.decode([token_id]) == name
    ids = tok.encode(SPECIAL, add_special_tokens=False)
    assert ids[0] == vocab.mode_token_ids["[NLU]"] and vocab.sentinel_ids[0] in ids
    # decoded as our vocabulary decodes (SentencePiece drops the spaces next to a special token)
    assert tok.decode(ids) == vocab.decode(ids)
    assert tok.decode(ids).replace(" ", "") == SPECIAL.replace(" ", "")
    assert tok.eos_token_id == vocab.eos_id
    return tok


def test_byte_vocabulary_exports_a_loadable_tokenizer(tmp_path):
    vocab = get_vocabulary("byte")
    notes = write_tokenizer(tmp_path, None, vocab.describe())
    assert "103 sentinel/mode-token ids were appended" in notes[0]
    tok = _check(tmp_path, vocab)
    assert tok.decode(tok.encode(SPECIAL, add_special_tokens=False)) == SPECIAL  # bytes: exactly
    assert tok.decode(vocab.encode("naïve café")) == "naïve café"
    assert tok.pad_token_id == 0 and tok.unk_token_id == 2


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_vocabulary_exports_the_same_encoding(tmp_path, model_type):
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(PROSE * 3), model_writer=buf, vocab_size=300,
                                   model_type=model_type, unk_id=2, bos_id=-1, eos_id=1, pad_id=0,
                                   minloglevel=2)
    (tmp_path / "sp.model").write_bytes(buf.getvalue())
    vocab = get_vocabulary(f"sentencepiece:{tmp_path / 'sp.model'}")
    write_tokenizer(tmp_path / "out", None, vocab.describe())
    _check(tmp_path / "out", vocab)


def test_hf_bpe_vocabulary_exports_its_tokenizer_with_the_appended_tokens(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(PROSE, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    (tmp_path / "tok").mkdir()
    tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    vocab = get_vocabulary(f"hf:{tmp_path / 'tok'}")
    assert vocab.describe()["appended_ids"]  # no reserved tokens here: sentinels and modes are appended
    (tmp_path / "out").mkdir()
    write_tokenizer(tmp_path / "out", None, vocab.describe())
    _check(tmp_path / "out", vocab)


@pytest.mark.slow
def test_export_of_a_byte_model_loads_model_and_tokenizer(tmp_path):
    """The whole `export-hf` of a byte-vocabulary checkpoint: AutoTokenizer and AutoModelForCausalLM load it,
    and transformers' logits of an encoded prompt equal ours."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import torch
    import transformers

    from flan_ul2r.convert.hf_export import export_hf
    from flan_ul2r.models import Decoder, preset
    from flan_ul2r.training.checkpoints import save_params

    vocab = get_vocabulary("byte")
    cfg = preset("tiny", vocab_size=vocab.vocab_size, d_model=32, d_ff=64, head_dim=8)
    params = nn.meta.unbox(Decoder(cfg).init(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32))["params"])
    save_params(tmp_path / "ck", params, cfg.to_dict(), {"vocab": vocab.describe()})
    export_hf(tmp_path / "ck", tmp_path / "out")
    tok = _check(tmp_path / "out", vocab)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = tok.encode("[S2S] The capital of France is", add_special_tokens=False)
    with torch.no_grad():
        ref = model(torch.as_tensor([ids])).logits.numpy()
    ours = np.asarray(Decoder(cfg).apply({"params": params}, jnp.asarray([ids])))
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
