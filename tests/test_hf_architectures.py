"""Every newer architecture against transformers itself, on tiny random-weight models built here: logits over
prompts longer than the sliding window, greedy generation past the window, prefix-LM / packed masks that keep
the window rule (transformers run with the same masks, built by brute force here), scoring, and the export
that transformers loads back. Llama, Mistral, Qwen2 and Gemma 1: tests/test_convert_hf.py."""
import copy
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flan_ul2r
from flan_ul2r.convert.hf_export import export_hf
from flan_ul2r.convert.hf_import import import_hf, load_hf_params
from flan_ul2r.models.decoder import Decoder

V, W = 320, 8  # vocabulary; sliding window, shorter than every sequence below
COMMON = dict(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, max_position_embeddings=256, initializer_range=0.08,
              attn_implementation="eager")
LONGROPE = {"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(8)],
            "long_factor": [2.0 + 0.5 * i for i in range(8)]}
ARCHS = {  # name: (config class, model class, fields); tied and untied where the family has both
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(tie_word_embeddings=False)),  # as Qwen3-8B
    "qwen3_tied": ("Qwen3Config", "Qwen3ForCausalLM", dict(tie_word_embeddings=True)),  # as Qwen3-0.6B..4B
    # soft-caps small enough to bind (checked below); query_pre_attn_scalar != head_dim
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(
        num_hidden_layers=4, sliding_window=W, query_pre_attn_scalar=24, attn_logit_softcapping=1.0,
        final_logit_softcapping=1.0)),
    # the 5:1 local/global pattern, local RoPE base 10k, global 1M with linear scaling (Gemma 3 4B)
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(
        num_hidden_layers=6, sliding_window=W, query_pre_attn_scalar=16, rope_theta=1e6,
        rope_local_base_freq=1e4, rope_scaling={"rope_type": "linear", "factor": 8.0})),
    "llama3_2": ("LlamaConfig", "LlamaForCausalLM", dict(  # Llama 3.2 (and SmolLM2): tied, llama3 RoPE
        tie_word_embeddings=True, rope_theta=5e5, rope_scaling={
            "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16})),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(  # window on every layer; longrope past 32 positions
        sliding_window=W, original_max_position_embeddings=32, rope_scaling=LONGROPE)),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", dict(tie_word_embeddings=False)),
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM", dict(num_hidden_layers=4, no_rope_layer_interval=2,
                                                           tie_word_embeddings=True)),
}
PROMPT_LENGTHS, NEW_TOKENS = (13, 5), 70


@pytest.fixture(scope="module", params=sorted(ARCHS))
def arch(request, tmp_path_factory):
    """(name, HF model, its directory, our LoadedModel of it)."""
    import torch
    import transformers

    name = request.param
    config_cls, model_cls, extra = ARCHS[name]
    torch.manual_seed(0)
    # a copy: transformers' configs write into the dicts they are given (rope_scaling)
    config = getattr(transformers, config_cls)(**copy.deepcopy({**COMMON, **extra}), pad_token_id=0,
                                              bos_token_id=1, eos_token_id=2)
    model = getattr(transformers, model_cls)(config).eval()
    with torch.no_grad():  # random norm scales, so a wrong mapping cannot hide behind ones
        for n, p in model.named_parameters():
            if "norm" in n:
                p.add_(torch.randn_like(p) * 0.2)
    directory = tmp_path_factory.mktemp(name)
    model.save_pretrained(directory, safe_serialization=True)
    return name, model, directory, flan_ul2r.load_model(directory)


def _hf_logits(model, tokens, **kw):
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(tokens), **kw).logits.float().numpy()


@functools.cache
def _forward(cfg):
    return jax.jit(lambda params, tokens, pos, seg, prefix: Decoder(cfg).apply(
        {"params": params}, tokens, positions=pos, segment_ids=seg, causal_attention=prefix))


def _ours(cfg, params, tokens, positions=None, segment_ids=None, causal_attention=None):
    """Our logits of one row [1, L]; every call passes the same arguments, so one compile serves all."""
    n = tokens.shape[1]
    pos = np.arange(n)[None] if positions is None else positions
    seg = np.ones((1, n), np.int32) if segment_ids is None else segment_ids
    prefix = np.zeros((1, n), np.int32) if causal_attention is None else causal_attention
    args = [jnp.asarray(x, jnp.int32) for x in (tokens, pos, seg, prefix)]
    return np.asarray(_forward(cfg)(params, *args))


@pytest.mark.parity
def test_config_reads_the_family(arch):
    name, _, _, ours = arch
    cfg = ours.config
    windows = [cfg.layer_window(i) for i in range(cfg.num_layers)]
    expected = {"gemma2": [W, None] * 2, "gemma3": [W] * 5 + [None], "phi3": [W] * 2}
    assert windows == expected.get(name, [None] * cfg.num_layers)
    assert cfg.tie_embeddings == ("tied" in name or name in ("gemma2", "gemma3", "llama3_2", "smollm3"))
    assert cfg.qk_norm == {"qwen3": "head", "qwen3_tied": "head", "gemma3": "head", "olmo2": "full"}.get(name)
    assert cfg.nope_layers == ((1, 3) if name == "smollm3" else ())


