"""Orbax checkpoints: the training state with its data position, and params-only model checkpoints.

Training layout (t5x's, on orbax): `MODEL_DIR/checkpoints/<step>/{state, data}`; `state` is the
TrainState pytree (restored straight onto the current mesh's shardings), `data` is the loader's JSON
position, so a resumed run sees exactly the batches an uninterrupted one would. orbax writes each step
into a temporary directory and renames it when complete, so a kill in the middle of a save leaves the
previous checkpoint intact (the half-written one is ignored and cleaned up); on gs:// orbax writes a
`commit_success.txt` last and ignores steps without it. A save that fails (e.g. the disk is full) raises
`CheckpointSaveError` naming the step and the last complete checkpoint, which stays untouched.
Every path may be local or remote (`flan_ul2r.fs`).

Params-only layout (what `convert import-hf` writes and INITIAL_CHECKPOINT_PATH reads):
`DIR/model_config.json`, one `DIR/<name>.json` per extra (e.g. `vocab.json`), `DIR/params/` (orbax).
"""
from __future__ import annotations

from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from flan_ul2r import fs

STATE, DATA = "state", "data"


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

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def should_save(self, step: int, final: bool) -> bool:
        return final or (self.period > 0 and step % self.period == 0)

    def save(self, step: int, state: Any, data_state: dict[str, Any], wait: bool = False) -> None:
        """Saves (in the background unless `wait`). A failure of this save, or of the previous background
        one, raises CheckpointSaveError."""
        self.wait()
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
        try:
            self.wait()
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
    with ocp.StandardCheckpointer() as ckptr:
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
    return restored, read_json_beside(path, "model_config")


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
