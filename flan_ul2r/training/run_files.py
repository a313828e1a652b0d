"""The run files next to the checkpoints, and what a resume may change.

`MODEL_DIR/model_config.json`, `vocab.json`, `train_info.json` (how inference should encode prompts and
what the data stream was), `run_config.json`, the operative `config.gin` (by the entry point), and the HF
files of an imported model. They are written after every setting has been checked, by process 0.

`train_info.json`'s `prefix_lm` is what the batches really contained: the loop reports the first batch
with a bidirectional prefix (`batch_has_prefix`), and a run that saw one records `true` (a resumed run
keeps a `true` it finds). `load_model`, `infer` and `eval` read it to encode prompts the way the model
trained.
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from flan_ul2r import fs
from flan_ul2r.errors import ConfigError
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training.config import RunConfig


def write_run_files(cfg: RunConfig, model_cfg: ModelConfig, vocab: Any, operative_config: str | None) -> None:
    model_dir = fs.path(cfg.model_dir)
    fs.write_text(model_dir / "model_config.json", model_cfg.to_json())
    if operative_config is not None:
        fs.write_text(model_dir / "config.gin", operative_config)
    if hasattr(vocab, "describe"):
        fs.write_json(model_dir / "vocab.json", vocab.describe())
    if cfg.initial_checkpoint_path:  # keep what export-hf / load_model need next to the run
        copy_model_files(cfg.initial_checkpoint_path, model_dir)
    stored = stored_train_info(model_dir) or {}
    info = train_info(cfg.mixture_or_task_name, cfg.task_feature_lengths, cfg.batch_size,
                      prefix_lm=bool(stored.get("prefix_lm", False)))
    fs.write_json(model_dir / "train_info.json", info)
    fs.write_json(model_dir / "run_config.json", dataclasses.asdict(cfg))


def train_info(mixture_or_task_name: str, task_feature_lengths: Mapping[str, int],
               batch_size: int | None = None, prefix_lm: bool = False) -> dict[str, Any]:
    """What inference needs to know about how the model was trained (`train_info.json` in MODEL_DIR):
    `prefix_lm` (inputs were attended bidirectionally, as in UL2R and Flan runs, U-PaLM section 2.2: what
    the batches contained, module docstring), the `sequence_length` it saw, and the data settings a
    resume must keep (`task_feature_lengths`, `batch_size`)."""
    inputs, targets = int(task_feature_lengths.get("inputs", 0)), int(task_feature_lengths["targets"])
    info = {"mixture_or_task_name": mixture_or_task_name, "prefix_lm": bool(prefix_lm),
            "sequence_length": inputs + targets,
            "task_feature_lengths": {"inputs": inputs, "targets": targets}}
    if batch_size is not None:
        info["batch_size"] = int(batch_size)
    return info


def stored_train_info(model_dir: fs.PathLike) -> dict[str, Any] | None:
    path = fs.path(model_dir) / "train_info.json"
    return fs.read_json(path) if path.is_file() else None


def record_prefix_lm(model_dir: fs.PathLike) -> None:
    """Sets `prefix_lm: true` in train_info.json (the loop saw a batch with a bidirectional prefix)."""
    info = stored_train_info(model_dir)
    if info is not None and not info.get("prefix_lm"):
        fs.write_json(fs.path(model_dir) / "train_info.json", {**info, "prefix_lm": True})


def batch_has_prefix(batch: Mapping[str, np.ndarray]) -> bool:
    """Whether a packed batch has a bidirectional prefix: a position attended bidirectionally
    (`decoder_causal_attention`) that is an input (loss weight 0) of a real example (segment > 0). The
    one bidirectional position every example has, its first target, carries a loss weight."""
    causal = batch.get("decoder_causal_attention")
    if causal is None:
        return False
    inputs = (causal > 0) & (batch["decoder_loss_weights"] == 0) & (batch["decoder_segment_ids"] > 0)
    return bool(np.any(inputs))


def check_resume_settings(cfg: RunConfig, resumed_step: int) -> None:
    """A resume must read the stream the checkpoint's data position points into: the same
    TASK_FEATURE_LENGTHS and BATCH_SIZE as the run that wrote it (train_info.json, else run_config.json),
    unless `cfg.allow_data_change`. The error names both values."""
    model_dir = fs.path(cfg.model_dir)
    stored = stored_train_info(model_dir) or {}
    if "batch_size" not in stored and (model_dir / "run_config.json").is_file():
        stored = {**fs.read_json(model_dir / "run_config.json"), **stored}
    lengths = {"inputs": int(cfg.task_feature_lengths.get("inputs", 0)),
               "targets": int(cfg.task_feature_lengths["targets"])}
    changes = []
    if "task_feature_lengths" in stored and dict(stored["task_feature_lengths"]) != lengths:
        changes.append(f"TASK_FEATURE_LENGTHS={lengths} but the checkpoint's run used "
                       f"{dict(stored['task_feature_lengths'])}")
    if "batch_size" in stored and int(stored["batch_size"]) != cfg.batch_size:
        changes.append(f"BATCH_SIZE={cfg.batch_size} but the checkpoint's run used {stored['batch_size']}")
    if not changes:
        return
    if cfg.allow_data_change:
        print(f"resuming step {resumed_step} with changed data settings ({'; '.join(changes)}): "
              "RunConfig.allow_data_change=True", file=sys.stderr, flush=True)
        return
    raise ConfigError(f"resuming {model_dir} at step {resumed_step}: {'; '.join(changes)}. The saved data "
                      "position belongs to the old stream: keep the old values, or pass "
                      "--gin.RunConfig.allow_data_change=True to continue with the new ones")


def copy_model_files(initial: fs.PathLike, model_dir: fs.PathLike) -> None:
    """An imported model's `hf_config.json` and `tokenizer/` (export-hf and load_model read them)."""
    initial, model_dir = fs.absolute(initial), fs.path(model_dir)
    folder = initial if (initial / "params").is_dir() else initial.parent.parent
    if (folder / "hf_config.json").is_file() and not (model_dir / "hf_config.json").exists():
        fs.copy_file(folder / "hf_config.json", model_dir / "hf_config.json")
    if (folder / "tokenizer").is_dir() and not (model_dir / "tokenizer").exists():
        fs.copy_tree(folder / "tokenizer", model_dir / "tokenizer")
