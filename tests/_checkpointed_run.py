"""A MODEL_DIR as `flan-ul2r train` leaves it, made without training: the run files and checkpoints of
steps 2, 4 and 6 (an initialised state of the tiny toy model, each step with its own data position), for
tests of what happens to a run directory (damage, locks, resume checks, file modes) that need no step.

    cfg = checkpointed_run(tmp_path / "run")      # a RunConfig for it (TRAIN_STEPS=10, period 2)
    damage(cfg.model_dir, 6, "empty state metadata")
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from tests._train_toy import LENGTHS, register_toy_lm

STEPS = (2, 4, 6)
DAMAGES = ("empty state metadata", "empty data position", "truncated array file")


def config(model_dir, **kw):
    from flan_ul2r.models.config import preset
    from flan_ul2r.training.config import CheckpointConfig, MeshConfig, ModelSpec, OptimizerConfig, RunConfig

    shape = preset("tiny", vocab_size=362, d_model=32, d_ff=64, head_dim=8)
    fields = dict(model_dir=str(model_dir), mixture_or_task_name=register_toy_lm(),
                  task_feature_lengths=LENGTHS, train_steps=10, batch_size=8, model=ModelSpec(shape=shape),
                  mesh=MeshConfig(data=1, fsdp=-1, rules="fsdp"),
                  optimizer=OptimizerConfig(name="adamw", learning_rate=1e-3),
                  checkpoint=CheckpointConfig(period=2), progress=False)
    return RunConfig(**{**fields, **kw})


def trainer_for(cfg):
    from flan_ul2r.training import run as run_lib
    from flan_ul2r.training.trainer import Trainer

    vocab = run_lib.task_vocabulary(cfg.mixture_or_task_name)
    model_cfg = run_lib.resolve_model(cfg, vocab)
    mesh, rules = cfg.mesh.build()
    tx, lr = cfg.optimizer.build(cfg.train_steps)
    return Trainer(model_cfg, tx, mesh, rules, learning_rate_fn=lr), vocab


def position(step: int) -> dict:
    return {"mode": "seekable", "draw": 8 * step, "cursors": {register_toy_lm(): 8 * step}}


def checkpointed_run(model_dir, steps=STEPS, **kw):
    """Writes the run (module docstring); returns its RunConfig."""
    import jax.numpy as jnp

    from flan_ul2r.training.checkpoints import TrainCheckpoints
    from flan_ul2r.training.run_files import write_run_files

    cfg = config(model_dir, **kw)
    trainer, vocab = trainer_for(cfg)
    write_run_files(cfg, trainer.cfg, vocab, "# a test run\n")
    if not steps:
        return cfg
    state = trainer.init_state(0)
    ckpts = TrainCheckpoints(model_dir, 2, keep=None, async_save=False)
    for step in steps:
        at_step = dataclasses.replace(state, step=jnp.asarray(step, jnp.int32))
        ckpts.save(step, at_step, position(step), wait=True)
    ckpts.close()
    return cfg


def damage(model_dir, step: int, kind: str) -> str:
    """Damages checkpoint `step` the way the issue's reports did; returns what was damaged."""
    folder = Path(model_dir) / "checkpoints" / str(step)
    if kind == "empty state metadata":
        (folder / "state" / "_METADATA").write_text("")
        return "state/_METADATA"
    if kind == "empty data position":
        (folder / "data" / "metadata").write_text("")
        return "data/metadata"
    assert kind == "truncated array file", kind
    biggest = max((p for p in (folder / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
                  key=lambda p: p.stat().st_size)
    with open(biggest, "r+b") as f:
        f.truncate(os.path.getsize(biggest) // 2)
    return "array file"
