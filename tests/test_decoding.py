"""KV-cache decoding against full recomputation, sampling against brute force, sharded == one device,
scoring against a plain forward pass, and the errors users see."""
import json
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r import partitioning
from flan_ul2r.api import LoadedModel, load_model
from flan_ul2r.data.vocab.vocabularies import ByteVocabulary
from flan_ul2r.decoding import loaded_model
from flan_ul2r.decoding.generate import DecodeSpec, generate_padded
from flan_ul2r.decoding.sampling import filter_logits, next_tokens, row_keys
from flan_ul2r.models import Decoder, preset
from flan_ul2r.training import checkpoints

VOCAB = ByteVocabulary()
# Llama-style with GQA and a Mistral sliding window shorter than the sequences; PaLM-style parallel block,
# multi-query attention, tied embeddings, Gemma's embedding scale and norm offset; Gemma 3 style local
# (window 4, ring caches) and global layers with q/k norms, sandwich norms and soft-caps.
CONFIGS = {
    "llama_window": preset("tiny", vocab_size=VOCAB.vocab_size, sliding_window=6),
    "palm_gemma": preset("tiny", vocab_size=VOCAB.vocab_size, parallel_block=True, num_kv_heads=1,
                         tie_embeddings=True, embed_scale=True, norm_scale_offset=1.0,
                         mlp_activation="gelu_tanh"),
    "local_global": preset("tiny", vocab_size=VOCAB.vocab_size, sliding_window=4, global_layers=(1,),
                           rope_local_theta=100.0, qk_norm="head", norm_layout="sandwich",
                           attn_logit_softcap=3.0, final_logit_softcap=5.0, query_pre_attn_scalar=12.0),
}
PROMPTS = [[0, 40, 41, 42], [0, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59], [0, 60], [0, 70, 71, 72, 73, 74, 75]]
N = 8  # new tokens in most tests: calls with the same settings and shapes share one compilation


def _params(cfg, seed=0):
    return nn.meta.unbox(Decoder(cfg).init(jax.random.PRNGKey(seed), jnp.ones((1, 8), jnp.int32))["params"])


@pytest.fixture(scope="module")
def model():
    cfg = CONFIGS["llama_window"]
    return LoadedModel(cfg, _params(cfg), VOCAB, max_length=64, prefix_lm=False)


def _recompute(cfg, params, prompt, steps, prefix_lm, width=32):
    """Greedy by full forward passes over prompt + generated so far: no cache, no left padding (the
    sequence is right-padded to a fixed `width` with segment id 0, which causal attention never reads)."""
    forward = _forward(cfg)
    seq, logits = list(prompt), []
    for _ in range(steps):
        tokens = np.zeros((1, width), np.int32)
        tokens[0, :len(seq)] = seq
        segment = (np.arange(width) < len(seq)).astype(np.int32)[None]
        prefix = (np.arange(width) < len(prompt)).astype(np.int32)[None] if prefix_lm else None
        logits.append(np.asarray(forward(params, tokens, segment, prefix))[0, len(seq) - 1])
        seq.append(int(np.argmax(logits[-1])))
    return seq[len(prompt):], np.stack(logits)


_FORWARDS = {}


def _forward(cfg):
    if cfg not in _FORWARDS:
        _FORWARDS[cfg] = jax.jit(lambda p, t, s, c: Decoder(cfg).apply({"params": p}, t, segment_ids=s,
                                                                        causal_attention=c))
    return _FORWARDS[cfg]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("prefix_lm", [False, True])
