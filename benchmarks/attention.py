"""Causal attention forward + backward on CPU: our blocked flash attention (per block size) vs the dense
`jax.nn.dot_product_attention` vs PyTorch's `scaled_dot_product_attention`, measured in the same run.

    python benchmarks/attention.py [--batch 4 --heads 8 --kv_heads 4 --head_dim 64 --lengths 512 2048]

Prints milliseconds (best of --repeats) per length; the default block size (flan_ul2r.models.attention.BLOCK)
was picked from this table. torch's SDPA gets k/v already repeated to all heads, as HF Llama passes them.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def best_ms(f, repeats: int) -> float:
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def jax_row(b: int, length: int, h: int, kv: int, d: int, blocks: list[int], repeats: int
            ) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    from flan_ul2r.models.attention import blocked_attention
    from flan_ul2r.models.decoder import attention_mask
    from flan_ul2r.training.xla_options import compiler_options

    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=s), jnp.float32)
               for s in ((b, length, h, d), (b, length, kv, d), (b, length, kv, d)))
    mask = attention_mask(jnp.ones((b, length), jnp.int32), None)
    impls = {f"blocked {n}": (lambda q, k, v, m, n=n: blocked_attention(q, k, v, m, n)) for n in blocks
             if n <= length}
    impls["jax.nn (dense)"] = lambda q, k, v, m: jax.nn.dot_product_attention(q, k, v, mask=m)
    row = {}
    for name, attn in impls.items():  # the mask is an argument, as in the model (no constant folding)
        grad = jax.jit(jax.grad(lambda q, k, v, m, attn=attn: jnp.sum(attn(q, k, v, m)), (0, 1, 2)),
                       compiler_options=compiler_options())
        row[name] = best_ms(lambda grad=grad: jax.block_until_ready(grad(q, k, v, mask)), repeats)
    return row


def torch_ms(b: int, length: int, h: int, d: int, repeats: int) -> float:
    import torch

    q, k, v = (torch.randn(b, h, length, d, requires_grad=True) for _ in range(3))

    def step():
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    return best_ms(step, repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv_heads", type=int, default=4)
    p.add_argument("--head_dim", type=int, default=64)
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--blocks", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip_torch", action="store_true")
    a = p.parse_args()
    b, h, kv, d = a.batch, a.heads, a.kv_heads, a.head_dim
    print(f"causal attention fwd+bwd, batch {b}, heads {h}/{kv}, head_dim {d}, float32; "
          f"ms, best of {a.repeats}")
    for length in a.lengths:
        row = jax_row(b, length, h, kv, d, a.blocks, a.repeats)
        if not a.skip_torch:
            row["torch sdpa"] = torch_ms(b, length, h, d, a.repeats)
        print(f"length {length:5d}: " + "  ".join(f"{name} {ms:7.1f}" for name, ms in row.items()))


if __name__ == "__main__":
    main()
