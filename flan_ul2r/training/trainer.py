"""Train state and the jitted, sharded train step (t5x's trainer, on jax.jit shardings + optax).

The step takes the packed prefix-LM features (docs/ARCHITECTURE.md section 1), runs `num_microbatches`
forward/backward passes with `lax.scan` summing unnormalized losses and gradients, divides by the number of
target tokens (so the loss is per target token whatever the microbatching), and applies the optax update.
Parameters stay float32 (master weights); the model computes in `ModelConfig.dtype` (e.g. bfloat16).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from flan_ul2r import partitioning
from flan_ul2r.models import remat
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.models.decoder import Decoder
from flan_ul2r.models.fused_loss import linear_cross_entropy_sums
from flan_ul2r.models.losses import cross_entropy_sums
from flan_ul2r.training.xla_options import compiler_options

FEATURES = ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights", "decoder_segment_ids",
            "decoder_positions", "decoder_causal_attention")


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


class Trainer:
    """Builds shardings from the model's logical axes and compiles init and the train step for a mesh."""

    def __init__(self, cfg: ModelConfig, tx: optax.GradientTransformation, mesh: Mesh,
                 rules: partitioning.Rules, *, z_loss: float = 1e-4, num_microbatches: int = 1,
                 learning_rate_fn: optax.Schedule | None = None, chunked_loss: bool | None = None,
                 platform: str | None = None):
        self.cfg, self.tx, self.mesh, self.rules = cfg, tx, mesh, rules
        # The platform the step is compiled for: the mesh's devices (a TPU topology when compiling ahead of
        # time on CPU, training/aot.py), else JAX's default backend.
        self.platform = platform or getattr(mesh.devices.flat[0], "platform", None) or jax.default_backend()
        # Output projection + loss chunk by chunk (models/fused_loss.py); None = the measured default of
        # the platform (`default_chunked_loss` below).
        if chunked_loss is None:
            chunked_loss = default_chunked_loss(self.platform)
        self.chunked_loss = bool(chunked_loss)
        remat.check_offload(cfg.remat_policy, self.platform)
        self.model = Decoder(cfg)
        self.z_loss, self.num_microbatches = z_loss, int(num_microbatches)
        self.learning_rate_fn = learning_rate_fn
        boxed = jax.eval_shape(lambda: self.model.init(jax.random.PRNGKey(0), jnp.ones((1, 1), jnp.int32)))
        self.param_shardings = partitioning.logical_shardings(boxed["params"], mesh, rules)
        self.abstract_params = nn.meta.unbox(boxed["params"])
        abstract_opt = jax.eval_shape(tx.init, self.abstract_params)
        self.state_shardings = TrainState(
            step=partitioning.replicated(mesh), params=self.param_shardings,
            opt_state=self._opt_state_shardings(abstract_opt))
        self.abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=self.abstract_params,
                       opt_state=abstract_opt), self.state_shardings)
        self._step: Any = None

    # --- shardings ---------------------------------------------------------------------------------------
    def _opt_state_shardings(self, abstract_opt: Any) -> Any:
        """Optimizer leaves shaped like their parameter share its sharding; others (counts, Adafactor's
        factored row/column statistics) are replicated."""
        p_def = jax.tree.structure(self.abstract_params)
        rep = partitioning.replicated(self.mesh)

        def like_params(node: Any) -> bool:
            return jax.tree.structure(node) == p_def

        def assign(node: Any) -> Any:
            if like_params(node):
                return jax.tree.map(lambda a, p, s: s if a.shape == p.shape else rep,
                                    node, self.abstract_params, self.param_shardings)
            return rep

        return jax.tree.map(assign, abstract_opt, is_leaf=like_params)

    # --- init --------------------------------------------------------------------------------------------
    def init_state(self, seed: int) -> TrainState:
        def init(rng):
            params = nn.meta.unbox(self.model.init(rng, jnp.ones((1, 1), jnp.int32))["params"])
            return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params))

        with self.context():
            return jax.jit(init, out_shardings=self.state_shardings)(jax.random.PRNGKey(seed))

    def state_from_params(self, params: Any) -> TrainState:
        """A fresh state (step 0, new optimizer state) around given (already sharded) params."""
        def build(p):
            return TrainState(step=jnp.zeros((), jnp.int32), params=p, opt_state=self.tx.init(p))

        return jax.jit(build, out_shardings=self.state_shardings)(params)

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """The mesh and logical-axis rules the model is traced under. `jax.set_mesh` (not the legacy `with
        mesh:`) is what makes flax's `with_logical_constraint` see the mesh; without it every activation
        constraint in models/ is silently dropped (tests/test_tpu_scaling.py checks they reach the HLO)."""
        set_mesh = getattr(jax, "set_mesh", None) or jax.sharding.use_mesh  # jax < 0.7: use_mesh
        with set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
            yield

    # --- the step ----------------------------------------------------------------------------------------
    def _compute_params(self, params: Any) -> Any:
        """Kernels and embeddings cast to the compute dtype, pinned to their parameter sharding. The model
        casts them itself (DenseGeneral, `embedding[...].astype`), so values are unchanged; casting first
        lets FSDP gather bfloat16 instead of float32 copies, and the constraint's transpose pins each
        gradient to its parameter's sharding. Vectors (norm scales, biases) stay as stored."""
        dtype = jnp.dtype(self.cfg.dtype)

        def cast(p: jax.Array, sharding: Any) -> jax.Array:
            p = p.astype(dtype) if p.ndim >= 2 and jnp.issubdtype(p.dtype, jnp.floating) else p
            return jax.lax.with_sharding_constraint(p, sharding)

        return jax.tree.map(cast, params, self.param_shardings)

    def _sums(self, params: Any, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        out = self.model.apply(
            {"params": self._compute_params(params)}, batch["decoder_input_tokens"],
            positions=batch["decoder_positions"],
            segment_ids=batch["decoder_segment_ids"], causal_attention=batch.get("decoder_causal_attention"),
            return_hidden=self.chunked_loss)
        targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
        if not self.chunked_loss:
            sums = cross_entropy_sums(out, targets, weights, self.z_loss)
            return sums["ce"] + sums["z_loss"], sums
        total, ce, z, correct = linear_cross_entropy_sums(*out, targets, weights, self.z_loss,
                                                          partitioning.batch_shards(self.mesh),
                                                          self.cfg.final_logit_softcap)
        sums = {"ce": ce, "z_loss": z, "correct": correct, "num_tokens": jnp.sum(weights.astype(jnp.float32))}
        return total, sums

    def _train_step(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict]:
        grad_fn = jax.value_and_grad(self._sums, has_aux=True)
        m = self.num_microbatches
        if m == 1:
            (_, sums), grads = grad_fn(state.params, batch)
        else:
            micro = jax.tree.map(lambda x: x.reshape((m, x.shape[0] // m) + x.shape[1:]), batch)

            def body(carry, mb):
                g_acc, s_acc = carry
                (_, s), g = grad_fn(state.params, mb)
                return (jax.tree.map(jnp.add, g_acc, g), jax.tree.map(jnp.add, s_acc, s)), None

            zeros_g = jax.tree.map(jnp.zeros_like, state.params)
            zeros_s = {k: jnp.zeros((), jnp.float32) for k in ("ce", "z_loss", "correct", "num_tokens")}
            (grads, sums), _ = jax.lax.scan(body, (zeros_g, zeros_s), micro)
        n = jnp.maximum(sums["num_tokens"], 1.0)
        grads = jax.tree.map(lambda g: g / n, grads)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": (sums["ce"] + sums["z_loss"]) / n, "cross_entropy": sums["ce"] / n,
                   "z_loss": sums["z_loss"] / n, "accuracy": sums["correct"] / n,
                   "num_target_tokens": sums["num_tokens"], "grad_norm": optax.global_norm(grads)}
        if self.learning_rate_fn is not None:
            metrics["learning_rate"] = jnp.asarray(self.learning_rate_fn(state.step), jnp.float32)
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def eval_sums(self, params: Any, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Loss sums of one batch (`ce`, `z_loss`, `correct`, `num_tokens`), no gradient: evaluation."""
        return self._sums(params, batch)[1]

    def with_mesh(self, fn: Any, *args: Any) -> Any:
        """Calls `fn(*args)` under this trainer's mesh and logical-axis rules."""
        with self.context():
            return fn(*args)

    def jitted_step(self, features: Any) -> Any:
        """The jitted train step (what `train_step` runs; training/aot.py lowers it without running). It
        donates the input state, every step: one program per run. The step after an async checkpoint save
        donates too: orbax copies the state to host memory before `save` returns, and on CPU, where that
        copy is a view of the device buffer, XLA does not reuse a buffer that a host view still holds
        (tests/test_trainer.py `test_a_step_right_after_an_async_save_keeps_the_saved_state`)."""
        if self._step is None:
            batch_sh = {k: partitioning.batch_sharding(self.mesh) for k in features}
            self._step = jax.jit(self._train_step, donate_argnums=0,
                                 in_shardings=(self.state_shardings, batch_sh),
                                 out_shardings=(self.state_shardings, partitioning.replicated(self.mesh)),
                                 compiler_options=compiler_options(self.platform))
        return self._step

    def train_step(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict]:
        """One step; `state` is donated (its buffers are reused for the new state)."""
        step = self.jitted_step(batch)
        with self.context():
            return step(state, batch)


def default_chunked_loss(platform: str) -> bool:
    """The loss path per platform. CPU: chunked, measured faster (benchmarks/train_step.py). TPU: dense, one
    large matmul, and measured no larger per chip at one 2048-token sequence per chip (4-layer Llama-3-8B on
    v5p, 8 to 256 chips: 4.3 -> 2.7 GiB dense vs 6.1 -> 2.5 GiB chunked; docs/TPU_SCALE.md); presets with
    many tokens per chip turn chunked on. GPU: dense (not measured here)."""
    return platform == "cpu"


def check_batch(batch: dict[str, np.ndarray], num_microbatches: int, num_batch_shards: int) -> None:
    """Batch shape errors that would otherwise surface as XLA errors deep in the step."""
    missing = [f for f in FEATURES[:5] if f not in batch]
    if missing:
        raise ValueError(f"batch lacks features {missing}; has {sorted(batch)}")
    b = batch["decoder_input_tokens"].shape[0]
    if b % num_microbatches:
        raise ValueError(f"batch size {b} is not divisible by num_microbatches={num_microbatches}")
    if (b // num_microbatches) % num_batch_shards:
        raise ValueError(f"microbatch size {b // num_microbatches} is not divisible by the "
                         f"{num_batch_shards} data x fsdp shards of the mesh")