def test_cached_decoding_equals_full_recomputation(name, prefix_lm):
    cfg, steps = CONFIGS[name], 9
    params = _params(cfg, seed=1)
    width = max(len(p) for p in PROMPTS)
    tokens = np.zeros((len(PROMPTS), width), np.int32)  # left-padded, mixed lengths
    for i, p in enumerate(PROMPTS):
        tokens[i, width - len(p):] = p
    spec = DecodeSpec(steps, greedy=True, top_k=0, prefix_lm=prefix_lm, vocab_limit=cfg.vocab_size,
                      stop_at_eos=False, return_logits=True)
    n = len(PROMPTS)
    out = generate_padded(cfg, params, tokens, np.array([len(p) for p in PROMPTS]), np.ones(n, bool),
                          row_keys(0, np.arange(n), np.zeros(n)), spec)
    for i, prompt in enumerate(PROMPTS):
        want_tokens, want_logits = _recompute(cfg, params, prompt, steps, prefix_lm)
        assert out.tokens[i].tolist() == want_tokens, (name, i)
        # float32 sums in another order (cache vs full attention); logits are O(1)
        np.testing.assert_allclose(out.logits[i], want_logits, atol=2e-4, rtol=0)
    # the prefix-LM prompt really is bidirectional: its logits differ from the causal encoding's
    if prefix_lm:
        causal = _recompute(cfg, params, PROMPTS[1], 1, False)[1]
        assert np.abs(out.logits[1, 0] - causal[0]).max() > 1e-3


@pytest.mark.slow
def test_batching_and_sorting_do_not_change_results(model):
    """generate_batch groups prompts by length into padded batches; every prompt still gets the tokens
    of its own unpadded recomputation, whatever the batch size."""
    want = [_recompute(model.config, model.params, p, N, False)[0] for p in PROMPTS]
    for batch_size in (1, 8):
        got = model.generate_batch(PROMPTS, max_new_tokens=N, stop_at_eos=False, batch_size=batch_size)
        assert [g[0] for g in got] == want
    assert model.generate(PROMPTS[2], max_new_tokens=N, stop_at_eos=False) == want[2]


def _support(logits, temperature, top_k, top_p):
    """Brute force: the kept tokens and their renormalized probabilities."""
    z = np.asarray(logits, np.float64) / temperature
    order = sorted(range(len(z)), key=lambda i: -z[i])
    keep = set(order[:top_k]) if top_k else set(order)
    p = np.exp(z - z.max())
    p = np.where([i in keep for i in range(len(z))], p, 0.0)
    p /= p.sum()
    kept, mass = set(), 0.0
    for i in sorted(keep, key=lambda i: -p[i]):
        if mass < top_p:
            kept.add(i)
        mass += p[i]
    q = np.where([i in kept for i in range(len(z))], p, 0.0)
    return kept, q / q.sum()


@pytest.mark.slow
@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.7, 3, 1.0), (1.0, 0, 0.6),
                                                       (1.3, 4, 0.8), (1.0, 1, 1.0)])
def test_filters_and_sampling_match_brute_force(temperature, top_k, top_p):
    logits = np.array([2.0, 1.0, 0.5, 3.0, -1.0, 0.0, 2.5, 1.5], np.float32)
    kept, probs = _support(logits, temperature, top_k, top_p)
    filtered = np.asarray(filter_logits(jnp.asarray(logits[None]), temperature, top_k, top_p))[0]
    assert set(np.flatnonzero(np.isfinite(filtered))) == kept
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(filtered)), probs, atol=1e-6)
    n = 4000
    keys = row_keys(7, np.arange(n), np.zeros(n))
    draws = np.asarray(next_tokens(jnp.broadcast_to(jnp.asarray(logits), (n, 8)), jnp.asarray(keys), 0,
                                   greedy=False, temperature=temperature, top_k=top_k, top_p=top_p))
    assert set(draws.tolist()) <= kept
    freq = np.bincount(draws, minlength=8) / n
    # 5 standard errors of a binomial proportion: a false alarm has probability ~1e-6 per token
    np.testing.assert_array_less(np.abs(freq - probs), 5 * np.sqrt(probs * (1 - probs) / n) + 1e-9)


