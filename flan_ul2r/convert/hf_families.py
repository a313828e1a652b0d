"""HF families we read and write: config.json <-> ModelConfig. Tensor names: convert/hf_tensors.py.

Supported architectures (`ARCHITECTURES`): Llama (incl. Llama 3.1/3.2 "llama3" RoPE scaling, SmolLM2),
Mistral, Qwen2, Qwen3, Gemma 1/2/3 (text), Phi-3, OLMo 2 and SmolLM3. Both config.json styles are read:
transformers 4 (`rope_theta`, `rope_scaling`, Gemma 3's `rope_local_base_freq`, `sliding_window_pattern`)
and transformers 5 (`rope_parameters`, per layer type for Gemma 3; `layer_types`). A field we cannot run
exactly (an unknown RoPE type, MoE layers, o_proj/MLP biases, partial rotary embeddings, ...) is refused
with its name and value, never approximated. Export writes the transformers-4 style, which both read, and
checks that reading it back gives the same architecture.
"""
from __future__ import annotations

import math
from typing import Any

from flan_ul2r.models.config import ModelConfig

ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                 "Qwen3ForCausalLM": "qwen3", "GemmaForCausalLM": "gemma", "Gemma2ForCausalLM": "gemma2",
                 "Gemma3ForCausalLM": "gemma3", "Phi3ForCausalLM": "phi3", "Olmo2ForCausalLM": "olmo2",
                 "SmolLM3ForCausalLM": "smollm3"}
MODEL_TYPES = {"gemma3": "gemma3_text"}  # family -> config.json model_type, where they differ
_ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "gelu_new": "gelu_tanh"}
_GEMMAS = ("gemma", "gemma2", "gemma3")
_TIED_BY_DEFAULT = (*_GEMMAS, "smollm3")
_HAS_LAYER_TYPES = ("qwen2", "qwen3", "smollm3", "gemma2", "gemma3")
# Mixture-of-experts fields of the HF configs that have them; a dense model leaves them unset.
_MOE_FIELDS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_intermediate_size",
               "num_experts_per_tok", "decoder_sparse_step")


def family_of(hf: dict[str, Any]) -> str:
    archs = hf.get("architectures") or []
    for a in archs:
        if a in ARCHITECTURES:
            return ARCHITECTURES[a]
    hint = (" (the text model of a multimodal Gemma 3 checkpoint is not read: export it as Gemma3ForCausalLM "
            "first)" if "Gemma3ForConditionalGeneration" in archs else "")
    raise ValueError(f"config.json: architectures={archs} is not supported{hint}; supported: "
                     f"{', '.join(ARCHITECTURES)}")


def _refuse(field: str, value: Any, why: str) -> None:
    raise ValueError(f"config.json: {field}={value!r} is not supported ({why})")


def _scaling(params: dict[str, Any], hf: dict[str, Any], family: str, where: str) -> tuple | None:
    """One RoPE parameter dict (`rope_scaling` or a `rope_parameters` entry) -> our tagged tuple."""
    kind = params.get("rope_type") or params.get("type") or "default"
    if family == "phi3" and kind in ("su", "yarn"):
        kind = "longrope"  # transformers' Phi3Config reads both old names as longrope
    if kind == "default":
        return None
    if kind == "linear":
        return ("linear", float(params["factor"]))
    if kind == "llama3":
        return ("llama3", float(params["factor"]), float(params["low_freq_factor"]),
                float(params["high_freq_factor"]), int(params["original_max_position_embeddings"]))
    if kind == "longrope":
        original = int(params.get("original_max_position_embeddings")
                       or hf.get("original_max_position_embeddings") or hf["max_position_embeddings"])
        factor = params.get("factor") or hf.get("max_position_embeddings", original) / original
        attention = params.get("attention_factor")
        if attention is None:  # LongRoPE's default, as transformers computes it
            attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
        return ("longrope", original, float(attention), tuple(float(x) for x in params["short_factor"]),
                tuple(float(x) for x in params["long_factor"]))
    _refuse(f"{where}.rope_type", kind, "supported: default, linear, llama3, longrope/su")


