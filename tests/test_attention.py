"""Blocked (flash) attention against a brute-force softmax attention, and the model with either one."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r.models import Decoder, preset
from flan_ul2r.models.attention import _live_range, blocked_attention, dot_product_attention
from flan_ul2r.models.decoder import attention_mask


def brute_force(q, k, v, mask, scale=None, cap=None):
    """Per (batch, head, query) softmax over the allowed keys in float64; zeros where none is allowed.
    Scores q.k * scale (default d^-1/2), soft-capped as cap * tanh(s / cap) when `cap`."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    mask = np.asarray(mask)[:, 0]
    b, length, h, d = q.shape
    group = h // k.shape[2]
    out = np.zeros_like(q)
    for bi in range(b):
        for hi in range(h):
            s = q[bi, :, hi] @ k[bi, :, hi // group].T * (scale or d ** -0.5)
            s = s if cap is None else cap * np.tanh(s / cap)
            for qi in range(length):
                allowed = mask[bi, qi]
                if allowed.any():
                    e = np.exp(s[qi, allowed] - s[qi, allowed].max())
                    out[bi, qi, hi] = (e / e.sum()) @ v[bi, allowed, hi // group]
    return out


def _case(rng, b, length, h, kv, d, sliding_window=None):
    q = jnp.asarray(rng.normal(size=(b, length, h, d)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(b, length, kv, d)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(b, length, kv, d)), jnp.float32)
    seg = np.ones((b, length), np.int32)
    seg[0, length // 3:] = 2  # two packed examples in row 0
    seg[-1, -5:] = 0  # padding at the end of the last row: rows that may attend nowhere
    prefix = np.zeros((b, length), bool)
    prefix[:, : length // 4] = True  # prefix-LM inputs, bidirectional
    prefix[0, length // 3: length // 3 + 9] = True  # the second example's inputs
    mask = attention_mask(jnp.asarray(seg), jnp.asarray(prefix), sliding_window)
    return q, k, v, mask


@pytest.mark.parametrize("b,length,h,kv,d,block,window,scale,cap", [
    # the three largest are slow (16-24 s each measured under load); the quick loop keeps a padded length,
    # a single block and a window in the last two
    pytest.param(2, 200, 4, 2, 16, 64, None, None, None, marks=pytest.mark.slow),  # GQA, length padded
    pytest.param(3, 256, 4, 1, 8, 32, None, None, None, marks=pytest.mark.slow),  # multi-query, many blocks
    pytest.param(1, 70, 2, 2, 8, 32, 20, None, None, marks=pytest.mark.slow),  # multi-head, sliding window
    (2, 40, 2, 1, 8, 256, None, None, None),  # one block shorter than BLOCK
    (2, 90, 4, 2, 8, 32, 12, 0.6, 1.5),  # Gemma 2: own scale, soft-capped scores (binding), window
])
@pytest.mark.slow
def test_blocked_attention_matches_brute_force_forward_and_gradients(b, length, h, kv, d, block, window,
                                                                      scale, cap):
    rng = np.random.default_rng(length)
    q, k, v, mask = _case(rng, b, length, h, kv, d, window)
    got = blocked_attention(q, k, v, mask, block, scale=scale, logit_softcap=cap)
    np.testing.assert_allclose(np.asarray(got), brute_force(q, k, v, mask, scale, cap), atol=2e-5)
    if cap is not None:  # the cap binds; the plain XLA path with a cap computes the same
        assert np.abs(np.asarray(got) - brute_force(q, k, v, mask, scale)).max() > 1e-2
        xla = dot_product_attention(q, k, v, mask, "xla", scale=scale, logit_softcap=cap)
        np.testing.assert_allclose(np.asarray(xla), np.asarray(got), atol=2e-5)
    assert not np.asarray(got)[-1, -5:].any()  # padding rows see no key: zeros, not NaN

    # Gradients against autodiff through a dense reference (rows with no key contribute nothing).
    cot = jnp.asarray(rng.normal(size=got.shape), jnp.float32)

    def dense(q, k, v):
        g = h // kv
        s = jnp.einsum("bqhd,bkhd->bhqk", q, jnp.repeat(k, g, 2), precision="highest") * (scale or d ** -0.5)
        s = s if cap is None else cap * jnp.tanh(s / cap)
        p = jax.nn.softmax(jnp.where(mask, s, -jnp.inf), -1)
        p = jnp.where(mask.any(-1, keepdims=True), p, 0.0)
        return jnp.einsum("bhqk,bkhd->bqhd", p, jnp.repeat(v, g, 2), precision="highest")

    want = jax.grad(lambda *a: jnp.sum(dense(*a) * cot), (0, 1, 2))(q, k, v)
    blocked = functools.partial(blocked_attention, mask=mask, block=block, scale=scale, logit_softcap=cap)
    have = jax.grad(lambda *a: jnp.sum(blocked(*a) * cot), (0, 1, 2))(q, k, v)
    for name, w, g in zip("qkv", want, have):
        assert np.isfinite(np.asarray(g)).all(), name
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=5e-5, err_msg=f"d{name}")


def test_hidden_key_blocks_are_skipped():
    """Causal mask, 4 blocks: query block i visits key blocks 0..i only; a padding-only block none."""
    seg = np.ones((1, 128), np.int32)
    seg[0, 96:] = 0
    mask = attention_mask(jnp.asarray(seg), None)[:, 0]
    live = np.asarray(mask).reshape(1, 4, 32, 4, 32).any(axis=(2, 4))
    lo, hi = (np.asarray(a)[0] for a in _live_range(jnp.asarray(live)))
    np.testing.assert_array_equal(lo, [0, 0, 0, 0])
    np.testing.assert_array_equal(hi, [1, 2, 3, 0])


@pytest.mark.slow
def test_implementations_agree_and_bad_names_are_rejected():
    rng = np.random.default_rng(0)
    q, k, v, mask = _case(rng, 2, 48, 4, 2, 8)
    xla = dot_product_attention(q, k, v, mask, "xla")
    blocked = dot_product_attention(q, k, v, mask, "blocked")
    live_rows = np.asarray(mask)[:, 0].any(-1)  # XLA gives padding rows an average, we give zeros
    np.testing.assert_allclose(np.asarray(blocked)[live_rows], np.asarray(xla)[live_rows], atol=2e-5)
    with pytest.raises(ValueError, match="attention implementation 'flash'"):
        dot_product_attention(q, k, v, mask, "flash")


@pytest.mark.slow
def test_model_logits_do_not_depend_on_the_attention_implementation():
    """A packed prefix-LM batch longer than one block (BLOCK=256) through the whole decoder."""
    rng = np.random.default_rng(3)
    length = 300
    tokens = jnp.asarray(rng.integers(3, 100, size=(2, length)), jnp.int32)
    seg = np.ones((2, length), np.int32)
    seg[0, 170:] = 2
    seg[1, 290:] = 0
    pos = np.concatenate([np.arange(170), np.arange(length - 170)])[None].repeat(2, 0)
    prefix = np.zeros((2, length), np.int32)
    prefix[:, :60] = 1
    prefix[0, 170:200] = 1
    cfgs = {impl: preset("tiny", vocab_size=101, attention_impl=impl) for impl in ("xla", "blocked")}
    params = nn.meta.unbox(Decoder(cfgs["xla"]).init(jax.random.PRNGKey(0), tokens[:, :8])["params"])
    features = dict(positions=jnp.asarray(pos), segment_ids=jnp.asarray(seg),
                    causal_attention=jnp.asarray(prefix))
    out = {impl: np.asarray(Decoder(c).apply({"params": params}, tokens, **features))
           for impl, c in cfgs.items()}
    real = seg > 0
    np.testing.assert_allclose(out["blocked"][real], out["xla"][real], atol=1e-4, rtol=1e-4)
