"""optax optimizers and learning-rate schedules (t5x / PaLM / U-PaLM defaults, cited per number)."""
from __future__ import annotations

import optax


def schedule(kind: str, learning_rate: float, *, warmup_steps: int = 0, decay_steps: int = 0,
             final_learning_rate: float = 0.0) -> optax.Schedule:
    """constant | rsqrt (t5x pretraining: lr / sqrt(max(step, warmup))) | cosine (linear warmup, then
    cosine decay to `final_learning_rate`; U-PaLM section 2.4 decays 1e-4 -> 1e-6) | linear_warmup."""
    if kind == "constant":
        return optax.constant_schedule(learning_rate)
    if kind == "linear_warmup":
        return optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1))
    if kind == "rsqrt":
        warm = max(warmup_steps, 1)

        def rsqrt(step):
            import jax.numpy as jnp

            step = jnp.asarray(step, jnp.float32) + 1.0
            return learning_rate * jnp.minimum(step / warm, 1.0) * jnp.sqrt(warm / jnp.maximum(step, warm))

        return rsqrt
    if kind == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0 if warmup_steps else learning_rate, peak_value=learning_rate,
            warmup_steps=warmup_steps, decay_steps=max(decay_steps, warmup_steps + 1),
            end_value=final_learning_rate)
    raise ValueError(f"schedule {kind!r}: use constant, linear_warmup, rsqrt or cosine")


def optimizer(name: str, lr: optax.Schedule, *, weight_decay: float = 0.0, clip_norm: float | None = 1.0,
              b1: float = 0.9, b2: float = 0.95) -> optax.GradientTransformation:
    """adafactor (t5x defaults: decay_rate 0.8, update clipping 1.0, parameter-scale multiplication; PaLM
    and Flan used Adafactor) or adamw (b1 0.9, b2 0.95, the common LLM setting), after norm clipping."""
    if name == "adafactor":
        opt = optax.adafactor(lr, decay_rate=0.8, clipping_threshold=1.0, multiply_by_parameter_scale=True,
                              weight_decay_rate=weight_decay or None)
    elif name == "adamw":
        opt = optax.adamw(lr, b1=b1, b2=b2, eps=1e-8, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer {name!r}: use adafactor or adamw")
    return optax.chain(optax.clip_by_global_norm(clip_norm), opt) if clip_norm else opt
