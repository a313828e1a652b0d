"""Compute accounting: model FLOPs per token, MFU against a per-device peak, and a measured CPU peak.

Model FLOPs follow PaLM (Chowdhery et al. 2022, appendix B): training costs 6N FLOPs per token for the N
matmul parameters, plus 12 * layers * heads * head_dim * seq_len for attention (forward + backward); a layer
with a sliding window (Gemma 2/3 local layers, Mistral) attends to at most `window` keys and counts
min(window, seq_len) instead of seq_len.
MaxText and Levanter count the same way (MaxText halves the attention term for causal masks since its PR
#1988; we do not, so figures compare with PaLM's MFU). Embedding lookups are not matmuls: with untied
embeddings N excludes the input table; with tied ones the table is counted once (it is the output matmul).
"""
from __future__ import annotations

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


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """6N + 12 * L * H * Dh * T (PaLM appendix B); a windowed layer counts min(window, T) keys for T."""
    keys = sum(min(cfg.layer_window(i) or seq_len, seq_len) for i in range(cfg.num_layers))
    attention = 12.0 * cfg.num_heads * cfg.head_dim * keys
    return 6.0 * matmul_params(cfg) + attention


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


def mfu(tokens_per_second_per_device: float, flops_per_token: float, peak_tflops: float) -> float:
    return tokens_per_second_per_device * flops_per_token / (peak_tflops * 1e12)

