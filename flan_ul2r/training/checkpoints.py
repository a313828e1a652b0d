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
damage (flan_ul2r/checkpoint_health.py). Every path may be local or remote (`flan_ul2r.fs`).

Params-only checkpoints (save_params, restore_params, read_json_beside) live in flan_ul2r/checkpoint_io.py,
shared with api and convert; they are imported here for the training code.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp

from flan_ul2r import checkpoint_health as health
from flan_ul2r import fs
from flan_ul2r.checkpoint_io import STATE, read_json_beside, restore_params, save_params

DATA = "data"


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
            except OSError as err:  # a failed save's leftover *.orbax-checkpoint-tmp: never a step
                logging.getLogger(__name__).warning("checkpoint temporary folder left behind: %s", err)
            finally:
                self.manager.close()


__all__ = ["DATA", "STATE", "CheckpointSaveError", "TrainCheckpoints", "read_json_beside", "restore_params",
           "save_params"]
