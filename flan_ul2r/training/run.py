"""A training run, start to end: restore or initialise, write the run files, loop (t5x's train.py).

    summary = run(RunConfig(model_dir="/tmp/run", mixture_or_task_name="ul2r", ...))

Order: settings are checked (RunConfig, the task's name and lengths) before anything is written; then
the run takes MODEL_DIR's lock (training/run_lock.py: one writer per MODEL_DIR); then the start: the
newest good checkpoint in MODEL_DIR/checkpoints (state, optimizer and data position; a damaged newer
step is moved aside, flan_ul2r/checkpoint_health.py; a resume must keep the data settings), else
INITIAL_CHECKPOINT_PATH (params only, resharded onto this mesh), else a fresh init; then the run files
(training/run_files.py) and the loop. MODEL_DIR and INITIAL_CHECKPOINT_PATH may be local or remote
(`gs://...`, flan_ul2r/fs.py). SIGTERM/SIGINT are watched from the first line (training/preemption.py).

A run whose checkpoint already reached TRAIN_STEPS returns at once (`already_done`), so a scheduler that
re-runs a finished job sees success; a preempted run returns `preempted` (the signal), after saving when
the loop had started (`saved`).
"""
from __future__ import annotations

import sys
from typing import Any

import jax

from flan_ul2r import fs
from flan_ul2r.errors import ConfigError
from flan_ul2r.models.config import ModelConfig
from flan_ul2r.training import checkpoints, preemption, run_lock
from flan_ul2r.training.config import RunConfig
from flan_ul2r.training.loop import train_loop
from flan_ul2r.training.run_files import check_resume_settings, train_info, write_run_files  # noqa: F401
from flan_ul2r.training.trainer import Trainer, TrainState


def run(cfg: RunConfig, operative_config: str | None = None) -> dict[str, Any]:
    """Trains `cfg` and returns {"final_step", "metrics" (the last logged), "model_config",
    "already_done" (nothing to train: the checkpoint is at TRAIN_STEPS or beyond), "preempted" (the
    signal that stopped the run, or None), "saved" (whether the stop saved a checkpoint: False for a
    signal before the first step)}."""
    if not cfg.model_dir:
        raise ConfigError("MODEL_DIR is empty: say where the run writes its checkpoints")
    with preemption.watching() as watcher:
        watcher.starting()
        try:
            return _run(cfg, operative_config, watcher)
        except preemption.Preempted as p:
            print(p.message, file=sys.stderr, flush=True)
            done = (p.next_step or 1) - 1
            return {"final_step": done, "metrics": {}, "model_config": {}, "already_done": False,
                    "preempted": p.signal_name, "saved": False}


def _run(cfg: RunConfig, operative_config: str | None, watcher: preemption.PreemptionWatcher
         ) -> dict[str, Any]:
    vocab = task_vocabulary(cfg.mixture_or_task_name)  # an unknown task fails before MODEL_DIR is made
    check_feature_lengths(cfg.mixture_or_task_name, cfg.task_feature_lengths)
    model_dir = fs.path(cfg.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    lock = run_lock.hold(model_dir)
    try:
        return _locked_run(cfg, operative_config, watcher, vocab, lock)
    finally:
        if lock is not None:
            lock.release()


def _locked_run(cfg: RunConfig, operative_config: str | None, watcher: preemption.PreemptionWatcher,
                vocab: Any, lock: run_lock.RunLock | None) -> dict[str, Any]:
    check_vocabularies(vocab, cfg.model_dir, cfg.initial_checkpoint_path)
    model_cfg = resolve_model(cfg, vocab)
    mesh, rules = cfg.mesh.build()
    tx, lr = cfg.optimizer.build(cfg.train_steps)
    trainer = Trainer(model_cfg, tx, mesh, rules, z_loss=cfg.z_loss, num_microbatches=cfg.num_microbatches,
                      learning_rate_fn=lr, chunked_loss=cfg.chunked_loss)
    ckpts = checkpoints.TrainCheckpoints(fs.path(cfg.model_dir), cfg.checkpoint.every, cfg.checkpoint.keep,
                                         cfg.checkpoint.async_save)
    if lock is not None:
        ckpts.before_save = lock.check
    try:  # the loop closes the checkpoints itself; before it, an error (or a signal) must too
        state, data_state = restore_or_init(cfg, trainer, ckpts, watcher)
        summary = {"final_step": int(state.step), "metrics": {}, "model_config": model_cfg.to_dict(),
                   "already_done": cfg.train_steps <= int(state.step), "preempted": None, "saved": False}
        if summary["already_done"]:
            ckpts.close()
            print(f"{ckpts.directory} is at step {int(state.step)} >= TRAIN_STEPS={cfg.train_steps}: the run "
                  "is finished, nothing to do (TRAIN_STEPS counts from the start of the run, as in t5x; "
                  "raise it to train on)", file=sys.stderr)
            return summary
        if jax.process_index() == 0:
            write_run_files(cfg, model_cfg, vocab, operative_config)
    except BaseException:
        ckpts.close()
        raise
    result = train_loop(cfg, trainer, ckpts, state, data_state)
    summary.update(final_step=int(result.state.step), metrics=result.metrics, preempted=result.preempted,
                   saved=result.preempted is not None)
    return summary


def task_vocabulary(name: str) -> Any:
    """The vocabulary every task of the task or mixture shares (checked: data/core/registry.py); an unknown
    name is a ConfigError that suggests the closest registered names."""
    from flan_ul2r.data.core.registry import task_vocabulary as shared_vocabulary

    return shared_vocabulary(name)


def check_feature_lengths(name: str, lengths: Any) -> None:
    from flan_ul2r.data.core.registry import check_feature_lengths as check

    check(name, lengths)


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


def restore_or_init(cfg: RunConfig, trainer: Trainer, ckpts: checkpoints.TrainCheckpoints,
                    watcher: preemption.PreemptionWatcher | None = None
                    ) -> tuple[TrainState, dict[str, Any] | None]:
    """(state, loader position): resume MODEL_DIR from its newest good step (damaged newer ones are moved
    aside: checkpoints.py), else params from INITIAL_CHECKPOINT_PATH, else init. A resume must keep the
    data settings (run_files.check_resume_settings)."""
    latest = ckpts.latest_step()
    if watcher is not None:
        watcher.next_step = (latest or 0) + 1
    if latest is not None:
        if latest < cfg.train_steps:  # a finished run re-run only reports that it is finished
            check_resume_settings(cfg, latest)
        found = ckpts.restore_newest_good(trainer.abstract_state)
        if found is not None:
            step, state, data_state = found
            if watcher is not None:
                watcher.next_step = step + 1
            print(resume_note(ckpts, step), file=sys.stderr)
            return state, data_state
    if cfg.initial_checkpoint_path:
        params, _ = checkpoints.restore_params(cfg.initial_checkpoint_path, trainer.abstract_state.params)
        print(f"initialised from {cfg.initial_checkpoint_path}", file=sys.stderr)
        return trainer.state_from_params(params), None
    return trainer.init_state(cfg.seed), None


def resume_note(ckpts: checkpoints.TrainCheckpoints, step: int) -> str:
    """What a resumed run prints (an interrupted save is not a step: orbax ignores it)."""
    return f"resuming from {ckpts.directory / str(step)}"
