"""Decoder properties: prefix-LM attention, packing equivalence, masks against brute force."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r.models import Decoder, preset
from flan_ul2r.models.decoder import attention_mask
from tests._library_helpers import cross_entropy_loss, per_example_loss

CFG = preset("tiny", vocab_size=101)


@pytest.fixture(scope="module")
def params():
    return nn.meta.unbox(Decoder(CFG).init(jax.random.PRNGKey(0), jnp.ones((1, 8), jnp.int32))["params"])


def _logits(params, tokens, **kw):
    return np.asarray(Decoder(CFG).apply({"params": params}, jnp.asarray(tokens), **kw))


@pytest.mark.parametrize("window", [None, 2])
def test_mask_matches_brute_force(window):
    """Packing, prefix-LM and a sliding window: keys less than `window` away, both ways in the prefix."""
    seg = np.array([[1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 1, 1, 1, 0, 0]])
    prefix = np.array([[1, 1, 0, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]])
    got = np.asarray(attention_mask(jnp.asarray(seg), jnp.asarray(prefix), window))[:, 0]
    for b in range(2):
        for q in range(8):
            for k in range(8):
                ok = seg[b, q] == seg[b, k] != 0 and (k <= q or (prefix[b, q] and prefix[b, k]))
                ok = ok and (window is None or abs(q - k) < window)
                assert got[b, q, k] == ok, (b, q, k)


@pytest.mark.slow
def test_prefix_flag_targets_never_reach_inputs_and_inputs_see_ahead(params):
    rng = np.random.default_rng(1)
    tokens = rng.integers(3, 100, size=(1, 12))
    prefix = np.zeros((1, 12), np.int32)
    prefix[0, :6] = 1  # inputs 0..4 + one position (seqio semantics)
    base = _logits(params, tokens, causal_attention=prefix)
    changed_target = tokens.copy()
    changed_target[0, 9] = (tokens[0, 9] + 7) % 97 + 3
    after = _logits(params, changed_target, causal_attention=prefix)
    np.testing.assert_array_equal(base[0, :6], after[0, :6])  # no input position moves
    assert np.abs(base[0, 9:] - after[0, 9:]).max() > 1e-4  # the target and later ones do
    changed_input = tokens.copy()
    changed_input[0, 4] = (tokens[0, 4] + 5) % 97 + 3
    after = _logits(params, changed_input, causal_attention=prefix)
    assert np.abs(base[0, :4] - after[0, :4]).max() > 1e-4  # earlier inputs see a later input
    # Without the flag the model is causal: the same change leaves earlier positions alone.
    causal_base = _logits(params, tokens)
    causal_after = _logits(params, changed_input)
    np.testing.assert_allclose(causal_base[0, :4], causal_after[0, :4], atol=1e-6)


@pytest.mark.slow
def test_packed_batch_gives_the_unpacked_per_example_losses(params):
    rng = np.random.default_rng(2)
    a, b = rng.integers(3, 100, size=7), rng.integers(3, 100, size=5)
    # packed row: [a | b | pad], positions restart, prefix of 3 on a and 2 on b
    tokens = np.concatenate([a, b, [0, 0, 0, 0]])[None]
    seg = np.array([[1] * 7 + [2] * 5 + [0] * 4])
    pos = np.array([list(range(7)) + list(range(5)) + [0] * 4])
    prefix = np.array([[1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]])
    targets = np.roll(tokens, -1, axis=1)
    weights = np.array([[0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]], np.float32)
    packed = _logits(params, tokens, positions=pos, segment_ids=seg, causal_attention=prefix)
    got = np.asarray(per_example_loss(jnp.asarray(packed), jnp.asarray(targets), jnp.asarray(weights),
                                      jnp.asarray(seg), 2))[0]
    for i, (x, n_prefix, start) in enumerate([(a, 3, 0), (b, 2, 7)]):
        flag = np.array([[1] * n_prefix + [0] * (len(x) - n_prefix)])
        alone = _logits(params, x[None], causal_attention=flag)
        t = np.roll(x, -1)[None]
        w = weights[:, start:start + len(x)]
        loss, _ = cross_entropy_loss(jnp.asarray(alone), jnp.asarray(t), jnp.asarray(w), z_loss=0.0)
        np.testing.assert_allclose(got[i], float(loss), rtol=1e-5)


@pytest.mark.slow
def test_loss_is_per_target_token_with_z_loss():
    logits = jnp.asarray(np.random.default_rng(3).normal(size=(2, 5, 11)), jnp.float32)
    targets = jnp.asarray(np.random.default_rng(4).integers(0, 11, size=(2, 5)))
    weights = jnp.asarray([[0, 1, 1, 0, 1], [1, 0, 0, 0, 0]], jnp.float32)
    loss, aux = cross_entropy_loss(logits, targets, weights, z_loss=1e-2)
    lp = np.asarray(jax.nn.log_softmax(logits))
    lz = np.asarray(jax.nn.logsumexp(logits, axis=-1))
    ce = -np.take_along_axis(lp, np.asarray(targets)[..., None], -1)[..., 0]
    w = np.asarray(weights)
    expected = ((ce + 1e-2 * lz**2) * w).sum() / w.sum()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    assert float(aux["num_tokens"]) == 4


@pytest.mark.slow
@pytest.mark.parametrize("family", [
    dict(parallel_block=True, num_kv_heads=1, tie_embeddings=True),
    dict(mlp_activation="gelu_tanh", norm_scale_offset=1.0, embed_scale=True, tie_embeddings=True),
    dict(qkv_bias=True), dict(scan_layers=False), dict(remat_policy="full"),
    dict(norm_layout="sandwich", qk_norm="head"), dict(norm_layout="post", qk_norm="full")])
def test_family_switches_build_and_count_params(family):
    cfg = CFG.replace(**family)  # the variables flax creates (traced for their shapes, not computed)
    v = jax.eval_shape(lambda: Decoder(cfg).init(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32)))
    assert sum(x.size for x in jax.tree.leaves(nn.meta.unbox(v))) == cfg.num_params()


@pytest.mark.slow
def test_scanned_and_unrolled_layers_share_params_and_logits(params):
    """scan_layers only changes how the layer loop runs: the same stacked parameter tree, the same logits."""
    unrolled, scanned = CFG.replace(scan_layers=False), CFG.replace(scan_layers=True)
    tree = nn.meta.unbox(Decoder(unrolled).init(jax.random.PRNGKey(0), jnp.ones((1, 8), jnp.int32))["params"])
    assert jax.tree.structure(tree) == jax.tree.structure(params)
    assert params["layers"]["mlp"]["up"]["kernel"].shape[0] == CFG.num_layers
    tokens = jnp.asarray(np.random.default_rng(5).integers(3, 100, size=(2, 10)))
    a = Decoder(unrolled).apply({"params": params}, tokens)
    b = Decoder(scanned).apply({"params": params}, tokens)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
