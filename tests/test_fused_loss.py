"""The chunked output projection + cross-entropy + z-loss against the dense logits computation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r.models import fused_loss
from flan_ul2r.models.attention import soft_cap
from flan_ul2r.models.fused_loss import linear_cross_entropy_sums
from flan_ul2r.models.losses import cross_entropy_sums


def _inputs(b=3, length=37, e=16, v=50, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(b, length, e)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(e, v)) * 0.3, jnp.float32)
    targets = jnp.asarray(rng.integers(0, v, size=(b, length)), jnp.int32)
    weights = jnp.asarray(rng.random((b, length)) > 0.3, jnp.float32)
    return x, kernel, targets, weights


@pytest.mark.slow
@pytest.mark.parametrize("chunk_tokens", [8, 10_000])  # many padded chunks / a single chunk
@pytest.mark.parametrize("z_loss,softcap", [(0.0, None), (0.1, None), (0.1, 2.0)])
def test_sums_and_gradients_match_dense_logits(monkeypatch, chunk_tokens, z_loss, softcap):
    """Against autodiff through the full logits; with Gemma 2's final soft-cap (2.0: binding for logits of
    this size) applied to them."""
    monkeypatch.setattr(fused_loss, "CHUNK_TOKENS", chunk_tokens)
    x, kernel, targets, weights = _inputs()

    def dense(x, kernel):
        logits = soft_cap(jnp.einsum("ble,ev->blv", x, kernel, precision="highest"), softcap)
        s = cross_entropy_sums(logits, targets, weights, z_loss)
        return s["ce"] + s["z_loss"], s

    def chunked(x, kernel):
        total, ce, z, correct = linear_cross_entropy_sums(x, kernel, targets, weights, z_loss, 1, softcap)
        return total, {"ce": ce, "z_loss": z, "correct": correct}

    (want, want_sums), want_grads = jax.value_and_grad(dense, (0, 1), has_aux=True)(x, kernel)
    (got, got_sums), got_grads = jax.value_and_grad(chunked, (0, 1), has_aux=True)(x, kernel)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    for key in ("ce", "z_loss", "correct"):
        np.testing.assert_allclose(float(got_sums[key]), float(want_sums[key]), rtol=1e-5, atol=1e-6)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5)
    # Positions with weight 0 get no gradient.
    assert not np.asarray(got_grads[0])[np.asarray(weights) == 0].any()
    # Without differentiation the same sums come out of the forward-only path.
    plain = linear_cross_entropy_sums(x, kernel, targets, weights, z_loss, 1, softcap)
    np.testing.assert_allclose(float(plain[0]), float(want), rtol=1e-5)
    if softcap is not None:  # the cap binds: the uncapped loss is far from the capped one
        uncapped = linear_cross_entropy_sums(x, kernel, targets, weights, z_loss)[0]
        assert abs(float(uncapped) - float(want)) > 0.01 * abs(float(want))


def test_accuracy_counts_weighted_argmax_hits():
    x, kernel, targets, weights = _inputs(seed=1)
    logits = np.einsum("ble,ev->blv", np.asarray(x), np.asarray(kernel))
    # Every other position's target is its argmax, so there are hits to count.
    targets = jnp.asarray(np.where(np.arange(37) % 2, logits.argmax(-1), np.asarray(targets)))
    hits = (logits.argmax(-1) == np.asarray(targets)) * np.asarray(weights)
    got = linear_cross_entropy_sums(x, kernel, targets, weights, 0.0)[3]
    assert float(got) == hits.sum() > 0


def test_gradient_scales_with_the_cotangent():
    x, kernel, targets, weights = _inputs(seed=2)
    g1 = jax.grad(lambda k: linear_cross_entropy_sums(x, k, targets, weights, 0.0)[0])(kernel)
    g3 = jax.grad(lambda k: 3.0 * linear_cross_entropy_sums(x, k, targets, weights, 0.0)[0])(kernel)
    np.testing.assert_allclose(np.asarray(g3), 3.0 * np.asarray(g1), rtol=1e-6)
