"""A training run, start to end: restore or initialise, write the run files, loop (t5x's train.py).

    summary = run(RunConfig(model_dir="/tmp/run", mixture_or_task_name="ul2r", ...))

Start: the latest checkpoint in MODEL_DIR/checkpoints (state, optimizer and data position), else
INITIAL_CHECKPOINT_PATH (params only, resharded onto this mesh), else a fresh init. Run files written next
to the checkpoints: `model_config.json`, `vocab.json`, `train_info.json` (how inference should encode
prompts), the operative `config.gin` (by the entry point), and the HF files of an imported model.
MODEL_DIR and INITIAL_CHECKPOINT_PATH may be local or remote (`gs://...`, flan_ul2r/fs.py).

A run whose checkpoint already reached TRAIN_STEPS returns at once (`already_done`), so a scheduler that
re-runs a finished job sees success; a preempted run returns `preempted` (the signal) after saving.
"""
from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Mapping
from typing import Any

import jax

from flan_ul2r import fs
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training import checkpoints
from flan_ul2r.training.config import RunConfig
from flan_ul2r.training.loop import train_loop
from flan_ul2r.training.trainer import Trainer, TrainState


def run(cfg: RunConfig, operative_config: str | None = None) -> dict[str, Any]:
    """Trains `cfg` and returns {"final_step", "metrics" (the last logged), "model_config",
    "already_done" (nothing to train: the checkpoint is at TRAIN_STEPS or beyond), "preempted" (the
    signal that stopped the run after a checkpoint, or None)}."""
    if not cfg.model_dir:
        raise ValueError("MODEL_DIR is empty: say where the run writes its checkpoints")
    vocab = task_vocabulary(cfg.mixture_or_task_name)  # an unknown task fails before MODEL_DIR is made
    model_dir = fs.path(cfg.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    check_vocabularies(vocab, model_dir, cfg.initial_checkpoint_path)
    model_cfg = resolve_model(cfg, vocab)
    mesh, rules = cfg.mesh.build()
    tx, lr = cfg.optimizer.build(cfg.train_steps)
    trainer = Trainer(model_cfg, tx, mesh, rules, z_loss=cfg.z_loss, num_microbatches=cfg.num_microbatches,
                      learning_rate_fn=lr, chunked_loss=cfg.chunked_loss)
    ckpts = checkpoints.TrainCheckpoints(model_dir, cfg.checkpoint.period, cfg.checkpoint.keep,
                                         cfg.checkpoint.async_save)
    state, data_state = restore_or_init(cfg, trainer, ckpts)
    summary = {"final_step": int(state.step), "metrics": {}, "model_config": model_cfg.to_dict(),
               "already_done": cfg.train_steps <= int(state.step), "preempted": None}
    if summary["already_done"]:
        ckpts.close()
        print(f"{ckpts.directory} is at step {int(state.step)} >= TRAIN_STEPS={cfg.train_steps}: the run is "
              "finished, nothing to do (TRAIN_STEPS counts from the start of the run, as in t5x; raise it "
              "to train on)", file=sys.stderr)
        return summary
    if jax.process_index() == 0:
        write_run_files(cfg, model_cfg, vocab, operative_config)
    result = train_loop(cfg, trainer, ckpts, state, data_state)
    summary.update(final_step=int(result.state.step), metrics=result.metrics, preempted=result.preempted)
    return summary


def task_vocabulary(name: str) -> Any:
    """The vocabulary every task of the task or mixture shares (checked: data/registry.py); an unknown
    name is an error that suggests the closest registered names."""
    from flan_ul2r.data.registry import registered_names
    from flan_ul2r.data.registry import task_vocabulary as shared_vocabulary

    names = registered_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"MIXTURE_OR_TASK_NAME={name!r} is not a registered task or mixture{hint} (tasks "
                         "register when their module is imported: `import` it in a gin file)")
    return shared_vocabulary(name)


def check_vocabularies(vocab: Any, model_dir: fs.PathLike, initial_checkpoint_path: str | None) -> None:
    """The task's vocabulary must be the one the run / initial checkpoint was made with (else ids would
    mean other tokens): compared field by field with their `vocab.json`."""
    got = vocab.describe() if hasattr(vocab, "describe") else {}
    for source in (model_dir, initial_checkpoint_path):
        stored = checkpoints.read_json_beside(source, "vocab") if source else None
        for key in ("kind", "vocab_size", "eos_id", "sentinels", "mode_tokens"):
            if stored is not None and key in stored and got.get(key) != stored[key]:
                raise ValueError(
                    f"vocabulary mismatch with {source}: field {key!r} is {got.get(key)!r} in the task's "
                    f"vocabulary but {stored[key]!r} in the checkpoint's vocab.json; set "
                    "ul2r_corpus.vocabulary to the model's tokenizer (hf:CHECKPOINT/tokenizer)")


