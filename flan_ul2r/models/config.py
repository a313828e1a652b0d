"""`ModelConfig`: one typed config for the decoder-only families users bring (PaLM, Llama, Mistral, Qwen2/3,
Gemma 1/2/3, Phi-3, OLMo 2, SmolLM), and named presets with the published shapes."""
from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and family switches of a decoder-only transformer.

    Family switches: `parallel_block` (PaLM: attention and MLP read the same normed input, Chowdhery et al.
    2022 section 2), `mlp_activation` ("silu" = SwiGLU for PaLM/Llama/Qwen/Mistral, "gelu_tanh" = GeGLU for
    Gemma), `norm_scale_offset` (Gemma stores RMSNorm scales as `scale - 1`), `embed_scale` (Gemma multiplies
    embeddings by sqrt(d_model)), `qkv_bias` (Qwen2), `tie_embeddings` (PaLM, Gemma), `num_kv_heads`
    (1 = PaLM's multi-query attention; < num_heads = GQA).

    Newer families: `norm_layout` "pre" (pre-norm), "sandwich" (Gemma 2/3: norms before *and* after attention
    and MLP, Gemma Team 2024 "Gemma 2" section 2) or "post" (OLMo 2: the sublayer's output is normed before
    the residual add, OLMo Team 2024 "2 OLMo 2 Furious" section 3); `qk_norm` "head" (RMSNorm over each head's
    queries/keys: Qwen3, Gemma 3) or "full" (over the whole q/k projection: OLMo 2); `attn_logit_softcap` /
    `final_logit_softcap` (Gemma 2: cap * tanh(x / cap) on attention scores (50) and output logits (30));
    `query_pre_attn_scalar` (Gemma 2/3: scores scaled by its -1/2 power instead of head_dim's).

    Local attention: `sliding_window` W (a query sees keys less than W positions away, HF's rule; in a
    bidirectional prefix both ways) on every layer (Mistral, Phi-3) or, with `global_layers`, on every
    layer but those (Gemma 2 alternates, Gemma 3 has 5 local : 1 global). `rope_local_theta`: the RoPE base
    of the windowed layers (Gemma 3: 10k local, 1M global). `nope_layers`: layers without RoPE (SmolLM3).
    `rope_scaling`: None or a tagged tuple, see `models/rope.py`.
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
    # ("llama3", factor, low_freq_factor, high_freq_factor, original_max_positions) | ("linear", factor) |
    # ("longrope", original_max_positions, attention_factor, short_factors, long_factors); models/rope.py.
    rope_scaling: tuple | None = None
    sliding_window: int | None = None
    global_layers: tuple[int, ...] | None = None
    rope_local_theta: float | None = None
    nope_layers: tuple[int, ...] = ()
    norm_layout: str = "pre"
    qk_norm: str | None = None
    attn_logit_softcap: float | None = None
    final_logit_softcap: float | None = None
    query_pre_attn_scalar: float | None = None
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
        for name in ("rope_scaling", "global_layers", "nope_layers"):  # JSON lists -> hashable tuples
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _tuples(value))
        if self.rope_scaling is not None and not isinstance(self.rope_scaling[0], str):
            object.__setattr__(self, "rope_scaling", ("llama3", *self.rope_scaling))  # older checkpoints
        self._check_layers()
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"ModelConfig.attention_impl={self.attention_impl!r}: use one of "
                             f"{ATTENTION_IMPLS}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"ModelConfig.remat_policy={self.remat_policy!r}: use one of {REMAT_POLICIES}")

    def _check_layers(self) -> None:
        if self.norm_layout not in NORM_LAYOUTS:
            raise ValueError(f"ModelConfig.norm_layout={self.norm_layout!r}: use one of {NORM_LAYOUTS}")
        if self.qk_norm not in (None, "head", "full"):
            raise ValueError(f"ModelConfig.qk_norm={self.qk_norm!r}: None, 'head' or 'full'")
        if self.parallel_block and self.norm_layout != "pre":
            raise ValueError("ModelConfig: parallel_block needs norm_layout='pre'")
        if self.sliding_window is not None and int(self.sliding_window) <= 0:
            raise ValueError(f"ModelConfig.sliding_window={self.sliding_window}: must be > 0 or None")
        if self.global_layers is not None and self.sliding_window is None:
            raise ValueError("ModelConfig.global_layers is set but sliding_window is None")
        for name in ("global_layers", "nope_layers"):
            bad = [i for i in getattr(self, name) or () if not 0 <= int(i) < self.num_layers]
            if bad:
                raise ValueError(f"ModelConfig.{name}: layer {bad[0]} is outside 0..{self.num_layers - 1}")
        from flan_ul2r.models.rope import check_scaling

        check_scaling(self.rope_scaling, self.head_dim)

    def layer_window(self, layer: int) -> int | None:
        """The attention window of one layer (None: full attention)."""
        if self.sliding_window is None or layer in (self.global_layers or ()):
            return None
        return int(self.sliding_window)

    @property
    def mixed_windows(self) -> bool:
        """Some layers are windowed and some are global (Gemma 2/3)."""
        return len({self.layer_window(i) for i in range(self.num_layers)}) > 1

    @property
    def attention_scale(self) -> float:
        """Multiplier of q.k: head_dim^-1/2, or query_pre_attn_scalar^-1/2 (Gemma 2/3)."""
        return float(self.query_pre_attn_scalar or self.head_dim) ** -0.5

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
        norms = d if self.parallel_block else (4 * d if self.norm_layout == "sandwich" else 2 * d)
        norms += {None: 0, "head": 2 * hd, "full": (h + kv) * hd}[self.qk_norm]
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return self.num_layers * (attn + mlp + norms) + self.vocab_size * d + head + d


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


NORM_LAYOUTS = ("pre", "sandwich", "post")
ATTENTION_IMPLS = ("auto", "xla", "blocked", "splash", "cudnn")  # flan_ul2r/models/attention_kernels.py
OFFLOADING_POLICIES = ("offload_dots_with_no_batch_dims", "offload_qkv_proj")
REMAT_POLICIES = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable", "save_attention",
                  "save_attention_proj", "save_qkv_proj") + OFFLOADING_POLICIES  # flan_ul2r/models/remat.py

