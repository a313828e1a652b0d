"""One flax decoder-only transformer for PaLM-, Llama-, Mistral-, Qwen-, Gemma-, Phi-3-, OLMo-2- and
SmolLM-style models (the switches are `ModelConfig`'s).

Takes the packed prefix-LM features of docs/ARCHITECTURE.md section 1: segment ids (no attention across
packed examples), positions (RoPE restarts per example) and the prefix flag (`causal_attention`:
bidirectional attention inside the inputs, causal over the targets - the non-causal decoder of UL2 /
U-PaLM section 2.2). Parameters carry logical axis names; activations carry `act_*` names, so the
partitioning rules (flan_ul2r/partitioning.py) place both.

Layers differ only in what `rope.layer_inputs` gives them (their RoPE frequencies and whether they are
windowed), scanned along with their stacked parameters. In a model with both local and global layers
(Gemma 2/3) each layer picks its attention with `lax.cond`, so the window stays a static argument of the
attention functions (models/attention.py); a window is a band on top of the packing/prefix mask, so it never
crosses a segment and applies both ways inside a bidirectional prefix.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from flan_ul2r.models.attention import attend_to_cache, soft_cap, window_band
from flan_ul2r.models.attention_kernels import AttentionMask, attend
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.projection import output_logits
from flan_ul2r.models.remat import ATTENTION_OUT, OUT_PROJ, QKV_NAMES, remat_policy
from flan_ul2r.models.rope import apply_rope, layer_inputs

Array = jax.Array


def _dtype(name: str):
    return jnp.dtype(name)


def attention_mask(segment_ids: Array, causal_attention: Array | None,
                   sliding_window: int | None = None) -> Array:
    """bool [b, 1, q, k]: same non-padding segment, and causal or both inside the bidirectional prefix; with
    `sliding_window`, also less than that many positions apart (both ways in the prefix)."""
    q_seg, k_seg = segment_ids[:, :, None], segment_ids[:, None, :]
    same = (q_seg == k_seg) & (q_seg != 0)
    idx = jnp.arange(segment_ids.shape[1])
    causal = idx[None, :, None] >= idx[None, None, :]
    if causal_attention is not None:
        prefix = causal_attention.astype(bool)
        causal = causal | (prefix[:, :, None] & prefix[:, None, :])
    mask = (same & causal)[:, None, :, :]
    return mask if sliding_window is None else mask & window_band(segment_ids.shape[1], sliding_window)


def embed(cfg: ModelConfig, embedding: Array, tokens: Array) -> Array:
    """Token embeddings in the compute dtype; Gemma scales them by sqrt(d_model), in that dtype as HF does."""
    x = jnp.take(embedding, tokens, axis=0).astype(_dtype(cfg.dtype))
    if cfg.embed_scale:
        x = x * jnp.asarray(cfg.d_model ** 0.5, _dtype(cfg.dtype))
    return nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))


class RMSNorm(nn.Module):
    """RMSNorm over the last axis in float32; `axis`: the scale's logical axis (None: replicated)."""

    eps: float
    scale_offset: float
    dtype: str
    param_dtype: str
    axis: str | None = "embed"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        init = nn.initializers.zeros if self.scale_offset else nn.initializers.ones
        scale = self.param("scale", nn.with_logical_partitioning(init, (self.axis,)), (x.shape[-1],),
                           _dtype(self.param_dtype))
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * (scale.astype(jnp.float32) + self.scale_offset)).astype(_dtype(self.dtype))


class _Partitioned(nn.LogicallyPartitioned):
    """`nn.LogicallyPartitioned` that skips its sharding constraint while its value does not have one axis
    per name: DenseGeneral initializes a multi-axis kernel flat and reshapes it (flax linen/linear.py), and
    under a mesh (`jax.set_mesh`) flax would constrain the flat value with the full spec and fail."""

    def unbox(self, apply_constraint: bool = True) -> Array:
        return super().unbox(apply_constraint and jnp.ndim(self.value) == len(self.names))


def _partitioned(init: Callable[..., Array], axes: tuple[str, ...]) -> Callable[..., _Partitioned]:
    """`nn.with_logical_partitioning(init, axes)`, boxing in `_Partitioned`."""
    def boxed(*args: Any, **kwargs: Any) -> _Partitioned:
        return _Partitioned(init(*args, **kwargs), axes)
    return boxed


def _dense(features, axes: tuple[str, ...], cfg: ModelConfig, name: str, axis=-1, bias: bool = False,
           bias_axes: tuple[str, ...] = ()) -> nn.DenseGeneral:
    return nn.DenseGeneral(
        features, axis=axis, use_bias=bias, dtype=_dtype(cfg.dtype), param_dtype=_dtype(cfg.param_dtype),
        kernel_init=_partitioned(nn.initializers.lecun_normal(), axes),
        bias_init=_partitioned(nn.initializers.zeros, bias_axes), name=name)


