"""The output projection hidden [b, l, e] x kernel [e, v] -> float32 logits [b, l, v], with a backward
pass that produces each gradient directly in its input's dtype.

Autodiff of `einsum(..., preferred_element_type=float32)` computes the kernel gradient as a float32
[e, v] array and only then casts it to the (bfloat16) kernel's dtype. Under FSDP each chip holds a full
partial sum of that gradient before the reduction, so the float32 copy alone is 2 GiB for Llama-3's
128,256 x 4,096 head; on v5p slices of 64 chips and more (full 3-D tori, where XLA reduces it with
full-size all-reduces rather than windowed einsums) the dense loss path measured 7.0 GiB per chip instead of
3.1 GiB with this backward (4-layer Llama-3-8B, one 2048-token sequence per chip; docs/TPU_SCALE.md).
With float32 models the values are exactly autodiff's; with bfloat16 compute see `_bwd`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


@jax.custom_vjp
def output_logits(x: Array, kernel: Array) -> Array:
    """float32 logits of hidden states x [b, l, e] through kernel [e, v]."""
    return jnp.einsum("ble,ev->blv", x, kernel, preferred_element_type=jnp.float32)


def _fwd(x: Array, kernel: Array) -> tuple[Array, tuple[Array, Array]]:
    return output_logits(x, kernel), (x, kernel)


def _bwd(residuals: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    """The two dots autodiff makes, each output in its operand's dtype. The float32 cotangent is first
    rounded to that dtype: a no-op for float32 models; with bfloat16 compute it is what the TPU's matmul
    units do to a float32 operand at JAX's default precision anyway, so TPU results are unchanged (on CPU a
    bfloat16 head gradient can move by one bfloat16 step)."""
    x, kernel = residuals
    gx, gk = g.astype(x.dtype), g.astype(kernel.dtype)
    dx = jax.lax.dot_general(gx, kernel, (((2,), (1,)), ((), ())), preferred_element_type=x.dtype)
    dkernel = jax.lax.dot_general(x, gk, (((0, 1), (0, 1)), ((), ())), preferred_element_type=kernel.dtype)
    return dx, dkernel


output_logits.defvjp(_fwd, _bwd)
