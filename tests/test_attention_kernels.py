"""The TPU kernel path (Pallas splash attention, run here in interpret mode) against the XLA path: forward and
gradients for packed, prefix-LM and windowed batches, GQA/MQA, soft-capping, sharded over 8 devices; the
cuDNN path's arguments (run through XLA); which implementation `auto` picks and what is refused."""
import logging
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r import partitioning
from flan_ul2r.models import Decoder, preset
from flan_ul2r.models.attention import dot_product_attention
from flan_ul2r.models.attention_kernels import AttentionMask, choose, cudnn_attention, splash_attention
from flan_ul2r.models.decoder import attention_mask

LENGTH = 256  # two blocks of BLOCK: hidden blocks are skipped, a whole padding block attends nowhere
BLOCK = 128


def _case(seed: int, b: int, h: int, kv: int, prefix_lm: bool, d: int = 16):
    rng = np.random.default_rng(seed)
    q = jnp.asarray(rng.normal(size=(b, LENGTH, h, d)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(b, LENGTH, kv, d)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(b, LENGTH, kv, d)), jnp.float32)
    seg = np.ones((b, LENGTH), np.int32)
    seg[0, 100:] = 2  # three packed examples in row 0
    seg[0, 200:] = 3
    seg[-1, 120:] = 0  # padding: the last block of the last row attends nowhere
    prefix = None
    if prefix_lm:
        prefix = np.zeros((b, LENGTH), bool)
        prefix[:, :60] = True  # each example's inputs, bidirectional
        prefix[0, 100:140] = True
        prefix[0, 200:210] = True
        prefix = jnp.asarray(prefix)
    cot = jnp.asarray(rng.normal(size=q.shape), jnp.float32) * jnp.asarray(seg != 0)[:, :, None, None]
    return q, k, v, jnp.asarray(seg), prefix, cot


def _mask(seg, prefix, window=None) -> AttentionMask:
    return AttentionMask(seg, prefix, attention_mask(seg, prefix, window))


def _xla(q, k, v, mask):
    out = dot_product_attention(q, k, v, mask.dense, "xla")
    return jnp.where(mask.dense[:, 0].any(-1)[:, :, None, None], out, 0.0)  # XLA averages dead rows


def _out_and_grads(fn, q, k, v, cot):
    """fn's output and the gradients of <fn, cot> for q, k, v, in one compiled function."""
    def loss(*a):
        out = fn(*a)
        return jnp.sum(out * cot), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))(q, k, v)
    return out, grads


def _compare(fn, ref, q, k, v, cot, atol_out=2e-5, atol_grad=5e-5):
    (got, grads), (want, wants) = _out_and_grads(fn, q, k, v, cot), _out_and_grads(ref, q, k, v, cot)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol_out)
    for name, g, w in zip("qkv", grads, wants):
        assert np.isfinite(np.asarray(g)).all(), name
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=atol_grad, err_msg=f"d{name}")
    return got


@pytest.mark.slow
@pytest.mark.parametrize("prefix_lm,window,h,kv", [
    (False, None, 4, 2),  # packed causal LM, GQA: lazy causal mask + segment ids
    (True, None, 4, 2),  # packed prefix-LM: dynamic mask
    (False, 50, 4, 1),  # sliding window, multi-query: lazy local mask + segment ids
    (True, 50, 2, 2),  # prefix-LM with a window: dynamic mask
], ids=["packed", "prefix_lm", "window_mqa", "prefix_lm_window"])
def test_splash_equals_xla_forward_and_gradients(prefix_lm, window, h, kv):
    q, k, v, seg, prefix, cot = _case(LENGTH + h, 2, h, kv, prefix_lm)
    mask = _mask(seg, prefix, window)
    got = _compare(lambda *a: splash_attention(*a, mask, window=window, block=BLOCK),
                   lambda *a: _xla(*a, mask), q, k, v, cot)
    assert not np.asarray(got)[-1, 120:].any()  # padding rows: zeros


@pytest.mark.slow
def test_splash_logit_soft_cap_equals_a_dense_reference():
    """Gemma 2's soft-capping, c * tanh(logits / c) (Gemma Team 2024, "Gemma 2", section 2), on the scaled
    logits; the reference is a dense softmax written here."""
    q, k, v, seg, prefix, cot = _case(7, 1, 2, 1, True)
    mask, cap = _mask(seg, prefix), 5.0

    def dense(q, k, v):
        s = jnp.einsum("bqhd,bkd->bhqk", q, k[:, :, 0], precision="highest") / np.sqrt(q.shape[-1])
        p = jax.nn.softmax(jnp.where(mask.dense, cap * jnp.tanh(s / cap), -jnp.inf), -1)
        out = jnp.einsum("bhqk,bkd->bqhd", jnp.where(mask.dense.any(-1, keepdims=True), p, 0.0), v[:, :, 0],
                         precision="highest")
        return out

    _compare(lambda *a: splash_attention(*a, mask, logit_softcap=cap, block=BLOCK), dense, q, k, v, cot)


