"""The notebook API and training from an imported HF checkpoint (INITIAL_CHECKPOINT_PATH)."""
import json

import numpy as np
import pytest
import tokenizers

import flan_ul2r
from flan_ul2r.convert.hf_import import import_hf

pytestmark = pytest.mark.parity  # every test here builds its HF model with transformers

TEXT = ["The quick brown fox jumps over the lazy dog.", "Instruction tuning makes models follow prompts.",
        "Mixture of denoisers: regular, extreme and sequential."] * 20


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    import torch
    import transformers
    from tokenizers import models, pre_tokenizers, trainers

    d = tmp_path_factory.mktemp("hf")
    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(TEXT, trainer=trainers.BpeTrainer(
        vocab_size=200, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    transformers.LlamaForCausalLM(cfg).save_pretrained(d, safe_serialization=True)
    return d


@pytest.mark.slow
def test_load_model_from_hf_dir_matches_transformers(hf_dir):
    import torch
    import transformers

    m = flan_ul2r.load_model(hf_dir)
    ids = m.tokenize("The quick brown fox")
    assert m.detokenize(ids).replace(" ", "") == "Thequickbrownfox"
    ref_model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        ref = ref_model(torch.as_tensor([ids])).logits.numpy()
    got = m.logits([ids])
    assert got.shape[-1] == m.vocab.vocab_size == ref.shape[-1] + 103  # grown for sentinels + mode tokens
    np.testing.assert_allclose(got[..., :ref.shape[-1]], ref, atol=1e-4, rtol=0)
    greedy = ref_model.generate(torch.as_tensor([ids]), max_new_tokens=5, do_sample=False,
                                eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
    assert m.generate(ids, max_new_tokens=5, stop_at_eos=False) == greedy


@pytest.mark.slow
def test_imported_checkpoint_grows_vocab_and_trains(hf_dir, tmp_path):
    import transformers

    cfg, vocab = import_hf(hf_dir, tmp_path / "ckpt")
    base = transformers.AutoConfig.from_pretrained(hf_dir).vocab_size
    assert len(vocab["appended_ids"]) == 103 and cfg.vocab_size == base + 103  # 100 sentinels + 3 modes
    m = flan_ul2r.load_model(tmp_path / "ckpt")
    emb = np.asarray(m.params["embedding"])
    np.testing.assert_allclose(emb[base:], np.repeat(emb[:base].mean(0, keepdims=True), 103, 0), rtol=1e-6)
    assert m.vocab.mode_token_ids["[S2S]"] >= base

    from flan_ul2r.data.ul2.cached_tasks import array_corpus, register_ul2r_mixture
    from flan_ul2r.data.vocab.vocabularies import get_vocabulary
    from flan_ul2r.training.config import CheckpointConfig, OptimizerConfig, RunConfig
    from flan_ul2r.training.run import run

    hf_vocab = get_vocabulary(f"hf:{tmp_path / 'ckpt' / 'tokenizer'}")
    docs = [hf_vocab.encode(" ".join(TEXT[i:i + 9])) for i in range(0, 50, 3)]
    register_ul2r_mixture("api_toy", array_corpus(docs), hf_vocab)
    common = dict(mixture_or_task_name="api_toy", task_feature_lengths={"inputs": 16, "targets": 16},
                  batch_size=8, initial_checkpoint_path=str(tmp_path / "ckpt"),
                  checkpoint=CheckpointConfig(period=2), progress=False)
    opt = dict(name="adamw", schedule="constant", clip_norm=None)
    run(RunConfig(model_dir=str(tmp_path / "frozen"), train_steps=2,
                  optimizer=OptimizerConfig(**opt, learning_rate=0.0), **common))
    frozen = flan_ul2r.load_model(tmp_path / "frozen" / "checkpoints" / "2")
    np.testing.assert_array_equal(np.asarray(frozen.params["embedding"]), emb)  # started from the import
    run(RunConfig(model_dir=str(tmp_path / "moved"), train_steps=2,
                  optimizer=OptimizerConfig(**opt, learning_rate=1e-2), **common))
    moved = flan_ul2r.load_model(tmp_path / "moved" / "checkpoints" / "2")
    assert np.abs(np.asarray(moved.params["embedding"]) - emb).max() > 1e-4

    # the byte vocabulary with this checkpoint: a mismatch named by field, not garbage training
    from tests._train_toy import register_toy_mixture

    with pytest.raises(ValueError, match="vocabulary mismatch.*'kind'"):
        run(RunConfig(model_dir=str(tmp_path / "bad"), train_steps=2,
                      optimizer=OptimizerConfig(**opt, learning_rate=0.0),
                      **{**common, "mixture_or_task_name": register_toy_mixture(),
                         "task_feature_lengths": {"inputs": 32, "targets": 32}}))


@pytest.mark.slow
def test_export_keeps_appended_tokens_and_round_trips(hf_dir, tmp_path):
    import torch
    import transformers

    from flan_ul2r.convert.hf_export import export_hf
    from flan_ul2r.training.checkpoints import restore_params

    cfg, vocab = import_hf(hf_dir, tmp_path / "ckpt")
    export_hf(tmp_path / "ckpt", tmp_path / "out")
    # the exported tokenizer (plain transformers, no code of ours) knows the sentinels and mode tokens
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "out" / "tokenizer.json"))
    s0, s99 = vocab["sentinels"]["ids"][0], vocab["sentinels"]["ids"][99]
    assert tok.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_99>", "[S2S]"]) == [
        s0, s99, vocab["mode_tokens"]["[S2S]"]["id"]]
    assert tok("[NLU] fox <extra_id_0>", add_special_tokens=False)["input_ids"][0] == \
        vocab["mode_tokens"]["[NLU]"]["id"]
    # transformers gives our logits over the whole grown vocabulary
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = [[vocab["mode_tokens"]["[S2S]"]["id"], 5, 17, s0, 9]]
    with torch.no_grad():
        ref = hf(torch.as_tensor(ids)).logits.numpy()
    np.testing.assert_allclose(flan_ul2r.load_model(tmp_path / "ckpt").logits(ids), ref, atol=1e-4, rtol=0)
    # re-import: the same ids for every special token (now "existing" in the tokenizer) and the same params
    cfg2, vocab2 = import_hf(tmp_path / "out", tmp_path / "again")
    assert cfg2 == cfg and vocab2["sentinels"]["ids"] == vocab["sentinels"]["ids"]
    assert {k: v["id"] for k, v in vocab2["mode_tokens"].items()} == \
        {k: v["id"] for k, v in vocab["mode_tokens"].items()}
    import jax

    a, b = restore_params(tmp_path / "ckpt")[0], restore_params(tmp_path / "again")[0]
    for xa, xb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(xa), np.asarray(xb))


@pytest.mark.slow
def test_sentencepiece_only_directory_becomes_the_vocabulary(tmp_path):
    import io

    import sentencepiece as spm
    import torch
    import transformers

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXT), model_writer=buf, vocab_size=120,
                                   model_type="bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    d = tmp_path / "hf"
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2)).save_pretrained(d, safe_serialization=True)
    (d / "tokenizer.model").write_bytes(buf.getvalue())  # no tokenizer.json (older Llama/Gemma dirs)
    cfg, vocab = import_hf(d, tmp_path / "ckpt")
    assert vocab["kind"] == "sentencepiece" and cfg.vocab_size == 120 + len(vocab["appended_ids"]) == 223
    m = flan_ul2r.load_model(tmp_path / "ckpt")
    reference = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    assert m.tokenize("The quick brown fox") == reference.encode("The quick brown fox")
    assert m.tokenize("<extra_id_0>") == [vocab["sentinels"]["ids"][0]]
