"""The train step's XLA options: applied on CPU, dropped where this jaxlib does not know them."""
import jax
import jax.numpy as jnp
import numpy as np

from flan_ul2r.training import xla_options


def test_cpu_gets_the_ynn_dot_option_and_it_computes_the_same(monkeypatch):
    xla_options.compiler_options.cache_clear()
    opts = xla_options.compiler_options("cpu")
    assert opts == xla_options.CPU_OPTIONS
    assert xla_options.compiler_options("gpu") == {} and xla_options.compiler_options("tpu") == {}
    a = jnp.asarray(np.random.default_rng(0).normal(size=(64, 48)), jnp.float32)

    def f(x):
        return jax.nn.silu(x @ x.T).sum(0)

    np.testing.assert_allclose(np.asarray(jax.jit(f, compiler_options=opts)(a)), np.asarray(jax.jit(f)(a)),
                               rtol=1e-5)


def test_an_option_this_xla_does_not_know_is_dropped(monkeypatch):
    monkeypatch.setattr(xla_options, "CPU_OPTIONS", {"xla_cpu_no_such_option_exists": True})
    xla_options.compiler_options.cache_clear()
    try:
        assert xla_options.compiler_options("cpu") == {}
    finally:
        xla_options.compiler_options.cache_clear()