@pytest.mark.slow
@pytest.mark.parametrize("kv", [2, 1], ids=["kv_heads_split", "kv_heads_repeated"])
def test_splash_sharded_over_batch_and_heads_equals_one_device(kv):
    """Under an 8-device mesh (batch over data x fsdp = 4, heads over tensor = 2) the kernel runs per shard
    (shard_map); with one kv head the kv heads cannot split over `tensor` and are repeated."""
    q, k, v, seg, prefix, cot = _case(11, 4, 4, kv, True)
    mask = _mask(seg, prefix)
    mesh = partitioning.make_mesh(data=2, fsdp=2, tensor=2, devices=jax.devices()[:8])

    def loss(q, k, v):
        return jnp.sum(splash_attention(q, k, v, mask, block=BLOCK) * cot)

    want = jax.jit(jax.value_and_grad(loss, (0, 1, 2)))(q, k, v)
    with jax.set_mesh(mesh), nn.logical_axis_rules(partitioning.rules_for("fsdp_tensor")):
        got = jax.jit(jax.value_and_grad(loss, (0, 1, 2)))(q, k, v)
    np.testing.assert_allclose(float(got[0]), float(want[0]), rtol=1e-5)
    for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=5e-5)


@pytest.mark.slow
def test_model_with_splash_equals_xla_logits_and_gradients_under_remat():
    """The whole decoder (scanned layers, `save_attention` remat: splash's residuals by name) on a packed
    prefix-LM batch: logits and parameter gradients as with XLA attention."""
    rng = np.random.default_rng(3)
    tokens = jnp.asarray(rng.integers(3, 100, size=(2, 128)), jnp.int32)
    seg = np.ones((2, 128), np.int32)
    seg[0, 70:] = 2
    seg[1, 100:] = 0
    prefix = np.zeros((2, 128), np.int32)
    prefix[:, :30] = 1
    prefix[0, 70:90] = 1
    feats = dict(segment_ids=jnp.asarray(seg), causal_attention=jnp.asarray(prefix))
    cfgs = {impl: preset("tiny", vocab_size=101, attention_impl=impl, remat_policy="save_attention",
                         scan_layers=True) for impl in ("xla", "splash")}
    params = nn.meta.unbox(Decoder(cfgs["xla"]).init(jax.random.PRNGKey(0), tokens[:, :8])["params"])
    weights = jnp.asarray(seg > 0, jnp.float32)[:, :, None]

    def loss(p, cfg):
        return jnp.sum(Decoder(cfg).apply({"params": p}, tokens, **feats) * weights) / 1e3

    step = jax.jit(jax.value_and_grad(loss), static_argnums=1)
    out = {impl: step(params, cfg) for impl, cfg in cfgs.items()}
    np.testing.assert_allclose(float(out["splash"][0]), float(out["xla"][0]), rtol=1e-5)
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(out["splash"][1]),
                            jax.tree.leaves(out["xla"][1])):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-5,
                                   err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow
@pytest.mark.parametrize("prefix_lm,window", [(False, None), (False, 50), (True, None)])
def test_cudnn_arguments_mean_the_same_mask(prefix_lm, window):
    """No GPU here: the cuDNN call's arguments (mask, is_causal, local_window_size) run through XLA's
    implementation of the same `jax.nn.dot_product_attention` and must give the XLA path's result."""
    q, k, v, seg, prefix, _ = _case(5, 2, 4, 2, prefix_lm)
    mask = _mask(seg, prefix, window)
    got = cudnn_attention(q, k, v, mask, window=window, implementation="xla")
    np.testing.assert_allclose(np.asarray(got), np.asarray(_xla(q, k, v, mask)), atol=2e-5)


def test_auto_picks_the_kernel_per_backend_and_falls_back_with_a_warning(caplog):
    ok = dict(dtype="bfloat16", head_dim=128, length=2048, logit_softcap=None)
    assert choose("auto", "tpu", **ok) == "splash"
    assert choose("auto", "gpu", **ok) == "cudnn"
    assert choose("auto", "cpu", **ok) == "blocked"
    assert choose("xla", "tpu", **ok) == "xla"
    with caplog.at_level(logging.WARNING):
        assert choose("auto", "tpu", **{**ok, "length": 2000}) == "xla"
        assert choose("auto", "gpu", **{**ok, "dtype": "float32"}) == "xla"
    assert "splash cannot run (sequence length 2000 is not a multiple of 128" in caplog.text
    assert "cudnn cannot run (cuDNN flash attention computes in bfloat16/float16, not float32" in caplog.text


REFUSED = "ModelSpec.attention_impl='{}' cannot run here: "


@pytest.mark.parametrize("impl,target,change,message", [
    ("splash", "tpu", {"length": 1000}, REFUSED.format("splash") + "sequence length 1000 is not a multiple"),
    ("splash", "gpu", {}, REFUSED.format("splash") + "it runs on tpu or cpu, not gpu"),
    ("cudnn", "gpu", {"head_dim": 256}, REFUSED.format("cudnn") + "cuDNN flash attention needs head_dim"),
    ("cudnn", "gpu", {"logit_softcap": 30.0}, REFUSED.format("cudnn") + "jax.nn.dot_product_attention("),
    ("cudnn", "cpu", {}, REFUSED.format("cudnn") + "it runs on gpu or cuda, not cpu"),
    ("flash3", "tpu", {}, "ModelSpec.attention_impl='flash3': use one of ('auto', 'xla'"),
])
def test_impossible_choices_are_refused_naming_the_setting(impl, target, change, message):
    shapes = {**dict(dtype="bfloat16", head_dim=128, length=2048, logit_softcap=None), **change}
    with pytest.raises(ValueError, match=re.escape(message)):
        choose(impl, target, **shapes)
