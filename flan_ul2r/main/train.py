"""`flan-ul2r train`: gin-configured training (t5x's train.py, on our trainer).

    flan-ul2r train --gin_file=gin/runs/ul2r.gin --gin_file=gin/models/tiny.gin \\
        --gin_file=gin/runs/cpu_smoke.gin --gin.MODEL_DIR=/tmp/run --gin.TRAIN_STEPS=100

Required macros as in t5x: MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, TRAIN_STEPS, MODEL_DIR;
optional INITIAL_CHECKPOINT_PATH. This module is the gin edge: it binds the typed configs of
flan_ul2r/training/config.py (RunConfig and its ModelSpec, ModelConfig, MeshConfig, OptimizerConfig,
CheckpointConfig) and hands the RunConfig to flan_ul2r/training/run.py. The operative config is written to
MODEL_DIR/config.gin.

Exit status: 0 trained to TRAIN_STEPS (or it already had: a re-run of a finished run), 75 preempted
(SIGTERM/SIGINT: a checkpoint of the step reached was saved, or the signal came before the first step and
there was nothing new to save; run the same command to resume), 1 a run error (bad data, NaN loss,
failed save, every checkpoint damaged; the message says which), 2 bad arguments, gin or settings (also:
an unknown task, a MODEL_DIR another run holds, a resume with other data settings).
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import gin

from flan_ul2r.errors import exit_code, message, user_error
from flan_ul2r.models.config import ModelConfig, preset
from flan_ul2r.training.config import CheckpointConfig, MeshConfig, ModelSpec, OptimizerConfig, RunConfig
from flan_ul2r.training.preemption import PREEMPTED_EXIT_CODE, Preempted, watching

HELP = f"""usage: flan-ul2r train --gin_file=RUN.gin [--gin_file=MODEL.gin ...] [--gin.NAME=VALUE ...]

