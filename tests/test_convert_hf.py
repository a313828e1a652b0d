"""HF import/export against transformers itself: tiny random models per family, built locally."""
import json

import numpy as np
import pytest

from flan_ul2r.convert.hf_export import export_hf
from flan_ul2r.convert.hf_import import import_hf, load_hf_params
from flan_ul2r.models.decoder import Decoder
from flan_ul2r.training.checkpoints import restore_params

pytestmark = pytest.mark.parity

V = 300
COMMON = dict(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128)
FAMILIES = {  # transformers' config and model class names (torch and transformers are imported lazily)
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(rms_norm_eps=1e-5)),
    "llama3_rope": ("LlamaConfig", "LlamaForCausalLM", dict(
        rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        tie_word_embeddings=True)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=False)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=8)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(head_dim=16)),
}


def _save_tiny(family: str, path, **save_kw):
    import torch
    import transformers

    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**COMMON, **extra)).eval()
    with torch.no_grad():  # random norm scales / biases, so a wrong mapping cannot hide behind ones/zeros
        for name, p in model.named_parameters():
            if "norm" in name or "bias" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(path, safe_serialization=True, **save_kw)
    return model


def _hf_logits(model, tokens, mask=None):
    import torch

    with torch.no_grad():
        kw = {} if mask is None else {"attention_mask": torch.as_tensor(mask)}
        return model(torch.as_tensor(tokens), **kw).logits.float().numpy()


def _ours(cfg, params, tokens, segment_ids=None):
    import jax.numpy as jnp

    kw = {} if segment_ids is None else {"segment_ids": jnp.asarray(segment_ids)}
    return np.asarray(Decoder(cfg).apply({"params": params}, jnp.asarray(tokens, jnp.int32), **kw))


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_match_transformers(family, tmp_path):
    model = _save_tiny(family, tmp_path / "hf")
    cfg, params, _ = load_hf_params(tmp_path / "hf")
    tokens = np.random.default_rng(1).integers(0, V, size=(2, 24))
    np.testing.assert_allclose(_ours(cfg, params, tokens), _hf_logits(model, tokens), atol=1e-4, rtol=0)
    # right padding: HF attention_mask vs our segment ids (0 = padding); compare the real positions
    mask = np.ones_like(tokens)
    mask[1, 15:] = 0
    ours = _ours(cfg, params, tokens, segment_ids=mask)
    ref = _hf_logits(model, tokens, mask)
    np.testing.assert_allclose(ours[0], ref[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours[1, :15], ref[1, :15], atol=1e-4, rtol=0)


def test_sharded_checkpoint_and_round_trip_are_lossless(tmp_path):
    model = _save_tiny("qwen2", tmp_path / "hf", max_shard_size="60KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    import_hf(tmp_path / "hf", tmp_path / "ours")
    notes = export_hf(tmp_path / "ours", tmp_path / "exported", max_shard_bytes=50_000)
    assert notes == []
    assert (tmp_path / "exported" / "model.safetensors.index.json").is_file()
    import_hf(tmp_path / "exported", tmp_path / "again")
    a, _ = restore_params(tmp_path / "ours")
    b, _ = restore_params(tmp_path / "again")
    import jax

    leaves = jax.tree_util.tree_leaves_with_path
    for (ka, xa), (kb, xb) in zip(leaves(a), leaves(b)):
        assert ka == kb
        np.testing.assert_array_equal(np.asarray(xa), np.asarray(xb))
    # transformers loads the export with no code of ours and gives the original logits
    import transformers

    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "exported").eval()
    tokens = np.random.default_rng(2).integers(0, V, size=(1, 12))
    np.testing.assert_allclose(_hf_logits(reloaded, tokens), _hf_logits(model, tokens), atol=1e-5, rtol=0)


def test_bad_inputs_name_what_is_wrong(tmp_path):
    _save_tiny("llama", tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "arch").mkdir()
    (tmp_path / "arch" / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match="GPT2LMHeadModel.*LlamaForCausalLM"):
        load_hf_params(tmp_path / "arch")
    (tmp_path / "shape").mkdir()
    (tmp_path / "shape" / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 100}))
    (tmp_path / "shape" / "model.safetensors").symlink_to(tmp_path / "hf" / "model.safetensors")
    with pytest.raises(ValueError, match="gate_proj.weight.*shape"):
        load_hf_params(tmp_path / "shape")
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "pickle" / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="pickle checkpoints are not loaded"):
        load_hf_params(tmp_path / "pickle")
    # a tokenizer with more ids than the embedding has rows: named, not silently grown
    from tokenizers import Tokenizer, models

    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "vocab" / "model.safetensors").symlink_to(tmp_path / "hf" / "model.safetensors")
    words = {f"w{i}": i for i in range(V + 20)}
    words["</s>"] = V + 20
    Tokenizer(models.WordLevel(words, unk_token="w0")).save(str(tmp_path / "vocab" / "tokenizer.json"))
    with pytest.raises(ValueError, match=f"has {V + 21} ids but config.json vocab_size={V}"):
        import_hf(tmp_path / "vocab", tmp_path / "vocab_out")
    index = {"weight_map": {"model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}
    (tmp_path / "shard").mkdir()
    (tmp_path / "shard" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "shard" / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors"):
        load_hf_params(tmp_path / "shard")


@pytest.mark.slow
def test_cli_import_check_and_export(tmp_path, capsys):
    from flan_ul2r import cli

    _save_tiny("gemma", tmp_path / "hf")
    assert cli.main(["convert", "import-hf", "--hf_dir", str(tmp_path / "hf"), "--out", str(tmp_path / "ck"),
                     "--check"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["max_abs_logit_delta"] < 1e-4 and report["mean_kl"] < 1e-6
    assert cli.main(["convert", "export-hf", "--checkpoint", str(tmp_path / "ck"), "--out",
                     str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "gemma"
    assert cli.main(["convert", "import-hf", "--hf_dir", str(tmp_path / "nope"), "--out",
                     str(tmp_path / "x")]) == 1
    assert "no config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_bfloat16_import_keeps_float32_master_weights_and_close_logits(tmp_path):
    from flan_ul2r.convert.check import compare_logits

    model = _save_tiny("llama", tmp_path / "hf")
    cfg, _ = import_hf(tmp_path / "hf", tmp_path / "ck", dtype="bfloat16")
    assert (cfg.dtype, cfg.param_dtype) == ("bfloat16", "float32")  # bf16 compute, fp32 master weights
    params, _ = restore_params(tmp_path / "ck")
    assert str(params["embedding"].dtype) == "bfloat16"  # stored as converted
    report = compare_logits(tmp_path / "hf", cfg, params)
    assert report["mean_kl"] < 1e-3 and report["max_abs_logit_delta"] < 0.1, report
    export_hf(tmp_path / "ck", tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"
    import torch
    import transformers

    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32).eval()
    emb = model.model.embed_tokens.weight.detach()
    torch.testing.assert_close(reloaded.model.embed_tokens.weight, emb.to(torch.bfloat16).float())
