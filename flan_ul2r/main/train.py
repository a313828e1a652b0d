"""`flan-ul2r train`: gin-configured training (t5x's train.py, on our trainer).

    flan-ul2r train --gin_file=gin/runs/ul2r.gin --gin_file=gin/models/tiny.gin \\
        --gin.MODEL_DIR=/tmp/run --gin.TRAIN_STEPS=100

Required macros as in t5x: MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, TRAIN_STEPS, MODEL_DIR;
optional INITIAL_CHECKPOINT_PATH. The operative config is written to MODEL_DIR/config.gin.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

import gin
from flan_ul2r.models.config import ModelConfig, preset
from flan_ul2r.training import checkpoints, compute, optim, partitioning
from flan_ul2r.training.metrics import MetricsWriter
from flan_ul2r.training.trainer import Trainer, check_batch


@gin.configurable
def model_config(name: str = "tiny", vocab_size: int | None = None, **overrides: Any) -> dict[str, Any]:
    """A preset (flan_ul2r.models.config.PRESETS) with overrides; vocab_size None = the data vocabulary's."""
    return {"preset": name, "vocab_size": vocab_size, **overrides}


@gin.configurable
def mesh_config(data: int = -1, fsdp: int = 1, tensor: int = 1, rules: Any = "data_parallel"):
    return {"data": data, "fsdp": fsdp, "tensor": tensor, "rules": rules}


@gin.configurable
def optimizer_config(name: str = "adafactor", learning_rate: float = 1e-3, schedule: str = "constant",
                     warmup_steps: int = 0, final_learning_rate: float = 0.0, weight_decay: float = 0.0,
                     clip_norm: float | None = 1.0):
    return dict(name=name, learning_rate=learning_rate, schedule=schedule, warmup_steps=warmup_steps,
                final_learning_rate=final_learning_rate, weight_decay=weight_decay, clip_norm=clip_norm)


def _data_vocabulary(name: str) -> Any:
    from flan_ul2r.data.registry import task_vocabulary

    return task_vocabulary(name)


def resolve_model_config(spec: Mapping[str, Any], data_vocab: Any, initial: dict | None) -> ModelConfig:
    """The model config: from the initial checkpoint if there is one, else the preset; checked against the
    data vocabulary (a model smaller than the vocabulary would index out of its embedding)."""
    if initial is not None:
        cfg = ModelConfig.from_dict(initial)
        runtime = ("dtype", "remat_policy", "scan_layers", "attention_impl")  # how to run it, not what it is
        cfg = cfg.replace(**{k: v for k, v in spec.items() if k in runtime and v is not None})
    else:
        overrides = {k: v for k, v in spec.items() if k != "preset" and v is not None}
        overrides.setdefault("vocab_size", int(data_vocab.vocab_size))
        cfg = preset(spec["preset"], **overrides)
    if cfg.vocab_size < int(data_vocab.vocab_size):
        raise ValueError(f"model vocab_size={cfg.vocab_size} < data vocabulary size {data_vocab.vocab_size}: "
                         "the checkpoint/model and the task's vocabulary do not match")
    return cfg


def check_vocabulary(stored: dict[str, Any], vocab: Any, where: Any) -> None:
    """The task's vocabulary must be the one the checkpoint was made with (else ids mean other tokens)."""
    got = vocab.describe() if hasattr(vocab, "describe") else {}
    for key in ("kind", "vocab_size", "eos_id", "sentinels", "mode_tokens"):
        if key in stored and got.get(key) != stored[key]:
            raise ValueError(f"vocabulary mismatch with {where}: field {key!r} is {got.get(key)!r} in the "
                             f"task's vocabulary but {stored[key]!r} in the checkpoint's vocab.json; set "
                             "ul2r_corpus.vocabulary to the model's tokenizer (hf:CHECKPOINT/tokenizer)")


def train_info(mixture_or_task_name: str, task_feature_lengths: Mapping[str, int]) -> dict[str, Any]:
    """What inference needs to know about how the model was trained (`train_info.json` in MODEL_DIR):
    `prefix_lm` (inputs were attended bidirectionally: UL2R and Flan runs, U-PaLM section 2.2; a run
    with no inputs, e.g. the `lm` task, trained causally) and the `sequence_length` it saw."""
    inputs, targets = int(task_feature_lengths.get("inputs", 0)), int(task_feature_lengths["targets"])
    return {"mixture_or_task_name": mixture_or_task_name, "prefix_lm": inputs > 0,
            "sequence_length": inputs + targets,
            "task_feature_lengths": {"inputs": inputs, "targets": targets}}