Trains with gin configs, t5x-style: a run gin (gin/runs/*.gin) sets the wiring, a model gin
(gin/models/*.gin) the shape, a partitioning gin (gin/partitioning/*.gin) the mesh; --gin.NAME=VALUE
overrides any binding or macro (bare words are quoted for you).

required macros:
  MIXTURE_OR_TASK_NAME   task or mixture to train on (run gins set it: ul2r, flan, lm, ...)
  TASK_FEATURE_LENGTHS   {{"inputs": N, "targets": M}} (run gins set it)
  TRAIN_STEPS            steps from the start of the run (as in t5x)
  MODEL_DIR              checkpoints, metrics.jsonl, tb/, loss.png, config.gin (local or gs://...)
optional macros:
  INITIAL_CHECKPOINT_PATH  params to start from (`flan-ul2r convert import-hf` output), BATCH_SIZE,
                           LEARNING_RATE, CHECKPOINT_PERIOD (steps, or "final": at the end only)
settings:
  any RunConfig field (flan_ul2r/training/config.py) as --gin.RunConfig.FIELD=VALUE: num_microbatches,
  chunked_loss, eval_period, eval_suite, progress, allow_data_change, seed, ... (a pipeline stage: the
  same field under its scope, --gin.ul2r/RunConfig.FIELD=VALUE)

example:
  flan-ul2r train --gin_file=gin/runs/ul2r.gin --gin_file=gin/models/tiny.gin \\
      --gin_file=gin/runs/cpu_smoke.gin --gin.MODEL_DIR=/tmp/flan_ul2r_smoke --gin.TRAIN_STEPS=50

Running the same command again resumes from the newest good checkpoint in MODEL_DIR (a damaged newer step
is moved aside to checkpoints/<step>.corrupt). One run at a time per MODEL_DIR (MODEL_DIR/run.lock).
--compile_only compiles the train step and prints memory per chip, FLOPs, predicted tokens/s and
collectives instead of training; with --gin.TOPOLOGY=v5p-64 (or v5p:4x4x2, v5e-256, ...) for that TPU
slice through libtpu (pip install -e ".[tpu-compile]"), else for the local devices.
exit status: 0 done (also when MODEL_DIR is already at TRAIN_STEPS), {PREEMPTED_EXIT_CODE} preempted (a
checkpoint of the step reached was saved, or nothing was trained yet; run it again to resume), 1 run error
(bad data, NaN loss, failed save), 2 bad arguments, gin or settings, unknown task, MODEL_DIR in use by
another run, a resume with other TASK_FEATURE_LENGTHS / BATCH_SIZE (--gin.RunConfig.allow_data_change=True).
"""

for _cls in (ModelConfig, ModelSpec, MeshConfig, OptimizerConfig, CheckpointConfig, RunConfig):
    gin.external_configurable(_cls, module="flan_ul2r")


@gin.configurable(module="flan_ul2r")
def model_preset(name: str = gin.REQUIRED, **overrides: Any) -> ModelConfig:
    """A `models/config.py` PRESETS entry, the one source of each shape: a model gin binds
    `ModelSpec.shape = @model_preset()` and `model_preset.name`, plus only the fields that differ
    (`model_preset.num_layers = 4`)."""
    return preset(name, **overrides)


@gin.configurable
def train(config: RunConfig = gin.REQUIRED, topology: str | None = None,
          compile_only: bool = False) -> dict[str, Any]:
    """Trains the gin-bound `RunConfig` (runs/train.gin binds `train.config = @RunConfig()` and every field
    from the t5x macros; fields documented in training/config.py) through `training.run.run`; with
    `compile_only`, compiles it for `topology` (the TOPOLOGY macro) through `training.aot` instead.
    Pipelines bind the same `RunConfig`, one per stage under a scope (`ul2r/RunConfig.train_steps`)."""
    from flan_ul2r.training import aot
    from flan_ul2r.training.run import run

    if compile_only:
        return {"compile_report": aot.compile_run(config, topology)}
    if topology:
        aot.check_local_devices(topology)
    return run(config, operative_config=gin.operative_config_str())


def main(argv: Sequence[str]) -> int:
    from flan_ul2r.gin_utils import split_gin_args

    compile_only = "--compile_only" in argv  # training/aot.py: compile for TOPOLOGY, report, run nothing
    files, bindings, rest = split_gin_args([a for a in argv if a != "--compile_only"])
    if any(a in ("-h", "--help") for a in rest):
        print(HELP)
        return 0
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
    try:
        with watching():  # SIGTERM / SIGINT from here on exit 75 (training/preemption.py)
            return _configured_run(files, bindings, compile_only)
    except Preempted as p:
        print(f"flan-ul2r train: {p.message} (exit status {PREEMPTED_EXIT_CODE})", file=sys.stderr)
        return PREEMPTED_EXIT_CODE


def _configured_run(files: list[str], bindings: list[str], compile_only: bool) -> int:
    from flan_ul2r.gin_utils import configure_verb, import_task_modules

    if configure_verb("train", files, bindings) is not None:
        return 2
    try:
        import_task_modules()  # MIXTURE_OR_TASK_MODULE: the user's seqio registrations (after the built-ins)
    except ValueError as e:
        print(f"flan-ul2r train: {e}", file=sys.stderr)
        return 2
    try:
        summary = train(compile_only=compile_only)
    except Exception as e:  # bad data, files, CheckpointSaveError, NaN: the message, not a traceback
        shown = user_error(e)
        if shown is None:
            raise
        print(f"flan-ul2r train: {message(shown)}", file=sys.stderr)
        return exit_code(e)
    if compile_only:
        from flan_ul2r.training.aot import print_report

        return print_report(summary["compile_report"])
    print(json.dumps({"final_step": summary["final_step"], **summary["metrics"]}))
    if summary["preempted"]:
        what = (f"after saving step {summary['final_step']}" if summary.get("saved", True) else
                "before the first step of this process (nothing new to save)")
        print(f"flan-ul2r train: stopped by {summary['preempted']} {what}; exit status "
              f"{PREEMPTED_EXIT_CODE}: run the same command to resume", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    return 0