@pytest.mark.slow
@pytest.mark.parity
def test_logits_match_transformers_past_the_window(arch):
    name, model, _, ours = arch
    tokens = np.random.default_rng(1).integers(3, V, size=(1, 40))  # 40 > 32: Phi-3 uses its long factors
    ref = _hf_logits(model, tokens)
    np.testing.assert_allclose(_ours(ours.config, ours.params, tokens), ref, atol=1e-4, rtol=0)
    if name == "phi3":  # up to 32 positions: the short factors, as transformers picks them by length
        short = tokens[:, :24]
        got = _ours(ours.config, ours.params, short)
        np.testing.assert_allclose(got, _hf_logits(model, short), atol=1e-4, rtol=0)
    if name == "gemma2":  # each cap binds: without it the logits move 100x the tolerance
        for field in ("attn_logit_softcap", "final_logit_softcap"):
            uncapped = ours.config.replace(**{field: None})
            assert np.abs(_ours(uncapped, ours.params, tokens) - ref).max() > 1e-2, field


def _packed_prefix_case(rng):
    """A packed row: two examples (positions restart), each with a bidirectional prefix longer than W."""
    seg = np.array([[1] * 22 + [2] * 18])
    pos = np.array([list(range(22)) + list(range(18))])
    prefix = np.array([[1] * 12 + [0] * 10 + [1] * 10 + [0] * 8])
    return rng.integers(3, V, size=(1, 40)), seg, pos, prefix


def _brute_force_mask(seg, prefix, window):
    """Additive float mask [1, 1, L, L]: same segment, causal or both in the prefix, |i - j| < window."""
    import torch

    n = seg.shape[1]
    ok = np.zeros((n, n), bool)
    for i in range(n):
        for j in range(n):
            ok[i, j] = seg[0, i] == seg[0, j] and (j <= i or (prefix[0, i] and prefix[0, j])) and (
                window is None or abs(i - j) < window)
    return torch.where(torch.as_tensor(ok), 0.0, torch.finfo(torch.float32).min)[None, None]


@pytest.mark.parity
def test_packed_prefix_lm_keeps_the_window_rule(arch):
    """Our packed prefix-LM forward equals transformers given the masks the rule implies, per layer type."""
    import torch

    _, model, _, ours = arch
    cfg = ours.config
    tokens, seg, pos, prefix = _packed_prefix_case(np.random.default_rng(2))
    full = _brute_force_mask(seg, prefix, None)
    local = _brute_force_mask(seg, prefix, cfg.sliding_window) if cfg.sliding_window else full
    layer_types = getattr(model.config, "layer_types", None)
    mask = {"full_attention": full, "sliding_attention": local} if layer_types else local
    ref = _hf_logits(model, tokens, attention_mask=mask, position_ids=torch.as_tensor(pos))
    got = _ours(cfg, ours.params, tokens, positions=pos, segment_ids=seg, causal_attention=prefix)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    if cfg.sliding_window:  # the band matters here: without it the prefix would see further
        wide = {"full_attention": full, "sliding_attention": full} if layer_types else full
        assert np.abs(_hf_logits(model, tokens, attention_mask=wide, position_ids=torch.as_tensor(pos))
                      - ref).max() > 1e-3


@pytest.mark.slow
@pytest.mark.parity
def test_greedy_generation_equals_transformers_past_the_window(arch):
    """Left-padded prompts of two lengths, 70 new tokens (well past the window: windowed layers decode from
    their ring caches): the same tokens as transformers' `generate`, and every step's logits within 1e-4."""
    import torch

    from flan_ul2r.decoding.generate import DecodeSpec, generate_padded

    _, model, _, ours = arch
    rng = np.random.default_rng(3)
    prompts = [rng.integers(3, V, size=n).tolist() for n in PROMPT_LENGTHS]
    width = max(PROMPT_LENGTHS)
    ids = np.zeros((len(prompts), width), np.int64)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = p
    mask = (np.arange(width)[None] >= width - np.asarray(PROMPT_LENGTHS)[:, None]).astype(np.int64)
    with torch.no_grad():
        ref = model.generate(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask),
                             max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None, pad_token_id=0,
                             output_logits=True, return_dict_in_generate=True)
    spec = DecodeSpec(max_new_tokens=NEW_TOKENS, greedy=True, top_k=0, prefix_lm=False, vocab_limit=V,
                      stop_at_eos=False, return_logits=True)
    got = generate_padded(ours.config, ours.params, ids, np.asarray(PROMPT_LENGTHS), np.ones(2, bool),
                          np.zeros((2, 2), np.uint32), spec)
    assert got.tokens.tolist() == ref.sequences[:, width:].tolist()
    np.testing.assert_allclose(got.logits, torch.stack(ref.logits, 1).float().numpy(), atol=1e-4, rtol=0)
    assert width + NEW_TOKENS > 4 * W


