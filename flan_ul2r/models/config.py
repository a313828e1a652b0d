"""`ModelConfig`: one typed config for the decoder-only families users bring (PaLM, Llama, Gemma, Qwen2,
Mistral), and named presets with the published shapes."""
from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and family switches of a decoder-only transformer.

    Family switches: `parallel_block` (PaLM: attention and MLP read the same normed input, Chowdhery et al.
    2022 section 2), `mlp_activation` ("silu" = SwiGLU for PaLM/Llama/Qwen2/Mistral, "gelu_tanh" = GeGLU for
    Gemma), `norm_scale_offset` (Gemma stores RMSNorm scales as `scale - 1`), `embed_scale` (Gemma multiplies
    embeddings by sqrt(d_model)), `qkv_bias` (Qwen2), `tie_embeddings` (PaLM, Gemma), `sliding_window`
    (Mistral), `num_kv_heads` (1 = PaLM's multi-query attention; < num_heads = GQA).
    """

    vocab_size: int
    num_layers: int
    d_model: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    d_ff: int
    mlp_activation: str = "silu"
    norm_eps: float = 1e-6
    norm_scale_offset: float = 0.0
    embed_scale: bool = False
    tie_embeddings: bool = False
    qkv_bias: bool = False
    parallel_block: bool = False
    rope_theta: float = 10_000.0
    # Llama-3.1 "llama3" RoPE scaling: (factor, low_freq_factor, high_freq_factor, original_max_positions).
    rope_scaling: tuple[float, float, float, int] | None = None
    sliding_window: int | None = None
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat_policy: str = "none"
    # True: the layer loop is a lax.scan; False: unrolled; None: unrolled on CPU (~6% faster there,
    # benchmarks/train_step.py), scanned on accelerators (compile time independent of depth).
    scan_layers: bool | None = None
    # "auto": splash on TPU, cuDNN on GPU, blocked flash attention on CPU (models/attention_kernels.py).
    attention_impl: str = "auto"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "num_layers", "d_model", "num_heads", "num_kv_heads", "head_dim", "d_ff"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"ModelConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"ModelConfig: num_heads={self.num_heads} is not a multiple of "
                             f"num_kv_heads={self.num_kv_heads}")
        if self.mlp_activation not in ("silu", "gelu_tanh", "gelu"):
            raise ValueError(f"ModelConfig.mlp_activation={self.mlp_activation!r}: silu, gelu_tanh or gelu")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, tuple):
            object.__setattr__(self, "rope_scaling", tuple(self.rope_scaling))  # from JSON lists
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"ModelConfig.attention_impl={self.attention_impl!r}: use one of "
                             f"{ATTENTION_IMPLS}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"ModelConfig.remat_policy={self.remat_policy!r}: use one of {REMAT_POLICIES}")

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"model config: unknown fields {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def num_params(self) -> int:
        """Exact parameter count of `Decoder(self)` (embeddings included)."""
        d, h, kv, hd, f = self.d_model, self.num_heads, self.num_kv_heads, self.head_dim, self.d_ff
        attn = d * hd * (h + 2 * kv) + h * hd * d + (hd * (h + 2 * kv) if self.qkv_bias else 0)
        mlp = 3 * d * f
        norms = d if self.parallel_block else 2 * d
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return self.num_layers * (attn + mlp + norms) + self.vocab_size * d + head + d


ATTENTION_IMPLS = ("auto", "xla", "blocked", "splash", "cudnn")  # flan_ul2r/models/attention_kernels.py
OFFLOADING_POLICIES = ("offload_dots_with_no_batch_dims", "offload_qkv_proj")
REMAT_POLICIES = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable", "save_attention",
                  "save_attention_proj", "save_qkv_proj") + OFFLOADING_POLICIES  # flan_ul2r/models/remat.py

# Published shapes. PaLM 8B: Chowdhery et al. 2022 Table 1 (32 layers, d 4096, 16 heads x 256, d_ff 4d,
# multi-query, 256k vocabulary). Llama-3-8B/70B, Gemma-2B, Qwen2-0.5B: their HF config.json files.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(vocab_size=512, num_layers=2, d_model=64, num_heads=4, num_kv_heads=2, head_dim=16,
                 d_ff=192),
    "small": dict(vocab_size=32_000, num_layers=8, d_model=512, num_heads=8, num_kv_heads=8, head_dim=64,
                  d_ff=1408),
    "llama_1b": dict(vocab_size=128_256, num_layers=16, d_model=2048, num_heads=32, num_kv_heads=8,
                     head_dim=64, d_ff=8192, rope_theta=500_000.0, norm_eps=1e-5, tie_embeddings=True),
    "llama3_8b": dict(vocab_size=128_256, num_layers=32, d_model=4096, num_heads=32, num_kv_heads=8,
                      head_dim=128, d_ff=14_336, rope_theta=500_000.0, norm_eps=1e-5),
    "llama3_70b": dict(vocab_size=128_256, num_layers=80, d_model=8192, num_heads=64, num_kv_heads=8,
                       head_dim=128, d_ff=28_672, rope_theta=500_000.0, norm_eps=1e-5),
    "gemma_2b": dict(vocab_size=256_000, num_layers=18, d_model=2048, num_heads=8, num_kv_heads=1,
                     head_dim=256, d_ff=16_384, mlp_activation="gelu_tanh", norm_scale_offset=1.0,
                     embed_scale=True, tie_embeddings=True),
    "palm_8b": dict(vocab_size=256_000, num_layers=32, d_model=4096, num_heads=16, num_kv_heads=1,
                    head_dim=256, d_ff=16_384, parallel_block=True, tie_embeddings=True),
    "qwen2_0_5b": dict(vocab_size=151_936, num_layers=24, d_model=896, num_heads=14, num_kv_heads=2,
                       head_dim=64, d_ff=4864, qkv_bias=True, rope_theta=1_000_000.0, tie_embeddings=True),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named preset with overrides, e.g. `preset("tiny", vocab_size=362, dtype="bfloat16")`."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})
