"""Ahead-of-time compile of the real train step: for a TPU slice from a CPU machine (through libtpu), or for
the local devices. What `flan-ul2r train --compile_only` runs (MaxText's train_compile.py does the same).

    report = compile_train_step(run_config, model_config, topology="v5p-64")
    print(report.format()); report.fits

The step is `Trainer.jitted_step` with the run's own mesh, rules, optimizer, microbatches and loss path,
lowered on abstract state and batch (`jax.ShapeDtypeStruct`s with their shardings) and compiled; nothing is
allocated or run. The report holds `compiled.memory_analysis()` per chip, the analytic FLOPs per step
(training/compute.py: PaLM's 6N + 12*L*H*Dh*T per token, and with causal attention halved as MaxText
counts; XLA's cost analysis counts a scanned layer loop
once, so it is not used), the step time and tokens/s predicted at given MFUs, and the collectives of the
compiled HLO (training/hlo_stats.py).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from flan_ul2r import partitioning
from flan_ul2r.models import attention_kernels, remat
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training import compute, hlo_stats, tpu_topology
from flan_ul2r.training.config import RunConfig
from flan_ul2r.training.trainer import FEATURES, Trainer, check_batch

GIB = 2**30
# The two planning points (issue 14 item 1); the closing table in docs/TPU_SCALE.md uses 50%.
MFU_POINTS = (0.4, 0.6)


@dataclasses.dataclass(frozen=True)
class CompileReport:
    """Per-chip figures of one compiled train step (bytes; FLOPs per step for the whole slice)."""

    target: str
    chips: int
    mesh: dict[str, int]
    chunked_loss: bool
    batch_size: int
    sequence_length: int
    argument_bytes: int
    temp_bytes: int
    output_bytes: int
    alias_bytes: int
    hbm_bytes: int | None
    flops_per_step: float
    peak_tflops: float | None
    collectives: hlo_stats.Collectives
    compile_seconds: float
    attention_impl: str = ""
    remat_policy: str = ""
    host_temp_bytes: int = 0  # pinned host memory per chip (remat policies that offload, models/remat.py)
    flops_per_step_causal_halved: float | None = None

    @property
    def total_bytes(self) -> int:
        """Arguments + temporaries + outputs not aliased to (donated) arguments."""
        return self.argument_bytes + self.temp_bytes + self.output_bytes - self.alias_bytes

    @property
    def fits(self) -> bool:
        return self.hbm_bytes is None or self.total_bytes <= self.hbm_bytes

    def step_seconds(self, mfu: float) -> float | None:
        if not self.peak_tflops:
            return None
        return self.flops_per_step / (self.chips * self.peak_tflops * 1e12 * mfu)

    def tokens_per_second_per_chip(self, mfu: float) -> float | None:
        step = self.step_seconds(mfu)
        return None if step is None else self.batch_size * self.sequence_length / step / self.chips

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "collectives"}
        d.update(total_bytes=self.total_bytes, fits=self.fits, collectives=self.collectives.counts,
                 collective_bytes=self.collectives.bytes)
        for mfu in MFU_POINTS + (0.5,):
            key = f"tokens_per_second_per_chip_at_{round(mfu * 100)}pct_mfu"
            d[key] = self.tokens_per_second_per_chip(mfu)
        return d

    def format(self) -> str:
        return "\n".join(_report_lines(self))


def _report_lines(r: CompileReport) -> list[str]:
    def gib(b: float) -> str:
        return f"{b / GIB:.2f} GiB"

    hbm = f" of {gib(r.hbm_bytes)} HBM ({100 * r.total_bytes / r.hbm_bytes:.0f}%)" if r.hbm_bytes else ""
    plural = "sequence" if r.batch_size == r.chips else "sequences"
    lines = [
        f"compiled the train step for {r.target} in {r.compile_seconds:.0f} s",
        f"  mesh {r.mesh}, loss {'chunked' if r.chunked_loss else 'dense'}, batch {r.batch_size} x "
        f"{r.sequence_length} tokens ({r.batch_size / r.chips:g} {plural} per chip)",
        f"  memory per chip: arguments {gib(r.argument_bytes)} + temporaries {gib(r.temp_bytes)} + outputs "
        f"not donated {gib(r.output_bytes - r.alias_bytes)} = {gib(r.total_bytes)}{hbm}",
        f"  attention {r.attention_impl or '?'}, remat {r.remat_policy or '?'}"
        + (f", host memory (offloaded) {gib(r.host_temp_bytes)}" if r.host_temp_bytes else ""),
        f"  FLOPs per step (analytic, {compute.ATTENTION_CONVENTIONS['full']}): {r.flops_per_step:.3e}",
    ]
    if r.flops_per_step_causal_halved:
        lines.append(f"  FLOPs per step ({compute.ATTENTION_CONVENTIONS['causal_halved']}): "
                     f"{r.flops_per_step_causal_halved:.3e}; MFU below counts attention in full (PaLM)")
    for mfu in MFU_POINTS:
        step = r.step_seconds(mfu)
        if step is None:
            lines.append("  no peak FLOP/s known for this device: no step time prediction")
            break
        lines.append(f"  at {mfu:.0%} MFU: step {step:.3f} s, {r.tokens_per_second_per_chip(mfu):,.0f} "
                     f"tokens/s per chip ({r.tokens_per_second_per_chip(mfu) * r.chips:,.0f} in all)")
    c = r.collectives
    found = ", ".join(f"{k} {c.counts[k]} ({gib(c.bytes[k])})" for k in hlo_stats.KINDS if c.counts[k])
    unknown = f" ({c.unknown_trip_counts} loops of unknown trip count counted once)" \
        if c.unknown_trip_counts else ""
    lines.append(f"  collectives per step: {found or 'none'}{unknown}")
    return lines


def platform_model(cfg: ModelConfig, platform: str, length: int) -> ModelConfig:
    """The model config with its 'auto' runtime fields resolved for `platform` and sequence `length`, as the
    model resolves them there at trace time (models/decoder.py: scan_layers, models/attention_kernels.py:
    attention_impl), so that the report names them; an impossible choice (a kernel that cannot run, host
    offloading without host memory) is refused here, before compiling."""
    changes: dict[str, Any] = {"attention_impl": attention_kernels.choose(
        cfg.attention_impl, platform, dtype=cfg.dtype, head_dim=cfg.head_dim, length=length,
        logit_softcap=getattr(cfg, "logit_softcap", None))}
    if cfg.scan_layers is None:
        changes["scan_layers"] = platform != "cpu"
    remat.check_offload(cfg.remat_policy, platform)
    return cfg.replace(**changes)


def abstract_batch(batch_size: int, length: int, mesh: Mesh, prefix_lm: bool) -> dict[str, Any]:
    """The packed features (docs/ARCHITECTURE.md section 1) as sharded shapes, no data."""
    sharding = partitioning.batch_sharding(mesh)
    names = FEATURES if prefix_lm else tuple(f for f in FEATURES if f != "decoder_causal_attention")
    return {k: jax.ShapeDtypeStruct((batch_size, length), jnp.float32 if k == "decoder_loss_weights"
                                    else jnp.int32, sharding=sharding) for k in names}


def _target(topology: str | None) -> tuple[list[Any], str, float | None, float | None]:
    """(devices, description, HBM bytes per chip or None, peak TFLOP/s per chip or None)."""
    if topology:
        tpu = tpu_topology.parse_slice(topology)
        devices = tpu_topology.topology_devices(tpu)
        per_chip = len(devices) // tpu.chips  # 2 on v4: libtpu describes TensorCores (tpu_topology.py)
        note = f", compiled per TensorCore ({per_chip} devices per chip)" if per_chip > 1 else ""
        return devices, tpu.describe() + note, tpu.hbm_gib * GIB / per_chip, tpu.peak_tflops / per_chip
    devices = jax.devices()
    stats = devices[0].memory_stats() if hasattr(devices[0], "memory_stats") else None
    hbm = (stats or {}).get("bytes_limit")
    return devices, f"the local devices ({len(devices)} x {devices[0].device_kind})", hbm, \
        compute.device_peak_tflops(devices[0])


def compile_train_step(cfg: RunConfig, model_cfg: ModelConfig, topology: str | None = None) -> CompileReport:
    """Lowers and compiles the run's train step for `topology` (None: the local devices); see module doc."""
    devices, target, hbm, peak = _target(topology)
    try:
        mesh, rules = cfg.mesh.build(devices)
    except ValueError as e:
        raise ValueError(f"MeshConfig(data={cfg.mesh.data}, fsdp={cfg.mesh.fsdp}, tensor={cfg.mesh.tensor}) "
                         f"does not fit {target}: {e}") from e
    platform = devices[0].platform
    model_cfg = platform_model(model_cfg, platform, cfg.sequence_length)
    tx, lr = cfg.optimizer.build(cfg.train_steps)
    trainer = Trainer(model_cfg, tx, mesh, rules, z_loss=cfg.z_loss, num_microbatches=cfg.num_microbatches,
                      learning_rate_fn=lr, chunked_loss=cfg.chunked_loss, platform=platform)
    prefix_lm = int(cfg.task_feature_lengths.get("inputs", 0)) > 0
    batch = abstract_batch(cfg.batch_size, cfg.sequence_length, mesh, prefix_lm)
    check_batch(batch, cfg.num_microbatches, partitioning.batch_shards(mesh))
    start = time.perf_counter()
    with trainer.context():
        lowered = trainer.jitted_step(batch).lower(trainer.abstract_state, batch)
    try:
        compiled = lowered.compile()
    except Exception as e:  # libtpu refuses some programs over HBM itself (RESOURCE_EXHAUSTED, with numbers)
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        raise ValueError(f"does not fit {target}: {str(e).splitlines()[0]}") from e
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    tokens = cfg.batch_size * cfg.sequence_length
    flops = compute.train_flops_per_token(model_cfg, cfg.sequence_length) * tokens
    halved = compute.train_flops_per_token(model_cfg, cfg.sequence_length, "causal_halved") * tokens
    return CompileReport(
        target=target, chips=len(devices), mesh=dict(mesh.shape), chunked_loss=trainer.chunked_loss,
        batch_size=cfg.batch_size, sequence_length=cfg.sequence_length,
        argument_bytes=int(memory.argument_size_in_bytes), temp_bytes=int(memory.temp_size_in_bytes),
        output_bytes=int(memory.output_size_in_bytes), alias_bytes=int(memory.alias_size_in_bytes),
        hbm_bytes=None if hbm is None else int(hbm), flops_per_step=flops, peak_tflops=peak,
        collectives=hlo_stats.collectives(compiled.as_text()), compile_seconds=seconds,
        attention_impl=model_cfg.attention_impl, remat_policy=model_cfg.remat_policy,
        host_temp_bytes=int(getattr(memory, "host_temp_size_in_bytes", 0) or 0),
        flops_per_step_causal_halved=halved)


