"""Attention kernels per backend behind one setting, `ModelConfig.attention_impl` (gin:
`ModelSpec.attention_impl`).

- `splash` (TPU): Pallas splash attention (`jax.experimental.pallas.ops.tpu.splash_attention`), flash
  attention with block sparsity: blocks that the mask hides are never computed. Causal LM batches use a
  lazy causal (or, with `window`, local) mask plus segment ids for packing. Prefix-LM batches
  (bidirectional over each example's inputs, U-PaLM section 2.2) differ per example, so they go in as
  splash's dynamic mask: each example's [length, length] booleans, from which it still skips every hidden
  block (e.g. between packed examples). GQA natively; `logit_softcap` as splash's `attn_logits_soft_cap`.
  Runs under `shard_map` over the batch (and heads) axes of the mesh in use, so each chip runs the kernel
  on its share. On CPU it runs in Pallas interpret mode (tests).
- `cudnn` (GPU): `jax.nn.dot_product_attention(implementation="cudnn")`, cuDNN's flash attention; our mask
  goes in as its boolean mask, plus `is_causal` / `local_window_size` for causal batches so it skips the
  upper triangle. bf16/fp16 only, head_dim <= 128 and a multiple of 8, no soft-cap.
- `xla`, `blocked`: models/attention.py (dense XLA attention; blocked flash attention for CPU).
- `auto`: splash on TPU, cudnn on GPU, blocked on CPU; where the chosen kernel cannot take the shapes (see
  `kernel_problem`) it falls back to `xla` with a warning naming the reason. Naming a kernel that cannot
  run is an error naming the setting.

Every kernel returns zeros for query rows that may attend nowhere (padding), as `blocked` does.
"""
from __future__ import annotations

import functools
import logging
import math

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from flan_ul2r.models.attention import dot_product_attention, window_band
from flan_ul2r.models.config import ATTENTION_IMPLS as IMPLEMENTATIONS
from flan_ul2r.models.remat import ATTENTION_OUT

Array = jax.Array
# Splash block sizes: MaxText's defaults (sa_block_* = 512 in its base.yml), shrunk to divide the length;
# 128 is the TPU lane width, the smallest block the kernel takes.
SPLASH_BLOCKS = (512, 256, 128)
_log = logging.getLogger(__name__)


@flax.struct.dataclass
class AttentionMask:
    """What may attend to what in a packed batch (docs/ARCHITECTURE.md section 1): segment ids [b, l] (0 =
    padding), the prefix flags [b, l] (`causal_attention`; None = causal LM), and the same as a dense bool
    mask [b, 1, l, l] (`models.decoder.attention_mask`; `attend` adds a layer's sliding window)."""

    segment_ids: Array
    causal_attention: Array | None
    dense: Array


def platform() -> str:
    """The platform being compiled for: the devices of the mesh in use (a TPU topology when compiling ahead
    of time on CPU, training/aot.py), else JAX's default backend."""
    try:  # the concrete mesh of `jax.set_mesh`; the public `jax.sharding.get_mesh` refuses to run under jit
        from jax._src.mesh import get_concrete_mesh
        mesh = get_concrete_mesh()
    except ImportError:
        mesh = None
    if mesh is not None and not mesh.empty and hasattr(mesh, "devices"):
        return mesh.devices.flat[0].platform
    return jax.default_backend()


def kernel_problem(kernel: str, *, dtype, head_dim: int, length: int, logit_softcap: float | None
                   ) -> str | None:
    """Why `kernel` cannot run these shapes, or None."""
    if kernel == "splash" and length % SPLASH_BLOCKS[-1]:
        return f"sequence length {length} is not a multiple of {SPLASH_BLOCKS[-1]} (splash's smallest block)"
    if kernel == "cudnn":
        if jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
            return f"cuDNN flash attention computes in bfloat16/float16, not {jnp.dtype(dtype).name} " \
                   "(ModelSpec.dtype)"
        if head_dim % 8 or head_dim > 128:
            return f"cuDNN flash attention needs head_dim <= 128 and a multiple of 8, not {head_dim}"
        if logit_softcap is not None:
            return "jax.nn.dot_product_attention(implementation='cudnn') has no logit soft-cap"
    return None


