"""Params-only checkpoints and the JSON files beside a checkpoint: what `convert import-hf` writes, what
INITIAL_CHECKPOINT_PATH, `flan_ul2r.load_model` and `convert export-hf` read. Shared by api, convert and
training (which keeps the training-state CheckpointManager in training/checkpoints.py), so none of them
imports another for it.

Params-only layout: `DIR/model_config.json`, one `DIR/<name>.json` per extra (e.g. `vocab.json`),
`DIR/params/` (orbax). A training step directory `MODEL_DIR/checkpoints/<step>/state` is read too (its
params subtree). Every path may be local or remote (`flan_ul2r.fs`); a damaged checkpoint is named
(flan_ul2r/checkpoint_health.py).
"""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from flan_ul2r import checkpoint_health as health
from flan_ul2r import fs

STATE = "state"  # the TrainState item of a training step directory
# What orbax logs for every checkpoint it reads metadata of, although nothing is wrong: the step-level
# `_CHECKPOINT_METADATA` sits one folder above the item that `StandardCheckpointer.metadata` opens.
_NOISE = ("Metadata file does not exist", "Failed to get item metadata")


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