def does_not_fit_message(report: CompileReport) -> str:
    r = report
    extra = (r.output_bytes - r.alias_bytes) / GIB
    return (f"does not fit: {r.total_bytes / GIB:.2f} GiB per chip (arguments {r.argument_bytes / GIB:.2f} + "
            f"temporaries {r.temp_bytes / GIB:.2f} + outputs not donated {extra:.2f}) > "
            f"{r.hbm_bytes / GIB:.2f} GiB HBM per chip of {r.target}; shard more (gin/partitioning/), set "
            "ModelSpec.remat_policy = 'full', raise RunConfig.num_microbatches or lower BATCH_SIZE")


def compile_run(cfg: RunConfig, topology: str | None) -> CompileReport:
    """`flan-ul2r train --compile_only`: the run's model (a resumed run's or the initial checkpoint's
    model_config.json when readable, else the model gin's shape), compiled for `topology`. Reads no data
    and writes nothing."""
    from flan_ul2r.training.run import stored_model_config

    try:
        stored, where = stored_model_config(cfg)
    except FileNotFoundError as e:
        if cfg.model.shape is None:
            raise
        print(f"note: {e}; compiling the model gin's shape instead", file=sys.stderr)
        stored, where = None, None
    return compile_train_step(cfg, cfg.model.resolve(stored, where), topology)


def print_report(report: CompileReport) -> int:
    """Prints the report (then one JSON line); 1 with the numbers on stderr when it does not fit."""
    print(report.format())
    print(json.dumps(report.to_dict()))
    if not report.fits:
        print(f"flan-ul2r train --compile_only: {does_not_fit_message(report)}", file=sys.stderr)
        return 1
    return 0


def check_local_devices(topology: str) -> None:
    """A real run with TOPOLOGY set must run on that slice (else TOPOLOGY is for --compile_only)."""
    tpu = tpu_topology.parse_slice(topology)
    devices = jax.devices()
    kind = devices[0].device_kind
    if devices[0].platform != "tpu" or len(devices) != tpu.chips:
        raise ValueError(f"TOPOLOGY={topology!r} is {tpu.describe()}, but this run has {len(devices)} x "
                         f"{kind} devices; drop TOPOLOGY, or use it with --compile_only")