def _norm(cfg: ModelConfig, name: str, axis: str | None = "embed") -> RMSNorm:
    return RMSNorm(cfg.norm_eps, cfg.norm_scale_offset, cfg.dtype, cfg.param_dtype, axis, name=name)


class Attention(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: Array, positions: Array, mask: Array, layer: dict[str, Array],
                 layer_cache: tuple | None = None) -> tuple[Array, tuple[Array, Array]]:
        """(output, (k, v)): the tokens' keys/values. `layer`: this layer's `rope.layer_inputs`. With
        `layer_cache` = (k_cache, v_cache, slot), `x` is one new token per row, `mask` the cache's key mask
        [b, length], and (k, v) the updated layer cache (models/kv_cache.py)."""
        cfg = self.cfg
        h, kv, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        q = _dense((h, hd), ("embed", "heads", "head_dim"), cfg, "q", bias=cfg.qkv_bias,
                   bias_axes=("heads", "head_dim"))(x)
        k = _dense((kv, hd), ("embed", "kv_heads", "head_dim"), cfg, "k", bias=cfg.qkv_bias,
                   bias_axes=("kv_heads", "head_dim"))(x)
        v = _dense((kv, hd), ("embed", "kv_heads", "head_dim"), cfg, "v", bias=cfg.qkv_bias,
                   bias_axes=("kv_heads", "head_dim"))(x)
        q, k = _qk_norm(cfg, q, "q_norm"), _qk_norm(cfg, k, "k_norm")
        q = apply_rope(q, positions, layer["inv_freq"], layer["scale"])
        k = apply_rope(k, positions, layer["inv_freq"], layer["scale"])
        q = nn.with_logical_constraint(q, ("act_batch", "act_length", "act_heads", None))
        if layer_cache is None:
            q, k, v = (checkpoint_name(a, n) for a, n in zip((q, k, v), QKV_NAMES))  # remat policies
            impl = "xla" if self.is_initializing() else cfg.attention_impl  # init: shapes only, any length
            out = checkpoint_name(_self_attention(cfg, q, k, v, mask, layer["local"], impl), ATTENTION_OUT)
        else:
            out, k, v = attend_to_cache(q, k, v, *layer_cache, mask, scale=cfg.attention_scale,
                                        logit_softcap=cfg.attn_logit_softcap)
        out = nn.with_logical_constraint(out, ("act_batch", "act_length", "act_heads", None))
        out = _dense(cfg.d_model, ("heads", "head_dim", "embed"), cfg, "o", axis=(-2, -1))(out)
        return checkpoint_name(out, OUT_PROJ), (k, v)  # names: remat policies (models/remat.py)


def _qk_norm(cfg: ModelConfig, x: Array, name: str) -> Array:
    """Qwen3 / Gemma 3: RMSNorm over each head's vector; OLMo 2: over the whole projection (all heads)."""
    if cfg.qk_norm == "head":
        return _norm(cfg, name, axis=None)(x)
    if cfg.qk_norm == "full":
        return _norm(cfg, name, axis=None)(x.reshape(*x.shape[:-2], -1)).reshape(x.shape)
    return x


def _self_attention(cfg: ModelConfig, q: Array, k: Array, v: Array, mask: AttentionMask, local: Array,
                    impl: str) -> Array:
    """Attention over the sequence by `impl` (models/attention_kernels.py); a windowed layer adds its band.
    Mixed local/global models branch per layer."""
    def run(window: int | None) -> Array:
        return attend(q, k, v, mask, impl, scale=cfg.attention_scale, window=window,
                      logit_softcap=cfg.attn_logit_softcap)

    if cfg.mixed_windows:
        return jax.lax.cond(local, lambda: run(cfg.sliding_window), lambda: run(None))
    return run(cfg.layer_window(0))