@pytest.mark.slow
def test_top_k_1_is_greedy_and_seeds_reproduce(model):
    greedy = model.generate_batch(PROMPTS, max_new_tokens=N, stop_at_eos=False)
    top1 = model.generate_batch(PROMPTS, max_new_tokens=N, stop_at_eos=False, temperature=1.0, top_k=1)
    assert top1 == greedy
    sampled = dict(max_new_tokens=N, stop_at_eos=False, temperature=1.0, num_samples=2)
    a = model.generate_batch(PROMPTS, seed=5, **sampled)
    b = model.generate_batch(PROMPTS, seed=5, batch_size=4, **sampled)
    c = model.generate_batch(PROMPTS, seed=6, **sampled)
    assert a == b  # same seed, other batching: the same samples
    assert a != c  # another seed: other samples (random weights: near-uniform next-token distributions)
    assert all(len({tuple(s) for s in per}) > 1 for per in a)  # samples of one prompt differ


@pytest.mark.slow
def test_stop_sequences_cut_the_text_and_the_ids(model):
    [[full]] = model.generate_batch([model.encode_prompt("ab")], max_new_tokens=N, stop_at_eos=False)
    free = model.detokenize(full)
    stop = model.detokenize(full[3:5])  # a string the model really writes (byte vocabulary: exact)
    [[cut]] = model.complete(["ab"], max_new_tokens=N, stop_at_eos=False, stop_sequences=[stop])
    assert cut == free[:free.index(stop)]
    [[ids]] = model.generate_batch([model.encode_prompt("ab")], max_new_tokens=N, stop_at_eos=False,
                                   stop_sequences=[stop])
    assert model.detokenize(ids) == cut
    seq = full[3:5]
    [[by_id]] = model.generate_batch([model.encode_prompt("ab")], max_new_tokens=N, stop_at_eos=False,
                                     stop_token_ids=[seq])
    assert by_id == full[:next(j for j in range(len(full)) if full[j:j + 2] == seq)]


@pytest.mark.slow
def test_eos_ends_a_row(model):
    """With the EOS id set to the first greedy token of prompt 0, that row stops at once; others go on."""
    greedy = model.generate_batch(PROMPTS, max_new_tokens=N, stop_at_eos=False)
    eos = greedy[0][0][0]

    class Vocab(ByteVocabulary):
        @property
        def eos_id(self):
            return eos

    m = LoadedModel(model.config, model.params, Vocab(), max_length=64)
    out = m.generate_batch(PROMPTS, max_new_tokens=N)
    assert out[0][0] == []
    for got, want in zip(out[1:], greedy[1:]):
        w = want[0]
        assert got[0] == (w[:w.index(eos)] if eos in w else w)