def _rope(hf: dict[str, Any], family: str) -> tuple[float, tuple | None, float | None]:
    """(theta, scaling, local theta) from either config.json style."""
    params = hf.get("rope_parameters") or {}
    for p in [params, *[v for v in params.values() if isinstance(v, dict)]]:
        if float(p.get("partial_rotary_factor", 1.0)) != 1.0:
            _refuse("partial_rotary_factor", p["partial_rotary_factor"], "rotary on part of each head")
    if float(hf.get("partial_rotary_factor") or 1.0) != 1.0:
        _refuse("partial_rotary_factor", hf["partial_rotary_factor"], "rotary on part of each head")
    if "full_attention" in params:  # transformers 5, per layer type (Gemma 3)
        local = params.get("sliding_attention") or {}
        if _scaling(local, hf, family, "rope_parameters.sliding_attention") is not None:
            _refuse("rope_parameters.sliding_attention.rope_type", local.get("rope_type"), "local layers "
                    "use plain RoPE")
        glob = params["full_attention"]
        scaling = _scaling(glob, hf, family, "rope_parameters.full_attention")
        return float(glob.get("rope_theta", 1e6)), scaling, float(local.get("rope_theta", 1e4))
    scaling_params = hf.get("rope_scaling") or (params if params.get("rope_type", "default") != "default"
                                               else {})
    theta = float(hf.get("rope_theta") or params.get("rope_theta") or (1e6 if family == "gemma3" else 1e4))
    local = float(hf.get("rope_local_base_freq") or 1e4) if family == "gemma3" else None
    where = "rope_scaling" if hf.get("rope_scaling") else "rope_parameters"
    return theta, _scaling(scaling_params, hf, family, where), local


def _layer_windows(hf: dict[str, Any], family: str, layers: int) -> list[int | None]:
    """Each layer's attention window as transformers runs it (None: full attention)."""
    window = hf.get("sliding_window")
    if family in ("qwen2", "qwen3", "smollm3") and not hf.get("use_sliding_window"):
        window = None
    if family in ("llama", "gemma", "olmo2") or not window:
        return [None] * layers
    if family in ("mistral", "phi3"):
        return [int(window)] * layers
    types = hf.get("layer_types")
    if types is None and family in ("gemma2", "gemma3"):
        pattern = 2 if family == "gemma2" else int(hf.get("sliding_window_pattern")
                                                   or hf.get("_sliding_window_pattern") or 6)
        types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]
    if types is None:  # Qwen2/3: sliding from max_window_layers on; SmolLM3: on its NoPE layers
        nope = set(_nope_layers(hf, layers))
        types = ["sliding_attention" if (i >= int(hf.get("max_window_layers", layers)) if family != "smollm3"
                                         else i in nope) else "full_attention" for i in range(layers)]
    if len(types) != layers:
        _refuse("layer_types", f"{len(types)} entries", f"num_hidden_layers is {layers}")
    for t in types:
        if t not in ("full_attention", "sliding_attention"):
            _refuse("layer_types", t, "supported: full_attention, sliding_attention")
    return [int(window) if t == "sliding_attention" else None for t in types]


def _nope_layers(hf: dict[str, Any], layers: int) -> tuple[int, ...]:
    """SmolLM3's layers without RoPE: `no_rope_layers` (1 = RoPE) or every `no_rope_layer_interval`-th."""
    flags = hf.get("no_rope_layers")
    if flags is None and hf.get("no_rope_layer_interval"):
        flags = [int((i + 1) % int(hf["no_rope_layer_interval"]) != 0) for i in range(layers)]
    return tuple(i for i, f in enumerate(flags or []) if not f)


def _check_supported(hf: dict[str, Any], family: str) -> None:
    for field in _MOE_FIELDS:
        if hf.get(field):
            _refuse(field, hf[field], "mixture-of-experts layers")
    if hf.get("attention_bias") and family != "qwen2":
        _refuse("attention_bias", hf["attention_bias"], "biases on q/k/v and o_proj")
    if hf.get("mlp_bias"):
        _refuse("mlp_bias", hf["mlp_bias"], "biases in the MLP")
    if family == "gemma3" and hf.get("use_bidirectional_attention"):
        _refuse("use_bidirectional_attention", True, "an encoder-style Gemma 3")
    if family == "gemma3" and hf.get("attn_logit_softcapping") is not None:
        _refuse("attn_logit_softcapping", hf["attn_logit_softcapping"], "transformers' Gemma 3 ignores it, "
                "so no reference to match")