class Mlp(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg = self.cfg
        act = {"silu": nn.silu, "gelu_tanh": functools.partial(nn.gelu, approximate=True),
               "gelu": functools.partial(nn.gelu, approximate=False)}[cfg.mlp_activation]
        gate = _dense(cfg.d_ff, ("embed", "mlp"), cfg, "gate")(x)
        up = _dense(cfg.d_ff, ("embed", "mlp"), cfg, "up")(x)
        hidden = nn.with_logical_constraint(act(gate) * up, ("act_batch", "act_length", "act_mlp"))
        return _dense(cfg.d_model, ("mlp", "embed"), cfg, "down")(hidden)


class Block(nn.Module):
    """A residual block; `cfg.norm_layout` places the norms ("pre": x + f(norm(x)); "sandwich":
    x + norm(f(norm(x))); "post": x + norm(f(x))), `cfg.parallel_block` gives PaLM's parallel form. With
    `decode` it also returns its keys/values (for the KV cache, models/kv_cache.py); with `layer_cache` it is
    a decode step."""

    cfg: ModelConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x: Array, positions: Array, mask: Array, layer: dict[str, Array],
                 layer_cache: tuple | None = None) -> tuple[Array, tuple[Array, Array] | None]:
        cfg = self.cfg
        attention = Attention(cfg, name="attn")
        if cfg.parallel_block:
            hn = _norm(cfg, "norm")(x)
            attn, kv = attention(hn, positions, mask, layer, layer_cache)
            x = x + attn + Mlp(cfg, name="mlp")(hn)
        else:
            pre = cfg.norm_layout != "post"
            post = cfg.norm_layout != "pre"
            normed = _norm(cfg, "attn_norm")(x) if pre else x
            attn, kv = attention(normed, positions, mask, layer, layer_cache)
            x = x + (_norm(cfg, "attn_post_norm")(attn) if post else attn)
            mlp = Mlp(cfg, name="mlp")(_norm(cfg, "mlp_norm")(x) if pre else x)
            x = x + (_norm(cfg, "mlp_post_norm")(mlp) if post else mlp)
        x = nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))
        return x, (kv if self.decode else None)


def _remat(block: type[Block], policy: str):
    if policy == "none":
        return block
    return nn.remat(block, policy=remat_policy(policy), prevent_cse=False)


class LmHead(nn.Module):
    """The untied output projection, kernel [embed, vocab] (the same parameter as a DenseGeneral)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self) -> Array:
        cfg = self.cfg
        init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "vocab"))
        return self.param("kernel", init, (cfg.d_model, cfg.vocab_size), _dtype(cfg.param_dtype))


class Decoder(nn.Module):
    """tokens [b, l] -> float32 logits [b, l, vocab] (soft-capped when `final_logit_softcap`); with
    `return_hidden`, the final normed hidden states [b, l, d_model] and the output kernel [d_model, vocab]
    instead (for flan_ul2r/models/fused_loss.py, which applies the cap itself).
    With `return_kv`, `(that output, (k, v))`: every layer's rotated keys and values [layers, b, l, kv_heads,
    head_dim], the prefill of the KV cache (models/kv_cache.py, which also runs the decode steps)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, tokens: Array, positions: Array | None = None, segment_ids: Array | None = None,
                 causal_attention: Array | None = None, deterministic: bool = True,
                 return_hidden: bool = False, return_kv: bool = False) -> Array | tuple:
        cfg = self.cfg
        b, length = tokens.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(length), (b, length))
        if segment_ids is None:
            segment_ids = jnp.ones((b, length), jnp.int32)
        mask = AttentionMask(segment_ids, causal_attention, attention_mask(segment_ids, causal_attention))
        embedding = self.param(
            "embedding", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed")),
            (cfg.vocab_size, cfg.d_model), _dtype(cfg.param_dtype))
        x = embed(cfg, embedding, tokens)
        # Layers' params are always stacked on a leading "layers" axis (one checkpoint layout); the loop over
        # them is a lax.scan, or fully unrolled (straight-line code, faster on CPU, slower to compile).
        scan = cfg.scan_layers if cfg.scan_layers is not None else jax.default_backend() != "cpu"
        stack = nn.scan(_remat(Block, cfg.remat_policy), variable_axes={"params": 0},
                        split_rngs={"params": True}, in_axes=(nn.broadcast, nn.broadcast, 0),
                        length=cfg.num_layers, metadata_params={nn.PARTITION_NAME: "layers"},
                        unroll=1 if scan else cfg.num_layers)
        layers = layer_inputs(cfg, positions)
        x, kv = stack(cfg, decode=return_kv, name="layers")(x, positions, mask, layers)
        x = _norm(cfg, "final_norm")(x)
        x = nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))
        kernel = embedding.T if cfg.tie_embeddings else LmHead(cfg, name="lm_head")()
        kernel = kernel.astype(x.dtype)
        if return_hidden:
            return ((x, kernel), kv) if return_kv else (x, kernel)
        # Pinned batch-sharded: left free, XLA may follow the kernel's FSDP-sharded embed axis and all-reduce
        # partial logits for the whole global batch on every chip (docs/TPU_SCALE.md).
        logits = soft_cap(output_logits(x, kernel), cfg.final_logit_softcap)
        logits = nn.with_logical_constraint(logits, ("act_batch", "act_length", "act_vocab"))
        return (logits, kv) if return_kv else logits
