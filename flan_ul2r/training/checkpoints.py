"""Orbax checkpoints: the training state with its data position, and params-only model checkpoints.

Training layout (t5x's, on orbax): `MODEL_DIR/checkpoints/<step>/{state, data}`; `state` is the
TrainState pytree (restored straight onto the current mesh's shardings), `data` is the loader's JSON
position, so a resumed run sees exactly the batches an uninterrupted one would. orbax writes each step
into a temporary directory and renames it when complete, so a kill in the middle of a save leaves the
previous checkpoint intact (the half-written one is ignored and cleaned up); on gs:// orbax writes a
`commit_success.txt` last and ignores steps without it. A save that fails (e.g. the disk is full) raises
`CheckpointSaveError` naming the step and the last complete checkpoint, which stays untouched.
A step that is complete but damaged later (an empty metadata file, a truncated array file) is found on
restore: training moves it aside and resumes from the newest good step; every other reader names the
damage (training/checkpoint_health.py). Every path may be local or remote (`flan_ul2r.fs`).

Params-only layout (what `convert import-hf` writes and INITIAL_CHECKPOINT_PATH reads):
`DIR/model_config.json`, one `DIR/<name>.json` per extra (e.g. `vocab.json`), `DIR/params/` (orbax).
"""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from flan_ul2r import fs
from flan_ul2r.training import checkpoint_health as health

STATE, DATA = "state", "data"
# What orbax logs for every checkpoint it reads metadata of, although nothing is wrong: the step-level
# `_CHECKPOINT_METADATA` sits one folder above the item that `StandardCheckpointer.metadata` opens.
_NOISE = ("Metadata file does not exist", "Failed to get item metadata")


class CheckpointSaveError(OSError):
    """A checkpoint could not be written; the message names the step, the cause and the last good step."""