@pytest.mark.slow
@pytest.mark.parity
@pytest.mark.parametrize("arch", ["gemma2", "phi3"], indirect=True)
def test_scores_are_transformers_log_probabilities(arch):
    """The scoring path (its own soft-capped projection; longrope picked by length) on the two families
    where it differs from the forward checked above."""
    import torch

    _, model, _, ours = arch
    rng = np.random.default_rng(4)
    contexts = [rng.integers(3, V, size=n).tolist() for n in (15, 9)]
    continuations = [rng.integers(3, V, size=n).tolist() for n in (6, 11)]
    got = ours.score(contexts, continuations, prefix_lm=False)
    for (logprob, _), ctx, cont in zip(got, contexts, continuations):
        seq = np.asarray([ctx + cont])
        ref = torch.log_softmax(torch.as_tensor(_hf_logits(model, seq)[0]), -1).numpy()
        want = sum(ref[len(ctx) - 1 + j, t] for j, t in enumerate(cont))
        assert logprob == pytest.approx(want, abs=1e-3)


@pytest.mark.parity
def test_export_loads_in_transformers_with_the_same_logits(arch, tmp_path):
    import transformers

    name, model, directory, ours = arch
    import_hf(directory, tmp_path / "ck")
    export_hf(tmp_path / "ck", tmp_path / "out")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", attn_implementation="eager")
    back.eval()
    assert type(back).__name__ == ARCHS[name][1]
    tokens = np.random.default_rng(5).integers(3, V, size=(2, 40))
    np.testing.assert_allclose(_hf_logits(back, tokens), _hf_logits(model, tokens), atol=1e-5, rtol=0)
    cfg, _, _ = load_hf_params(tmp_path / "out")
    assert cfg == ours.config  # and it reads back as the same architecture


@pytest.mark.parametrize("field,value,match", [
    ("rope_scaling", {"rope_type": "yarn", "factor": 4.0}, "rope_scaling.rope_type='yarn'"),
    ("rope_scaling", {"rope_type": "dynamic", "factor": 2.0}, "rope_scaling.rope_type='dynamic'"),
    ("num_experts", 8, "num_experts=8.*mixture-of-experts"),
    ("num_local_experts", 4, "num_local_experts=4"),
    ("attention_bias", True, "attention_bias=True"),
    ("partial_rotary_factor", 0.5, "partial_rotary_factor=0.5"),
    ("layer_types", ["chunked_attention", "full_attention"], "layer_types='chunked_attention'"),
])
def test_unsupported_fields_are_refused_by_name(tmp_path, field, value, match):
    from flan_ul2r.convert.hf_families import config_from_hf

    hf = {"architectures": ["Qwen3ForCausalLM"], "vocab_size": V, "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "use_sliding_window": True, "sliding_window": W,
          field: value}
    with pytest.raises(ValueError, match=match):
        config_from_hf(hf)
    gemma3 = {"architectures": ["Gemma3ForCausalLM"], "vocab_size": V, "hidden_size": 64,
              "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4}
    with pytest.raises(ValueError, match="attn_logit_softcapping=50.0"):
        config_from_hf({**gemma3, "attn_logit_softcapping": 50.0})


def test_export_refuses_a_shape_its_family_cannot_hold(tmp_path):
    from flan_ul2r.convert.hf_families import hf_config_from
    from flan_ul2r.models.config import preset

    cfg = preset("tiny", qk_norm="head")
    with pytest.raises(ValueError, match="'llama' cannot hold this model: qk_norm='head'"):
        hf_config_from(cfg, {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 64})
    assert json.loads(json.dumps(hf_config_from(cfg, None)))["architectures"] == ["Qwen3ForCausalLM"]


def test_phi3_su_and_longrope_read_alike_with_the_default_attention_factor():
    """Phi-3's older name "su" is longrope (as transformers reads it); without `attention_factor` the
    LongRoPE default sqrt(1 + ln(s) / ln(original)) with s = max / original positions."""
    import math

    from flan_ul2r.convert.hf_families import config_from_hf

    hf = {"architectures": ["Phi3ForCausalLM"], "vocab_size": V, "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 4096,
          "original_max_position_embeddings": 256}
    factors = {k: v for k, v in LONGROPE.items() if k in ("short_factor", "long_factor")}
    su = config_from_hf({**hf, "rope_scaling": {**factors, "type": "su"}}).rope_scaling
    longrope = config_from_hf({**hf, "rope_scaling": {**factors, "rope_type": "longrope"}}).rope_scaling
    assert su == longrope and su[:2] == ("longrope", 256)
    assert su[2] == pytest.approx(math.sqrt(1 + math.log(16) / math.log(256)))
