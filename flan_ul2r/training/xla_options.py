"""Per-compilation XLA options for the train step (passed as `jax.jit(..., compiler_options=...)`, so they
touch only our programs, never the user's XLA_FLAGS).

CPU: XLA:CPU hands dots, elementwise ops and reductions to YNNPACK fusions by default. Restricting YNNPACK
to dots (`xla_cpu_experimental_ynn_fusion_type = DOT`) lets XLA's own loop emitter do the elementwise
work around the backward-pass transposes, which measured 17% faster forward+backward on the Llama-style
benchmark config (1.55 s vs 1.86 s per step, benchmarks/train_step.py, 2-core EPYC). The option is
experimental, so it is probed once and dropped if this jaxlib does not know it.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

CPU_OPTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def compiler_options(backend: str | None = None) -> dict[str, Any]:
    """The options for `backend` (default: JAX's default backend) that this jaxlib accepts."""
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return {}
    try:
        probe = jax.jit(lambda a: a @ a, compiler_options=CPU_OPTIONS)
        jax.block_until_ready(probe(jnp.ones((2, 2), jnp.float32)))
    except Exception:  # an XLA without the option: run with its defaults
        return {}
    return dict(CPU_OPTIONS)