def config_from_hf(hf: dict[str, Any], dtype: str = "float32") -> ModelConfig:
    family = family_of(hf)
    _check_supported(hf, family)
    try:
        return ModelConfig(**_fields(hf, family), dtype=dtype, param_dtype=dtype)
    except KeyError as e:
        raise ValueError(f"config.json: field {e.args[0]!r} missing") from None


def _fields(hf: dict[str, Any], family: str) -> dict[str, Any]:
    d, heads, layers = int(hf["hidden_size"]), int(hf["num_attention_heads"]), int(hf["num_hidden_layers"])
    act = hf.get("hidden_activation") or hf.get("hidden_act") or ("gelu_pytorch_tanh" if family in _GEMMAS
                                                                  else "silu")
    if act not in _ACTIVATIONS:
        raise ValueError(f"config.json: hidden_act={act!r} unsupported; use one of {list(_ACTIVATIONS)}")
    theta, scaling, local_theta = _rope(hf, family)
    windows = _layer_windows(hf, family, layers)
    window = next((w for w in windows if w is not None), None)
    global_layers = tuple(i for i, w in enumerate(windows) if w is None)
    gemma2_on = family in ("gemma2", "gemma3")
    return dict(
        vocab_size=int(hf["vocab_size"]), num_layers=layers, d_model=d, num_heads=heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or heads),
        head_dim=int(hf.get("head_dim") or d // heads),
        d_ff=int(hf["intermediate_size"]), mlp_activation=_ACTIVATIONS[act],
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)), norm_scale_offset=1.0 if family in _GEMMAS else 0.0,
        embed_scale=family in _GEMMAS,
        tie_embeddings=bool(hf.get("tie_word_embeddings", family in _TIED_BY_DEFAULT)),
        qkv_bias=family == "qwen2", rope_theta=theta, rope_scaling=scaling, sliding_window=window,
        global_layers=global_layers if window is not None and global_layers else None,
        rope_local_theta=local_theta if window is not None else None,
        nope_layers=_nope_layers(hf, layers) if family == "smollm3" else (),
        norm_layout="sandwich" if gemma2_on else ("post" if family == "olmo2" else "pre"),
        qk_norm={"qwen3": "head", "gemma3": "head", "olmo2": "full"}.get(family),
        attn_logit_softcap=_float_or_none(hf.get("attn_logit_softcapping")) if family == "gemma2" else None,
        final_logit_softcap=_float_or_none(hf.get("final_logit_softcapping")) if gemma2_on else None,
        query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar") or 256) if gemma2_on else None)


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


def default_family(cfg: ModelConfig) -> str:
    """The HF family that holds `cfg` when the checkpoint remembers none (trained from scratch)."""
    if cfg.norm_layout == "sandwich":
        return "gemma3" if cfg.qk_norm else "gemma2"
    if cfg.norm_layout == "post":
        return "olmo2"
    if cfg.nope_layers:
        return "smollm3"
    if cfg.qk_norm:
        return "qwen3"
    if cfg.qkv_bias:
        return "qwen2"
    if cfg.embed_scale:
        return "gemma"
    return "mistral" if cfg.sliding_window else "llama"


# config.json keys that `hf_config_from` writes from the ModelConfig (dropped from the imported config first,
# so no stale transformers-5 `rope_parameters` or `layer_types` contradicts them).
_WRITTEN = ("rope_parameters", "rope_scaling", "rope_theta", "rope_local_base_freq", "layer_types",
            "sliding_window", "use_sliding_window", "max_window_layers", "sliding_window_pattern",
            "_sliding_window_pattern", "no_rope_layers", "no_rope_layer_interval",
            "original_max_position_embeddings",
            "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar", "hidden_act",
            "hidden_activation", "head_dim", "torch_dtype", "dtype")