def copy_model_files(initial: Path, model_dir: Path) -> None:
    import shutil

    folder = initial if (initial / "params").is_dir() else initial.parent.parent
    for name in ("hf_config.json",):
        if (folder / name).is_file() and not (model_dir / name).exists():
            shutil.copy(folder / name, model_dir / name)
    if (folder / "tokenizer").is_dir() and not (model_dir / "tokenizer").exists():
        shutil.copytree(folder / "tokenizer", model_dir / "tokenizer")


@gin.configurable
def train(model_dir: str = gin.REQUIRED, mixture_or_task_name: str = gin.REQUIRED,
          task_feature_lengths: Mapping[str, int] = gin.REQUIRED, train_steps: int = gin.REQUIRED,
          batch_size: int = 8, initial_checkpoint_path: str | None = None, seed: int = 0,
          model: Mapping[str, Any] | None = None, mesh: Mapping[str, Any] | None = None,
          optimizer: Mapping[str, Any] | None = None, z_loss: float = 1e-4, num_microbatches: int = 1,
          checkpoint_period: int = 1000, keep_checkpoints: int | None = 3, log_every: int = 1,
          stop_after_steps: int | None = None, progress: bool = True, chunked_loss: bool | None = None
          ) -> dict[str, Any]:
    """Trains and returns a summary. `stop_after_steps` ends the process early (tests: a killed run);
    `chunked_loss`: output projection + loss chunk by chunk (None = on CPU only; training/trainer.py)."""
    model_dir_path = Path(model_dir)
    model_dir_path.mkdir(parents=True, exist_ok=True)
    model, mesh_cfg = model or model_config(), mesh or mesh_config()
    opt_cfg = optimizer or optimizer_config()
    vocab = _data_vocabulary(mixture_or_task_name)
    initial_cfg = None
    if initial_checkpoint_path:
        initial_cfg = checkpoints.read_json_beside(initial_checkpoint_path, "model_config")
        if initial_cfg is None:
            raise FileNotFoundError(f"INITIAL_CHECKPOINT_PATH={initial_checkpoint_path}: no model_config.json"
                                    " (not a flan-ul2r checkpoint; import HF models: `convert import-hf`)")
    for source in (model_dir_path, initial_checkpoint_path):
        stored = checkpoints.read_json_beside(source, "vocab") if source else None
        if stored is not None:
            check_vocabulary(stored, vocab, source)
    saved_cfg = model_dir_path / "model_config.json"
    cfg = resolve_model_config(model, vocab, json.loads(saved_cfg.read_text()) if saved_cfg.is_file()
                               else initial_cfg)

    dev_mesh = partitioning.make_mesh(mesh_cfg["data"], mesh_cfg["fsdp"], mesh_cfg["tensor"])
    rules = partitioning.rules_for(mesh_cfg["rules"])
    lr = optim.schedule(opt_cfg["schedule"], opt_cfg["learning_rate"], warmup_steps=opt_cfg["warmup_steps"],
                        decay_steps=train_steps, final_learning_rate=opt_cfg["final_learning_rate"])
    tx = optim.optimizer(opt_cfg["name"], lr, weight_decay=opt_cfg["weight_decay"],
                         clip_norm=opt_cfg["clip_norm"])
    trainer = Trainer(cfg, tx, dev_mesh, rules, z_loss=z_loss, num_microbatches=num_microbatches,
                      learning_rate_fn=lr, chunked_loss=chunked_loss)
    ckpts = checkpoints.TrainCheckpoints(model_dir_path, checkpoint_period, keep_checkpoints)

    latest = ckpts.latest_step()
    data_state = None
    if latest is not None:
        state, data_state = ckpts.restore(latest, trainer.abstract_state)
        print(f"resuming from {ckpts.directory / str(latest)}", file=sys.stderr)
    elif initial_checkpoint_path:
        params, _ = checkpoints.restore_params(initial_checkpoint_path, trainer.abstract_state.params)
        state = trainer.state_from_params(params)
        print(f"initialised from {initial_checkpoint_path}", file=sys.stderr)
    else:
        state = trainer.init_state(seed)
    start = int(state.step)
    if train_steps <= start:
        raise ValueError(f"TRAIN_STEPS={train_steps} <= the current step {start} of {ckpts.directory}: "
                         "nothing to do (TRAIN_STEPS counts from the start of the run, as in t5x)")

    is_chief = jax.process_index() == 0
    if is_chief:
        saved_cfg.write_text(cfg.to_json())
        (model_dir_path / "config.gin").write_text(gin.operative_config_str())
        if hasattr(vocab, "describe"):
            (model_dir_path / "vocab.json").write_text(json.dumps(vocab.describe(), indent=1))
        if initial_checkpoint_path:  # keep what export-hf / load_model need next to the run
            copy_model_files(Path(initial_checkpoint_path), model_dir_path)
        (model_dir_path / "train_info.json").write_text(json.dumps(
            train_info(mixture_or_task_name, task_feature_lengths), indent=1))

    from flan_ul2r.data.loader import make_train_iterator

    num_hosts = jax.process_count()
    if batch_size % num_hosts:
        raise ValueError(f"batch_size={batch_size} is not divisible by the {num_hosts} hosts")
    data = make_train_iterator(mixture_or_task_name, task_feature_lengths, batch_size // num_hosts,
                               seed=seed, shard_index=jax.process_index(), num_shards=num_hosts,
                               state=data_state)
    seq_len = int(task_feature_lengths["inputs"]) + int(task_feature_lengths["targets"])
    flops_per_token = compute.train_flops_per_token(cfg, seq_len)
    peak = compute.device_peak_tflops() or compute.measure_matmul_peak()
    writer = MetricsWriter(model_dir_path, train_steps, start, enabled=is_chief and progress)
    shards = dev_mesh.shape["data"] * dev_mesh.shape["fsdp"]
    last: dict[str, float] = {}
    try:
        for step in range(start + 1, train_steps + 1):
            t0 = time.perf_counter()
            local = next(data)
            check_batch(local, num_microbatches, shards)
            state, metrics = trainer.train_step(state, partitioning.global_batch(local, dev_mesh),
                                                donate=not ckpts.should_save(step - 1, False))
            if step % log_every == 0 or step == train_steps or ckpts.should_save(step, step == train_steps):
                last = {k: float(v) for k, v in jax.device_get(metrics).items()}
                if not math.isfinite(last["loss"]):
                    raise FloatingPointError(
                        f"loss is {last['loss']} at step {step}; stopping without saving this state "
                        f"(last checkpoint: {ckpts.latest_step()}); lower the learning rate, check the data")
                dt = time.perf_counter() - t0
                tokens = float(np.prod(local["decoder_input_tokens"].shape)) * num_hosts
                tps = tokens / dt
                last.update(tokens_per_second=tps, step_seconds=dt,
                            tflops_per_device=tps * flops_per_token / jax.device_count() / 1e12,
                            mfu=compute.mfu(tps / jax.device_count(), flops_per_token, peak))
                writer.write(step, last)
            writer.advance()
            if ckpts.should_save(step, step == train_steps):
                ckpts.save(step, state, data.state())
            if stop_after_steps is not None and step >= stop_after_steps:
                break
    finally:
        ckpts.close()
        writer.close()
    return {"final_step": int(state.step), "metrics": last, "model_config": cfg.to_dict()}


def main(argv: Sequence[str]) -> int:
    from flan_ul2r.gin_utils import import_task_modules, parse_gin, split_gin_args

    files, bindings, rest = split_gin_args(argv)
    if rest:
        print(f"flan-ul2r train: unexpected arguments {rest}; use --gin_file=F and --gin.NAME=VALUE",
              file=sys.stderr)
        return 2
    if not files:
        print("flan-ul2r train: give at least one --gin_file (e.g. gin/runs/ul2r.gin)", file=sys.stderr)
        return 2
    if os.environ.get("FLAN_UL2R_MULTIHOST") == "1" or os.environ.get("JAX_COORDINATOR_ADDRESS"):
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
        import_task_modules()  # MIXTURE_OR_TASK_MODULE: the user's seqio registrations (after the built-ins)
    except ValueError as e:
        print(f"flan-ul2r train: {e}", file=sys.stderr)
        return 2
    try:
        summary = train()
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"flan-ul2r train: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"final_step": summary["final_step"], **summary["metrics"]}))
    return 0
