"""Decoding with local and global layers (Gemma 2/3 style): a windowed layer's cache is a ring of window
slots, and cached decoding of prefix-LM prompts longer than the window equals full recomputation with the
training mask (windowed layers see keys less than `window` away, both ways inside the prompt)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flan_ul2r.decoding.generate import DecodeSpec, generate_padded
from flan_ul2r.models import Decoder, preset
from flan_ul2r.models.kv_cache import prefill_cache

W = 4
# Gemma 3 style: local layers 0-2 (window 4, own RoPE base), global layer 3; q/k norms, sandwich norms,
# soft-capped attention and output logits.
CFG = preset("tiny", vocab_size=96, num_layers=4, d_model=32, d_ff=64, head_dim=8, sliding_window=W,
             global_layers=(3,), rope_local_theta=100.0, qk_norm="head", norm_layout="sandwich",
             attn_logit_softcap=3.0, final_logit_softcap=5.0, query_pre_attn_scalar=12.0)
PROMPTS = [[1, 40, 41, 42, 43, 44, 45, 46, 47, 48], [1, 50, 51], [1, 60, 61, 62, 63, 64, 65]]
STEPS = 12


def test_windowed_layers_keep_a_ring_of_window_slots():
    layers, batch, prompt, kv, hd = CFG.num_layers, 2, 10, CFG.num_kv_heads, CFG.head_dim
    shape = (layers, batch, prompt, kv, hd)
    k = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)
    cache = prefill_cache(k, k, jnp.zeros(batch, jnp.int32), prompt + STEPS,
                          [CFG.layer_window(i) for i in range(layers)])
    assert [c.shape[2] for c in cache.k] == [W, W, W, prompt + STEPS]
    # the ring holds the last W prompt slots, slot s at s % W
    np.testing.assert_array_equal(np.asarray(cache.k[0][:, :, 6 % W]), np.asarray(k[0][:, 6]))
    np.testing.assert_array_equal(np.asarray(cache.k[0][:, :, 9 % W]), np.asarray(k[0][:, 9]))
    mask = np.asarray(cache.key_mask(0, W))  # a new token at slot 10 sees slots 7, 8, 9 and itself
    held = 10 - (10 - np.arange(W)) % W
    assert sorted(held[mask[0]].tolist()) == [7, 8, 9, 10]


_FORWARD = jax.jit(lambda p, t, s, c: Decoder(CFG).apply({"params": p}, t, segment_ids=s, causal_attention=c))


def _full_forward(params, prompt, steps, prefix_lm, width=32):
    """Greedy by full forward passes over prompt + generated so far (no cache), the prompt bidirectional."""
    seq, logits = list(prompt), []
    for _ in range(steps):
        tokens = np.zeros((1, width), np.int32)
        tokens[0, :len(seq)] = seq
        segment = (np.arange(width) < len(seq)).astype(np.int32)[None]
        prefix = (np.arange(width) < len(prompt)).astype(np.int32)[None] * int(prefix_lm)
        logits.append(np.asarray(_FORWARD(params, tokens, segment, prefix))[0, len(seq) - 1])
        seq.append(int(np.argmax(logits[-1])))
    return seq[len(prompt):], np.stack(logits)


def test_cached_prefix_lm_decoding_of_mixed_layers_equals_full_recomputation():
    params = nn.meta.unbox(Decoder(CFG).init(jax.random.PRNGKey(1), jnp.ones((1, 8), jnp.int32))["params"])
    width = max(len(p) for p in PROMPTS)
    tokens = np.zeros((len(PROMPTS), width), np.int32)
    for i, p in enumerate(PROMPTS):
        tokens[i, width - len(p):] = p
    spec = DecodeSpec(STEPS, greedy=True, top_k=0, prefix_lm=True, vocab_limit=CFG.vocab_size,
                      stop_at_eos=False, return_logits=True)
    n = len(PROMPTS)
    out = generate_padded(CFG, params, tokens, np.array([len(p) for p in PROMPTS]), np.ones(n, bool),
                          np.zeros((n, 2), np.uint32), spec)
    for i, prompt in enumerate(PROMPTS):
        want_tokens, want_logits = _full_forward(params, prompt, STEPS, prefix_lm=True)
        assert out.tokens[i].tolist() == want_tokens
        np.testing.assert_allclose(out.logits[i], want_logits, atol=1e-4)
    # the prefix is bidirectional within the window: a causal prompt gives other first logits
    _, causal = _full_forward(params, PROMPTS[0], 1, prefix_lm=False)
    assert np.abs(causal[0] - out.logits[0, 0]).max() > 1e-3