def choose(implementation: str, target: str, **shapes) -> str:
    """The implementation that runs: `auto` resolved for `target` ('tpu', 'gpu'/'cuda', 'cpu'), checked
    against the shapes (`kernel_problem`'s keywords). A named kernel that cannot run raises ValueError."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"ModelSpec.attention_impl={implementation!r}: use one of {IMPLEMENTATIONS}")
    kernel = {"tpu": "splash", "gpu": "cudnn", "cuda": "cudnn", "rocm": "xla"}.get(target, "blocked")
    if implementation != "auto":
        kernel = implementation
    if kernel in ("splash", "cudnn"):
        wanted = {"splash": ("tpu", "cpu"), "cudnn": ("gpu", "cuda")}[kernel]
        problem = None if target in wanted else f"it runs on {' or '.join(wanted)}, not {target}"
        problem = problem or kernel_problem(kernel, **shapes)
        if problem and implementation != "auto":
            raise ValueError(f"ModelSpec.attention_impl={implementation!r} cannot run here: {problem}; "
                             "use 'auto' or 'xla'")
        if problem:
            _warn_once(f"attention_impl='auto': {kernel} cannot run ({problem}); using XLA attention")
            return "xla"
    return kernel


@functools.cache
def _warn_once(message: str) -> None:
    _log.warning(message)


def attend(q: Array, k: Array, v: Array, mask: AttentionMask, implementation: str = "auto", *,
           scale: float | None = None, window: int | None = None, logit_softcap: float | None = None
           ) -> Array:
    """Attention of q [b, l, h, d] over k/v [b, l, kv, d] (GQA: h a multiple of kv) under `mask`, by the
    chosen implementation. `scale`: multiplier of q.k (default head_dim^-1/2). `window`: this layer's
    sliding window (HF's rule: keys less than `window` positions away, both ways inside a prefix); the band
    joins `mask.dense` here, so one mask serves a model whose layers have different windows.
    `logit_softcap`: c * tanh(logits / c)."""
    impl = choose(implementation, platform(), dtype=q.dtype, head_dim=q.shape[-1], length=q.shape[1],
                  logit_softcap=logit_softcap)
    if window is not None:
        mask = mask.replace(dense=mask.dense & window_band(q.shape[1], window))
    if impl == "splash":
        return splash_attention(q, k, v, mask, scale=scale, window=window, logit_softcap=logit_softcap)
    if impl == "cudnn":
        return cudnn_attention(q, k, v, mask, scale=scale, window=window)
    return dot_product_attention(q, k, v, mask.dense, impl, scale=scale, logit_softcap=logit_softcap)


def cudnn_attention(q: Array, k: Array, v: Array, mask: AttentionMask, *, scale: float | None = None,
                    window: int | None = None, implementation: str = "cudnn") -> Array:
    """cuDNN flash attention (`jax.nn.dot_product_attention`); `implementation="xla"` runs the same call
    through XLA (the CPU test of these arguments)."""
    causal = mask.causal_attention is None  # prefix-LM rows attend forward: only the dense mask says so
    out = jax.nn.dot_product_attention(
        q, k, v, mask=mask.dense, scale=scale, is_causal=causal, implementation=implementation,
        local_window_size=(window - 1, 0) if causal and window is not None else None)
    return _zero_dead_rows(out, mask.dense[:, 0].any(-1))


def _zero_dead_rows(out: Array, live: Array) -> Array:
    return jnp.where(live[:, :, None, None], out, jnp.zeros((), out.dtype))


def splash_attention(q: Array, k: Array, v: Array, mask: AttentionMask, *, scale: float | None = None,
                     window: int | None = None, logit_softcap: float | None = None,
                     interpret: bool | None = None, block: int | None = None) -> Array:
    """Splash attention (module doc), [b, l, h, d] in and out; `interpret` defaults to CPU = interpret;
    `block` (default: the largest of SPLASH_BLOCKS that divides the length) is the tile of all its kernels."""
    b, length, h, d = q.shape
    problem = kernel_problem("splash", dtype=q.dtype, head_dim=d, length=length, logit_softcap=logit_softcap)
    if problem:
        raise ValueError(f"ModelSpec.attention_impl='splash': {problem}")
    if interpret is None:
        interpret = platform() == "cpu"
    static = mask.causal_attention is None and (window is None or isinstance(window, int))
    if static:
        live = mask.segment_ids != 0
        extra = mask.segment_ids
    else:
        live = mask.dense[:, 0].any(-1)
        # Rows with no key (padding) attend to themselves inside the kernel, so no block of the kernel is
        # empty for a whole row (0/0); their output is set to zero below.
        extra = mask.dense | (jnp.eye(length, dtype=bool) & ~live[:, None, :, None])
    qs = (q * jnp.asarray(scale or d ** -0.5, q.dtype)).transpose(0, 2, 1, 3)  # [b, h, l, d], scale folded in
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    kernel = functools.partial(_splash_shard, static=static, window=window, logit_softcap=logit_softcap,
                               interpret=interpret, block=block or _block(length))
    out = _per_shard(kernel, qs, kt, vt, extra)
    return _zero_dead_rows(out.transpose(0, 2, 1, 3), live)


def _block(length: int) -> int:
    return next(b for b in SPLASH_BLOCKS if length % b == 0)


def _splash_shard(q: Array, k: Array, v: Array, extra: Array, *, static: bool, window, logit_softcap,
                  interpret: bool, block: int) -> Array:
    """One shard: q [b, h, l, d], k/v [b, kv, l, d]; `extra` the segment ids [b, l] (static mask) or the
    dense mask [b, 1, l, l] (dynamic)."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    length = q.shape[2]
    sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
                              block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block,
                              block_kv_dq=block)
    make = functools.partial(splash.make_splash_mha, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                             attn_logits_soft_cap=logit_softcap, residual_checkpoint_name=ATTENTION_OUT,
                             interpret=interpret)
    if static:
        shape = (length, length)
        one = splash.CausalMask(shape) if window is None else splash.LocalMask(shape, (window - 1, 0), 0)
        kernel = make(splash.MultiHeadMask((one,)))

        def run(q1, k1, v1, seg):
            return kernel(q1, k1, v1, segment_ids=splash.SegmentIds(seg, seg))
    else:
        def run(q1, k1, v1, dense):  # one example's mask [1, l, l]: splash's dynamic mask
            kernel = make(dense)
            # Its `is_dynamic_mask` flag (only a named_scope's label) becomes a traced bool under shard_map.
            kernel.fwd_mask_info = kernel.fwd_mask_info._replace(is_dynamic_mask=None)
            return kernel(q1, k1, v1)
    return jax.vmap(run)(q, k, v, extra)