_HF_ACTIVATIONS = {"silu": "silu", "gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu"}


def hf_config_from(cfg: ModelConfig, base: dict[str, Any] | None) -> dict[str, Any]:
    """The HF config.json for `cfg`: the imported one (`base`: token ids, max positions, ...) with every
    architecture field rewritten from `cfg`. ValueError naming the first field the family cannot hold."""
    base = dict(base or {})
    family = family_of(base) if base.get("architectures") else default_family(cfg)
    out = {k: v for k, v in base.items() if k not in _WRITTEN}
    arch = next(a for a, f in ARCHITECTURES.items() if f == family)
    act_key = "hidden_activation" if family in _GEMMAS else "hidden_act"
    out.update(architectures=[arch], model_type=MODEL_TYPES.get(family, family), vocab_size=cfg.vocab_size,
               hidden_size=cfg.d_model, num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
               num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.head_dim, intermediate_size=cfg.d_ff,
               rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings, rope_theta=cfg.rope_theta,
               rope_scaling=_hf_scaling(cfg.rope_scaling), **{act_key: _HF_ACTIVATIONS[cfg.mlp_activation]})
    out.update(_family_fields(cfg, family, out))
    _check_round_trip(cfg, out, family)
    return out


def _hf_scaling(scaling: tuple | None) -> dict[str, Any] | None:
    if scaling is None:
        return None
    kind = scaling[0]
    if kind == "linear":
        return {"rope_type": "linear", "factor": scaling[1]}
    if kind == "llama3":
        return {"rope_type": "llama3", "factor": scaling[1], "low_freq_factor": scaling[2],
                "high_freq_factor": scaling[3], "original_max_position_embeddings": scaling[4]}
    return {"type": "longrope", "rope_type": "longrope", "original_max_position_embeddings": scaling[1],
            "attention_factor": scaling[2], "short_factor": list(scaling[3]), "long_factor": list(scaling[4])}


def _family_fields(cfg: ModelConfig, family: str, out: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    windows = [cfg.layer_window(i) for i in range(cfg.num_layers)]
    if cfg.sliding_window is not None:
        extra["sliding_window"] = cfg.sliding_window
    if family in _HAS_LAYER_TYPES:
        extra["layer_types"] = ["full_attention" if w is None else "sliding_attention" for w in windows]
        if family in ("qwen2", "qwen3", "smollm3"):
            extra["use_sliding_window"] = cfg.sliding_window is not None
            extra["max_window_layers"] = cfg.num_layers
    if family in ("gemma2", "gemma3"):
        scalar = cfg.query_pre_attn_scalar
        extra.update(query_pre_attn_scalar=int(scalar) if float(scalar).is_integer() else scalar,
                     attn_logit_softcapping=cfg.attn_logit_softcap,
                     final_logit_softcapping=cfg.final_logit_softcap)
    if family == "gemma3" and cfg.rope_local_theta is not None:
        extra["rope_local_base_freq"] = cfg.rope_local_theta
    if family == "smollm3":
        extra["no_rope_layers"] = [int(i not in cfg.nope_layers) for i in range(cfg.num_layers)]
    if cfg.rope_scaling is not None and cfg.rope_scaling[0] == "longrope":
        extra["original_max_position_embeddings"] = cfg.rope_scaling[1]
        positions = int(out.get("max_position_embeddings") or 0)
        extra["max_position_embeddings"] = max(positions, cfg.rope_scaling[1])
    return extra


def _check_round_trip(cfg: ModelConfig, hf: dict[str, Any], family: str) -> None:
    """The written config must read back as `cfg` (same architecture): else the family cannot hold it."""
    back = config_from_hf(hf, cfg.param_dtype)
    for name in ModelConfig.__dataclass_fields__:
        if name in ("dtype", "param_dtype", "remat_policy", "scan_layers", "attention_impl"):
            continue
        if getattr(back, name) != getattr(cfg, name):
            raise ValueError(f"export: HF family {family!r} cannot hold this model: {name}="
                             f"{getattr(cfg, name)!r} would be read back as {getattr(back, name)!r}")
