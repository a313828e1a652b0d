"""Compute accounting: model FLOPs per token, MFU against a per-device peak, and a measured CPU peak.

Model FLOPs follow PaLM (Chowdhery et al. 2022, appendix B): training costs 6N FLOPs per token for the N
matmul parameters, plus 12 * layers * heads * head_dim * seq_len for attention (forward + backward), every
query against all seq_len keys; a layer with a sliding window (Gemma 2/3 local layers, Mistral) attends to at
most `window` keys and counts min(window, seq_len) instead of seq_len. Embedding lookups are not matmuls: with
untied embeddings N excludes the input table; with tied ones the table is counted once (it is the output
matmul).

Two attention conventions (`ATTENTION_CONVENTIONS`), both reported, named where they are: `full` is PaLM's
formula above (our `mfu`); `causal_halved` counts half the attention term, 6 * L * H * Dh * T, the work a
causal mask leaves (MaxText's count since its PR #1988), so MFU figures compare with MaxText's
(`mfu_causal_halved`). At Llama-3-8B and 2048 tokens the second is 3.3% fewer FLOPs per token.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training.xla_options import compiler_options

# Dense bf16 peak TFLOP/s per chip, vendor datasheets: NVIDIA H100/H200 SXM 989 (without sparsity),
# A100 312; Google Cloud TPU v4 275, v5e 197, v5p 459, v6e (Trillium) 918.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "TPU v4": 275.0, "TPU v5 lite": 197.0,
               "TPU v5e": 197.0, "TPU v5p": 459.0, "TPU v5": 459.0, "TPU v6 lite": 918.0, "TPU v6e": 918.0}


def matmul_params(cfg: ModelConfig) -> int:
    """Parameters that take part in matmuls (see module docstring)."""
    return cfg.num_params() - (0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model)


ATTENTION_CONVENTIONS = {
    "full": "6N + 12*L*H*Dh*T per token, attention over all T keys (PaLM appendix B)",
    "causal_halved": "6N + 6*L*H*Dh*T per token, causal attention halved (MaxText)",
}


def attended_keys(cfg: ModelConfig, seq_len: int) -> int:
    """Keys per query summed over the layers: seq_len, or min(window, seq_len) on a windowed layer."""
    return sum(min(cfg.layer_window(i) or seq_len, seq_len) for i in range(cfg.num_layers))


def train_flops_per_token(cfg: ModelConfig, seq_len: int, attention: str = "full") -> float:
    """6N + 12 * H * Dh * (keys summed over layers) (PaLM appendix B), or with the attention term halved
    (`causal_halved`)."""
    if attention not in ATTENTION_CONVENTIONS:
        raise ValueError(f"attention FLOPs convention {attention!r}: use one of "
                         f"{tuple(ATTENTION_CONVENTIONS)}")
    factor = 12.0 if attention == "full" else 6.0
    return 6.0 * matmul_params(cfg) + factor * cfg.num_heads * cfg.head_dim * attended_keys(cfg, seq_len)


# What each remat policy recomputes in the backward pass (models/remat.py), per layer: the q/k/v and out
# projections, the attention itself (its forward), the MLP. With an attention kernel (splash, cuDNN) the
# attention is not a dot, so even the dot-saving policies recompute it.
RECOMPUTED = {
    "none": (), "full": ("qkv", "attention", "out", "mlp"), "dots_saveable": ("attention",),
    "dots_with_no_batch_dims_saveable": ("attention",), "offload_dots_with_no_batch_dims": ("attention",),
    "save_attention": ("out", "mlp"), "save_attention_proj": ("attention", "mlp"),
    "save_qkv_proj": ("attention", "out", "mlp"), "offload_qkv_proj": ("attention", "out", "mlp"),
}


def recompute_flops_per_token(cfg: ModelConfig, seq_len: int, policy: str, attention: str = "full") -> float:
    """Forward FLOPs per token that `policy` repeats in the backward pass (matmuls only, as 6N: 2 FLOPs per
    multiply-add); the attention term in the given convention (4 * H * Dh per attended key in full, half of
    it halved)."""
    d, h, kv, hd = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    keys = attended_keys(cfg, seq_len) / cfg.num_layers
    parts = {"qkv": 2 * d * hd * (h + 2 * kv), "out": 2 * h * hd * d, "mlp": 6 * d * cfg.d_ff,
             "attention": (4.0 if attention == "full" else 2.0) * h * hd * keys}
    return cfg.num_layers * sum(parts[p] for p in RECOMPUTED[policy])


def device_peak_tflops(device: jax.Device | None = None) -> float | None:
    """The table's peak for a device kind, or None (e.g. CPU: measure it with `measure_matmul_peak`)."""
    kind = (device or jax.devices()[0]).device_kind
    for name, peak in sorted(PEAK_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if name.lower() in kind.lower():
            return peak
    return None


def measure_matmul_peak(n: int = 2048, dtype=jnp.float32, repeats: int = 5) -> float:
    """TFLOP/s of the best of `repeats` n x n matmuls on the default device (the CPU's practical peak),
    compiled with the train step's options."""
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x, compiler_options=compiler_options())
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e12


def peak_tflops(device: jax.Device | None = None) -> float:
    """The MFU denominator for `device` (default: the first): the table's peak, else the measured matmul
    peak, measured once per process and device kind (a pipeline's four training stages, or several runs in
    one process, share the first measurement: six 2048 x 2048 matmuls, about 0.65 s on 2 CPU cores)."""
    device = device or jax.devices()[0]
    return device_peak_tflops(device) or _measured_peak(device.platform, device.device_kind)


@functools.cache
def _measured_peak(platform: str, device_kind: str) -> float:
    return measure_matmul_peak()


def mfu(tokens_per_second_per_device: float, flops_per_token: float, peak_tflops: float) -> float:
    return tokens_per_second_per_device * flops_per_token / (peak_tflops * 1e12)

