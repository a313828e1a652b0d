"""FSDP memory per chip stays flat as the slice grows (issue 14): the real train step compiled ahead of
time for TPU v5p slices through libtpu, on this CPU machine; and the activation sharding constraints that
keep it flat really reach the compiled program."""
import re

import jax
import pytest

from flan_ul2r import partitioning
from flan_ul2r.models.config import preset
from flan_ul2r.training import aot, optim, tpu_topology
from flan_ul2r.training.config import MeshConfig, ModelSpec, OptimizerConfig, RunConfig
from flan_ul2r.training.tpu_topology import parse_slice
from flan_ul2r.training.trainer import Trainer

# A reduced Llama-3-8B: its real 128,256-token vocabulary (the logits are what grew), head size 128 and
# GQA, 4 layers, at a sixteenth of its width so that the 4 compiles fit CI's time (16 to 28 s of CPU each
# on 2 cores, libtpu compiles on several threads; a full-width compile takes minutes; benchmarks/tpu_scale.py
# has the full-size figures and the slices between). The narrower the model, the larger the logits' share
# of the memory, which is what this checks.
REDUCED_8B = preset("llama3_8b", num_layers=4, d_model=256, num_heads=2, num_kv_heads=1, d_ff=896)
# 4 and 32 chips. The issue-14 bug grows linearly with the slice: replicated logits took this model from
# 1.53 to 8.28 GiB per chip between these two (5.4x); an 8-chip point in between (where issue 14 was first
# seen) cost 17 s of CPU and could fail only where these two fail too.
SLICES = ("v5p:2x2x1", "v5p:2x4x4")
SEQUENCE = 512  # one sequence per chip; the issue-14 bug held [global batch, length, vocab] logits per chip


def _run_config(chips: int, chunked: bool) -> RunConfig:
    return RunConfig(
        model_dir="/nonexistent", mixture_or_task_name="ul2r",
        task_feature_lengths={"inputs": SEQUENCE // 2, "targets": SEQUENCE // 2}, train_steps=100,
        batch_size=chips, model=ModelSpec(dtype="bfloat16", remat_policy="full", scan_layers=True),
        mesh=MeshConfig(data=1, fsdp=-1, tensor=1, rules="fsdp"), optimizer=OptimizerConfig(name="adafactor"),
        chunked_loss=chunked)


@pytest.fixture(scope="module", params=[False, True], ids=["dense_loss", "chunked_loss"])
def reports(request):
    """The dense loss (issue 14's bug) and the chunked loss, each on the smallest and the largest slice."""
    return [aot.compile_train_step(_run_config(parse_slice(t).chips, request.param), REDUCED_8B, t)
            for t in SLICES]


@pytest.mark.slow
def test_memory_per_chip_does_not_grow_with_the_slice(reports):
    """Issue 14 measured 14.8 -> 94.9 GiB per chip from 8 to 64 chips (dense loss): float32 logits for the
    whole global batch on every chip. Now: within 10% of the 4-chip figure, arguments falling."""
    totals = [r.total_bytes for r in reports]
    chips = [r.chips for r in reports]
    assert chips[0] == 4 and chips[-1] == 32 and chips == sorted(chips)
    assert all(r.batch_size == r.chips for r in reports)  # constant per-chip batch
    args = [r.argument_bytes for r in reports]  # parameters and optimizer state spread over more chips
    assert args == sorted(args, reverse=True) and args[-1] < args[0] / 4
    assert max(totals) <= 1.10 * totals[0], [round(t / 2**30, 2) for t in totals]
    # The same work per chip: analytic FLOPs scale with the slice; every loop's trip count was read.
    assert reports[-1].flops_per_step == pytest.approx(reports[0].flops_per_step * 8)
    assert all(r.collectives.unknown_trip_counts == 0 for r in reports)


def test_activation_constraints_reach_the_traced_step():
    """flax drops `with_logical_constraint` unless a mesh is set with `jax.set_mesh` (Trainer.context)."""
    mesh = partitioning.make_mesh(data=1, fsdp=8, tensor=1, devices=jax.devices()[:8])
    trainer = Trainer(preset("tiny"), optim.optimizer("adafactor", optim.schedule("constant", 1e-3)), mesh,
                      partitioning.rules_for("fsdp"), chunked_loss=False)
    batch = aot.abstract_batch(8, 16, mesh, prefix_lm=True)
    with trainer.context():
        text = str(jax.make_jaxpr(trainer._train_step)(trainer.abstract_state, batch))
    constraints = re.findall(r"sharding_constraint\[[^\]]*?sharding=([^\n]*)", text)
    batch_sharded = [c for c in constraints if "'data', 'fsdp'" in c]
    # embedding output, each block's output, final norm, logits (+ attention q / out): forward and backward
    assert len(batch_sharded) >= 4, constraints


@pytest.mark.parametrize("prefix_lm", [False, True], ids=["causal", "prefix_lm"])
def test_auto_attention_lowers_to_the_splash_kernel_for_a_tpu_slice(prefix_lm):
    """Compiling for TPU from this CPU machine, `auto` resolves to splash (not the CPU's blocked attention)
    and the train step carries the Pallas kernel as TPU custom calls, run per shard (shard_map)."""
    devices = tpu_topology.topology_devices(parse_slice("v5p:2x2x1"))
    cfg = RunConfig(
        model_dir="/nonexistent", mixture_or_task_name="ul2r", train_steps=100, batch_size=4,
        task_feature_lengths={"inputs": 128, "targets": 128} if prefix_lm else {"targets": 256},
        model=ModelSpec(dtype="bfloat16", remat_policy="full", scan_layers=True),
        mesh=MeshConfig(data=1, fsdp=-1, tensor=1, rules="fsdp"), optimizer=OptimizerConfig(name="adamw"))
    model = aot.platform_model(preset("tiny"), "tpu", cfg.sequence_length)
    assert model.attention_impl == "splash"
    mesh, rules = cfg.mesh.build(devices)
    tx, _ = cfg.optimizer.build(cfg.train_steps)
    trainer = Trainer(model, tx, mesh, rules, chunked_loss=False, platform="tpu")
    batch = aot.abstract_batch(4, cfg.sequence_length, mesh, prefix_lm)
    with trainer.context():
        text = trainer.jitted_step(batch).lower(trainer.abstract_state, batch).as_text()
    kernels = set(re.findall(r'kernel_name = "(\w+)"', text))  # forward, and the backward's dq and dk/dv
    # Causal: lazy causal mask + segment ids ("segmented"); prefix-LM: per-example dynamic mask.
    seg = "" if prefix_lm else "segmented_"
    assert kernels == {f"splash_mha_{k}" for k in (f"fwd_{seg}residuals", f"dq_{seg}no_residuals",
                                                    f"dkv_{seg}no_residuals")}
    assert "manual_computation" in text  # shard_map: each chip runs the kernel on its share of the batch