class TrainCheckpoints:
    """CheckpointManager over MODEL_DIR/checkpoints with async saves, a save period and keep-N."""

    def __init__(self, model_dir: fs.PathLike, period: int, keep: int | None = 3, async_save: bool = True):
        self.directory = fs.absolute(model_dir) / "checkpoints"
        options = ocp.CheckpointManagerOptions(save_interval_steps=1, max_to_keep=keep, create=True,
                                               enable_async_checkpointing=async_save,
                                               cleanup_tmp_directories=True)
        self.period = int(period)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=(STATE, DATA))
        self.last_good_step: int | None = self.manager.latest_step()  # complete: orbax skips partial saves
        self._in_flight: int | None = None
        self._closed = False
        self.before_save: Callable[[], None] | None = None  # e.g. the MODEL_DIR lock's check (run_lock.py)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def should_save(self, step: int, final: bool) -> bool:
        return final or (self.period > 0 and step % self.period == 0)

    def save(self, step: int, state: Any, data_state: dict[str, Any], wait: bool = False) -> None:
        """Saves (in the background unless `wait`). A failure of this save, or of the previous background
        one, raises CheckpointSaveError."""
        self.wait()
        if self.before_save is not None:
            self.before_save()
        try:
            self.manager.save(step, args=ocp.args.Composite(
                **{STATE: ocp.args.StandardSave(state), DATA: ocp.args.JsonSave(data_state)}), force=True)
        except Exception as e:
            raise self._save_error(step, e) from e
        self._in_flight = step
        if wait:
            self.wait()

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        """Restores onto the shardings carried by `abstract_state` (jax.ShapeDtypeStruct leaves)."""
        out = self.manager.restore(step, args=ocp.args.Composite(
            **{STATE: ocp.args.StandardRestore(abstract_state), DATA: ocp.args.JsonRestore()}))
        return out[STATE], dict(out[DATA])

    def restore_newest_good(self, abstract_state: Any) -> tuple[int, Any, dict[str, Any]] | None:
        """(step, state, data position) of the newest step that restores; damaged newer steps are moved
        aside to `<step>.corrupt` (by process 0) with a message naming the step and the damage. None when
        there is no step; an error when every step was damaged (a fresh start would pass for a resume)."""
        for step in sorted(self.manager.all_steps(), reverse=True):
            step_dir = self.directory / str(step)
            damage = health.file_damage(step_dir)
            if damage is None:
                try:
                    state, data_state = self.restore(step, abstract_state)
                except Exception as e:
                    damage = health.read_damage(e)
                    if damage is None:
                        raise
                else:
                    self.last_good_step = step
                    return step, state, data_state
            self._set_aside(step_dir, damage)
        aside = health.set_aside(self.directory)
        if aside:
            raise health.DamagedCheckpointError(
                f"every checkpoint in {self.directory} is damaged (moved aside: {aside}); not starting over "
                "in their place: move them out of MODEL_DIR to start the run from the beginning")
        return None

    def _set_aside(self, step_dir: Any, damage: str) -> None:
        moved = step_dir.parent / f"{step_dir.name}{health.CORRUPT_SUFFIX}"
        if jax.process_index() == 0:
            moved = health.move_aside(step_dir)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"flan_ul2r: {step_dir} set aside")
        print(f"checkpoint {step_dir} is damaged: {damage}; moved it aside to {moved} (nothing deleted) and "
              "falling back to the newest good step", file=sys.stderr, flush=True)
        self.manager.reload()

    def wait(self) -> None:
        """Waits for a background save; CheckpointSaveError if it failed."""
        step, self._in_flight = self._in_flight, None
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise self._save_error(step, e) from e
        if step is not None:
            self.last_good_step = step

    def _save_error(self, step: int | None, error: Exception) -> CheckpointSaveError:
        good = self.last_good_step
        where = f"step {good} ({self.directory / str(good)})" if good is not None else "none"
        return CheckpointSaveError(
            f"saving the checkpoint of step {step} to {self.directory} failed: {type(error).__name__}: "
            f"{error}; the last complete checkpoint, {where}, is untouched and a restart resumes from it")

    def close(self) -> None:
        """Waits for a background save and closes the manager (its threads); a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.wait()
        finally:
            # orbax's close does not wait for the clean-up of temporary folders it started in the
            # background; a process that exits right after would print that thread's traceback
            cleanup = getattr(self.manager, "_maybe_await_cleanup_tmp_directory", None)
            try:
                if cleanup is not None:
                    cleanup()
            finally:
                self.manager.close()


def save_params(path: fs.PathLike, params: Any, model_config: dict[str, Any],
                extra: dict[str, dict[str, Any]] | None = None) -> None:
    """Writes a params-only checkpoint (see module docstring)."""
    path = fs.absolute(path)
    path.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path / "params", params, force=True)
        ckptr.wait_until_finished()
    fs.write_json(path / "model_config.json", model_config)
    for name, value in (extra or {}).items():
        fs.write_json(path / f"{name}.json", value)


def _params_location(path: epath.Path) -> tuple[epath.Path, bool]:
    """(orbax directory, is_training_state): a params-only dir or a training step dir."""
    if (path / "params").is_dir():
        return path / "params", False
    if (path / STATE).is_dir():
        return path / STATE, True
    steps = sorted(int(p.name) for p in (path / "checkpoints").iterdir() if p.name.isdigit()) \
        if (path / "checkpoints").is_dir() else []
    if steps:
        raise FileNotFoundError(f"{path} is a training MODEL_DIR, not a checkpoint: give one of its steps, "
                                f"e.g. {path / 'checkpoints' / str(steps[-1])}")
    raise FileNotFoundError(f"{path}: not a flan-ul2r checkpoint (expected params/ from `convert import-hf` "
                            f"or state/ from a training step directory MODEL_DIR/checkpoints/<step>)")


def read_json_beside(path: fs.PathLike, name: str) -> dict[str, Any] | None:
    """`name`.json next to a params checkpoint, or in MODEL_DIR for a training step directory."""
    path = fs.absolute(path)
    for folder in (path, path.parent.parent):
        f = folder / f"{name}.json"
        if f.is_file():
            return fs.read_json(f)
    return None


def restore_params(path: fs.PathLike, abstract_params: Any | None = None
                   ) -> tuple[Any, dict[str, Any] | None]:
    """Params of a params-only or training checkpoint, resharded onto `abstract_params`' shardings.

    `abstract_params`: a pytree of jax.ShapeDtypeStruct with `.sharding` (None: as saved, on one device).
    Shapes must match; a mismatch raises an error naming the parameter. Returns (params, model_config).
    """
    path = fs.absolute(path)
    if not path.exists():
        raise FileNotFoundError(f"INITIAL_CHECKPOINT_PATH={path}: no such directory")
    location, is_state = _params_location(path)
    damage = health.file_damage(path, data_position=False)
    if damage is not None:
        raise health.damaged(path, damage)
    position_damage = health.file_damage(path) if is_state else None
    if position_damage is not None:  # not read here: say so, and go on with the whole parameters
        print(f"note: checkpoint {path} is damaged: {position_damage}; its parameters are whole and are "
              "used (training would set this step aside)", file=sys.stderr)
    try:
        restored = _read_params(location, is_state, abstract_params, path)
    except Exception as e:
        damage = health.read_damage(e)
        if damage is None:
            raise
        raise health.damaged(path, damage) from None
    return restored, read_json_beside(path, "model_config")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_NOISE)


@contextlib.contextmanager
def _quiet_metadata_warnings() -> Iterator[None]:
    quiet, loggers = _DropNoise(), [logging.getLogger(), logging.getLogger("absl")]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def _read_params(location: epath.Path, is_state: bool, abstract_params: Any | None, path: epath.Path) -> Any:
    with ocp.StandardCheckpointer() as ckptr, _quiet_metadata_warnings():
        meta = ckptr.metadata(location)
        tree = getattr(meta, "item_metadata", meta)
        tree = getattr(tree, "tree", tree)
        saved = tree["params"] if is_state else tree
        if abstract_params is None:
            restored = ckptr.restore(location)
            restored = restored["params"] if is_state else restored
        else:
            _check_shapes(saved, abstract_params, path)
            if is_state:  # the params subtree of a full TrainState; the rest is read and dropped
                restored = _restore_subtree(ckptr, location, tree, abstract_params)
            else:
                restored = ckptr.restore(location, abstract_params)
    return restored


def _restore_subtree(ckptr: ocp.StandardCheckpointer, location: epath.Path, tree: Any,
                     abstract_params: Any) -> Any:
    import jax.numpy as jnp

    def placeholder(m):
        return jax.ShapeDtypeStruct(tuple(m.shape), jnp.dtype(m.dtype))

    target = jax.tree.map(placeholder, dict(tree))
    target["params"] = abstract_params
    return ckptr.restore(location, target)["params"]


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    return {jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def _check_shapes(saved: Any, wanted: Any, path: epath.Path) -> None:
    saved_flat, wanted_flat = _shapes(saved), _shapes(wanted)
    missing = sorted(set(wanted_flat) - set(saved_flat))
    if missing:
        raise ValueError(f"{path}: checkpoint lacks parameters {missing[:5]}")
    for k, shape in wanted_flat.items():
        if saved_flat[k] != shape:
            raise ValueError(f"{path}: parameter {k} has shape {saved_flat[k]} in the checkpoint, but the "
                             f"model wants {shape} (model config / vocabulary mismatch?)")
