"""`flan-ul2r train`: gin-configured training (t5x's train.py, on our trainer).

    flan-ul2r train --gin_file=gin/runs/ul2r.gin --gin_file=gin/models/tiny.gin \\
        --gin_file=gin/runs/cpu_smoke.gin --gin.MODEL_DIR=/tmp/run --gin.TRAIN_STEPS=100

Required macros as in t5x: MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, TRAIN_STEPS, MODEL_DIR;
optional INITIAL_CHECKPOINT_PATH. This module is the gin edge: it binds the typed configs of
flan_ul2r/training/config.py (ModelSpec, ModelConfig, MeshConfig, OptimizerConfig, CheckpointConfig) and
hands a RunConfig to flan_ul2r/training/run.py. The operative config is written to MODEL_DIR/config.gin.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import gin
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training.config import CheckpointConfig, MeshConfig, ModelSpec, OptimizerConfig, RunConfig

for _cls in (ModelConfig, ModelSpec, MeshConfig, OptimizerConfig, CheckpointConfig):
    gin.external_configurable(_cls, module="flan_ul2r")


@gin.configurable
def train(model_dir: str = gin.REQUIRED, mixture_or_task_name: str = gin.REQUIRED,
          task_feature_lengths: Mapping[str, int] = gin.REQUIRED, train_steps: int = gin.REQUIRED,
          batch_size: int = 8, initial_checkpoint_path: str | None = None, seed: int = 0,
          model: ModelSpec | None = None, mesh: MeshConfig | None = None,
          optimizer: OptimizerConfig | None = None, checkpoint: CheckpointConfig | None = None,
          z_loss: float = 1e-4, num_microbatches: int = 1, log_every: int = 1,
          stop_after_steps: int | None = None, progress: bool = True, chunked_loss: bool | None = None,
          topology: str | None = None, compile_only: bool = False) -> dict[str, Any]:
    """The gin-bound RunConfig (fields documented there), trained by `training.run.run`; with
    `compile_only`, compiled for `topology` (the TOPOLOGY macro) by `training.aot` instead."""
    from flan_ul2r.training import aot
    from flan_ul2r.training.run import run

    cfg = RunConfig(
        model_dir=model_dir, mixture_or_task_name=mixture_or_task_name,
        task_feature_lengths=dict(task_feature_lengths), train_steps=train_steps, batch_size=batch_size,
        initial_checkpoint_path=initial_checkpoint_path, seed=seed, model=model or ModelSpec(),
        mesh=mesh or MeshConfig(), optimizer=optimizer or OptimizerConfig(),
        checkpoint=checkpoint or CheckpointConfig(), z_loss=z_loss, num_microbatches=num_microbatches,
        log_every=log_every, stop_after_steps=stop_after_steps, progress=progress, chunked_loss=chunked_loss)
    if compile_only:
        return {"compile_report": aot.compile_run(cfg, topology)}
    if topology:
        aot.check_local_devices(topology)
    return run(cfg, operative_config=gin.operative_config_str())


def main(argv: Sequence[str]) -> int:
    from flan_ul2r.gin_utils import parse_gin, split_gin_args

    compile_only = "--compile_only" in argv  # training/aot.py: compile for TOPOLOGY, report, run nothing
    files, bindings, rest = split_gin_args([a for a in argv if a != "--compile_only"])
    if rest:
        print(f"flan-ul2r train: unexpected arguments {rest}; use --gin_file=F and --gin.NAME=VALUE",
              file=sys.stderr)
        return 2
    if not files:
        print("flan-ul2r train: give at least one --gin_file (e.g. gin/runs/ul2r.gin)", file=sys.stderr)
        return 2
    if os.environ.get("FLAN_UL2R_MULTIHOST") == "1" or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        import jax

        jax.distributed.initialize()  # TPU pods auto-detect; GPU/CPU clusters read JAX_* variables
    import flan_ul2r.tasks

    flan_ul2r.tasks.import_all()
    try:
        parse_gin(files, bindings)
    except (ValueError, KeyError, OSError) as e:
        print(f"flan-ul2r train: gin error: {e}", file=sys.stderr)
        return 2
    flan_ul2r.tasks.register_after_gin()  # the gin-chosen corpus, vocabulary, denoisers, Flan rates
    try:
        summary = train(compile_only=compile_only)
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"flan-ul2r train: {e}", file=sys.stderr)
        return 1
    if compile_only:
        from flan_ul2r.training.aot import print_report

        return print_report(summary["compile_report"])
    print(json.dumps({"final_step": summary["final_step"], **summary["metrics"]}))
    return 0
