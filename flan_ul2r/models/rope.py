"""Rotary position embeddings (Su et al. 2021, "RoFormer", section 3.4) in HF's `rotate_half` layout, with
the scalings of the families we import, and the per-layer tables a decoder with mixed layers needs.

`ModelConfig.rope_scaling` is None or a tagged tuple:
- ("llama3", factor, low_freq_factor, high_freq_factor, original_max_positions): Llama 3.1/3.2 - low
  frequencies divided by `factor`, a smooth blend between the two wavelength bounds (the "llama3" rope type
  of their HF config.json).
- ("linear", factor): every frequency divided by `factor` (Chen et al. 2023, "Extending Context Window ...
  via Positional Interpolation"); Gemma 3's global layers (factor 8).
- ("longrope", original_max_positions, attention_factor, short_factors, long_factors): Phi-3 (Ding et al.
  2024, "LongRoPE"): frequency i divided by short_factors[i], or by long_factors[i] when the sequence is
  longer than `original_max_positions`; cos and sin are multiplied by `attention_factor`. As in transformers,
  "longer" means: the largest position in the forward call + 1 exceeds original_max_positions.

Per layer (`layer_tables`): windowed layers use `rope_local_theta` without scaling when it is set (Gemma 3:
local 10k, global 1M with linear scaling); `nope_layers` get zero frequencies (no rotation: SmolLM3 leaves
RoPE out of every 4th layer, Bakouch et al. 2025 "SmolLM3" blog, "NoPE").

The inverse frequencies are computed once in numpy float32, as transformers computes them in torch float32.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ROPE_TYPES = ("llama3", "linear", "longrope")


def check_scaling(scaling: tuple | None, head_dim: int) -> None:
    """ValueError naming what is wrong with a `rope_scaling` tuple."""
    if scaling is None:
        return
    kind = scaling[0]
    sizes = {"llama3": 5, "linear": 2, "longrope": 5}
    if kind not in sizes:
        raise ValueError(f"ModelConfig.rope_scaling: rope type {kind!r} is not supported (use one of "
                         f"{ROPE_TYPES})")
    if len(scaling) != sizes[kind]:
        raise ValueError(f"ModelConfig.rope_scaling: {kind!r} takes {sizes[kind] - 1} values, got "
                         f"{len(scaling) - 1}")
    if kind == "longrope":
        for name, factors in (("short_factors", scaling[3]), ("long_factors", scaling[4])):
            if len(factors) != head_dim // 2:
                raise ValueError(f"ModelConfig.rope_scaling: longrope {name} has {len(factors)} values, "
                                 f"head_dim {head_dim} needs {head_dim // 2}")


def inv_frequencies(head_dim: int, theta: float, scaling: tuple | None = None, long: bool = False
                    ) -> np.ndarray:
    """float32 [head_dim // 2]: the inverse frequencies (the long-context set of "longrope" if `long`)."""
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    base = np.float32(theta) ** exponents
    if scaling is None:
        return (np.float32(1.0) / base).astype(np.float32)
    kind = scaling[0]
    if kind == "longrope":
        factors = np.asarray(scaling[4] if long else scaling[3], np.float32)
        return (np.float32(1.0) / (factors * base)).astype(np.float32)
    inv_freq = (np.float32(1.0) / base).astype(np.float32)
    if kind == "linear":
        return (inv_freq / np.float32(scaling[1])).astype(np.float32)
    factor, low, high, original = (float(x) for x in scaling[1:])
    wavelen = 2.0 * np.pi / inv_freq
    scaled = np.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    blended = (1.0 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= original / high) & (wavelen <= original / low)
    return np.where(medium, blended, scaled).astype(np.float32)


def _layer_rope(cfg: Any, layer: int) -> tuple[float, tuple | None]:
    if cfg.rope_local_theta is not None and cfg.layer_window(layer) is not None:
        return float(cfg.rope_local_theta), None
    return float(cfg.rope_theta), cfg.rope_scaling


def layer_tables(cfg: Any) -> dict[str, np.ndarray]:
    """Static per-layer RoPE tables: inv_freq and long_inv_freq float32 [layers, head_dim // 2] (equal unless
    "longrope"), scale float32 [layers] (longrope's attention factor on cos/sin, else 1)."""
    inv, long_inv, scale = [], [], []
    for i in range(cfg.num_layers):
        theta, scaling = _layer_rope(cfg, i)
        short = inv_frequencies(cfg.head_dim, theta, scaling)
        longer = inv_frequencies(cfg.head_dim, theta, scaling, long=True)
        if i in cfg.nope_layers:
            short, longer = np.zeros_like(short), np.zeros_like(longer)
        inv.append(short)
        long_inv.append(longer)
        scale.append(float(scaling[2]) if scaling is not None and scaling[0] == "longrope" else 1.0)
    return {"inv_freq": np.stack(inv), "long_inv_freq": np.stack(long_inv),
            "scale": np.asarray(scale, np.float32)}


def layer_inputs(cfg: Any, positions: Array) -> dict[str, Array]:
    """What each layer's attention reads besides its parameters, stacked on a leading layers axis (scanned
    with the layers): inv_freq [layers, half] for these positions, scale [layers], local bool [layers]."""
    tables = layer_tables(cfg)
    inv_freq = jnp.asarray(tables["inv_freq"])
    if cfg.rope_scaling is not None and cfg.rope_scaling[0] == "longrope":
        longer = jnp.max(positions) + 1 > int(cfg.rope_scaling[1])
        inv_freq = jnp.where(longer, jnp.asarray(tables["long_inv_freq"]), inv_freq)
    local = np.asarray([cfg.layer_window(i) is not None for i in range(cfg.num_layers)])
    return {"inv_freq": inv_freq, "scale": jnp.asarray(tables["scale"]), "local": jnp.asarray(local)}


def apply_rope(x: Array, positions: Array, inv_freq: Array, scale: Array | float = 1.0) -> Array:
    """x [b, l, heads, head_dim] rotated at positions [b, l]: the first and second half of each head are the
    two coordinates (HF's `rotate_half`); cos and sin are multiplied by `scale` (longrope)."""
    half = x.shape[-1] // 2
    angles = positions[..., None].astype(jnp.float32) * inv_freq.astype(jnp.float32)  # [b, l, half]
    sin = (jnp.sin(angles) * scale)[:, :, None, :]
    cos = (jnp.cos(angles) * scale)[:, :, None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)
