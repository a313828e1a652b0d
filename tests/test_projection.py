"""The output projection's hand-written backward against autodiff of the plain float32-output einsum."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_ul2r.models.projection import output_logits


def _reference(x, kernel):
    return jnp.einsum("ble,ev->blv", x, kernel, preferred_element_type=jnp.float32)


def _grads(f, x, kernel, w):
    return jax.grad(lambda a, b: jnp.sum(w * f(a, b)), argnums=(0, 1))(x, kernel)


@pytest.fixture
def operands():
    kx, kk, kw = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (2, 5, 16))
    kernel = jax.random.normal(kk, (16, 40))
    w = jax.random.normal(kw, (2, 5, 40))  # a float32 cotangent, as the loss gives
    return x, kernel, w


@pytest.mark.slow
def test_float32_is_exactly_autodiff(operands):
    x, kernel, w = operands
    np.testing.assert_array_equal(output_logits(x, kernel), _reference(x, kernel))
    for g, r in zip(_grads(output_logits, x, kernel, w), _grads(_reference, x, kernel, w)):
        assert g.dtype == jnp.float32
        np.testing.assert_array_equal(g, r)


def test_bfloat16_rounds_the_cotangent_once(operands):
    x, kernel, w = operands[0].astype(jnp.bfloat16), operands[1].astype(jnp.bfloat16), operands[2]
    got = _grads(output_logits, x, kernel, w)
    # By hand: the float32 cotangent rounded to bfloat16, then float32 sums rounded to bfloat16.
    w16 = np.asarray(w.astype(jnp.bfloat16), np.float64)
    k64, x64 = np.asarray(kernel, np.float64), np.asarray(x, np.float64)
    want = (np.einsum("blv,ev->ble", w16, k64), np.einsum("ble,blv->ev", x64, w16))
    # bfloat16 keeps 8 significant bits: rounding moves a value by at most 2^-8 of itself. Autodiff keeps
    # the cotangent in float32, so each product may differ by the cotangent's rounding: the difference is
    # at most 2^-8 x the sum of |products|, plus both outputs' roundings.
    w64 = np.abs(np.asarray(w, np.float64))
    scale = (np.einsum("blv,ev->ble", w64, np.abs(k64)), np.einsum("ble,blv->ev", np.abs(x64), w64))
    autodiff = _grads(_reference, x, kernel, w)
    for g, h, a, s in zip(got, want, autodiff, scale):
        assert g.dtype == jnp.bfloat16
        g64, a64 = np.asarray(g, np.float64), np.asarray(a, np.float64)
        assert np.all(np.abs(g64 - h) <= 2.0 ** -8 * np.abs(h) + 1e-6)
        assert np.all(np.abs(g64 - a64) <= 2.0 ** -8 * (s + np.abs(h) + np.abs(a64)) + 1e-6)
