"""HF tensor names <-> slots of our param tree, per family (config.json mapping: convert/hf_families.py).

HF stores linear weights as [out, in]; ours are flax kernels [in, ...out] with heads split out. Phi-3 fuses
q/k/v (`qkv_proj`, rows q then k then v) and gate/up (`gate_up_proj`, gate rows first); one HF tensor then
fills several slots. The norms' HF names follow the block layout: pre-norm (`input_layernorm`,
`post_attention_layernorm` = before the MLP), Gemma 2/3's sandwich (`post_attention_layernorm` after
attention, `pre_/post_feedforward_layernorm` around the MLP), OLMo 2's post-norm (only the two `post_*`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from flan_ul2r.models.config import ModelConfig

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One HF tensor <-> one or more slots of our tree. `layer` tensors are stacked on a leading axis."""

    hf_name: str  # with {i} for the layer index
    paths: tuple[Path, ...]
    # copy | linear (transpose) | q, kv (split heads) | o (merge heads) | bias_q, bias_kv | qkv, gate_up
    kind: str
    layer: bool = True


def _norms(cfg: ModelConfig, p: str) -> list[Tensor]:
    names = {"pre": {"input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm"},
             "sandwich": {"input_layernorm": "attn_norm", "post_attention_layernorm": "attn_post_norm",
                          "pre_feedforward_layernorm": "mlp_norm",
                          "post_feedforward_layernorm": "mlp_post_norm"},
             "post": {"post_attention_layernorm": "attn_post_norm",
                      "post_feedforward_layernorm": "mlp_post_norm"}}[cfg.norm_layout]
    out = [Tensor(p + f"{hf}.weight", (("layers", ours, "scale"),), "copy") for hf, ours in names.items()]
    if cfg.qk_norm:
        out += [Tensor(p + f"self_attn.{n}_norm.weight", (("layers", "attn", f"{n}_norm", "scale"),), "copy")
                for n in "qk"]
    return out


def tensors(cfg: ModelConfig, family: str = "llama") -> list[Tensor]:
    p = "model.layers.{i}."
    attn, mlp = ("layers", "attn"), ("layers", "mlp")
    out = [Tensor("model.embed_tokens.weight", (("embedding",),), "copy", False),
           Tensor("model.norm.weight", (("final_norm", "scale"),), "copy", False), *_norms(cfg, p)]
    if family == "phi3":
        out += [Tensor(p + "self_attn.qkv_proj.weight", tuple((*attn, n, "kernel") for n in "qkv"), "qkv"),
                Tensor(p + "self_attn.o_proj.weight", ((*attn, "o", "kernel"),), "o"),
                Tensor(p + "mlp.gate_up_proj.weight", ((*mlp, "gate", "kernel"), (*mlp, "up", "kernel")),
                       "gate_up")]
    else:
        out += [Tensor(p + f"self_attn.{n}_proj.weight", ((*attn, n, "kernel"),), "q" if n == "q" else "kv")
                for n in "qkv"]
        out += [Tensor(p + "self_attn.o_proj.weight", ((*attn, "o", "kernel"),), "o")]
        out += [Tensor(p + f"mlp.{n}_proj.weight", ((*mlp, n, "kernel"),), "linear") for n in ("gate", "up")]
    out.append(Tensor(p + "mlp.down_proj.weight", ((*mlp, "down", "kernel"),), "linear"))
    if cfg.qkv_bias:
        out += [Tensor(p + f"self_attn.{n}_proj.bias", ((*attn, n, "bias"),),
                       "bias_q" if n == "q" else "bias_kv") for n in "qkv"]
    if not cfg.tie_embeddings:
        out.append(Tensor("lm_head.weight", (("lm_head", "kernel"),), "linear", False))
    return out


def _splits(t: Tensor, cfg: ModelConfig) -> list[int]:
    """Row counts of the parts of a fused HF tensor."""
    if t.kind == "qkv":
        return [cfg.num_heads * cfg.head_dim] + [cfg.num_kv_heads * cfg.head_dim] * 2
    return [cfg.d_ff, cfg.d_ff]


def to_ours(t: Tensor, x: np.ndarray, cfg: ModelConfig) -> list[np.ndarray]:
    """The HF tensor as our arrays, one per `t.paths`."""
    hd = cfg.head_dim
    if t.kind in ("qkv", "gate_up"):
        parts = np.split(x, np.cumsum(_splits(t, cfg))[:-1], axis=0)
        kinds = ["q", "kv", "kv"] if t.kind == "qkv" else ["linear", "linear"]
        return [to_ours(dataclasses.replace(t, kind=k), part, cfg)[0] for k, part in zip(kinds, parts)]
    if t.kind == "copy":
        return [x]
    if t.kind == "linear":
        return [x.T]
    if t.kind in ("q", "kv"):
        heads = cfg.num_heads if t.kind == "q" else cfg.num_kv_heads
        return [x.T.reshape(cfg.d_model, heads, hd)]
    if t.kind == "o":
        return [x.T.reshape(cfg.num_heads, hd, cfg.d_model)]
    heads = cfg.num_heads if t.kind == "bias_q" else cfg.num_kv_heads
    return [x.reshape(heads, hd)]


def to_hf(t: Tensor, xs: list[np.ndarray], cfg: ModelConfig) -> np.ndarray:
    """Our arrays (one per `t.paths`) as the HF tensor."""
    if t.kind in ("qkv", "gate_up"):
        kind = "q" if t.kind == "qkv" else "linear"
        return np.concatenate([to_hf(dataclasses.replace(t, kind=kind), [x], cfg) for x in xs], axis=0)
    x = xs[0]
    if t.kind == "copy":
        return x
    if t.kind == "linear":
        return x.T
    if t.kind in ("q", "kv"):
        return x.reshape(cfg.d_model, -1).T
    if t.kind == "o":
        return x.reshape(-1, cfg.d_model).T
    return x.reshape(-1)


def hf_shape(t: Tensor, cfg: ModelConfig) -> tuple[int, ...]:
    """The HF shape a tensor must have (checked on import, naming the tensor)."""
    d, hd, v, f = cfg.d_model, cfg.head_dim, cfg.vocab_size, cfg.d_ff
    q, kv = cfg.num_heads * hd, cfg.num_kv_heads * hd
    if t.kind in ("qkv", "gate_up"):
        return (sum(_splits(t, cfg)), d)
    path = t.paths[0]
    last = path[-2] if path[-1] in ("kernel", "bias", "scale") else path[-1]
    if last in ("q_norm", "k_norm"):
        heads = cfg.num_heads if last == "q_norm" else cfg.num_kv_heads
        return (hd,) if cfg.qk_norm == "head" else (heads * hd,)
    if t.kind == "copy":
        return (v, d) if path == ("embedding",) else (d,)
    if t.kind in ("bias_q", "bias_kv"):
        return (q,) if t.kind == "bias_q" else (kv,)
    return {"q": (q, d), "k": (kv, d), "v": (kv, d), "o": (d, q), "gate": (f, d), "up": (f, d),
            "down": (d, f), "lm_head": (v, d)}[last]
