"""The train step's XLA options: applied on CPU, dropped where this jaxlib does not know them."""
import jax
import jax.numpy as jnp
import numpy as np

from flan_ul2r.training import xla_options


def _xla_accepts(options: dict) -> bool:
    """An independent probe: does this jaxlib compile a program with `options`?"""
    try:
        jax.block_until_ready(jax.jit(lambda x: x * 2.0, compiler_options=options)(jnp.ones(3)))
        return True
    except Exception:
        return False


def test_cpu_gets_the_ynn_dot_option_when_this_xla_knows_it_and_it_computes_the_same():
    xla_options.compiler_options.cache_clear()
    opts = xla_options.compiler_options("cpu")
    # jaxlib versions without the option are tolerated by the module; the test follows the same rule.
    assert opts == (dict(xla_options.CPU_OPTIONS) if _xla_accepts(xla_options.CPU_OPTIONS) else {})
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