def stored_model_config(cfg: RunConfig) -> tuple[dict[str, Any] | None, Any]:
    """(model_config.json of the resumed run, else of the initial checkpoint, else None; where from)."""
    saved = fs.path(cfg.model_dir) / "model_config.json"
    if saved.is_file():
        return fs.read_json(saved), saved.parent
    if cfg.initial_checkpoint_path:
        stored = checkpoints.read_json_beside(cfg.initial_checkpoint_path, "model_config")
        if stored is None:
            raise FileNotFoundError(f"INITIAL_CHECKPOINT_PATH={cfg.initial_checkpoint_path}: no "
                                    "model_config.json (not a flan-ul2r checkpoint; import HF models with "
                                    "`flan-ul2r convert import-hf`)")
        return stored, cfg.initial_checkpoint_path
    return None, None


def resolve_model(cfg: RunConfig, vocab: Any) -> ModelConfig:
    """The model config: a resumed run's, else the initial checkpoint's, else the gin shape; checked
    against the data vocabulary (a model smaller than the vocabulary would index out of its embedding)."""
    model_cfg = cfg.model.resolve(*stored_model_config(cfg))
    if model_cfg.vocab_size < int(vocab.vocab_size):
        raise ValueError(f"model vocab_size={model_cfg.vocab_size} < data vocabulary size "
                         f"{vocab.vocab_size}: the checkpoint/model and the task's vocabulary do not match")
    return model_cfg


def restore_or_init(cfg: RunConfig, trainer: Trainer, ckpts: checkpoints.TrainCheckpoints
                    ) -> tuple[TrainState, dict[str, Any] | None]:
    """(state, loader position): resume MODEL_DIR, else params from INITIAL_CHECKPOINT_PATH, else init."""
    latest = ckpts.latest_step()
    if latest is not None:
        state, data_state = ckpts.restore(latest, trainer.abstract_state)
        print(resume_note(ckpts, latest), file=sys.stderr)
        return state, data_state
    if cfg.initial_checkpoint_path:
        params, _ = checkpoints.restore_params(cfg.initial_checkpoint_path, trainer.abstract_state.params)
        print(f"initialised from {cfg.initial_checkpoint_path}", file=sys.stderr)
        return trainer.state_from_params(params), None
    return trainer.init_state(cfg.seed), None


def resume_note(ckpts: checkpoints.TrainCheckpoints, step: int) -> str:
    """What a resumed run prints (an interrupted save is not a step: orbax ignores it)."""
    return f"resuming from {ckpts.directory / str(step)}"


def write_run_files(cfg: RunConfig, model_cfg: ModelConfig, vocab: Any, operative_config: str | None) -> None:
    model_dir = fs.path(cfg.model_dir)
    fs.write_text(model_dir / "model_config.json", model_cfg.to_json())
    if operative_config is not None:
        fs.write_text(model_dir / "config.gin", operative_config)
    if hasattr(vocab, "describe"):
        fs.write_json(model_dir / "vocab.json", vocab.describe())
    if cfg.initial_checkpoint_path:  # keep what export-hf / load_model need next to the run
        copy_model_files(cfg.initial_checkpoint_path, model_dir)
    info = train_info(cfg.mixture_or_task_name, cfg.task_feature_lengths)
    fs.write_json(model_dir / "train_info.json", info)
    fs.write_json(model_dir / "run_config.json", dataclasses.asdict(cfg))


def train_info(mixture_or_task_name: str, task_feature_lengths: Mapping[str, int]) -> dict[str, Any]:
    """What inference needs to know about how the model was trained (`train_info.json` in MODEL_DIR):
    `prefix_lm` (inputs were attended bidirectionally: UL2R and Flan runs, U-PaLM section 2.2; a run
    with no inputs, e.g. the `lm` task, trained causally) and the `sequence_length` it saw."""
    inputs, targets = int(task_feature_lengths.get("inputs", 0)), int(task_feature_lengths["targets"])
    return {"mixture_or_task_name": mixture_or_task_name, "prefix_lm": inputs > 0,
            "sequence_length": inputs + targets,
            "task_feature_lengths": {"inputs": inputs, "targets": targets}}


def copy_model_files(initial: fs.PathLike, model_dir: fs.PathLike) -> None:
    """An imported model's `hf_config.json` and `tokenizer/` (export-hf and load_model read them)."""
    initial, model_dir = fs.absolute(initial), fs.path(model_dir)
    folder = initial if (initial / "params").is_dir() else initial.parent.parent
    if (folder / "hf_config.json").is_file() and not (model_dir / "hf_config.json").exists():
        fs.copy_file(folder / "hf_config.json", model_dir / "hf_config.json")
    if (folder / "tokenizer").is_dir() and not (model_dir / "tokenizer").exists():
        fs.copy_tree(folder / "tokenizer", model_dir / "tokenizer")
