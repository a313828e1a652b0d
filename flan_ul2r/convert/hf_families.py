"""HF families we read and write: config.json <-> ModelConfig, and HF tensor names <-> our param tree.

Supported architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GemmaForCausalLM.
HF stores linear weights as [out, in]; ours are flax kernels [in, ...out] with heads split out.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from flan_ul2r.models.config import ModelConfig

ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                 "GemmaForCausalLM": "gemma"}
_ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "gelu_new": "gelu_tanh"}


def family_of(hf: dict[str, Any]) -> str:
    archs = hf.get("architectures") or []
    for a in archs:
        if a in ARCHITECTURES:
            return ARCHITECTURES[a]
    raise ValueError(f"config.json: architectures={archs} is not supported; supported: "
                     f"{', '.join(ARCHITECTURES)}")


def _rope(hf: dict[str, Any]) -> tuple[float, tuple | None]:
    params = dict(hf.get("rope_parameters") or {})
    scaling = hf.get("rope_scaling") or (params if params.get("rope_type", "default") != "default" else None)
    theta = float(hf.get("rope_theta") or params.get("rope_theta") or 10_000.0)
    if not scaling:
        return theta, None
    kind = scaling.get("rope_type") or scaling.get("type")
    if kind != "llama3":
        raise ValueError(f"config.json: rope scaling type {kind!r} is not supported (supported: llama3)")
    return theta, (float(scaling["factor"]), float(scaling["low_freq_factor"]),
                   float(scaling["high_freq_factor"]), int(scaling["original_max_position_embeddings"]))


def config_from_hf(hf: dict[str, Any], dtype: str = "float32") -> ModelConfig:
    family = family_of(hf)
    try:
        d, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
        act = hf.get("hidden_activation") or hf.get("hidden_act", "silu")
        if act not in _ACTIVATIONS:
            raise ValueError(f"config.json: hidden_act={act!r} unsupported; use one of {list(_ACTIVATIONS)}")
        theta, scaling = _rope(hf)
        window = hf.get("sliding_window") if family == "mistral" or hf.get("use_sliding_window") else None
        return ModelConfig(
            vocab_size=int(hf["vocab_size"]), num_layers=int(hf["num_hidden_layers"]), d_model=d,
            num_heads=heads, num_kv_heads=int(hf.get("num_key_value_heads") or heads),
            head_dim=int(hf.get("head_dim") or d // heads), d_ff=int(hf["intermediate_size"]),
            mlp_activation=_ACTIVATIONS[act], norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            norm_scale_offset=1.0 if family == "gemma" else 0.0, embed_scale=family == "gemma",
            tie_embeddings=bool(hf.get("tie_word_embeddings", family == "gemma")),
            qkv_bias=family == "qwen2" or bool(hf.get("attention_bias", False)),
            rope_theta=theta, rope_scaling=scaling, sliding_window=int(window) if window else None,
            dtype=dtype, param_dtype=dtype)
    except KeyError as e:
        raise ValueError(f"config.json: field {e.args[0]!r} missing") from None


def hf_config_from(cfg: ModelConfig, base: dict[str, Any]) -> dict[str, Any]:
    """The HF config.json for `cfg`, starting from the imported one (keeps ids, rope, etc.)."""
    out = dict(base)
    out.update(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.num_layers,
               num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
               head_dim=cfg.head_dim,
               intermediate_size=cfg.d_ff, rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings,
               torch_dtype="float32" if cfg.param_dtype == "float32" else cfg.param_dtype)
    return out


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One HF tensor <-> a slot of our tree. `layer` tensors are stacked on a leading axis (scan)."""

    hf_name: str  # with {i} for the layer index
    path: tuple[str, ...]
    kind: str  # copy | linear (transpose) | q, kv (split heads) | o (merge heads) | bias_q, bias_kv
    layer: bool = True


def tensors(cfg: ModelConfig) -> list[Tensor]:
    p = "model.layers.{i}."
    out = [Tensor("model.embed_tokens.weight", ("embedding",), "copy", False),
           Tensor("model.norm.weight", ("final_norm", "scale"), "copy", False),
           Tensor(p + "input_layernorm.weight", ("layers", "attn_norm", "scale"), "copy"),
           Tensor(p + "post_attention_layernorm.weight", ("layers", "mlp_norm", "scale"), "copy"),
           Tensor(p + "self_attn.q_proj.weight", ("layers", "attn", "q", "kernel"), "q"),
           Tensor(p + "self_attn.k_proj.weight", ("layers", "attn", "k", "kernel"), "kv"),
           Tensor(p + "self_attn.v_proj.weight", ("layers", "attn", "v", "kernel"), "kv"),
           Tensor(p + "self_attn.o_proj.weight", ("layers", "attn", "o", "kernel"), "o"),
           Tensor(p + "mlp.gate_proj.weight", ("layers", "mlp", "gate", "kernel"), "linear"),
           Tensor(p + "mlp.up_proj.weight", ("layers", "mlp", "up", "kernel"), "linear"),
           Tensor(p + "mlp.down_proj.weight", ("layers", "mlp", "down", "kernel"), "linear")]
    if cfg.qkv_bias:
        out += [Tensor(p + f"self_attn.{n}_proj.bias", ("layers", "attn", n, "bias"), "bias_q" if n == "q"
                       else "bias_kv") for n in "qkv"]
    if not cfg.tie_embeddings:
        out.append(Tensor("lm_head.weight", ("lm_head", "kernel"), "linear", False))
    return out


def to_ours(t: Tensor, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    hd = cfg.head_dim
    if t.kind == "copy":
        return x
    if t.kind == "linear":
        return x.T
    if t.kind in ("q", "kv"):
        heads = cfg.num_heads if t.kind == "q" else cfg.num_kv_heads
        return x.T.reshape(cfg.d_model, heads, hd)
    if t.kind == "o":
        return x.T.reshape(cfg.num_heads, hd, cfg.d_model)
    heads = cfg.num_heads if t.kind == "bias_q" else cfg.num_kv_heads
    return x.reshape(heads, hd)


def to_hf(t: Tensor, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
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
    last = t.path[-2] if t.path[-1] in ("kernel", "bias", "scale") else t.path[-1]
    if t.kind == "copy":
        return (v, d) if t.path == ("embedding",) else (d,)
    if t.kind in ("bias_q", "bias_kv"):
        return (q,) if t.kind == "bias_q" else (kv,)
    return {"q": (q, d), "k": (kv, d), "v": (kv, d), "o": (d, q), "gate": (f, d), "up": (f, d),
            "down": (d, f), "lm_head": (v, d)}[last]