@pytest.mark.slow
def test_sharded_decoding_and_scoring_equal_one_device(model):
    contexts = [model.encode_prompt("The quick"), model.encode_prompt("brown")]
    continuations = [model.tokenize(" fox"), model.tokenize(" dog jumps")]
    sampled = dict(max_new_tokens=N, stop_at_eos=False, temperature=1.0, num_samples=2, seed=5)
    one = model.generate_batch(PROMPTS, **sampled)
    one_scores = model.score(contexts, continuations, prefix_lm=True)
    for sizes, rules in (({"fsdp": 8}, "fsdp"), ({"fsdp": 4, "tensor": 2}, "fsdp_tensor")):
        mesh = partitioning.make_mesh(data=1, **sizes)
        sharded = model.with_mesh(mesh, rules)
        q = sharded.params["layers"]["attn"]["q"]["kernel"]
        assert q.sharding.shard_shape(q.shape)[1] == q.shape[1] // sizes["fsdp"]  # really sharded
        assert sharded.generate_batch(PROMPTS, **sampled) == one
        if rules == "fsdp":
            np.testing.assert_allclose([s for s, _ in sharded.score(contexts, continuations, prefix_lm=True)],
                                       [s for s, _ in one_scores], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("prefix_lm", [False, True])
def test_score_is_the_sum_of_log_softmax_of_a_plain_forward(model, prefix_lm):
    contexts = [[0, 40, 41, 42, 43], [0, 50], [0, 60, 61, 62]]
    continuations = [[44, 45], [51, 52, 53, 54], [63]]
    got = model.score(contexts, continuations, prefix_lm=prefix_lm, batch_size=2)
    for (ctx, cont), (logprob, greedy) in zip(zip(contexts, continuations), got):
        seq = ctx + cont
        logits = model.logits([seq[:-1]], prefix_length=len(ctx) if prefix_lm else None)[0]
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        rows = range(len(ctx) - 1, len(seq) - 1)
        np.testing.assert_allclose(logprob, sum(logp[r, seq[r + 1]] for r in rows), rtol=1e-5)
        assert greedy == all(np.argmax(logits[r]) == seq[r + 1] for r in rows)
    # the greedy continuation is flagged as such
    first = int(np.argmax(model.logits([contexts[0]], prefix_length=5 if prefix_lm else None)[0, -1]))
    assert model.score([contexts[0]], [[first]], prefix_lm=prefix_lm)[0][1]


@pytest.mark.slow
def test_models_of_one_config_compile_the_forward_once(model):
    """The four models a pipeline evaluates share one shape: the second one's logits reuse the compiled
    forward, computed with its own params."""
    other = LoadedModel(model.config, _params(model.config, seed=1), VOCAB, max_length=64)
    tokens = np.asarray([[0, *range(40 + 10 * row, 46 + 10 * row)] for row in range(3)])  # [3, 7]
    mine = model.logits(tokens)
    compiled = loaded_model._forward(model.config)._cache_size()
    theirs = other.logits(tokens)
    assert loaded_model._forward(model.config)._cache_size() == compiled >= 1
    want = Decoder(model.config).apply({"params": other.params}, jnp.asarray(tokens))
    np.testing.assert_allclose(theirs, np.asarray(want), rtol=1e-5, atol=1e-5)
    assert np.abs(theirs - mine).max() > 1e-3


@pytest.mark.slow
def test_errors_name_what_is_wrong(model, tmp_path):
    with pytest.raises(ValueError, match=r"prompt 1: 60 tokens \+ max_new_tokens 8 = 68 > the model's "
                                         r"max_length 64"):
        model.generate_batch([[0, 5], [0] * 60], max_new_tokens=8)
    with pytest.raises(ValueError, match=r"pair 0: context 60 \+ continuation 5 tokens = 65 > .* 64"):
        model.score([[0] * 60], [[5] * 5])
    with pytest.raises(ValueError, match="mode='nlx'"):
        model.complete(["a"], mode="nlx")
    with pytest.raises(ValueError, match="context 0 is empty"):
        model.score([[]], [[5]])
    with pytest.raises(ValueError, match="top_p=0"):
        model.generate_batch([[0, 5]], temperature=1.0, top_p=0.0)
    with pytest.raises(ValueError, match="mode='causal' encodes the prompt causally, but prefix_lm=True"):
        model.complete(["a"], mode="causal", prefix_lm=True)
    # a checkpoint without a vocabulary: token ids work, text methods name the path and what is missing
    checkpoints.save_params(tmp_path / "ckpt", model.params, model.config.to_dict())
    bare = load_model(tmp_path / "ckpt")
    assert bare.generate_batch([[0, 5, 6]], max_new_tokens=N, stop_at_eos=False)[0][0] == \
        model.generate_batch([[0, 5, 6]], max_new_tokens=N, stop_at_eos=False)[0][0]
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'ckpt'}: no vocab.json")):
        bare.complete(["hello"])


@pytest.mark.slow
def test_train_info_sets_max_length_and_encoding(model, tmp_path):
    extra = {"vocab": VOCAB.describe(), "train_info": {"prefix_lm": True, "sequence_length": 48},
             "hf_config": {"max_position_embeddings": 4096}}
    checkpoints.save_params(tmp_path / "run", model.params, model.config.to_dict(), extra)
    m = load_model(tmp_path / "run")
    assert (m.max_length, m.prefix_lm) == (48, True)
    assert m.complete(["hi"], max_new_tokens=N) == model.complete(["hi"], max_new_tokens=N, prefix_lm=True)
    (tmp_path / "run" / "train_info.json").unlink()
    m = load_model(tmp_path / "run")
    assert (m.max_length, m.prefix_lm) == (4096, False)  # the imported HF config's length; causal
    assert json.loads((tmp_path / "run" / "vocab.json").read_text())["kind"] == "byte"