def _qwen3(layers: int, d: int, heads: int, d_ff: int, tied: bool) -> dict[str, Any]:
    return dict(vocab_size=151_936, num_layers=layers, d_model=d, num_heads=heads, num_kv_heads=8,
                head_dim=128, d_ff=d_ff, rope_theta=1_000_000.0, qk_norm="head", tie_embeddings=tied)


# Gemma's switches (GeGLU, RMSNorm stored as scale - 1, sqrt(d) embedding scale, tied embeddings); Gemma 2/3
# add the sandwich norms and query_pre_attn_scalar 256.
_GEMMA = dict(head_dim=256, mlp_activation="gelu_tanh", norm_scale_offset=1.0, embed_scale=True,
              tie_embeddings=True, norm_layout="sandwich", query_pre_attn_scalar=256.0)


def _gemma3(vocab: int, layers: int, d: int, heads: int, kv: int, d_ff: int, window: int,
            scaling: tuple | None) -> dict[str, Any]:
    """Gemma 3: 5 local layers (own RoPE base 10k) then 1 global (1M), q/k norms."""
    return dict(vocab_size=vocab, num_layers=layers, d_model=d, num_heads=heads, num_kv_heads=kv, d_ff=d_ff,
                **_GEMMA, qk_norm="head", sliding_window=window, global_layers=tuple(range(5, layers, 6)),
                rope_theta=1_000_000.0, rope_local_theta=10_000.0, rope_scaling=scaling)


def _gemma2(layers: int, d: int, heads: int, kv: int, d_ff: int) -> dict[str, Any]:
    """Gemma 2: local (4096) and global layers alternate; attention / final logits capped at 50 / 30."""
    return dict(vocab_size=256_000, num_layers=layers, d_model=d, num_heads=heads, num_kv_heads=kv, d_ff=d_ff,
                **_GEMMA, sliding_window=4096, global_layers=tuple(range(1, layers, 2)),
                attn_logit_softcap=50.0, final_logit_softcap=30.0)


def _llama3_2(layers: int, d: int, heads: int, head_dim: int) -> dict[str, Any]:
    return dict(vocab_size=128_256, num_layers=layers, d_model=d, num_heads=heads, num_kv_heads=8,
                head_dim=head_dim, d_ff=8192, rope_theta=500_000.0, norm_eps=1e-5, tie_embeddings=True,
                rope_scaling=("llama3", 32.0, 1.0, 4.0, 8192))


def _olmo2(layers: int, d: int, heads: int, d_ff: int) -> dict[str, Any]:
    """OLMo 2: post-norm blocks, RMSNorm over the whole q and k projections."""
    return dict(vocab_size=100_352, num_layers=layers, d_model=d, num_heads=heads, num_kv_heads=heads,
                head_dim=128, d_ff=d_ff, rope_theta=500_000.0, norm_layout="post", qk_norm="full")


# Published shapes. PaLM 8B: Chowdhery et al. 2022 Table 1 (32 layers, d 4096, 16 heads x 256, d_ff 4d,
# multi-query, 256k vocabulary). The others: their HF config.json files (Llama-3-8B/70B, Llama-3.2-1B/3B,
# Gemma-2B, gemma-2-2b/9b, gemma-3-1b/4b (text), Qwen2-0.5B, Qwen3-0.6B/1.7B/4B/8B, Phi-3-mini-4k,
# OLMo-2-0425-1B / OLMo-2-1124-7B); Gemma 3's layers 5, 11, ... are global (1 in 6), Gemma 2's odd ones.
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
    "qwen3_0_6b": _qwen3(28, 1024, 16, 3072, tied=True),
    "qwen3_1_7b": _qwen3(28, 2048, 16, 6144, tied=True),
    "qwen3_4b": _qwen3(36, 2560, 32, 9728, tied=True),
    "qwen3_8b": _qwen3(36, 4096, 32, 12_288, tied=False),
    "gemma3_1b": _gemma3(262_144, 26, 1152, 4, 1, 6912, window=512, scaling=None),
    "gemma3_4b": _gemma3(262_208, 34, 2560, 8, 4, 10_240, window=1024, scaling=("linear", 8.0)),
    "gemma2_2b": _gemma2(26, 2304, 8, 4, 9216),
    "gemma2_9b": _gemma2(42, 3584, 16, 8, 14_336),
    "llama3_2_1b": _llama3_2(16, 2048, 32, 64),
    "llama3_2_3b": _llama3_2(28, 3072, 24, 128),
    "phi3_mini": dict(vocab_size=32_064, num_layers=32, d_model=3072, num_heads=32, num_kv_heads=32,
                      head_dim=96, d_ff=8192, norm_eps=1e-5, sliding_window=2047),
    "olmo2_1b": _olmo2(16, 2048, 16, 8192),
    "olmo2_7b": _olmo2(32, 4096, 32, 11_008),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named preset with overrides, e.g. `preset("tiny", vocab_size=362, dtype="bfloat16")`."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})