def _per_shard(kernel, q: Array, k: Array, v: Array, extra: Array) -> Array:
    """`kernel` under shard_map over the mesh in use: batch over `act_batch`'s mesh axes, heads over
    `act_heads`' (kv heads repeated when their count does not split the same way); no mesh: called as is.
    A Pallas kernel is opaque to XLA's partitioner, which would otherwise gather every input to every chip."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return kernel(q, k, v, extra)
    batch_axes, head_axes = nn.logical_to_mesh_axes(("act_batch", "act_heads"))
    sizes = dict(mesh.shape)

    def count(axes) -> int:
        axes = (axes,) if isinstance(axes, str) else (axes or ())
        return math.prod(sizes[a] for a in axes)

    h, kv = q.shape[1], k.shape[1]
    if h % count(head_axes):
        head_axes = None
    if kv % count(head_axes):
        k, v = (jnp.repeat(a, h // kv, axis=1) for a in (k, v))
    P = jax.sharding.PartitionSpec
    heads = P(batch_axes, head_axes, None, None)
    extra_spec = P(batch_axes, *(None,) * (extra.ndim - 1))
    return jax.shard_map(kernel, in_specs=(heads, heads, heads, extra_spec), out_specs=heads,
                         check_vma=False)(q, k, v, extra)

